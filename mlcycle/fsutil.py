"""File helpers: content hashes and all-or-nothing writes."""

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class HashingReader:
    """A read-only file wrapper that hashes what passes through it (one pass for upload + checksum)."""

    def __init__(self, fh):
        self.fh, self.digest = fh, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self.fh.read(size)
        self.digest.update(chunk)
        return chunk

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


def copy_hashing(chunks, path: Path) -> str:
    """Write an iterable of byte chunks to ``path`` atomically; returns their sha256."""
    digest = hashlib.sha256()
    with atomic_path(Path(path)) as tmp:
        with open(tmp, "wb") as out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
    return digest.hexdigest()


def file_chunks(path: Path):
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield chunk


def verify_checksums(directory: Path, expected: dict[str, str]) -> None:
    """Every ``{relative path: sha256}`` entry must exist inside ``directory`` and match; else IntegrityError."""
    from mlcycle.errors import IntegrityError

    root = Path(directory).resolve()
    for rel, digest in expected.items():
        target = (root / rel).resolve()
        if not target.is_relative_to(root) or rel.startswith("."):
            raise IntegrityError(f"refusing file path {rel!r} outside {directory}")
        if not target.is_file():
            raise IntegrityError(f"{directory} is incomplete: {rel} is missing")
        actual = sha256_file(target)
        if actual != digest:
            raise IntegrityError(
                f"sha256 mismatch for {rel}: recorded {digest[:12]}…, found {actual[:12]}…; refusing to load"
            )


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it onto ``target``, on error remove it.

    Works for files and directories: whatever the body writes at the yielded path appears at
    ``target`` only if the body finishes, so a failed step leaves nothing half-written.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    tmp.rmdir()
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise


def write_text_atomic(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
