"""The drift detector's KFP hook follows the run it submitted to its end: the trigger guard holds the next retrain
back while the run is PENDING/RUNNING (whatever the cooldown), counts a FAILED or CANCELED run, a refused
submission or a lasting loss of the KFP API as failures, and follows a run again after a restart.

Against a real local HTTP server answering the KFP v2beta1 REST calls the installed kfp SDK makes (``FakeKfp``
in tests/conftest.py: create-run answers a run id, get-run a scripted sequence of states)."""

import asyncio
import json

import pytest

from inference.drift_detector.hooks import KfpHook, retrain_params
from inference.drift_detector.persist import STATE_FILE
from inference.drift_detector.server import DriftService
from mlcycle.errors import ConfigError
from mlcycle.process import wait_until

pytestmark = pytest.mark.unit
POLL_S = 0.05
WAIT_S = 30.0  # a deadline, not a duration: the conditions below hold long before on any machine


@pytest.fixture(scope="module")
def detector(splits, contract):
    from mlcycle import drift

    return drift.build(drift.reference_sample(splits[0], contract), contract, "scipy", train=splits[0])


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """The training pipeline compiled, as the drift image carries it."""
    from kfp import compiler

    from pipelines.training import training_pipeline

    path = tmp_path_factory.mktemp("pipeline") / "mlcycle-training.yaml"
    compiler.Compiler().compile(training_pipeline, str(path))
    return path


@pytest.fixture
def params(contract):
    return retrain_params(contract, "fraud", "s3://mlcycle-models", 3)


@pytest.fixture
def make_hook(kfp_api, package, params):
    """``make_hook(**kw)``: a KfpHook on the test's KFP server, polling fast; each stops following at the end."""
    hooks = []

    def make(**kw) -> KfpHook:
        hooks.append(KfpHook(kfp_api.url, str(package), params=params, poll_s=POLL_S, **kw))
        return hooks[-1]

    yield make
    for hook in hooks:
        hook.close()


def _drifted_window(service: DriftService) -> None:
    per_feature = dict.fromkeys(service.features, 0.0)
    service._record({"n": 100, "is_drift": True, "p_values": per_feature, "distances": per_feature, "psi": per_feature})


def _failures(service: DriftService) -> float:
    return service.metrics.registry.get_sample_value("mlcycle_drift_retrain_failures_total")


def _held(service: DriftService, reason: str) -> float:
    return service.metrics.registry.get_sample_value("mlcycle_drift_retrain_held_back_total", {"reason": reason})


def test_a_kfp_run_holds_the_next_retrain_back_until_it_succeeds(kfp_api, detector, make_hook, params):
    hook = make_hook()
    service = DriftService(detector, "fraud", "v1", consecutive=1, hook=hook, retrain_cooldown_s=0.5)
    kfp_api.run_states = ["PENDING", "RUNNING"]
    _drifted_window(service)
    assert hook.busy()  # from the call on, while the submission is in flight
    assert wait_until(lambda: hook.runs[0]["state"] == "RUNNING" and kfp_api.polls("run-1") >= 3, WAIT_S)
    (create,) = kfp_api.created_runs()
    body = create["body"]
    assert body["experiment_id"] == "exp-1" and body["display_name"] == "retrain-drift"
    assert body["runtime_config"]["parameters"] == params
    assert set(params) <= set(body["pipeline_spec"]["pipeline_spec"]["root"]["inputDefinitions"]["parameters"])
    running = service.status()["retrain_guard"]
    assert running["running"]["run_id"] == "run-1" and running["running"]["state"] == "RUNNING"
    assert running["runs"][0]["run_id"] == "run-1" and running["runs"][0]["finished_at"] is None

    # past the cooldown, the run still RUNNING: held back as running, nothing submitted
    assert wait_until(lambda: service.status()["retrain_guard"]["cooldown_left_s"] == 0, WAIT_S)
    _drifted_window(service)
    assert _held(service, "running") == 1 and _held(service, "cooldown") == 0
    assert len(kfp_api.created_runs()) == 1 and hook.busy()
    assert "a retrain (drift) is in progress" in service.status()["retrain"][-1]["result"]

    kfp_api.run_states = ["SUCCEEDED"]
    assert wait_until(lambda: service.status()["retrain_guard"]["running"] is None, WAIT_S)
    assert not hook.busy()
    status = service.status()
    run = status["retrain_guard"]["runs"][0]
    assert run["state"] == "SUCCEEDED" and run["finished_at"] >= run["started_at"]
    started = status["retrain"][0]
    assert started["run"]["run_id"] == "run-1" and started["run"]["state"] == "SUCCEEDED"
    assert _failures(service) == 0

    _drifted_window(service)  # the run is over (on_done): the next trigger submits the next one
    assert hook.busy()
    assert wait_until(lambda: hook.runs[-1]["run_id"] == "run-2", WAIT_S) and len(kfp_api.created_runs()) == 2


@pytest.mark.parametrize("state", ["FAILED", "CANCELED"])
def test_a_failed_or_canceled_kfp_run_is_a_failure_naming_the_run(kfp_api, detector, make_hook, params, state):
    hook = make_hook()
    service = DriftService(detector, "fraud", "v1", consecutive=1, hook=hook, retrain_cooldown_s=0)
    kfp_api.run_states = ["RUNNING", "RUNNING", {"state": state, "error": {"code": 9, "message": "train: OOMKilled"}}]
    _drifted_window(service)
    assert wait_until(lambda: _failures(service) == 1 and service.status()["retrain_guard"]["running"] is None, WAIT_S)
    assert not hook.busy() and hook.runs[0]["state"] == state
    assert service.status()["retrain"][-1]["result"] == f"retrain failed: KFP run run-1 ended {state}: train: OOMKilled"


@pytest.mark.parametrize("status", [400, 503])
def test_a_refused_submission_is_a_failure_and_nothing_runs(kfp_api, detector, make_hook, params, status):
    kfp_api.fail = (status, "invalid pipeline spec")
    hook = make_hook()
    service = DriftService(detector, "fraud", "v1", consecutive=1, hook=hook, retrain_cooldown_s=0)
    _drifted_window(service)
    assert wait_until(lambda: _failures(service) == 1 and service.status()["retrain_guard"]["running"] is None, WAIT_S)
    assert not hook.busy() and hook.runs[0]["state"] == "NOT_SUBMITTED" and hook.runs[0]["run_id"] is None
    failed = service.status()["retrain"][-1]["result"]
    assert failed.startswith("retrain failed: KFP retraining submission failed: ")
    assert failed.endswith(
        f"({status}) {'Bad Request' if status == 400 else 'Service Unavailable'}: invalid pipeline spec"
    )
    assert kfp_api.polls("run-1") == 0
    _drifted_window(service)  # not running: the next trigger submits again
    assert wait_until(lambda: len(kfp_api.created_runs()) == 2, WAIT_S)


def test_a_poll_error_is_retried_and_a_lasting_one_gives_up(kfp_api, detector, make_hook, params):
    hook = make_hook(poll_give_up_s=600)
    service = DriftService(detector, "fraud", "v1", consecutive=1, hook=hook, retrain_cooldown_s=0)
    kfp_api.run_states = [503, 503, "RUNNING", 503, "SUCCEEDED"]
    _drifted_window(service)
    assert wait_until(lambda: not hook.busy(), WAIT_S)
    assert hook.runs[0]["state"] == "SUCCEEDED" and kfp_api.polls("run-1") == 5 and _failures(service) == 0

    gone = make_hook(poll_give_up_s=0.5)
    service = DriftService(detector, "fraud", "v1", consecutive=1, hook=gone, retrain_cooldown_s=0)
    kfp_api.run_states = ["RUNNING", 503]
    _drifted_window(service)
    assert wait_until(lambda: _failures(service) == 1 and not gone.busy(), WAIT_S)
    assert gone.runs[0]["state"] == "UNKNOWN" and kfp_api.polls("run-2") >= 2
    failed = service.status()["retrain"][-1]["result"]
    assert failed.startswith(f"retrain failed: KFP run run-2: state unknown, no answer from {kfp_api.url} for ")
    assert failed.endswith("(poll_give_up_s 0.5): (503) Service Unavailable: the KFP API is not available")
    assert service.status()["retrain_guard"]["running"] is None


def test_a_restarted_detector_follows_the_kfp_run_it_had_submitted(kfp_api, detector, make_hook, params, tmp_path):
    state_dir = tmp_path / "state"
    hook = make_hook()
    service = DriftService(detector, "fraud", "v1", consecutive=1, hook=hook, retrain_cooldown_s=0, state_dir=state_dir)
    _drifted_window(service)

    def saved_run():  # the state file names the run as soon as its id is known, without waiting for a window
        asyncio.run(service.saved())
        text = (state_dir / STATE_FILE).read_text() if (state_dir / STATE_FILE).exists() else "{}"
        return (json.loads(text).get("running_run") or {}).get("run_id")

    assert wait_until(lambda: saved_run() == "run-1", WAIT_S)
    hook.close()  # the detector is gone; the run goes on

    again = make_hook()
    service = DriftService(
        detector, "fraud", "v1", consecutive=1, hook=again, retrain_cooldown_s=0, state_dir=state_dir
    )
    in_flight = service.restart["retrain_in_flight"]
    assert in_flight["run_id"] == "run-1" and in_flight["still_running"] is True
    assert again.busy() and service.status()["retrain_guard"]["running"]["run_id"] == "run-1"
    _drifted_window(service)
    assert _held(service, "running") == 1 and len(kfp_api.created_runs()) == 1
    kfp_api.run_states = ["SUCCEEDED"]
    assert wait_until(lambda: service.status()["retrain_guard"]["running"] is None, WAIT_S)
    assert again.runs[0]["state"] == "SUCCEEDED" and not again.busy()
    assert service.status()["retrain"][0]["run"]["state"] == "SUCCEEDED"


def test_the_kfp_hook_refuses_bad_poll_settings(package):
    with pytest.raises(ConfigError, match=r"poll_s must be > 0 and poll_give_up_s >= poll_s \(got 0, 600\)"):
        KfpHook("http://kfp:8888", str(package), poll_s=0)
    with pytest.raises(ConfigError, match=r"\(got 30, 10\)"):
        KfpHook("http://kfp:8888", str(package), poll_give_up_s=10)
