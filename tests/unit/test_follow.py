"""mlcycle.follow: one poll of an alias at a time, on a real (local) registry."""

import re

import pytest

from mlcycle.errors import RegistryError
from mlcycle.follow import AliasFollower, alias_source
from mlcycle.registry import ModelRef, local_registry_path, open_registry, parse_model_ref

pytestmark = pytest.mark.unit


def test_alias_source_names_an_alias_only():
    assert alias_source("/r#fraud@candidate") == ModelRef("/r", "fraud", "candidate")
    assert alias_source("s3://b#fraud") == ModelRef("s3://b", "fraud", "production")
    assert str(alias_source("/r#fraud@candidate").at("v1")) == "/r#fraud@v1"
    for fixed in ("/r#fraud@v20260101T000000000000-abcdef", "/mnt/models", "s3://b/fraud/v1/"):
        assert alias_source(fixed) is None


def test_a_model_reference_is_read_in_one_place_and_a_malformed_one_named():
    assert parse_model_ref("s3://b/p#fraud@v1") == ModelRef("s3://b/p", "fraud", "v1")
    assert parse_model_ref("s3://b#fraud").is_alias and not parse_model_ref("/r#fraud@v1").is_alias
    assert parse_model_ref("/mnt/models") is None and parse_model_ref("s3://b/fraud/v1/") is None
    for bad, fragment in [
        ("/r#@production", "no model name after '#'"),
        ("#fraud", "no registry URI before '#'"),
        ("/r#fraud@", "no alias or version after '@'"),
        ("/r#fraud@v1@v2", "is not an alias or a version id"),
        ("/r#Fraud_Model", "invalid model name 'Fraud_Model'"),
    ]:
        with pytest.raises(RegistryError, match=re.escape(fragment)) as e:
            parse_model_ref(bad)
        assert repr(bad) in str(e.value) and "<registry-uri>#<model>" in str(e.value)
    with pytest.raises(RegistryError, match="names a version"):
        parse_model_ref("/r#fraud@v1", versioned=False)
    with pytest.raises(RegistryError, match="no model name"):
        alias_source("/r#@production")  # refused with the reason, not taken for a directory


def test_a_local_registry_uri_is_one_directory_however_written(tmp_path):
    assert local_registry_path(f"file://{tmp_path}") == local_registry_path(str(tmp_path)) == tmp_path
    assert local_registry_path("s3://b/p") is None
    for bad in ("", "gs://b"):
        with pytest.raises(RegistryError):
            local_registry_path(bad)
    assert open_registry(f"file://{tmp_path}").store.root == open_registry(tmp_path).store.root


def test_a_poll_switches_refuses_once_and_retries_when_the_alias_moves_on(tmp_path):
    registry = open_registry(tmp_path / "registry")
    versions = []
    for i in range(3):
        src = tmp_path / f"src{i}"
        src.mkdir()
        (src / "model.txt").write_text(str(i))
        versions.append(registry.register("m", src, {"metrics": {}, "gate": {}}))
    registry.promote("m", versions[0])
    served, prepared, refused = [versions[0]], [], []

    def prepare(version):
        prepared.append(version)
        if version == versions[1]:
            raise ValueError("broken")
        return version

    follower = AliasFollower(
        alias_source(f"{tmp_path / 'registry'}#m@production"),
        lambda: served[-1],
        prepare,
        served.append,
        lambda version, error: refused.append((version, str(error))),
    )
    assert follower.check() == "unchanged" and prepared == []
    registry.promote("m", versions[1])
    assert follower.check() == "refused" and served[-1] == versions[0]
    assert refused == [(versions[1], "broken")] and follower.error == f"{versions[1]}: ValueError: broken"
    assert follower.check() == "unchanged" and prepared == [versions[1]]  # not tried again until the alias moves
    registry.promote("m", versions[2])
    assert follower.check() == "switched" and served[-1] == versions[2]
    assert follower.error == "" and follower.status()["failures"] == 1
