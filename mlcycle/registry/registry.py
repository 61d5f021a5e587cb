"""The model registry: immutable versions, atomic aliases, lineage, audit — on any ObjectStore.

Layout (identical on a local directory and on S3/MinIO)::

    <model>/<version>/<files...>     uploaded first
    <model>/<version>/metadata.json  the manifest, written last: a version exists once it does
    <model>/_aliases.json            {"aliases": {"production": v, ...}, "updated_at": ts}
    <model>/_audit/<ts>-<id>.json    one structured record per deploy/promote/rollback/gate event
    <model>/_audit/reports/<ts>-<id>-<name>  files a record refers to (``attachments``: e.g. the drift report
                                     of a retrain), written before the record

All aliases of a model live in one document replaced by compare-and-swap, so promote and rollback
move ``production`` and ``previous`` together or not at all.
"""

import getpass
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from mlcycle.errors import (
    AliasConflict,
    IntegrityError,
    ObjectNotFound,
    ProtectedVersion,
    RegistryError,
    VersionNotFound,
)
from mlcycle.fsutil import atomic_path
from mlcycle.registry.store import ABSENT, LocalStore, ObjectStore
from mlcycle.schema import (
    FORMAT_VERSION,
    VersionFiles,
    VersionInfo,
    VersionMetadata,
    metadata_key,
    parse_metadata,
    validate,
    write_metadata,
)
from mlcycle.schema import METADATA_FILE as MANIFEST

ALIASES = "_aliases.json"
ALIAS_NAMES = ("production", "candidate", "previous")
_ATTACHMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def check_model_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise RegistryError(
            f"invalid model name {name!r}: use lowercase letters, digits and '-' (a DNS-1123 label, max 63)"
        )
    return name


@dataclass(frozen=True)
class ModelRef:
    """``<registry-uri>#<model>[@<alias-or-version>]``: one version of a model in a registry, named by an alias (the
    version it names when read) or a version id; no ``@`` means production."""

    registry_uri: str
    model: str
    ref: str = "production"

    @property
    def is_alias(self) -> bool:
        return self.ref in ALIAS_NAMES

    def at(self, ref: str) -> "ModelRef":
        """The same model named by another alias or version."""
        return ModelRef(self.registry_uri, self.model, ref)

    def __str__(self) -> str:
        return f"{self.registry_uri}#{self.model}@{self.ref}"


REF_FORMAT = "<registry-uri>#<model>[@<alias-or-version>]"


def parse_model_ref(source: str, versioned: bool = True) -> ModelRef | None:
    """The one reader of ``<registry-uri>#<model>[@<alias-or-version>]``: None when ``source`` has no ``#`` (a
    directory or a version's own URI); RegistryError naming what is wrong when it is malformed. ``versioned=False``:
    the reference names a model only (``uri#model``), an ``@`` is an error."""
    if "#" not in source:
        return None
    registry_uri, _, tail = source.partition("#")
    model, at, ref = tail.partition("@")
    expected = REF_FORMAT if versioned else "<registry-uri>#<model>"
    if not registry_uri:
        problem = "no registry URI before '#'"
    elif not model:
        problem = "no model name after '#'"
    elif at and not versioned:
        problem = f"names a version ({ref!r}); only a model is expected here"
    elif at and not ref:
        problem = "no alias or version after '@'"
    elif "#" in ref or "@" in ref:
        problem = f"{ref!r} is not an alias or a version id"
    else:
        try:
            check_model_name(model)
        except RegistryError as e:
            problem = str(e)
        else:
            return ModelRef(registry_uri, model, ref or "production")
    raise RegistryError(f"model reference {source!r}: {problem} (expected {expected})")


def local_registry_path(uri: str | Path) -> Path | None:
    """The directory of a local registry URI (a path or ``file://``, ``~`` expanded), None for ``s3://``;
    RegistryError for an empty URI or another scheme."""
    uri = str(uri)
    if uri.startswith("s3://"):
        return None
    scheme = urlparse(uri).scheme
    if scheme not in ("", "file"):
        raise RegistryError(f"unsupported registry URI {uri!r}; use s3://bucket, file:///dir or a path")
    path = uri.removeprefix("file://")
    if not path:
        raise RegistryError("empty registry URI")
    return Path(path).expanduser()


def new_version_id() -> str:
    return "v" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f") + "-" + secrets.token_hex(3)


class Registry:
    def __init__(self, store: ObjectStore):
        self.store = store

    @property
    def uri(self) -> str:
        return self.store.uri

    # versions ---------------------------------------------------------------------------
    def register(self, model: str, src_dir: Path, metadata: VersionInfo | dict, actor: str | None = None) -> str:
        """Upload every file of ``src_dir`` then the manifest; returns the new immutable version id.

        ``metadata`` is checked against the schema (mlcycle.schema.VersionInfo) before anything is uploaded."""
        check_model_name(model)
        info = metadata if isinstance(metadata, VersionInfo) else validate(VersionInfo, metadata, f"{model}'s metadata")
        src_dir = Path(src_dir)
        if not src_dir.is_dir():
            raise RegistryError(f"cannot register {src_dir}: not a directory")
        paths = sorted(p for p in src_dir.rglob("*") if p.is_file())
        rels = [p.relative_to(src_dir).as_posix() for p in paths]
        if MANIFEST in rels:
            raise RegistryError(f"{src_dir} already contains {MANIFEST}; the registry writes it")
        if not rels:
            raise RegistryError(f"cannot register {src_dir}: it holds no files")
        version = new_version_id()
        files = {}
        for rel, path in zip(rels, paths, strict=False):  # checksums are computed in the upload pass itself
            files[rel] = {"sha256": self.store.put_file(f"{model}/{version}/{rel}", path), "size": path.stat().st_size}
        manifest = VersionMetadata(
            **dict(info), format_version=FORMAT_VERSION, model=model, version=version, created_at=_now(), files=files
        )
        self.store.put_bytes(metadata_key(model, version), manifest.dumps().encode(), if_match=ABSENT)
        self.audit(
            model,
            "register",
            version=version,
            actor=actor,
            why="new version",
            evidence={"metrics": info.metrics, "gate": info.gate},
        )
        return version

    def list_models(self) -> list[str]:
        return sorted({k.split("/", 1)[0] for k in self.store.list("") if k.endswith("/" + MANIFEST)})

    def list_versions(self, model: str) -> list[str]:
        """Complete versions only (those whose manifest exists), oldest first."""
        check_model_name(model)
        keys = self.store.list(model)
        return sorted(k.split("/")[1] for k in keys if k.count("/") == 2 and k.endswith("/" + MANIFEST))

    def describe(self, model: str, ref: str = "production") -> dict:
        """The version's manifest as its JSON document (for display); code reads ``metadata``."""
        return self.metadata(model, ref).document()

    def metadata(self, model: str, ref: str = "production") -> VersionMetadata:
        """The version's parsed manifest (one GET, no download)."""
        version = self.aliases(model)[0].get(ref) if ref in ALIAS_NAMES else ref
        if not version:
            raise VersionNotFound(f"model {model!r} has no '{ref}' version in {self.uri}")
        if "/" in version or version.startswith("."):
            raise VersionNotFound(f"no version {version!r} of model {model!r} in {self.uri}")
        try:  # one GET instead of a LIST: the manifest exists exactly when the version is complete
            data, _ = self.store.get_bytes(metadata_key(model, version))
        except ObjectNotFound as e:
            raise VersionNotFound(f"no version {version!r} of model {model!r} in {self.uri}") from e
        meta = parse_metadata(data, f"{model}/{version} in {self.uri}")
        if (meta.model, meta.version) != (model, version):
            raise IntegrityError(f"the manifest at {model}/{version} in {self.uri} names {meta.model}/{meta.version}")
        return meta

    def fetch(self, model: str, ref: str, dest: Path) -> Path:
        """Download a version into ``dest`` (atomically) and verify every file's sha256."""
        return self._download(self.metadata(model, ref), Path(dest))

    def fetch_version(self, model: str, ref: str, dest: Path) -> VersionFiles:
        """``fetch`` a model version and read it: each file is hashed once, while it downloads."""
        meta = self.metadata(model, ref)
        return VersionFiles.verified(self._download(meta, Path(dest)), meta)

    def _download(self, meta: VersionMetadata, dest: Path) -> Path:
        where = f"{meta.model}/{meta.version}"
        with atomic_path(dest) as tmp:
            tmp.mkdir(parents=True)
            for rel, info in meta.files.items():
                if rel.startswith("/") or ".." in rel.split("/"):
                    raise IntegrityError(f"refusing file path {rel!r} in {where}")
                try:
                    actual = self.store.get_file(f"{where}/{rel}", tmp / rel)
                except ObjectNotFound as e:
                    raise VersionNotFound(
                        f"{where}/{rel} is missing from {self.uri}: the version was deleted meanwhile or is damaged"
                    ) from e
                if actual != info.sha256 and rel not in meta.optional_files:
                    raise IntegrityError(
                        f"sha256 mismatch for {where}/{rel}: recorded {info.sha256[:12]}…, downloaded {actual[:12]}…"
                    )
            write_metadata(tmp, meta)
        return dest

    def delete_version(self, model: str, version: str, actor: str | None = None) -> None:
        aliases, _ = self.aliases(model)
        if aliases.get("production") == version:
            raise ProtectedVersion(
                f"{model}/{version} is behind alias 'production'; promote another version or roll back first"
            )
        if version not in self.list_versions(model):
            raise VersionNotFound(f"no version {version} of model {model}")
        self.store.delete(metadata_key(model, version))  # invisible first, then the files
        for key in self.store.list(f"{model}/{version}"):
            self.store.delete(key)
        self.audit(model, "delete", version=version, actor=actor, why="deleted by request")

    # aliases ----------------------------------------------------------------------------
    def aliases(self, model: str) -> tuple[dict[str, str], str]:
        """(alias -> version, etag of the alias document; ABSENT when none was ever set)."""
        check_model_name(model)
        try:
            data, etag = self.store.get_bytes(f"{model}/{ALIASES}")
        except ObjectNotFound:
            return {}, ABSENT
        return json.loads(data)["aliases"], etag

    def resolve(self, model: str, ref: str) -> str:
        if ref in ALIAS_NAMES:
            version = self.aliases(model)[0].get(ref)
            if not version:
                raise VersionNotFound(f"model {model!r} has no '{ref}' version in {self.uri}")
            return version
        if ref not in self.list_versions(model):
            raise VersionNotFound(f"no version {ref!r} of model {model!r} in {self.uri}")
        return ref

    def _write_aliases(self, model: str, new: dict[str, str], etag: str) -> None:
        doc = {"aliases": {k: v for k, v in sorted(new.items()) if v}, "updated_at": _now()}
        try:
            self.store.put_bytes(f"{model}/{ALIASES}", _dump(doc), if_match=etag)
        except AliasConflict as e:
            raise AliasConflict(
                f"aliases of model {model!r} were changed by someone else meanwhile; nothing was changed, re-read and retry ({e})"
            ) from e

    def set_alias(self, model: str, alias: str, version: str, actor: str | None = None, why: str = "") -> None:
        if alias not in ALIAS_NAMES:
            raise RegistryError(f"unknown alias {alias!r}; use one of {', '.join(ALIAS_NAMES)}")
        if alias == "production":
            return self.promote(model, version, actor=actor, why=why)
        self.resolve(model, version)
        current, etag = self.aliases(model)
        self._write_aliases(model, {**current, alias: version}, etag)
        self.audit(model, f"alias:{alias}", version=version, actor=actor, why=why)

    def clear_alias(self, model: str, alias: str, actor: str | None = None, why: str = "") -> str | None:
        """Remove ``alias`` (never production: roll back instead); returns the version it pointed at, if any."""
        if alias not in ALIAS_NAMES or alias == "production":
            raise RegistryError(f"cannot clear alias {alias!r}: production is moved by promote or rollback")
        current, etag = self.aliases(model)
        old = current.get(alias)
        if old is not None:
            self._write_aliases(model, {k: v for k, v in current.items() if k != alias}, etag)
            self.audit(model, f"alias:{alias}", version=old, actor=actor, why=f"cleared: {why}" if why else "cleared")
        return old

    def promote(
        self,
        model: str,
        version: str,
        actor: str | None = None,
        why: str = "",
        evidence: dict | None = None,
        expected_production: str | None = ABSENT,
    ) -> None:
        """production := version, previous := old production (one atomic write).

        ``expected_production`` (optional) refuses the move unless production is still that
        version; concurrent promotions race on the alias document and exactly one wins.
        """
        self.resolve(model, version)
        current, etag = self.aliases(model)
        old = current.get("production")
        if expected_production != ABSENT and old != expected_production:
            raise AliasConflict(
                f"production of {model!r} is {old}, not {expected_production}; refusing to promote {version}"
            )
        new = {**current, "production": version}
        if old and old != version:
            new["previous"] = old
        if new.get("candidate") == version:
            new.pop("candidate")
        self._write_aliases(model, new, etag)
        evidence = {"previous": old, **(evidence or {})}
        self.audit(model, "promote", version=version, actor=actor, why=why or "promoted", evidence=evidence)

    def rollback(self, model: str, actor: str | None = None, why: str = "", evidence: dict | None = None) -> str:
        """production := previous (one atomic write); returns the version now in production."""
        current, etag = self.aliases(model)
        target = current.get("previous")
        if not target:
            raise RegistryError(f"model {model!r} has no 'previous' version to roll back to")
        bad = current.get("production")
        new = {k: v for k, v in current.items() if k != "previous"}
        new["production"] = target
        self._write_aliases(model, new, etag)
        evidence = {"from": bad, **(evidence or {})}
        self.audit(model, "rollback", version=target, actor=actor, why=why or "rolled back", evidence=evidence)
        return target

    # audit ------------------------------------------------------------------------------
    def audit(
        self,
        model: str,
        event: str,
        version: str | None = None,
        actor: str | None = None,
        why: str = "",
        evidence: dict | None = None,
        attachments: dict[str, tuple[bytes, str]] | None = None,
    ) -> str:
        """Append one record; returns its key. ``attachments``: {name: (data, content type)}, stored first under
        ``<model>/_audit/reports/`` and named in the record's ``attachments`` ({name: key})."""
        stem = f"{time.time_ns():020d}-{secrets.token_hex(4)}"
        stored = {}
        for name, (data, content_type) in (attachments or {}).items():
            if not _ATTACHMENT.match(name):
                raise RegistryError(f"invalid audit attachment name {name!r}: use letters, digits, '.', '_', '-'")
            stored[name] = f"{model}/_audit/reports/{stem}-{name}"
            self.store.put_bytes(stored[name], data, if_match=ABSENT, content_type=content_type)
        record = {
            "when": _now(),
            "event": event,
            "model": model,
            "version": version,
            "who": actor or os.environ.get("MLCYCLE_ACTOR") or _user(),
            "why": why,
            "evidence": evidence or {},
            **({"attachments": stored} if stored else {}),
        }
        key = f"{model}/_audit/{stem}.json"
        self.store.put_bytes(key, _dump(record), if_match=ABSENT)
        return key

    def audit_log(self, model: str) -> list[dict]:
        keys = self.store.list(f"{model}/_audit")
        return [json.loads(self.store.get_bytes(k)[0]) for k in keys if k.count("/") == 2 and k.endswith(".json")]

    def audit_attachment(self, key: str) -> bytes:
        """A file an audit record names under ``attachments``."""
        if not key.split("/", 1)[-1].startswith("_audit/reports/"):
            raise RegistryError(f"{key!r} is not an audit attachment")
        return self.store.get_bytes(key)[0]


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return f"uid:{os.getuid()}"


def _dump(obj: dict) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True, default=str).encode()


def open_registry(uri: str | Path) -> Registry:
    """``s3://bucket[/prefix]`` (endpoint and credentials from the environment), ``file://dir`` or a path."""
    local = local_registry_path(uri)
    if local is not None:
        return Registry(LocalStore(local))
    from mlcycle.registry.s3 import S3Store

    parsed = urlparse(str(uri))
    return Registry(S3Store.from_env(parsed.netloc, parsed.path.strip("/")))
