"""The registry's behaviour, identical on a local directory and on a real MinIO server."""

import secrets
import threading

import pytest

from mlcycle.errors import AliasConflict, IntegrityError, ProtectedVersion, RegistryError, VersionNotFound
from mlcycle.registry import Registry, open_registry
from mlcycle.registry.s3 import S3Store

pytestmark = pytest.mark.integration


@pytest.fixture(params=["local", "minio"])
def registry(request, tmp_path) -> Registry:
    if request.param == "local":
        return open_registry(tmp_path / "registry")
    server = request.getfixturevalue("minio_server")
    store = S3Store(server.client(), f"reg-{secrets.token_hex(4)}")
    store.ensure_bucket()
    return Registry(store)


@pytest.fixture
def version_dir(tmp_path):
    d = tmp_path / "version"
    (d / "sub").mkdir(parents=True)
    (d / "model.bin").write_bytes(b"weights" * 100)
    (d / "sub" / "detector.json").write_text("{}")
    return d


def test_register_list_describe(registry, version_dir):
    v1 = registry.register("fraud", version_dir, {"metrics": {"roc_auc": 0.9}})
    v2 = registry.register("fraud", version_dir, {"metrics": {"roc_auc": 0.91}})
    assert registry.list_models() == ["fraud"]
    assert registry.list_versions("fraud") == [v1, v2]
    meta = registry.describe("fraud", v1)
    assert meta["version"] == v1 and meta["metrics"]["roc_auc"] == 0.9
    assert set(meta["files"]) == {"model.bin", "sub/detector.json"}
    assert len(meta["files"]["model.bin"]["sha256"]) == 64


def test_fetch_verifies_and_refuses_tampering(registry, version_dir, tmp_path):
    v = registry.register("fraud", version_dir, {})
    out = registry.fetch("fraud", v, tmp_path / "dl")
    assert (out / "model.bin").read_bytes() == (version_dir / "model.bin").read_bytes()
    registry.store.put_bytes(f"fraud/{v}/model.bin", b"evil")  # someone with write access swaps a file
    with pytest.raises(IntegrityError, match=f"sha256 mismatch for fraud/{v}/model.bin"):
        registry.fetch("fraud", v, tmp_path / "dl2")
    assert not (tmp_path / "dl2").exists()


def test_aliases_promote_and_rollback(registry, version_dir):
    v1, v2 = (registry.register("fraud", version_dir, {}) for _ in range(2))
    with pytest.raises(VersionNotFound, match="no 'production' version"):
        registry.resolve("fraud", "production")
    registry.promote("fraud", v1)
    registry.set_alias("fraud", "candidate", v2)
    registry.promote("fraud", v2)
    aliases, _ = registry.aliases("fraud")
    assert aliases == {"production": v2, "previous": v1}  # candidate consumed by its promotion
    assert registry.rollback("fraud", why="error rate") == v1
    assert registry.aliases("fraud")[0] == {"production": v1}
    events = [(r["event"], r["version"]) for r in registry.audit_log("fraud")]
    assert ("rollback", v1) in events and ("promote", v2) in events
    assert registry.audit_log("fraud")[-1]["why"] == "error rate"


def test_production_cannot_be_deleted(registry, version_dir):
    v1, v2 = (registry.register("fraud", version_dir, {}) for _ in range(2))
    registry.promote("fraud", v1)
    with pytest.raises(ProtectedVersion, match="production"):
        registry.delete_version("fraud", v1)
    registry.delete_version("fraud", v2)
    assert registry.list_versions("fraud") == [v1]


def test_versions_are_immutable(registry, version_dir):
    v = registry.register("fraud", version_dir, {})
    with pytest.raises(AliasConflict):
        registry.store.put_bytes(f"fraud/{v}/metadata.json", b"{}", if_match="__absent__")
    assert registry.describe("fraud", v)["version"] == v


def test_concurrent_promotions_one_wins(registry, version_dir):
    versions = [registry.register("fraud", version_dir, {}) for _ in range(2)]
    registry.promote("fraud", versions[0])
    _, etag = registry.aliases("fraud")
    results, barrier = [], threading.Barrier(2)

    def attempt(version):
        current, _ = registry.aliases("fraud")
        barrier.wait()
        try:  # both read the same state; each tries to swap in its own
            registry._write_aliases("fraud", {**current, "production": version}, etag)
            results.append(("ok", version))
        except AliasConflict as e:
            results.append(("conflict", str(e)))

    threads = [threading.Thread(target=attempt, args=(v,)) for v in versions]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(r[0] for r in results) == ["conflict", "ok"], results
    winner = next(r[1] for r in results if r[0] == "ok")
    assert registry.aliases("fraud")[0]["production"] == winner
    assert "changed by someone else" in next(r[1] for r in results if r[0] == "conflict")


def test_expected_production_guards_promotion(registry, version_dir):
    v1, v2 = (registry.register("fraud", version_dir, {}) for _ in range(2))
    registry.promote("fraud", v1)
    with pytest.raises(AliasConflict, match=f"production of 'fraud' is {v1}"):
        registry.promote("fraud", v2, expected_production="v-something-else")


def test_incomplete_version_is_invisible(registry, version_dir):
    registry.store.put_file("fraud/v20990101T000000000000-abcdef/model.bin", version_dir / "model.bin")
    assert registry.list_versions("fraud") == []
    with pytest.raises(VersionNotFound):
        registry.describe("fraud", "v20990101T000000000000-abcdef")


@pytest.mark.parametrize("name", ["Fraud", "a/b", "../x", "", "x" * 64, "-x"])
def test_bad_model_names(registry, version_dir, name):
    with pytest.raises(RegistryError, match="invalid model name"):
        registry.register(name, version_dir, {})


def test_local_and_minio_layouts_are_identical(tmp_path, version_dir, minio_server):
    local = open_registry(tmp_path / "r")
    store = S3Store(minio_server.client(), f"lay-{secrets.token_hex(4)}")
    store.ensure_bucket()
    remote = Registry(store)
    for reg in (local, remote):
        reg.register("fraud", version_dir, {})
    strip = lambda keys: sorted(
        k.split("/", 2)[-1] if "/v" in k else k.split("/")[0] for k in keys if "/_audit/" not in k
    )  # noqa: E731
    assert strip(local.store.list("")) == strip(remote.store.list(""))


def test_audit_attachments_are_stored_beside_their_record(registry, version_dir):
    page = b"<!doctype html><p>drift report</p>"
    registry.register("fraud", version_dir, {"metrics": {}})
    key = registry.audit(
        "fraud", "retrain", why="drift: test", attachments={"drift_report.html": (page, "text/html; charset=utf-8")}
    )
    log = registry.audit_log("fraud")  # the attachment is not read as a record
    assert [r["event"] for r in log] == ["register", "retrain"]
    stored = log[-1]["attachments"]["drift_report.html"]
    assert stored == key.removesuffix(".json").replace("/_audit/", "/_audit/reports/") + "-drift_report.html"
    assert registry.audit_attachment(stored) == page
    if isinstance(registry.store, S3Store):  # a browser opening the object from MinIO gets a page
        info = registry.store.client.stat_object(registry.store.bucket, stored)
        assert info.content_type == "text/html; charset=utf-8"
    with pytest.raises(RegistryError, match="invalid audit attachment name"):
        registry.audit("fraud", "retrain", attachments={"../x.html": (page, "text/html")})
    with pytest.raises(RegistryError, match="not an audit attachment"):
        registry.audit_attachment("fraud/_aliases.json")
    assert len(registry.audit_log("fraud")) == 2  # nothing half-written by the refused call
