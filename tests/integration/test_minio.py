"""Registry faults and security against a real MinIO server: crashes, outages, least privilege, KServe's loader."""

import io
import json
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
    bucket, (writer, reader) = _bucket_with_users(minio_server, "lp", ["pipeline-writer", "serving-reader"])
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


def _capture_users(minio_server, model):
    """A fresh bucket with a pipeline-writer user and a capture-writer user scoped to ``model``."""
    bucket, (writer, capture) = _bucket_with_users(
        minio_server, "cw", ["pipeline-writer", "capture-writer"], model=model
    )
    return bucket, writer, capture


def _bucket_with_users(minio_server, prefix: str, policies: list[str], **kw):
    """A fresh bucket and one new user (access key, secret key) per policy, created by the real bootstrap."""
    bucket = f"{prefix}-{secrets.token_hex(4)}"
    users = [(p[0] + secrets.token_hex(5), secrets.token_urlsafe(18)) for p in policies]
    bootstrap(
        minio_server.endpoint,
        minio_server.access_key,
        minio_server.secret_key,
        bucket,
        dict(zip(policies, users, strict=True)),
        **kw,
    )
    return bucket, users


def _s3_env(minio_server, key, secret):
    return {**minio_server.env(), "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}


def test_capture_writer_policy_allows_exactly_what_the_capture_service_does(
    minio_server, version_dir, monkeypatch, contract
):
    import pandas as pd

    from mlcycle.capture import LABELS, TRAFFIC, CaptureStore, utcnow

    bucket, writer, capture = _capture_users(minio_server, "fraud")
    as_writer = Registry(S3Store(minio_server.client(*writer), bucket, attempts=1))
    v = as_writer.register("fraud", version_dir, {"contract": contract})
    as_writer.promote("fraud", v)
    other = as_writer.register("other", version_dir, {})
    as_writer.promote("other", other)
    for key, value in _s3_env(minio_server, *capture).items():
        monkeypatch.setenv(key, value)
    store = CaptureStore(f"s3://{bucket}", "fraud")
    store.store.attempts = 1

    # what the service does: the production contract (aliases + manifest), parts written, listed, read, retained
    assert store.registry.metadata("fraud", "production").version == v
    assert store.contract(v).label == contract.label
    now = utcnow()
    rows = pd.DataFrame(
        {
            "request_id": ["r1", "r0"],
            "event_id": ["e1", "e0"],
            "row": [0, 0],
            "model_version": v,
            "prediction": [1, 0],
            "received_at": [now, now - pd.Timedelta(days=40)],
        }
    )
    written = store.write(TRAFFIC, rows, "received_at")
    assert len(written) == 2
    labels = pd.DataFrame(
        {"request_id": ["r1"], "row": [0], "label": [1], "model_version": [v], "prediction": [1], "labelled_at": [now]}
    )
    store.write(LABELS, labels, "labelled_at")
    assert sorted(store.read(TRAFFIC)["request_id"]) == ["r0", "r1"]
    assert store.read(LABELS)["label"].tolist() == [1]
    assert store.retain(TRAFFIC, max_age=pd.Timedelta(days=30).to_pytimedelta()) == [min(written)]
    assert store.read(TRAFFIC)["request_id"].tolist() == ["r1"]

    # and nothing else: no version, alias, audit record, model file, listing of versions, or other model
    as_capture, aliases = store.registry, as_writer.aliases("fraud")[0]
    denied = {
        "read a model file": lambda: as_capture.store.get_bytes(f"fraud/{v}/part0.bin"),
        "register a version": lambda: as_capture.register("fraud", version_dir, {}),
        "move an alias": lambda: as_capture.set_alias("fraud", "candidate", v),
        "overwrite the aliases": lambda: as_capture.store.put_bytes("fraud/_aliases.json", b"{}"),
        "write an audit record": lambda: as_capture.audit("fraud", "promote", version=v, why="not mine"),
        "delete a manifest": lambda: as_capture.store.delete(f"fraud/{v}/metadata.json"),
        "delete a model file": lambda: as_capture.store.delete(f"fraud/{v}/part0.bin"),
        "list the versions": lambda: as_capture.list_versions("fraud"),
        "write beside traffic/": lambda: as_capture.store.put_bytes("fraud/traffic.parquet", b"x"),
        "read another model's aliases": lambda: as_capture.metadata("other", "production"),
        "read another model's manifest": lambda: as_capture.store.get_bytes(f"other/{other}/metadata.json"),
        "write another model's traffic": lambda: CaptureStore(f"s3://{bucket}", "other").write(
            TRAFFIC, rows.head(1), "received_at"
        ),
        "list another model's traffic": lambda: CaptureStore(f"s3://{bucket}", "other").parts(TRAFFIC),
        "list the bucket": lambda: as_capture.list_models(),
    }
    allowed = []
    for what, attempt in denied.items():
        try:
            attempt()
            allowed.append(what)
        except Exception as e:  # noqa: BLE001 (any other error fails the test, named)
            assert "AccessDenied" in str(e), (what, e)
    assert not allowed, f"the capture user may {', '.join(allowed)}"
    assert as_writer.aliases("fraud")[0] == aliases and as_writer.list_versions("fraud") == [v]  # nothing changed


def test_capture_service_runs_on_capture_writer_credentials(minio_server, version_dir, contract, demo_frame, tmp_path):
    import pandas as pd
    import requests

    from inference.devserve import start_capture

    bucket, writer, capture = _capture_users(minio_server, "fraud")
    as_writer = Registry(S3Store(minio_server.client(*writer), bucket, attempts=1))
    v = as_writer.register("fraud", version_dir, {"contract": contract})
    as_writer.promote("fraud", v)
    features = contract.feature_names
    values = json.loads(demo_frame[features].head(1).to_json(orient="values", date_format="iso"))
    env = _s3_env(minio_server, *capture)
    port = free_port()

    def start():
        return start_capture(f"s3://{bucket}", "fraud", port, tmp_path / "state", tmp_path / "capture.log", env=env)

    def post(kind, body):
        headers = {
            "content-type": "application/json",
            "ce-specversion": "1.0",
            "ce-id": "call-1",
            "ce-source": "test",
            "ce-type": f"org.kubeflow.serving.inference.{kind}",
            "ce-endpoint": "default",
        }
        return requests.post(f"{proc.url}/events", data=json.dumps(body), headers=headers, timeout=10)

    proc = start()
    try:
        # list rows in feature order are accepted only with the production contract read at start
        assert post("request", {"instances": values}).status_code == 200
        answer = post(
            "response", {"predictions": [1], "probabilities": [[0.2, 0.8]], "classes": [0, 1], "model_version": v}
        )
        assert answer.status_code == 200, answer.text
        flushed = requests.post(f"{proc.url}/flush", timeout=30).json()
        assert flushed["flush"] == {"written": 1, "kept": 0, "error": None}, flushed
        refused = requests.post(f"{proc.url}/v1/feedback", json={"request_id": "call-1", "label": 7}, timeout=10)
        assert refused.json()["refused"][0]["reason"] == "unknown_class", refused.text  # classes from the manifest
        stored = requests.post(f"{proc.url}/v1/feedback", json={"request_id": "call-1", "label": 1}, timeout=10)
        assert stored.status_code == 200 and stored.json()["stored"] is True, stored.text
    finally:
        proc.stop()
    reader = S3Store(minio_server.client(*writer), bucket)  # read back with the pipeline's own credentials
    traffic, labels = reader.list("fraud/traffic"), reader.list("fraud/labels")
    assert len(traffic) == 1 and len(labels) == 1, (traffic, labels)
    row = pd.read_parquet(io.BytesIO(reader.get_bytes(traffic[0])[0]))
    assert row["request_id"].tolist() == ["call-1"] and row[features[0]].notna().all()
    assert pd.read_parquet(io.BytesIO(reader.get_bytes(labels[0])[0]))["label"].tolist() == [1]

    proc = start()  # a restart rebuilds the label index from the stored parts (list + read under the policy)
    try:
        status = requests.get(f"{proc.url}/status", timeout=10).json()
        assert status["restart"]["restarted"] and "rebuild_error" not in status["restart"], status["restart"]
        assert status["counts"]["indexed_requests"] == 1 and status["counts"]["labelled_rows"] == 1
        again = requests.post(f"{proc.url}/v1/feedback", json={"request_id": "call-1", "label": 0}, timeout=10)
        assert again.json()["refused"][0]["reason"] == "duplicate", again.text
    finally:
        proc.stop()
