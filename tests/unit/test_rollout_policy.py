from dataclasses import replace

import pytest

from mlcycle.rollout.policy import (
    IDLE,
    PROGRESSING,
    PROMOTED,
    ROLLED_BACK,
    MetricCheck,
    Observation,
    Policy,
    State,
    decide,
)

pytestmark = pytest.mark.unit
P = Policy(
    interval_s=10, threshold=3, step_weight=20, max_weight=60, min_requests=50, max_metric_errors=2, ready_timeout_s=100
)
GOOD = {"error_rate": 0.001, "p99_latency_ms": 20.0}
BAD_ERR = {"error_rate": 0.2, "p99_latency_ms": 20.0}
RUN = State(stable="v1", canary="v2", phase=PROGRESSING, weight=20, started_at=0.0)


def obs(**kw):
    return Observation(**{"now": 50.0, "canary": "v2", "canary_ready": True, "requests": 500, "metrics": GOOD, **kw})


@pytest.mark.parametrize(
    "state, observation, kind, weight, fragment",
    [
        (State("v1"), obs(canary=None), "idle", 0, "no canary"),
        (State("v1"), obs(), "restart", 0, "analysis restarts at weight 0"),
        (replace(RUN, weight=0), obs(canary_ready=False, now=10), "wait", 0, "not ready yet"),
        (replace(RUN, weight=0), obs(canary_ready=False, now=150), "rollback", 0, "not ready within 100s"),
        (RUN, obs(canary_ready=False), "rollback", 0, "not ready during analysis"),
        (replace(RUN, weight=0), obs(requests=0), "set_weight", 20, "weight 0 -> 20"),
        (RUN, obs(), "set_weight", 40, "weight 20 -> 40"),
        (replace(RUN, weight=50), obs(), "set_weight", 60, "weight 50 -> 60"),  # capped at max_weight
        (replace(RUN, weight=60), obs(), "promote", 100, ">= max_weight 60"),
        (replace(RUN, weight=70), obs(), "promote", 100, ">= max_weight"),  # >=, never ==
        (RUN, obs(requests=49), "wait", 20, "insufficient sample: 49"),
        (RUN, obs(metrics=BAD_ERR), "wait", 20, "failed check 1/3: error_rate=0.2 > max 0.01"),
        (replace(RUN, failed_checks=2), obs(metrics=BAD_ERR), "rollback", 0, "3 failed checks"),
        (RUN, obs(metrics={"error_rate": 0.0}), "wait", 20, "p99_latency_ms: no value"),
        (
            RUN,
            obs(metrics=None, error="connection refused"),
            "wait",
            20,
            "metrics unavailable (connection refused); 1/2",
        ),
        (
            replace(RUN, metric_errors=1),
            obs(metrics=None, error="timeout"),
            "rollback",
            0,
            "never promoting on missing evidence",
        ),
        (replace(RUN, weight=60, metric_errors=1), obs(metrics=None), "rollback", 0, "aborting"),  # even at max weight
        (replace(RUN, phase=PROMOTED, weight=100), obs(), "wait", 100, "already promoted"),
        (replace(RUN, phase=ROLLED_BACK, weight=0), obs(), "wait", 0, "already rolled_back"),
        (replace(RUN, phase=ROLLED_BACK), obs(canary="v3"), "restart", 0, "v2 -> v3"),  # roll forward after a rollback
        (replace(RUN, weight=40), obs(canary="v3"), "restart", 0, "v2 -> v3"),  # new canary mid-rollout
    ],
)
def test_decide(state, observation, kind, weight, fragment):
    action = decide(state, observation, P)
    assert (action.kind, action.weight) == (kind, weight), action
    assert fragment in action.reason
    assert action.state.weight == weight  # the state carries the weight the action sets
    phase = {"idle": IDLE, "restart": PROGRESSING, "promote": PROMOTED, "rollback": ROLLED_BACK}.get(kind, state.phase)
    assert action.state.phase == phase  # set_weight and wait keep the phase


def test_metric_errors_reset_after_a_good_observation():
    a = decide(replace(RUN, metric_errors=1), obs(), P)
    assert a.state.metric_errors == 0


def test_min_bound_checks():
    policy = replace(P, metrics=(MetricCheck("online_accuracy", min=0.9),))
    assert decide(RUN, obs(metrics={"online_accuracy": 0.8}), policy).reason.startswith(
        "failed check 1/3: online_accuracy=0.8 < min 0.9"
    )


def test_full_run_promotes_after_max_weight_and_a_bad_canary_rolls_back_in_time():
    state, t, weights = State("v1"), 0.0, []
    while True:
        a = decide(state, obs(now=t), P)
        state, t = a.state, t + P.interval_s
        weights.append(a.weight)
        if a.kind in ("promote", "rollback"):
            break
    assert a.kind == "promote" and weights == [0, 20, 40, 60, 100] and state.phase == PROMOTED

    state, t, first_failure = State("v1"), 0.0, None
    for _ in range(20):
        metrics = BAD_ERR if t >= 30 else GOOD
        a = decide(state, obs(now=t, metrics=metrics), P)
        if metrics is BAD_ERR and first_failure is None:
            first_failure = t
        state = a.state
        if a.kind == "rollback":
            break
        t += P.interval_s
    assert a.kind == "rollback" and t - first_failure <= P.interval_s * P.threshold


@pytest.mark.parametrize(
    "bad",
    [
        {"step_weight": 0},
        {"step_weight": 101},
        {"max_weight": 0},
        {"max_weight": 101},
        {"threshold": 0},
        {"interval_s": 0},
        {"interval_s": -1},
    ],
)
def test_policy_validation(bad):
    with pytest.raises(ValueError, match="invalid rollout policy"):
        Policy(**bad)


def test_policy_bounds_are_inclusive():
    edge = Policy(step_weight=100, max_weight=100, threshold=1, interval_s=0.001)
    assert decide(replace(RUN, weight=0), obs(), edge).weight == 100  # one step to full weight


def test_deploy_canary_needs_an_s3_registry(tmp_path):
    from components.deploy_canary.logic import version_uri
    from mlcycle.registry import open_registry
    from mlcycle.rollout.kserve import RolloutError

    with pytest.raises(RolloutError, match="needs an s3:// registry"):
        version_uri(open_registry(tmp_path), "fraud", "v1")


def test_cli_rollout_without_a_cluster_says_so(monkeypatch, capsys):
    from cli.main import main

    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert main(["rollout", "status"]) == 1
    assert "no Kubernetes cluster configured" in capsys.readouterr().err


@pytest.mark.parametrize(
    "annotation, status, mode",
    [
        ("Serverless", None, "serverless"),
        (None, None, "serverless"),
        ("Knative", None, "serverless"),
        ("Standard", None, "standard"),
        ("RawDeployment", None, "standard"),
        # KServe's effective mode (status) wins over the annotation
        ("RawDeployment", "Standard", "standard"),
        (None, "Standard", "standard"),
        ("Standard", "Knative", "serverless"),
    ],
)
def test_detect_canary_api(annotation, status, mode):
    from mlcycle.rollout.kserve import detect_mode

    meta = {"annotations": {"serving.kserve.io/deploymentMode": annotation}} if annotation else {}
    assert detect_mode({"metadata": meta, **({"status": {"deploymentMode": status}} if status else {})}) == mode


def test_unknown_deployment_mode_is_refused_by_name():
    from mlcycle.rollout.kserve import RolloutError, detect_mode

    with pytest.raises(RolloutError, match="unknown KServe deployment mode 'ModelMesh'"):
        detect_mode({"metadata": {"annotations": {"serving.kserve.io/deploymentMode": "ModelMesh"}}})


def test_standard_canary_has_the_shape_kserves_webhook_accepts():
    from mlcycle.rollout.kserve import canary_patch, predictor_service, route_backends

    isvc = {
        "metadata": {"name": "fd"},
        "spec": {
            "predictor": {
                "minReplicas": 2,
                "maxReplicas": 4,
                "containers": [
                    {
                        "name": "kserve-container",
                        "env": [{"name": "STORAGE_URI", "value": "s3://b/m/v1/"}],
                        "resources": {"limits": {"cpu": "2"}},
                    }
                ],
            }
        },
    }
    patched = canary_patch(isvc, "standard", "s3://b/m/v20261201T095519197307-e92c3a/", 20)
    canary = patched["spec"]["canary"][0]["predictor"]
    assert (
        canary["name"] == "c-v20261201t095519197307-e92c3a"
        and "maxReplicas" not in canary
        and canary["minReplicas"] == 1
    )
    assert canary["containers"][0]["resources"] == {
        "limits": {"cpu": "2"}
    }  # same resources: promotion restarts nothing
    assert route_backends(patched) == [("fd-predictor", 80), ("fd-c-v20261201t095519197307-e92c3a-predictor", 20)]
    assert predictor_service("fd", canary) == "fd-c-v20261201t095519197307-e92c3a-predictor"


def test_promote_and_rollback_patches():
    from mlcycle.rollout.kserve import canary_patch, promote_patch, rollback_patch, storage_uri

    isvc = {
        "metadata": {},
        "spec": {
            "predictor": {
                "containers": [{"name": "kserve-container", "env": [{"name": "STORAGE_URI", "value": "s3://b/m/v1/"}]}]
            }
        },
    }
    s = canary_patch(isvc, "standard", "s3://b/m/v2/", 30)
    assert (
        storage_uri(s["spec"]["predictor"]) == "s3://b/m/v1/"
        and storage_uri(s["spec"]["canary"][0]["predictor"]) == "s3://b/m/v2/"
    )
    assert (
        storage_uri(promote_patch(s, "standard")["spec"]["predictor"]) == "s3://b/m/v2/"
        and "canary" not in promote_patch(s, "standard")["spec"]
    )
    assert "canary" not in rollback_patch(s, "standard", "s3://b/m/v1/")["spec"]
    k = canary_patch(isvc, "serverless", "s3://b/m/v2/", 30)
    assert (
        k["spec"]["predictor"]["canaryTrafficPercent"] == 30 and storage_uri(k["spec"]["predictor"]) == "s3://b/m/v2/"
    )
    assert "canaryTrafficPercent" not in promote_patch(k, "serverless")["spec"]["predictor"]
    back = rollback_patch(k, "serverless", "s3://b/m/v1/")
    assert (
        back["spec"]["predictor"]["canaryTrafficPercent"] == 0
        and storage_uri(back["spec"]["predictor"]) == "s3://b/m/v1/"
    )
    assert isvc["spec"]["predictor"]["containers"][0]["env"] == [
        {"name": "STORAGE_URI", "value": "s3://b/m/v1/"}
    ]  # pure: input untouched
