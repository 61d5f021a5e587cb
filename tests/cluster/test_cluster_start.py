"""devtools.cluster itself: a start that fails half-way stops every process it had started (no etcd or
apiserver left holding ports and CPU for the rest of the run)."""

import pytest

pytestmark = pytest.mark.cluster


def test_a_failed_start_stops_every_process_it_started(tmp_path, monkeypatch):
    from devtools.cluster import Cluster

    started = []
    original = Cluster._start

    def spy(self, name, argv, env=None):
        proc = original(self, name, argv, env)
        started.append((name, proc))
        return proc

    def broken_kwok(self):
        raise RuntimeError("kwok failed to start (injected)")

    monkeypatch.setattr(Cluster, "_start", spy)
    monkeypatch.setattr(Cluster, "_start_kwok", broken_kwok)
    cluster = Cluster(tmp_path / "cluster")
    with pytest.raises(RuntimeError, match="injected"):
        cluster.up()
    names = [name for name, _ in started]
    assert {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} <= set(names), names
    assert [name for name, proc in started if proc.poll() is None] == []
    assert not (tmp_path / "cluster" / "state.json").exists() and cluster.procs == {}
