"""Object stores behind the registry: one small interface, a local-directory and an S3 implementation.

Keys are '/'-separated relative paths. ``put_file`` and ``get_file`` return the sha256 of the bytes
they moved, computed in the same pass (no second read of large model files). ``put_bytes`` takes an optional precondition for optimistic
concurrency: ``if_match=<etag>`` (replace only that content) or ``if_match=ABSENT`` (create only).
"""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from mlcycle.errors import AliasConflict, ObjectNotFound, RegistryError
from mlcycle.fsutil import atomic_path, copy_hashing, file_chunks, sha256_bytes

ABSENT = "__absent__"


class ObjectStore(Protocol):
    uri: str

    def put_file(self, key: str, path: Path) -> str: ...
    def put_bytes(
        self, key: str, data: bytes, if_match: str | None = None, content_type: str = "application/json"
    ) -> str: ...
    def get_bytes(self, key: str) -> tuple[bytes, str]: ...
    def get_file(self, key: str, path: Path) -> str: ...
    def list(self, prefix: str) -> list[str]: ...
    def delete(self, key: str) -> None: ...


def _safe_key(key: str) -> str:
    parts = key.split("/")
    if key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise RegistryError(f"invalid object key {key!r}")
    return key


class LocalStore:
    """A directory as an object store (the embedded default). Writes are atomic renames; the
    compare-and-swap of ``put_bytes`` holds an exclusive ``flock`` so concurrent processes serialise."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.uri = f"file://{self.root}"

    def _path(self, key: str) -> Path:
        return self.root / _safe_key(key)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def put_file(self, key: str, path: Path) -> str:
        return copy_hashing(file_chunks(path), self._path(key))

    def put_bytes(
        self, key: str, data: bytes, if_match: str | None = None, content_type: str = "application/json"
    ) -> str:
        target = self._path(key)
        with self._locked():
            if if_match is not None:
                current = sha256_bytes(target.read_bytes()) if target.exists() else ABSENT
                if current != if_match:
                    raise AliasConflict(
                        f"{key} changed concurrently (expected {if_match[:12]}, found {current[:12]}); re-read and retry"
                    )
            with atomic_path(target) as tmp:
                tmp.write_bytes(data)
        return sha256_bytes(data)

    def get_bytes(self, key: str) -> tuple[bytes, str]:
        try:
            data = self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError) as e:
            raise ObjectNotFound(f"no object {key} in {self.uri}") from e
        return data, sha256_bytes(data)

    def get_file(self, key: str, path: Path) -> str:
        src = self._path(key)
        if not src.is_file():
            raise ObjectNotFound(f"no object {key} in {self.uri}")
        return copy_hashing(file_chunks(src), path)

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix if prefix else self.root
        if not base.is_dir():
            return []
        out = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith("."):
                    continue
                out.append(str((Path(dirpath) / name).relative_to(self.root)))
        return sorted(out)

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.exists():
            path.unlink()
        parent = path.parent
        while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
