"""The files of a model version, typed: one pydantic model per file, and the one reader of a version directory.

A version directory (in the registry, in KServe's /mnt/models, or fetched locally) holds:

- ``metadata.json`` (:class:`VersionMetadata`): written last by the registry; task, family, metrics, gate decision,
  the data contract, lineage, library versions and the sha256 and size of every other file;
- ``bundle.json`` (:class:`BundleSpec`): the model bundle's own manifest (family, features, classes, decision
  threshold, params, and the sha256 of its two model files); a bare bundle directory (a train or tune output) has it
  too, without ``metadata.json``.

The data contract lives in ``metadata.json`` only (``contract``): a ``registry describe`` shows it without a download.
Versions registered before this module also hold ``contract.json``, a copy of it; it is no longer written and never
read (its sha256 is still verified with every other file).

Every model refuses unknown keys. Files written before format versions existed carry no ``format_version`` and read
as version 1; a file of a newer format than :data:`FORMAT_VERSION` is refused with a FormatError naming the file and
both versions. :func:`read_version` hashes each file exactly once; a version the registry downloaded (and hashed in
the same pass) is assembled with :meth:`VersionFiles.verified`, without hashing again.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlcycle.contract import DataContract, Task
from mlcycle.errors import FormatError, IntegrityError, ModelError
from mlcycle.fsutil import verify_checksums

FORMAT_VERSION = 1  # of both files; absent means 1 (files written before it was recorded)
METADATA_FILE = "metadata.json"
BUNDLE_FILE = "bundle.json"

M = TypeVar("M", bound=BaseModel)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_version: int = Field(FORMAT_VERSION, ge=1, le=FORMAT_VERSION, strict=True)

    def document(self) -> dict:
        """The JSON document (top-level fields that are None left out, nested ones kept)."""
        return {k: v for k, v in self.model_dump(mode="json").items() if v is not None}

    def dumps(self) -> str:
        return json.dumps(self.document(), indent=2, sort_keys=True)


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class ModelFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    preprocessor: str
    estimator: str


class Lineage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset_fingerprint: str
    pipeline_run_id: str
    code_version: str
    parent: str | None = None  # the production version the gate compared against, if any
    trigger: str = "manual"  # why the run that made it started: drift | accuracy | schedule | new_data | manual
    trigger_evidence: dict[str, Any] = Field(default_factory=dict)


class VersionInfo(BaseModel):
    """What the caller of ``Registry.register`` records about a version (the registry adds the rest). Every field is
    optional: the registry stores any directory; a model version (``components.register``) sets them all."""

    model_config = ConfigDict(extra="forbid")

    task: Task | None = None
    family: str | None = None
    format: ModelFormat | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    threshold: float | None = None
    training: dict[str, Any] = Field(default_factory=dict)
    gate: dict[str, Any] = Field(default_factory=dict)
    contract: DataContract | None = None
    lineage: Lineage | None = None
    libraries: dict[str, str] = Field(default_factory=dict)
    fast_path: dict[str, Any] | None = None  # a compiled serving path's record: {status, reason, file, ...}
    semver: str | None = None  # MAJOR.MINOR.PATCH beside the immutable version id (mlcycle.semver)
    semver_reason: str | None = None


class VersionMetadata(_File, VersionInfo):
    """``metadata.json``."""

    model: str
    version: str
    created_at: str

    @property
    def optional_files(self) -> set[str]:
        """Files a reader verifies itself and may do without: the compiled fast path (``mlcycle.fastpath.load``
        checks its sha256 and falls back to the native model, reported, when it does not match)."""
        name = (self.fast_path or {}).get("file")
        return {name} if name else set()

    files: dict[str, FileEntry]


class BundleSpec(_File):
    """``bundle.json``."""

    family: str
    task: Task
    features: list[str]
    classes: list[int | str] | None = None
    threshold: float = 0.5
    params: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    estimator_file: str
    sha256: dict[str, str]


def parse(cls: type[M], text: str | bytes, where: str) -> M:
    """Validate one file's JSON text; ``where`` names it in errors (e.g. "metadata.json of fraud/v1")."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise FormatError(f"corrupt {where}: {e}") from e
    return validate(cls, data, where)


def validate(cls: type[M], data: object, where: str) -> M:
    """Check parsed JSON against ``cls``; every problem is a FormatError naming ``where`` and the fields."""
    if not isinstance(data, dict):
        raise FormatError(f"{where} is not a JSON object")
    found = data.get("format_version", FORMAT_VERSION)
    if isinstance(found, int) and found > FORMAT_VERSION:
        raise FormatError(
            f"{where} has format_version {found}, newer than the {FORMAT_VERSION} this mlcycle reads: "
            "upgrade mlcycle to read it"
        )
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in e.errors())
        raise FormatError(f"{where} does not match its schema ({cls.__name__}): {problems}") from None


def _read(cls: type[M], path: Path) -> M:
    try:
        text = path.read_text()
    except FileNotFoundError as e:
        raise ModelError(f"{path.parent} is not a model version or bundle: no {path.name}") from e
    return parse(cls, text, f"{path.name} in {path.parent}")


# bundle.json ---------------------------------------------------------------------------------
def read_bundle(directory: Path, verify: bool = True) -> BundleSpec:
    """A bundle directory's manifest; with ``verify`` its model files are hashed against it."""
    directory = Path(directory)
    spec = _read(BundleSpec, directory / BUNDLE_FILE)
    if verify:
        verify_checksums(directory, spec.sha256)
    return spec


def write_bundle(directory: Path, spec: BundleSpec) -> None:
    (Path(directory) / BUNDLE_FILE).write_text(spec.dumps())


# metadata.json / the version directory -------------------------------------------------------------------------
@dataclass(frozen=True)
class VersionFiles:
    """A verified model version on local disk: its directory and its parsed files."""

    directory: Path
    metadata: VersionMetadata
    bundle: BundleSpec

    @property
    def contract(self) -> DataContract:
        assert self.metadata.contract is not None  # verified() refuses a version without one
        return self.metadata.contract

    @classmethod
    def verified(cls, directory: Path, metadata: VersionMetadata) -> "VersionFiles":
        """Assemble a version whose files were already checked against ``metadata`` (no file is hashed here).

        The bundle's own checksums must agree with the version's: both describe the same files."""
        directory = Path(directory)
        where = f"{metadata.model}/{metadata.version}"
        if BUNDLE_FILE not in metadata.files:
            raise ModelError(f"{where} is not a model version: its files include no {BUNDLE_FILE}")
        if metadata.contract is None:
            raise ModelError(f"{where} is not a model version: its {METADATA_FILE} has no data contract")
        bundle = _read(BundleSpec, directory / BUNDLE_FILE)
        for rel, digest in bundle.sha256.items():
            entry = metadata.files.get(rel)
            if entry is None or entry.sha256 != digest:
                recorded = entry.sha256[:12] + "…" if entry else "nothing"
                raise IntegrityError(
                    f"sha256 mismatch for {rel}: {BUNDLE_FILE} records {digest[:12]}…, "
                    f"{METADATA_FILE} {recorded}; refusing to load"
                )
        return cls(directory, metadata, bundle)


def metadata_key(model: str, version: str) -> str:
    """The object-store key of a version's manifest."""
    return f"{model}/{version}/{METADATA_FILE}"


def parse_metadata(data: bytes, where: str) -> VersionMetadata:
    return parse(VersionMetadata, data, f"{METADATA_FILE} of {where}")


def write_metadata(directory: Path, metadata: VersionMetadata) -> None:
    (Path(directory) / METADATA_FILE).write_text(metadata.dumps())


def read_version(directory: Path) -> VersionFiles:
    """The one reader of a version directory: parse ``metadata.json``, hash every file it lists once, parse the rest."""
    directory = Path(directory)
    metadata = _read(VersionMetadata, directory / METADATA_FILE)
    optional = metadata.optional_files
    verify_checksums(directory, {rel: entry.sha256 for rel, entry in metadata.files.items() if rel not in optional})
    return VersionFiles.verified(directory, metadata)
