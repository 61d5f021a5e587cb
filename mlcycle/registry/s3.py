"""S3 / MinIO object store for the registry, on the ``minio`` SDK.

Endpoint and credentials come only from the environment (in Kubernetes: a Secret), using the
variable names KServe's storage initializer reads, so one Secret serves both:
``AWS_ENDPOINT_URL`` (or ``S3_ENDPOINT``), ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION``, ``S3_USE_HTTPS``, ``S3_VERIFY_SSL``, ``AWS_CA_BUNDLE``.

Transient errors are retried with exponential backoff; a down endpoint fails within a bounded time
with StorageUnavailable. Alias documents are replaced with S3 conditional writes
(``If-Match`` / ``If-None-Match: *``), which MinIO enforces server-side.
"""

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

import urllib3
from minio import Minio
from minio.error import S3Error

from mlcycle.errors import AliasConflict, RegistryError, StorageUnavailable, VersionNotFound
from mlcycle.fsutil import HashingReader, copy_hashing
from mlcycle.registry.store import ABSENT, _safe_key

T = TypeVar("T")
TRANSIENT_CODES = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "XMinioServerNotInitialized", "XMinioStorageFull"}
MISSING_CODES = {"NoSuchKey", "NoSuchObject", "NoSuchBucket"}
PART_SIZE = 16 * 1024 * 1024  # multipart above this; also the upload buffer per part
CHUNK = 1024 * 1024


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def client_from_env(endpoint: str | None = None, access_key: str | None = None, secret_key: str | None = None,
                    connect_timeout: float = 3.0, read_timeout: float = 60.0) -> Minio:
    """A Minio client configured from KServe's environment variable names."""
    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("S3_ENDPOINT")
    if not endpoint:
        raise RegistryError("no S3 endpoint configured: set AWS_ENDPOINT_URL (or S3_ENDPOINT)")
    parsed = urlparse(endpoint if "://" in endpoint else f"//{endpoint}")
    secure = parsed.scheme == "https" if parsed.scheme else _flag("S3_USE_HTTPS", True)
    access_key = access_key or os.environ.get("AWS_ACCESS_KEY_ID")
    secret_key = secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not access_key or not secret_key:
        raise RegistryError("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (from a Kubernetes Secret in a cluster)")
    verify = _flag("S3_VERIFY_SSL", True)
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        retries=urllib3.Retry(total=0, connect=0, read=0, redirect=0),  # we retry ourselves, with backoff
        cert_reqs="CERT_REQUIRED" if verify else "CERT_NONE",
        ca_certs=os.environ.get("AWS_CA_BUNDLE") or None,
        maxsize=16,
    )
    return Minio(parsed.netloc, access_key=access_key, secret_key=secret_key, secure=secure,
                 region=os.environ.get("AWS_DEFAULT_REGION") or None, http_client=http, cert_check=verify)


class S3Store:
    def __init__(self, client: Minio, bucket: str, prefix: str = "", attempts: int = 4, backoff: float = 0.25):
        if not bucket:
            raise RegistryError("S3 registry URI needs a bucket: s3://<bucket>[/prefix]")
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")
        self.attempts, self.backoff = attempts, backoff
        self.uri = f"s3://{bucket}" + (f"/{self.prefix}" if self.prefix else "")

    @classmethod
    def from_env(cls, bucket: str, prefix: str = "") -> "S3Store":
        return cls(client_from_env(), bucket, prefix)

    def _key(self, key: str) -> str:
        _safe_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except S3Error as e:
                if e.code in MISSING_CODES:
                    raise VersionNotFound(f"{what}: {e.code} in {self.uri}") from e
                if e.code == "PreconditionFailed":
                    raise AliasConflict(f"{what}: the object changed concurrently (precondition failed)") from e
                if e.code not in TRANSIENT_CODES or attempt == self.attempts:
                    raise RegistryError(f"{what} failed on {self.uri}: {e.code}: {e.message}") from e
            except (urllib3.exceptions.HTTPError, OSError) as e:
                if attempt == self.attempts:
                    raise StorageUnavailable(f"{what}: S3 endpoint {self.client._base_url.host} unreachable after {attempt} attempts: {e}") from e
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def put_file(self, key: str, path: Path) -> str:
        def upload() -> str:
            with open(path, "rb") as fh:
                reader = HashingReader(fh)
                self.client.put_object(self.bucket, self._key(key), reader, length=os.fstat(fh.fileno()).st_size, part_size=PART_SIZE)
                return reader.hexdigest()

        return self._call(f"upload {key}", upload)

    def put_bytes(self, key: str, data: bytes, if_match: str | None = None) -> str:
        headers = {"Content-Type": "application/json"}
        if if_match == ABSENT:
            headers["If-None-Match"] = "*"
        elif if_match is not None:
            headers["If-Match"] = f'"{if_match}"'
        # _put_object is the SDK's single-PUT primitive; the public put_object drops If-* headers.
        result = self._call(f"write {key}", lambda: self.client._put_object(self.bucket, self._key(key), data, headers=headers))
        return result.etag

    def get_bytes(self, key: str) -> tuple[bytes, str]:
        def get() -> tuple[bytes, str]:
            response = self.client.get_object(self.bucket, self._key(key))
            try:
                return response.read(), response.headers.get("ETag", "").strip('"')
            finally:
                response.close()
                response.release_conn()

        return self._call(f"read {key}", get)

    def get_file(self, key: str, path: Path) -> str:
        def download() -> str:
            response = self.client.get_object(self.bucket, self._key(key))
            try:
                return copy_hashing(response.stream(CHUNK), path)
            finally:
                response.close()
                response.release_conn()

        return self._call(f"download {key}", download)

    def list(self, prefix: str) -> list[str]:
        full = self._key(prefix) + "/" if prefix else (self.prefix + "/" if self.prefix else "")
        cut = len(self.prefix) + 1 if self.prefix else 0
        objects = self._call(f"list {prefix or '/'}", lambda: list(self.client.list_objects(self.bucket, prefix=full, recursive=True)))
        return sorted(o.object_name[cut:] for o in objects)

    def delete(self, key: str) -> None:
        self._call(f"delete {key}", lambda: self.client.remove_object(self.bucket, self._key(key)))

    def ensure_bucket(self) -> None:
        if not self._call("bucket check", lambda: self.client.bucket_exists(self.bucket)):
            self._call("make bucket", lambda: self.client.make_bucket(self.bucket))
