"""The rollout controller through a full canary against KServe's real controller, with the rollout
ServiceAccount's token, while live evidence comes from real predictor processes. KWOK's pods run no
containers, so the gateway is played locally: a load generator sends each request to the stable or the
canary predictor process in the proportions the cluster's HTTPRoute says, and a real Prometheus scrapes it.
Kubernetes objects and evidence move together: every weight the controller sets is read back from the
HTTPRoute before traffic follows it."""

import copy
import threading
import time

import pytest
import yaml

from inference.devserve import start_predictor
from inference.rollout.local import Backend, PrometheusServer, TrafficSplitter, local_policy
from mlcycle.data import DEMO_ROW
from mlcycle.process import free_port
from mlcycle.rollout import controller
from mlcycle.rollout.kserve import KServeAdapter, canary_name, predictor_service, storage_uri
from mlcycle.rollout.metrics import PrometheusProvider

pytestmark = pytest.mark.cluster
SAMPLE = {"instances": [DEMO_ROW]}
POLICY = local_policy(ready_timeout_s=30)
V1 = "s3://mlcycle-models/fraud-detector/v20261201T000000000010-111111/"


class GatewayAdapter(KServeAdapter):
    """KServeAdapter whose traffic follows the HTTPRoute it wrote (the gateway's job on a cluster)."""

    def __init__(self, *args, splitter: TrafficSplitter, backends: dict[str, Backend], **kwargs):
        super().__init__(*args, **kwargs)
        self.splitter, self.backends, self.route_log = splitter, backends, []

    def apply(self, action):
        super().apply(action)
        weights = self.route_weights()
        self.route_log.append((action.kind, weights))
        isvc = self.get()
        stable_service = predictor_service(self.name, isvc["spec"]["predictor"])
        if action.kind == "promote":
            self.splitter.route(self.backends[self.canary_uri], 100)
            self.splitter.promote()
        else:
            canary_weight = sum(w for svc, w in weights.items() if svc != stable_service)
            self.splitter.route(self.backends[self.canary_uri] if canary_weight else None, canary_weight)


@pytest.fixture(scope="module")
def live(served, applied, tokens, tmp_path_factory):
    from kubernetes import client, config

    logs = tmp_path_factory.mktemp("live")
    procs = {
        kind: start_predictor(served["source"], "fraud", free_port(), free_port(), logs / f"{kind}.log", *extra)
        for kind, extra in (("stable", ()), ("healthy", ()), ("broken", ("--fault_error_rate", "0.5")))
    }
    api = client.CustomObjectsApi(config.new_client_from_config(config_file=str(tokens["mlcycle/mlcycle-rollout"])))
    yield {"procs": procs, "logs": logs, "api": api, "cluster": applied}
    for proc in procs.values():
        proc.stop()


def _start(live, name: str, canary_uri: str, kind: str):
    cluster = live["cluster"]
    isvc = copy.deepcopy(
        next(
            d
            for d in yaml.safe_load_all(cluster.kustomize("manifests/overlays/kind"))
            if d and d["kind"] == "InferenceService"
        )
    )
    isvc["metadata"]["name"] = name
    for env in isvc["spec"]["predictor"]["containers"][0]["env"]:
        if env["name"] == "STORAGE_URI":
            env["value"] = V1
    cluster.apply(yaml.safe_dump(isvc))
    stable = Backend(V1, live["procs"]["stable"].url, "fraud")
    backends = {canary_uri: Backend(canary_uri, live["procs"][kind].url, "fraud")}
    splitter = TrafficSplitter(stable, SAMPLE, rate=40.0).start()
    prometheus = PrometheusServer(live["logs"] / f"prom-{name}", [f"127.0.0.1:{splitter.port}"]).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        conditions = cluster.get("-n", "mlcycle", "inferenceservice", name).get("status", {}).get("conditions", [])
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            break
        time.sleep(0.5)
    adapter = GatewayAdapter(
        name, "mlcycle", V1, canary_uri, api=live["api"], timeout_s=60, splitter=splitter, backends=backends
    )
    return adapter, splitter, prometheus


def _run(adapter, prometheus, on_action=None):
    actions = []

    def record(a):
        actions.append(a)
        if on_action:
            on_action(a)

    adapter.start(weight=0)
    final = controller.run(
        adapter, PrometheusProvider(prometheus.url, window="6s"), POLICY, V1, on_action=record, max_steps=40
    )
    return final, actions


def test_healthy_canary_is_promoted_with_route_and_evidence_moving_together(live):
    canary = "s3://mlcycle-models/fraud-detector/v20261201T000000000011-222222/"
    adapter, splitter, prometheus = _start(live, "live-good", canary, "healthy")
    try:
        final, actions = _run(adapter, prometheus)
        assert final.kind == "promote", [(a.kind, a.reason) for a in actions]
        steps = [a.weight for a in actions if a.kind == "set_weight"]
        assert steps == [25, 50]
        name = canary_name(canary)
        # every weight the controller set is the weight the route carried
        for kind, weights in adapter.route_log:
            if kind == "set_weight":
                assert weights[f"live-good-{name}-predictor"] in steps
        assert adapter.route_log[-1] == ("promote", {f"live-good-{name}-predictor": 100})
        assert splitter.sent.get(canary, 0) > POLICY.min_requests  # the canary process really served traffic
        isvc = live["cluster"].get("-n", "mlcycle", "inferenceservice", "live-good")
        assert storage_uri(isvc["spec"]["predictor"]) == canary and "canary" not in isvc["spec"]
        # every step after the first (0 -> 25 starts the traffic) and the promotion rest on canary evidence
        assert all(
            a.evidence.get("requests", 0) >= POLICY.min_requests
            for a in actions
            if a.kind == "promote" or (a.kind == "set_weight" and a.weight > POLICY.step_weight)
        )
    finally:
        splitter.stop(), prometheus.stop()


def test_broken_canary_is_rolled_back_and_the_route_restored(live):
    canary = "s3://mlcycle-models/fraud-detector/v20261201T000000000012-333333/"
    adapter, splitter, prometheus = _start(live, "live-bad", canary, "broken")
    try:
        final, actions = _run(adapter, prometheus)
        assert final.kind == "rollback" and "error_rate" in final.reason, [(a.kind, a.reason) for a in actions]
        assert adapter.route_weights() == {"live-bad-predictor": 100}
        isvc = live["cluster"].get("-n", "mlcycle", "inferenceservice", "live-bad")
        assert "canary" not in isvc["spec"] and storage_uri(isvc["spec"]["predictor"]) == V1
    finally:
        splitter.stop(), prometheus.stop()


def test_apiserver_restart_mid_rollout_resumes_and_never_promotes_without_evidence(live):
    canary = "s3://mlcycle-models/fraud-detector/v20261201T000000000013-444444/"
    adapter, splitter, prometheus = _start(live, "live-restart", canary, "healthy")
    restarted = threading.Event()

    def restart_once(action):
        if action.kind == "set_weight" and not restarted.is_set():
            restarted.set()
            live["cluster"].restart_apiserver()

    try:
        final, actions = _run(adapter, prometheus, on_action=restart_once)
        assert restarted.is_set()
        assert final.kind == "promote", [(a.kind, a.reason) for a in actions]
        assert all(
            a.evidence.get("requests", 0) >= POLICY.min_requests and a.evidence.get("metrics")
            for a in actions
            if a.kind == "promote"
        )
        isvc = live["cluster"].get("-n", "mlcycle", "inferenceservice", "live-restart")
        assert storage_uri(isvc["spec"]["predictor"]) == canary
    finally:
        splitter.stop(), prometheus.stop()
