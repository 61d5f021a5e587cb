"""Find, download and verify a model version — the one loader the predictor and the drift detector share.

Sources: a local directory (e.g. KServe's /mnt/models after its storage initializer), an
``s3://bucket/model/version/`` URI (downloaded with KServe's own ``kserve_storage``), or a registry
reference ``<registry-uri>#<model>@<alias-or-version>``. Every file listed in the version's
metadata.json is checked against its sha256 before anything is deserialized.
"""

import tempfile
from pathlib import Path

from mlcycle.errors import ModelError
from mlcycle.fsutil import read_manifest, verify_checksums
from mlcycle.registry import MANIFEST, open_registry


def verify_version_dir(path: Path) -> dict:
    path = Path(path)
    meta = read_manifest(path / MANIFEST)
    # The fast-path artifact is optional: mlcycle.fastpath.load checks it and falls back to the native model.
    optional = (meta.get("fast_path") or {}).get("file")
    verify_checksums(path, {rel: info["sha256"] for rel, info in meta.get("files", {}).items() if rel != optional})
    return meta


def materialize(source: str, workdir: Path | None = None) -> tuple[Path, dict]:
    """A verified local copy of the version named by ``source``; returns (directory, metadata)."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="mlcycle-model-"))
    if "#" in source:
        registry_uri, ref = source.split("#", 1)
        model, _, alias = ref.partition("@")
        local = open_registry(registry_uri).fetch(model, alias or "production", workdir / "version")
    elif source.startswith("s3://"):
        from kserve_storage import Storage

        local = Path(Storage.download(source, str(workdir / "version")))
    else:
        local = Path(source)
        if not local.is_dir():
            raise ModelError(f"model source {source!r} is not a directory, s3:// URI or registry reference (uri#model@alias)")
    return local, verify_version_dir(local)
