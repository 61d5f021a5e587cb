"""Retrain hooks: a failure, at the call or later in what the hook started, is counted in
``mlcycle_drift_retrain_failures_total`` and shown in the detector's status."""

import sys
import time

import pytest

from inference.drift_detector.__main__ import _registry_of
from inference.drift_detector.hooks import CommandHook, KfpHook
from inference.drift_detector.server import DriftService

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def detector(splits, contract):
    """A real (scipy) detector of the demo model: the service is built as the server builds it."""
    from mlcycle import drift

    return drift.build(drift.reference_sample(splits[0], contract), contract, "scipy", train=splits[0])


def _service(detector, hook) -> DriftService:
    return DriftService(detector, "fraud", "v1", consecutive=1, hook=hook)


def _drifted_window(service: DriftService) -> None:
    per_feature = dict.fromkeys(service.features, 0.0)
    service._record({"n": 100, "is_drift": True, "p_values": per_feature, "distances": per_feature, "psi": per_feature})


def _failures(service: DriftService) -> float:
    return service.metrics.registry.get_sample_value("mlcycle_drift_retrain_failures_total")


def _wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_a_hook_that_raises_is_counted_and_detection_goes_on(detector):
    def broken(report):
        raise RuntimeError("no pipeline package")

    service = _service(detector, broken)
    _drifted_window(service)
    _drifted_window(service)
    assert _failures(service) == 2.0
    assert service.metrics.registry.get_sample_value("mlcycle_drift_retrain_triggers_total") == 2.0
    assert [r["result"] for r in service.status()["retrain"]] == ["retrain hook failed: no pipeline package"] * 2


def test_a_local_retraining_command_that_exits_non_zero_is_counted(detector):
    hook = CommandHook(f"{sys.executable} -c 'raise SystemExit(3)'")
    service = _service(detector, hook)
    _drifted_window(service)
    assert _wait_for(lambda: _failures(service) == 1.0), service.status()["retrain"]
    started, failed = (r["result"] for r in service.status()["retrain"])
    assert started.startswith("started local retraining (pid ")
    assert failed.startswith("retrain failed: local retraining (pid ") and failed.endswith("exited with status 3")


def test_a_local_retraining_command_that_succeeds_is_not_counted(detector):
    hook = CommandHook(f"{sys.executable} -c pass")
    service = _service(detector, hook)
    _drifted_window(service)
    assert hook._running.wait(timeout=30) == 0
    time.sleep(0.2)  # the waiter thread has seen the exit
    assert _failures(service) == 0.0 and len(service.status()["retrain"]) == 1


def test_a_kfp_submission_that_fails_in_the_background_is_counted(tmp_path, monkeypatch, detector):
    from mlcycle.process import free_port

    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/kfp/context.json of this machine's user
    host = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    package = tmp_path / "pipeline.yaml"
    package.write_text("compiled pipeline")
    hook = KfpHook(host, str(package))
    service = _service(detector, hook)
    _drifted_window(service)
    assert _wait_for(lambda: _failures(service) == 1.0 and not hook.busy())
    # the background failure may be recorded before or after the hook's own answer: both are there, once each
    results = sorted(r["result"] for r in service.status()["retrain"])
    assert len(results) == 2
    assert results[0].startswith("retrain failed: KFP retraining submission failed: ")
    assert "Connection refused" in results[0]
    assert results[1].startswith(f"submitting KFP run of {package}")


def test_the_kfp_hook_refuses_a_missing_package_and_sends_real_parameters(contract):
    from inference.drift_detector.hooks import retrain_params
    from mlcycle.errors import ConfigError

    with pytest.raises(ConfigError, match="no compiled pipeline at /nonexistent.yaml"):
        KfpHook("http://kfp:8888", "/nonexistent.yaml")
    params = retrain_params(contract, "fraud", "s3://mlcycle-models", 3, {"namespace": "prod"})
    assert params == {
        "source": "traffic://s3://mlcycle-models#fraud?days=3",
        "label": "is_fraud",
        "task": "classification",
        "timestamp_column": contract.timestamp or "",
        "registry_uri": "s3://mlcycle-models",
        "model_name": "fraud",
        "deploy": True,
        "auto_promote": False,
        "trigger": "drift",
        "namespace": "prod",
    }
    import inspect

    from pipelines.training import training_pipeline

    assert set(params) - {"namespace"} <= set(inspect.signature(training_pipeline.pipeline_func).parameters)
    with pytest.raises(ConfigError, match="s3:// registry"):
        retrain_params(contract, "fraud", "/local/registry")


def test_the_kfp_hook_registry_is_the_storage_uri_registry():
    assert _registry_of("s3://bucket/team#fraud@production") == "s3://bucket/team"  # the prefix kept
    assert _registry_of("s3://bucket/fraud/v1/") == "s3://bucket"  # KServe's storageUri of one version
    assert _registry_of("/r#fraud") == "/r"
