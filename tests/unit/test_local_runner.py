"""pipelines.local's guard against kfp.local's Docker handler reporting a container removed before it was waited on
as exit code 0: a step that left no executor output is a failed step, named with its own error from the log."""

import json

import pytest

from mlcycle.errors import ConfigError
from pipelines.local import StepFailed, _step_failed, _without_outputs, run_local

pytestmark = pytest.mark.unit


def run_dir(tmp_path, steps: dict[str, bool]):
    root = tmp_path / "mlcycle-training-x"
    for name, finished in steps.items():
        (root / name).mkdir(parents=True)
        if finished:
            (root / name / "executor_output.json").write_text(json.dumps({}))
    return root


def test_steps_without_executor_output_are_found(tmp_path):
    root = run_dir(tmp_path, {"ingest": True, "validate-data": False, "split": True})
    assert _without_outputs(root) == ["validate-data"]
    assert _without_outputs(run_dir(tmp_path / "ok", {"ingest": True})) == []
    assert _without_outputs(None) == []


def test_a_downstream_lookup_error_is_reported_as_the_dead_steps_own_error(tmp_path):
    log = tmp_path / "pipeline.log"
    log.write_text("Executing task 'validate-data'\nmlcycle.errors.DataError: label column 'y' not found\n")
    error = ValueError("Tried to get output 'contract' from task 'validate-data', but task 'validate-data' not found.")
    failed = _step_failed(error, log, ["validate-data"])
    assert isinstance(failed, StepFailed)
    assert failed.step == "validate-data" and failed.error == "DataError: label column 'y' not found"


def test_unknown_runner_and_file_registry_with_docker_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown runner 'podman'"):
        run_local(str(tmp_path / "registry"), tmp_path / "runs", runner="podman")
    with pytest.raises(ConfigError, match="must be s3://"):
        run_local(str(tmp_path / "registry"), tmp_path / "runs", runner="docker")
