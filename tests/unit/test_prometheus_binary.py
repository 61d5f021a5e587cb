"""Which Prometheus the local rollout loop runs: an explicit binary, else $PROMETHEUS_BIN (what `make test` exports),
else `prometheus` on PATH; a named binary that is not there is an error naming where it came from."""

import pytest

from inference.rollout.local import prometheus_binary
from mlcycle.errors import ToolMissing

pytestmark = pytest.mark.unit


def executable(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def places(tmp_path, monkeypatch):
    on_path = executable(tmp_path / "bin" / "prometheus")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.delenv("PROMETHEUS_BIN", raising=False)
    return {"path": on_path, "env": executable(tmp_path / "env" / "prom"), "arg": executable(tmp_path / "arg" / "prom")}


def test_the_argument_then_the_environment_then_the_path(places, monkeypatch):
    assert prometheus_binary() == places["path"]
    monkeypatch.setenv("PROMETHEUS_BIN", places["env"])
    assert prometheus_binary() == places["env"]
    assert prometheus_binary(places["arg"]) == places["arg"]


def test_a_named_binary_that_is_missing_is_an_error_naming_its_source(places, tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_BIN", str(tmp_path / "nowhere"))
    with pytest.raises(ToolMissing, match=r"nowhere.*\(\$PROMETHEUS_BIN\) is not an executable"):
        prometheus_binary()
    with pytest.raises(ToolMissing, match=r"gone.*\(the binary argument\)"):
        prometheus_binary(str(tmp_path / "gone"))


def test_none_anywhere_names_all_three_ways(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("PROMETHEUS_BIN", raising=False)
    with pytest.raises(ToolMissing, match=r"binary=.*PROMETHEUS_BIN.*'prometheus' on PATH"):
        prometheus_binary()
