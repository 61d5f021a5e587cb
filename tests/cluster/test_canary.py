"""A canary against KServe's own controller and webhooks, driven with the rollout ServiceAccount's token:
KServe creates the canary's Deployment and Service and reports canaryStatuses; mlcycle's HTTPRoute carries
the split (v0.20.0 routes nothing to a canary by itself); promotion and rollback as KServe expects them."""

import copy
import time

import pytest
import yaml

from devtools.cluster import ClusterError
from mlcycle.rollout.kserve import STANDARD, KServeAdapter, RolloutError, canary_name, canary_patch, storage_uri
from mlcycle.rollout.policy import Action, State

pytestmark = pytest.mark.cluster
V1 = "s3://mlcycle-models/fraud-detector/v20261201T000000000001-aaaaaa/"
V2 = "s3://mlcycle-models/fraud-detector/v20261201T000000000002-bbbbbb/"
V3 = "s3://mlcycle-models/fraud-detector/v20261201T000000000003-cccccc/"


def _isvc(cluster, name: str, uri: str) -> dict:
    docs = [
        d
        for d in yaml.safe_load_all(cluster.kustomize("manifests/overlays/kind"))
        if d and d["kind"] == "InferenceService"
    ]
    isvc = copy.deepcopy(docs[0])
    isvc["metadata"]["name"] = name
    for env in isvc["spec"]["predictor"]["containers"][0]["env"]:
        if env["name"] == "STORAGE_URI":
            env["value"] = uri
    return isvc


def _ready(cluster, name: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            obj = cluster.get("-n", "mlcycle", "inferenceservice", name)
        except ClusterError:
            obj = {}
        if any(c["type"] == "Ready" and c["status"] == "True" for c in obj.get("status", {}).get("conditions", [])):
            return obj
        time.sleep(0.5)
    pytest.fail(f"{name} not Ready: {obj.get('status')}")


@pytest.fixture
def rollout_api(tokens):
    from kubernetes import client, config

    return client.CustomObjectsApi(config.new_client_from_config(config_file=str(tokens["mlcycle/mlcycle-rollout"])))


def _action(kind: str, weight: int) -> Action:
    return Action(kind, weight, f"test {kind}", State(stable=V1), {"requests": 100, "metrics": {"error_rate": 0.0}})


def test_canary_steps_then_promotion_route_traffic_as_intended(applied, rollout_api):
    cluster = applied
    cluster.apply(yaml.safe_dump(_isvc(cluster, "canary-a", V1)))
    _ready(cluster, "canary-a")
    adapter = KServeAdapter("canary-a", "mlcycle", V1, V2, api=rollout_api, timeout_s=60)
    assert adapter.mode == STANDARD

    adapter.start(weight=0)
    name = canary_name(V2)
    deadline = time.monotonic() + 60
    while adapter.observe_canary() != (V2, True) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert adapter.observe_canary() == (V2, True), cluster.get("-n", "mlcycle", "inferenceservice", "canary-a").get(
        "status"
    )
    # KServe made the canary's own Deployment and Service; the route sends it nothing yet.
    assert (
        cluster.get("-n", "mlcycle", "deployment", f"canary-a-{name}-predictor")["status"].get("availableReplicas") == 1
    )
    cluster.get("-n", "mlcycle", "service", f"canary-a-{name}-predictor")
    assert adapter.route_weights() == {"canary-a-predictor": 100, f"canary-a-{name}-predictor": 0}

    for weight in (10, 25, 50):
        adapter.apply(_action("set_weight", weight))
        isvc = cluster.get("-n", "mlcycle", "inferenceservice", "canary-a")
        assert isvc["spec"]["canary"][0]["trafficPercent"] == weight
        assert {c["name"]: c["trafficPercent"] for c in isvc["status"]["canaryStatuses"]} == {name: weight}
        assert any(c["type"] == "CanaryPredictorReady" and c["status"] == "True" for c in isvc["status"]["conditions"])
        assert adapter.route_weights() == {"canary-a-predictor": 100 - weight, f"canary-a-{name}-predictor": weight}

    adapter.apply(_action("promote", 50))
    isvc = cluster.get("-n", "mlcycle", "inferenceservice", "canary-a")
    assert "canary" not in isvc["spec"] and isvc["spec"]["predictor"]["name"] == name
    assert (
        storage_uri(isvc["spec"]["predictor"]) == V2 and isvc["spec"]["predictor"]["maxReplicas"] == 4
    )  # the stable's scaling kept
    assert adapter.route_weights() == {f"canary-a-{name}-predictor": 100}
    _ready(cluster, "canary-a")


def test_rollback_restores_the_stable_route(applied, rollout_api):
    cluster = applied
    cluster.apply(yaml.safe_dump(_isvc(cluster, "canary-b", V1)))
    _ready(cluster, "canary-b")
    adapter = KServeAdapter("canary-b", "mlcycle", V1, V3, api=rollout_api, timeout_s=60)
    adapter.start(weight=20)
    assert adapter.route_weights() == {"canary-b-predictor": 80, f"canary-b-{canary_name(V3)}-predictor": 20}
    adapter.apply(_action("rollback", 0))
    isvc = cluster.get("-n", "mlcycle", "inferenceservice", "canary-b")
    assert "canary" not in isvc["spec"] and storage_uri(isvc["spec"]["predictor"]) == V1
    assert not isvc["status"].get("canaryStatuses")
    assert adapter.route_weights() == {"canary-b-predictor": 100}


def test_a_canary_the_webhook_refuses_names_kserves_reason_and_leaves_production(applied, rollout_api):
    cluster = applied
    cluster.apply(yaml.safe_dump(_isvc(cluster, "canary-c", V1)))
    _ready(cluster, "canary-c")
    adapter = KServeAdapter("canary-c", "mlcycle", V1, V2, api=rollout_api, timeout_s=30)
    bad = canary_patch(adapter.get(), STANDARD, V2, 10)
    bad["spec"]["canary"][0]["predictor"]["maxReplicas"] = 3
    with pytest.raises(RolloutError, match="must not set maxReplicas"):
        adapter.write(bad)
    over = canary_patch(adapter.get(), STANDARD, V2, 60)
    second = copy.deepcopy(over["spec"]["canary"][0])
    second["predictor"]["name"] = "other"
    over["spec"]["canary"].append(second)
    with pytest.raises(RolloutError, match=r"sum of canary trafficPercent values \(120\) must be <= 100"):
        adapter.write(over)
    over["spec"]["canary"] = over["spec"]["canary"][:1]
    over["spec"]["canary"][0]["trafficPercent"] = 120  # the CRD's own bound, checked by the apiserver
    with pytest.raises(RolloutError, match="should be less than or equal to 100"):
        adapter.write(over)
    isvc = cluster.get("-n", "mlcycle", "inferenceservice", "canary-c")
    assert "canary" not in isvc["spec"] and storage_uri(isvc["spec"]["predictor"]) == V1


def test_a_role_without_a_needed_verb_says_which_verb_on_which_resource(applied, tokens):
    from kubernetes import client, config

    serving = client.CustomObjectsApi(config.new_client_from_config(config_file=str(tokens["mlcycle/mlcycle-serving"])))
    with pytest.raises(RolloutError) as err:
        KServeAdapter("canary-c", "mlcycle", V1, V2, api=serving)
    assert 'cannot get resource "inferenceservices" in API group "serving.kserve.io"' in str(err.value)


def test_rollout_cli_status_promote_abort_against_the_control_plane(applied, tokens, monkeypatch, capsys):
    import json

    from cli.main import main

    cluster = applied
    cluster.apply(yaml.safe_dump(_isvc(cluster, "canary-cli", V1)))
    _ready(cluster, "canary-cli")
    monkeypatch.setenv("KUBECONFIG", str(tokens["mlcycle/mlcycle-rollout"]))
    from kubernetes import client, config

    api = client.CustomObjectsApi(config.new_client_from_config(config_file=str(tokens["mlcycle/mlcycle-rollout"])))
    KServeAdapter("canary-cli", "mlcycle", V1, V2, api=api, timeout_s=60).start(weight=30)
    assert main(["rollout", "status", "--name", "canary-cli"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["mode"] == "standard" and status["canary_weight"] == 30 and status["canary_uri"] == V2
    assert status["route_weights"] == {"canary-cli-predictor": 70, f"canary-cli-{canary_name(V2)}-predictor": 30}
    assert main(["rollout", "promote", "--name", "canary-cli"]) == 2  # a reason is required
    assert main(["rollout", "promote", "--name", "canary-cli", "--why", "looked good"]) == 0
    isvc = cluster.get("-n", "mlcycle", "inferenceservice", "canary-cli")
    assert storage_uri(isvc["spec"]["predictor"]) == V2 and "canary" not in isvc["spec"]
    KServeAdapter("canary-cli", "mlcycle", V2, V3, api=api, timeout_s=60).start(weight=10)
    assert main(["rollout", "abort", "--name", "canary-cli", "--why", "changed my mind"]) == 0
    isvc = cluster.get("-n", "mlcycle", "inferenceservice", "canary-cli")
    assert storage_uri(isvc["spec"]["predictor"]) == V2 and "canary" not in isvc["spec"]
    capsys.readouterr()
    assert main(["rollout", "abort", "--name", "canary-cli", "--why", "x"]) == 2
    assert "has no canary" in capsys.readouterr().err
