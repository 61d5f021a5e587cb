"""mlcycle.follow: one poll of an alias at a time, on a real (local) registry."""

import pytest

from mlcycle.follow import AliasFollower, AliasSource, alias_source
from mlcycle.registry import open_registry

pytestmark = pytest.mark.unit


def test_alias_source_names_an_alias_only():
    assert alias_source("/r#fraud@candidate") == AliasSource("/r", "fraud", "candidate")
    assert alias_source("s3://b#fraud") == AliasSource("s3://b", "fraud", "production")
    assert alias_source("/r#fraud@candidate").version_source("v1") == "/r#fraud@v1"
    for fixed in ("/r#fraud@v20260101T000000000000-abcdef", "/mnt/models", "s3://b/fraud/v1/", "/r#@production"):
        assert alias_source(fixed) is None


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
