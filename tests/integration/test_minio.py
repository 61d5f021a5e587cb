"""Registry faults and security against a real MinIO server: crashes, outages, least privilege, KServe's loader."""

import os
import secrets
import threading
import time

import pytest

from devtools.minio import MinioServer
from mlcycle.errors import RegistryError, StorageUnavailable
from mlcycle.process import free_port
from mlcycle.registry import Registry
from mlcycle.registry.bootstrap import bootstrap
from mlcycle.registry.s3 import S3Store, client_from_env

pytestmark = pytest.mark.integration


@pytest.fixture
def own_server(tmp_path):
    """A MinIO server this test may kill and restart."""
    server = MinioServer(tmp_path / "data").start()
    yield server
    server.stop()


def _restart(server: MinioServer) -> MinioServer:
    again = MinioServer(server.data_dir, server.access_key, server.secret_key, port=server.port)
    return again.start()


@pytest.fixture
def version_dir(tmp_path):
    d = tmp_path / "version"
    d.mkdir()
    for i in range(3):
        (d / f"part{i}.bin").write_bytes(os.urandom(256 * 1024))
    return d


def test_crash_between_files_leaves_no_visible_version(own_server, version_dir):
    store = S3Store(own_server.client(), "models", attempts=2, backoff=0.05)
    store.ensure_bucket()
    registry = Registry(store)
    good = registry.register("fraud", version_dir, {})
    uploads = []
    real_put = store.put_file

    def put_then_crash(key, path):
        real_put(key, path)
        uploads.append(key)
        if len(uploads) == 2:
            own_server.kill()  # SIGKILL after the second file: the manifest is never written

    store.put_file = put_then_crash
    with pytest.raises(StorageUnavailable, match="unreachable"):
        registry.register("fraud", version_dir, {})
    restarted = _restart(own_server)
    try:
        fresh = Registry(S3Store(restarted.client(), "models"))
        assert fresh.list_versions("fraud") == [good]  # the half version is not visible
        assert any(
            k.endswith("part0.bin") and good not in k for k in fresh.store.list("fraud")
        )  # its files are there, orphaned
        assert fresh.register("fraud", version_dir, {}) in fresh.list_versions("fraud")
    finally:
        restarted.stop()


def test_crash_during_a_large_multipart_upload(own_server, tmp_path):
    big = tmp_path / "big"
    big.mkdir()
    (big / "model.bin").write_bytes(os.urandom(96 * 1024 * 1024))  # multipart (> 5 MiB parts)
    store = S3Store(own_server.client(), "models", attempts=1)
    store.ensure_bucket()
    registry = Registry(store)
    errors = []
    worker = threading.Thread(target=lambda: _capture(errors, registry.register, "fraud", big, {}))
    worker.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not _multipart_in_progress(own_server):
        time.sleep(0.01)
    own_server.kill()
    worker.join(60)
    assert errors and isinstance(errors[0], RegistryError), errors
    restarted = _restart(own_server)
    try:
        assert Registry(S3Store(restarted.client(), "models")).list_versions("fraud") == []
    finally:
        restarted.stop()


def _multipart_in_progress(server) -> bool:
    parts = server.data_dir / ".minio.sys" / "multipart"
    return parts.exists() and any(parts.rglob("part.*"))


def _capture(errors, fn, *args):
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001 (the test inspects it)
        errors.append(e)


def test_transient_outage_is_retried(own_server, version_dir):
    store = S3Store(own_server.client(), "models", attempts=8, backoff=0.2)
    store.ensure_bucket()
    registry = Registry(store)
    v = registry.register("fraud", version_dir, {})
    own_server.kill()
    restarted = []
    timer = threading.Timer(0.5, lambda: restarted.append(_restart(own_server)))
    timer.start()
    try:
        assert registry.list_versions("fraud") == [v]  # failed at first, succeeded after the restart
    finally:
        timer.join()
        for server in restarted:
            server.stop()


def test_down_endpoint_fails_fast_with_a_clear_error():
    client = client_from_env(f"http://127.0.0.1:{free_port()}", "k", "s", connect_timeout=1)
    store = S3Store(client, "models", attempts=3, backoff=0.1)
    start = time.monotonic()
    with pytest.raises(StorageUnavailable, match=r"unreachable after 3 attempts"):
        Registry(store).list_models()
    assert time.monotonic() - start < 10


def test_wrong_credentials_are_named(minio_server):
    store = S3Store(client_from_env(minio_server.endpoint, "nobody", "wrong-secret-123"), "models", attempts=1)
    with pytest.raises(RegistryError, match="InvalidAccessKeyId|SignatureDoesNotMatch"):
        Registry(store).list_models()


def test_missing_endpoint_and_credentials_are_named(monkeypatch):
    for var in ("AWS_ENDPOINT_URL", "S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(RegistryError, match="no S3 endpoint configured"):
        client_from_env()
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(RegistryError, match="no S3 credentials"):
        client_from_env()


def test_least_privilege_policies(minio_server, version_dir, tmp_path):
    bucket = f"lp-{secrets.token_hex(4)}"
    writer = ("w" + secrets.token_hex(5), secrets.token_urlsafe(18))
    reader = ("r" + secrets.token_hex(5), secrets.token_urlsafe(18))
    bootstrap(
        minio_server.endpoint,
        minio_server.access_key,
        minio_server.secret_key,
        bucket,
        {"pipeline-writer": writer, "serving-reader": reader},
    )
    as_writer = Registry(S3Store(minio_server.client(*writer), bucket, attempts=1))
    as_reader = Registry(S3Store(minio_server.client(*reader), bucket, attempts=1))
    v = as_writer.register("fraud", version_dir, {})
    as_writer.promote("fraud", v)
    assert as_reader.resolve("fraud", "production") == v
    assert (as_reader.fetch("fraud", "production", tmp_path / "dl") / "part0.bin").exists()
    with pytest.raises(RegistryError, match="AccessDenied"):
        as_reader.register("fraud", version_dir, {})
    with pytest.raises(RegistryError, match="AccessDenied"):
        as_reader.set_alias("fraud", "candidate", v)
    with pytest.raises(RegistryError, match="AccessDenied"):
        as_writer.store.delete(f"fraud/{v}/part0.bin")  # the pipeline cannot destroy versions
    other = f"other-{secrets.token_hex(3)}"
    minio_server.client().make_bucket(other)
    with pytest.raises(RegistryError, match="AccessDenied"):
        S3Store(minio_server.client(*writer), other, attempts=1).put_bytes("x", b"1")


def test_kserve_storage_initializer_downloads_a_registered_version(minio_server, version_dir, tmp_path, monkeypatch):
    from kserve_storage import Storage

    store = S3Store(minio_server.client(), f"ks-{secrets.token_hex(4)}")
    store.ensure_bucket()
    registry = Registry(store)
    v = registry.register("fraud", version_dir, {"metrics": {}})
    for key, value in minio_server.env().items():
        monkeypatch.setenv(key, value)
    out = Storage.download(f"s3://{store.bucket}/fraud/{v}/", str(tmp_path / "mnt"))
    names = sorted(p.name for p in (tmp_path / "mnt").iterdir())
    assert names == ["metadata.json", "part0.bin", "part1.bin", "part2.bin"], (out, names)
    assert (tmp_path / "mnt" / "part1.bin").read_bytes() == (version_dir / "part1.bin").read_bytes()
