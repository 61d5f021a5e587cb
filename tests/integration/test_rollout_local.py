"""The rollout's failure cases against the local loop: real predictor processes, a real Prometheus,
the load generator splitting traffic by weight, the controller deciding."""

import time

import pytest

from inference.devserve import start_predictor
from inference.rollout.local import Backend, LocalAdapter, PrometheusServer, TrafficSplitter, local_policy
from mlcycle.data import DEMO_ROW
from mlcycle.process import free_port
from mlcycle.rollout import controller
from mlcycle.rollout.metrics import PrometheusProvider

pytestmark = pytest.mark.integration
SAMPLE = {"instances": [DEMO_ROW]}
# No test here injects latency (the broken canary fails by errors): p99 up to 2 s, so one slow request on a loaded
# machine does not fail a check of a healthy canary (the roll-forward must promote).
POLICY = local_policy(ready_timeout_s=4, max_p99_ms=2000)


@pytest.fixture(scope="module")
def loop(served, tmp_path_factory):
    logs = tmp_path_factory.mktemp("rollout")
    procs = {
        "stable": start_predictor(served["source"], "fraud", free_port(), free_port(), logs / "stable.log"),
        "healthy": start_predictor(served["source"], "fraud", free_port(), free_port(), logs / "healthy.log"),
        "broken": start_predictor(
            served["source"], "fraud", free_port(), free_port(), logs / "broken.log", "--fault_error_rate", "0.5"
        ),
    }
    yield {"procs": procs, "logs": logs}
    for proc in procs.values():
        proc.stop()


def setup_run(loop, name, rate=40.0):
    splitter = TrafficSplitter(
        Backend(f"stable-{name}", loop["procs"]["stable"].url, "fraud"), SAMPLE, rate=rate
    ).start()
    prometheus = PrometheusServer(loop["logs"] / f"prom-{name}", [f"127.0.0.1:{splitter.port}"]).start()
    return splitter, prometheus


def backend(loop, kind, name):
    return Backend(f"{kind}-{name}", loop["procs"][kind].url, "fraud")


def run(adapter, prometheus, stable, on_action=None, max_steps=40, policy=POLICY):
    actions = []

    def record(a):
        actions.append((time.monotonic(), a))
        if on_action:
            on_action(a)

    final = controller.run(
        adapter, PrometheusProvider(prometheus.url, window="6s"), policy, stable, on_action=record, max_steps=max_steps
    )
    return final, actions


def test_a_canary_that_never_becomes_ready_is_never_promoted(loop):
    splitter, prometheus = setup_run(loop, "unready")
    try:
        dead = Backend(
            "unready", f"http://127.0.0.1:{free_port()}", "fraud"
        )  # its model failed to load: nothing listens
        adapter = LocalAdapter(splitter, dead)
        final, actions = run(adapter, prometheus, "stable-unready")
        assert final.kind == "rollback" and "not ready within 4s" in final.reason
        assert all(a.weight == 0 for _, a in actions) and splitter.sent.get("unready", 0) == 0
        assert splitter.stable.revision == "stable-unready"  # production keeps 100 %
    finally:
        splitter.stop(), prometheus.stop()


def test_metrics_source_down_aborts_and_never_promotes(loop):
    splitter, prometheus = setup_run(loop, "promdown")
    try:
        adapter = LocalAdapter(splitter, backend(loop, "healthy", "promdown"))
        kill_after_first_weight = lambda a: prometheus.stop() if a.kind == "set_weight" else None  # noqa: E731
        final, actions = run(adapter, prometheus, "stable-promdown", on_action=kill_after_first_weight)
        assert final.kind == "rollback" and "never promoting on missing evidence" in final.reason
        assert not any(a.kind == "promote" for _, a in actions)
        assert splitter.canary is None and splitter.stable.revision == "stable-promdown"
    finally:
        splitter.stop(), prometheus.stop()


def test_too_little_traffic_waits_for_a_sample(loop):
    splitter, prometheus = setup_run(loop, "trickle", rate=2.0)
    try:
        adapter = LocalAdapter(splitter, backend(loop, "healthy", "trickle"))
        final, actions = run(adapter, prometheus, "stable-trickle", max_steps=6)
        kinds = [a.kind for _, a in actions]
        assert "promote" not in kinds and "rollback" not in kinds
        assert final.kind == "wait" and "insufficient sample" in final.reason and final.weight == 25
    finally:
        splitter.stop(), prometheus.stop()


def test_bad_canary_rolls_back_within_interval_times_threshold(loop):
    splitter, prometheus = setup_run(loop, "bad")
    try:
        adapter = LocalAdapter(splitter, backend(loop, "broken", "bad"))
        final, actions = run(adapter, prometheus, "stable-bad")
        assert final.kind == "rollback" and "error_rate" in final.reason
        assert final.reason.startswith(f"{POLICY.threshold} failed checks (threshold {POLICY.threshold})")
        first_failed = next(t for t, a in actions if a.reason.startswith("failed check"))
        rolled_back = next(t for t, a in actions if a.kind == "rollback")
        # threshold - 1 intervals after the first failed check; each check may take as long again on a slow machine
        assert rolled_back - first_failed <= 2 * POLICY.interval_s * POLICY.threshold
        sent_at_rollback = splitter.sent.get("broken-bad", 0)
        time.sleep(1.0)
        assert splitter.sent.get("broken-bad", 0) == sent_at_rollback  # no traffic after the rollback
    finally:
        splitter.stop(), prometheus.stop()


def test_new_canary_mid_rollout_and_roll_forward_after_rollback(loop):
    splitter, prometheus = setup_run(loop, "overlap")
    try:
        first = backend(loop, "healthy", "overlap-a")
        adapter = LocalAdapter(splitter, first)
        replaced = {}

        def swap_once_weighted(action):
            if action.kind == "set_weight" and not replaced:
                adapter.replace_canary(backend(loop, "broken", "overlap-b"))  # a new canary while one is in progress
                replaced["sent_a"] = splitter.sent.get("healthy-overlap-a", 0)

        final, actions = run(adapter, prometheus, "stable-overlap", on_action=swap_once_weighted)
        restarts = [a for _, a in actions if a.kind == "restart"]
        assert (
            len(restarts) == 2
            and restarts[1].weight == 0
            and "healthy-overlap-a -> broken-overlap-b" in restarts[1].reason
        )
        assert final.kind == "rollback"
        assert splitter.sent.get("healthy-overlap-a", 0) == replaced["sent_a"]  # no traffic to the superseded canary
        adapter.replace_canary(backend(loop, "healthy", "overlap-c"))  # roll forward after the rollback
        state = final.state
        final2 = None
        for _ in range(30):
            final2 = controller.step(
                state, adapter, PrometheusProvider(prometheus.url, window="6s"), POLICY, time.monotonic()
            )
            state = final2.state
            if final2.kind in ("promote", "rollback"):
                break
            time.sleep(POLICY.interval_s)
        assert final2.kind == "promote" and splitter.stable.revision == "healthy-overlap-c"
        sent_b = splitter.sent.get("broken-overlap-b", 0)
        time.sleep(1.0)
        assert splitter.sent.get("broken-overlap-b", 0) == sent_b and set(splitter.sent) <= {
            "stable-overlap",
            "healthy-overlap-a",
            "broken-overlap-b",
            "healthy-overlap-c",
        }
    finally:
        splitter.stop(), prometheus.stop()


def test_standard_mode_queries_read_the_predictors_own_per_version_metrics(loop, served):
    """STANDARD_QUERIES (KServe Standard mode: no Knative queue-proxy) against a real Prometheus scraping a real
    predictor that fails half its requests: the evidence names the version and sees the errors."""
    import requests as http

    from mlcycle.rollout.metrics import STANDARD_QUERIES

    broken = loop["procs"]["broken"]
    prometheus = PrometheusServer(loop["logs"] / "prom-standard", [broken.url.removeprefix("http://")]).start()
    try:
        deadline = time.monotonic() + 12
        codes = []
        while time.monotonic() < deadline:
            codes.append(http.post(f"{broken.url}/v1/models/fraud:predict", json=SAMPLE, timeout=5).status_code)
            time.sleep(0.05)
        time.sleep(2.5)  # one more scrape
        provider = PrometheusProvider(prometheus.url, STANDARD_QUERIES, window="20s")
        requests_seen, metrics = provider.observe(f"s3://mlcycle-models/fraud/{served['version']}/")
        assert requests_seen > 20 and 0.25 < metrics["error_rate"] < 0.75, (requests_seen, metrics, codes.count(500))
        assert metrics["p99_latency_ms"] < 2000  # a sanity bound (a loaded machine is slow), not a latency test
        assert provider.observe("s3://mlcycle-models/fraud/v-other/")[0] == 0  # another version's evidence is its own
    finally:
        prometheus.stop()
