"""S3 / MinIO object store for the registry, on the ``minio`` SDK.

Endpoint and credentials come only from the environment (in Kubernetes: a Secret), using the
variable names KServe's storage initializer reads, so one Secret serves both:
``AWS_ENDPOINT_URL`` (or ``S3_ENDPOINT``), ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION``, ``S3_USE_HTTPS``, ``S3_VERIFY_SSL``, ``AWS_CA_BUNDLE``.

Transient errors are retried with exponential backoff; a down endpoint fails within a bounded time
with StorageUnavailable. Alias documents are replaced with S3 conditional writes
(``If-Match`` / ``If-None-Match: *``), which MinIO enforces server-side. Only the SDK's public API is used.
"""

import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, TypeVar, cast
from urllib.parse import urlparse

import urllib3
from minio import Minio
from minio.error import S3Error

from mlcycle.errors import AliasConflict, ObjectNotFound, RegistryError, StorageUnavailable
from mlcycle.fsutil import HashingReader, copy_hashing
from mlcycle.registry.store import ABSENT, _safe_key

T = TypeVar("T")
TRANSIENT_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "XMinioServerNotInitialized",
    "XMinioStorageFull",
}
MISSING_CODES = {"NoSuchKey", "NoSuchObject", "NoSuchBucket"}
PART_SIZE = 16 * 1024 * 1024  # multipart above this; also the upload buffer per part
CHUNK = 1024 * 1024


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def client_from_env(
    endpoint: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    connect_timeout: float = 3.0,
    read_timeout: float = 60.0,
) -> Minio:
    """A Minio client configured from KServe's environment variable names."""
    endpoint = endpoint or endpoint_from_env()
    if not endpoint:
        raise RegistryError("no S3 endpoint configured: set AWS_ENDPOINT_URL (or S3_ENDPOINT)")
    parsed = urlparse(endpoint if "://" in endpoint else f"//{endpoint}")
    secure = parsed.scheme == "https" if parsed.scheme else _flag("S3_USE_HTTPS", True)
    access_key = access_key or os.environ.get("AWS_ACCESS_KEY_ID")
    secret_key = secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not access_key or not secret_key:
        raise RegistryError(
            "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (from a Kubernetes Secret in a cluster)"
        )
    return Minio(
        parsed.netloc,
        access_key=access_key,
        secret_key=secret_key,
        secure=secure,
        region=os.environ.get("AWS_DEFAULT_REGION") or None,
        http_client=http_pool(connect_timeout, read_timeout),
        cert_check=_flag("S3_VERIFY_SSL", True),
    )


def endpoint_from_env() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("S3_ENDPOINT")


def http_pool(connect_timeout: float = 3.0, read_timeout: float = 60.0) -> urllib3.PoolManager:
    """An HTTP pool with the environment's TLS settings and no retries of its own (the store retries, with backoff)."""
    verify = _flag("S3_VERIFY_SSL", True)
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        retries=urllib3.Retry(total=0, connect=0, read=0, redirect=0),  # we retry ourselves, with backoff
        cert_reqs="CERT_REQUIRED" if verify else "CERT_NONE",
        ca_certs=os.environ.get("AWS_CA_BUNDLE") or None,
        maxsize=16,
    )


class S3Store:
    """``endpoint`` only names the server in errors; ``http`` sends the conditional writes (see ``put_bytes``)."""

    def __init__(
        self,
        client: Minio,
        bucket: str,
        prefix: str = "",
        attempts: int = 4,
        backoff: float = 0.25,
        endpoint: str | None = None,
        http: urllib3.PoolManager | None = None,
    ):
        if not bucket:
            raise RegistryError("S3 registry URI needs a bucket: s3://<bucket>[/prefix]")
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")
        self.attempts, self.backoff = attempts, backoff
        self.uri = f"s3://{bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self.endpoint = endpoint
        self.http = http or http_pool()

    @classmethod
    def from_env(cls, bucket: str, prefix: str = "") -> "S3Store":
        return cls(client_from_env(), bucket, prefix, endpoint=endpoint_from_env())

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
                    raise ObjectNotFound(f"{what}: {e.code} in {self.uri}") from e
                if e.code == "PreconditionFailed":
                    raise AliasConflict(f"{what}: the object changed concurrently (precondition failed)") from e
                if e.code not in TRANSIENT_CODES or attempt == self.attempts:
                    raise RegistryError(f"{what} failed on {self.uri}: {e.code}: {e.message}") from e
            except (urllib3.exceptions.HTTPError, OSError) as e:
                if attempt == self.attempts:
                    where = f"S3 endpoint {self.endpoint}" if self.endpoint else f"the S3 endpoint of {self.uri}"
                    raise StorageUnavailable(f"{what}: {where} unreachable after {attempt} attempts: {e}") from e
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def put_file(self, key: str, path: Path) -> str:
        def upload() -> str:
            with open(path, "rb") as fh:
                reader = HashingReader(fh)
                stream = cast(BinaryIO, reader)  # reads like the file it wraps, hashing as it goes
                self.client.put_object(
                    self.bucket, self._key(key), stream, length=os.fstat(fh.fileno()).st_size, part_size=PART_SIZE
                )
                return reader.hexdigest()

        return self._call(f"upload {key}", upload)

    def put_bytes(
        self, key: str, data: bytes, if_match: str | None = None, content_type: str = "application/json"
    ) -> str:
        headers = {"Content-Type": content_type}
        if if_match == ABSENT:
            headers["If-None-Match"] = "*"
        elif if_match is not None:
            headers["If-Match"] = f'"{if_match}"'
        return self._call(f"write {key}", lambda: self._put_conditional(self._key(key), data, headers))

    def _put_conditional(self, name: str, data: bytes, headers: dict[str, str]) -> str:
        """One PUT with the If-* headers; returns the new ETag.

        The SDK has no public conditional write: ``put_object`` turns every header it does not know into user metadata
        (``If-Match`` becomes ``x-amz-meta-if-match``, which the server ignores). So the PUT goes to a presigned URL
        (public API), signed for the host only; S3 and MinIO evaluate the unsigned If-* headers server-side."""
        url = self.client.presigned_put_object(self.bucket, name, expires=timedelta(minutes=5))
        response = self.http.request("PUT", url, body=data, headers=headers)
        if response.status >= 300:
            raise _s3_error(response)
        return response.headers.get("ETag", "").strip('"')

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
        objects = self._call(
            f"list {prefix or '/'}", lambda: list(self.client.list_objects(self.bucket, prefix=full, recursive=True))
        )
        return sorted(o.object_name[cut:] for o in objects)

    def delete(self, key: str) -> None:
        self._call(f"delete {key}", lambda: self.client.remove_object(self.bucket, self._key(key)))

    def ensure_bucket(self) -> None:
        if not self._call("bucket check", lambda: self.client.bucket_exists(self.bucket)):
            self._call("make bucket", lambda: self.client.make_bucket(self.bucket))


def _s3_error(response: urllib3.BaseHTTPResponse) -> S3Error:
    try:
        return S3Error.fromxml(response)
    except ET.ParseError:  # not S3's XML error body (e.g. a proxy's page): a 5xx is retried, other codes are not
        code = "ServiceUnavailable" if response.status >= 500 else f"HTTP{response.status}"
        text = response.data[:200].decode(errors="replace")
        return S3Error(response, code, text, None, response.headers.get("x-amz-request-id"), None)
