"""Find, download and verify a model version — the one loader the predictor and the drift detector share.

Sources: a local directory (e.g. KServe's /mnt/models after its storage initializer), an
``s3://bucket/model/version/`` URI (downloaded with KServe's own ``kserve_storage``), or a registry
reference ``<registry-uri>#<model>@<alias-or-version>``. Every file the version's manifest lists is
checked against its sha256 once before anything is deserialized: while it downloads from the registry,
else by ``mlcycle.schema.read_version``.
"""

import tempfile
from pathlib import Path

from mlcycle.errors import ModelError
from mlcycle.registry import REF_FORMAT, open_registry, parse_model_ref
from mlcycle.schema import VersionFiles, read_version


def materialize(source: str, workdir: Path | None = None) -> VersionFiles:
    """A verified local copy of the version named by ``source``, with its parsed files (the optional fast-path
    artifact is verified by ``mlcycle.fastpath.load``, which falls back to the native model)."""
    ref = parse_model_ref(source)
    if ref is not None:
        return open_registry(ref.registry_uri).fetch_version(ref.model, ref.ref, _workdir(workdir) / "version")
    if source.startswith("s3://"):
        from kserve_storage import Storage

        local = Path(Storage.download(source, str(_workdir(workdir) / "version")))
    else:
        local = Path(source)
        if not local.is_dir():
            raise ModelError(
                f"model source {source!r} is not a directory, s3:// URI or registry reference ({REF_FORMAT})"
            )
    return read_version(local)


def _workdir(given: Path | None) -> Path:
    """Where a download goes: ``given``, else a new directory under ``$TMPDIR`` (a local source needs none, so a
    server over KServe's /mnt/models starts on a read-only root filesystem)."""
    return Path(given) if given is not None else Path(tempfile.mkdtemp(prefix="mlcycle-model-"))
