"""Golden compile test: the compiled pipeline spec changes only on purpose.

After an intended change: ``make compile && cp build/pipelines/mlcycle-training.yaml tests/golden/``.
"""

import re
from pathlib import Path

import pytest
import yaml

from pipelines.compile import compile_all

pytestmark = pytest.mark.golden
GOLDEN = Path(__file__).parent / "mlcycle-training.yaml"


def _normalise(text: str) -> str:
    # The leading comment block prints dict defaults in hash order (varies per process); the spec below is stable.
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    return re.sub(r"sdkVersion: kfp-[\d.]+", "sdkVersion: kfp-X", body)


def test_compiled_pipeline_matches_golden(tmp_path, monkeypatch):
    monkeypatch.delenv("MLCYCLE_PIPELINE_IMAGE", raising=False)
    (path,) = compile_all(tmp_path)
    assert _normalise(path.read_text()) == _normalise(GOLDEN.read_text()), (
        "compiled spec changed; see this file's docstring"
    )


def test_compiled_pipeline_loads_back_and_is_well_formed(tmp_path):
    from kfp import components

    (path,) = compile_all(tmp_path)
    loaded = components.load_component_from_file(str(path))
    assert loaded.name == "mlcycle-training"
    spec = next(yaml.safe_load_all(path.read_text()))
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {"ghcr.io/mlcycle/mlcycle-pipeline:0.1.0", "ghcr.io/mlcycle/mlcycle-drift:0.1.0"}
    for executor in spec["deploymentSpec"]["executors"].values():
        assert "pip install" not in " ".join(executor["container"].get("command", []))
    root = spec["root"]["dag"]["tasks"]  # registration (and the detector it ships) only when the gate passed
    gate_passed = "inputs.parameter_values['pipelinechannel--gate-Output'] == true"
    assert root["condition-1"]["triggerPolicy"]["condition"] == gate_passed
    assert "gate" in root["condition-1"]["dependentTasks"]
    assert {"register", "build-detector"} <= set(spec["components"]["comp-condition-1"]["dag"]["tasks"])
    assert not {"register", "build-detector"} & set(root)
    assert spec["root"]["inputDefinitions"]["parameters"]["n_trials"]["defaultValue"] == 6


@pytest.mark.parametrize("role", ["pipeline", "drift"])
def test_unpinned_image_is_refused(monkeypatch, role):
    from components.image import image
    from mlcycle.errors import MlcycleError

    variable = f"MLCYCLE_{role.upper()}_IMAGE"
    for bad in ("example.com/mlcycle:latest", "example.com/mlcycle", "registry:5000/mlcycle"):
        monkeypatch.setenv(variable, bad)
        with pytest.raises(MlcycleError, match=f"{role} image '{bad}' must be pinned"):
            image(role)
    for good in ("example.com/mlcycle@sha256:" + "0" * 64, "registry:5000/mlcycle:1.2"):
        monkeypatch.setenv(variable, good)
        assert image(role) == good


def test_registry_steps_get_s3_credentials_from_a_secret_not_parameters(tmp_path):
    (path,) = compile_all(tmp_path)
    docs = list(yaml.safe_load_all(path.read_text()))
    platform = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for executor in ("exec-ingest", "exec-validate-data", "exec-gate", "exec-register"):
        secret = platform[executor]["secretAsEnv"][0]
        assert secret["secretName"] == "mlcycle-s3-pipeline"
        assert {m["envVar"] for m in secret["keyToEnv"]} >= {
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ENDPOINT_URL",
        }
    params = docs[0]["root"]["inputDefinitions"]["parameters"]
    assert not any("secret" in name or "key" in name for name in params)


def test_the_shadow_runs_between_register_and_the_canary_which_needs_it_passed(tmp_path):
    (path,) = compile_all(tmp_path)
    spec = next(yaml.safe_load_all(path.read_text()))
    comps = spec["components"]

    def holder(task: str) -> str:  # the (only) DAG a task sits in
        (name,) = [n for n, c in comps.items() if task in c.get("dag", {}).get("tasks", {})]
        return name

    def parent(dag: str) -> tuple[str, dict]:  # the DAG holding a condition, and the condition task
        (found,) = [
            (n, c["dag"]["tasks"][t])
            for n, c in comps.items()
            for t in c.get("dag", {}).get("tasks", {})
            if c["dag"]["tasks"][t].get("componentRef", {}).get("name") == dag
        ]
        return found

    shadow_dag, canary_dag = holder("shadow"), holder("deploy-canary")
    assert shadow_dag != canary_dag and holder("register") != shadow_dag
    # deploy-canary runs only when the shadow step returned true, in a condition inside the shadow's DAG
    outer, condition = parent(canary_dag)
    assert outer == shadow_dag
    assert condition["dependentTasks"] == ["shadow"]
    assert (
        condition["triggerPolicy"]["condition"] == "inputs.parameter_values['pipelinechannel--shadow-Output'] == true"
    )
    # the shadow runs under deploy, after register, on the version register returned
    outer, condition = parent(shadow_dag)
    assert outer == holder("register") and condition["dependentTasks"] == ["register"]
    assert condition["triggerPolicy"]["condition"] == "inputs.parameter_values['pipelinechannel--deploy'] == true"
    version = comps[shadow_dag]["dag"]["tasks"]["shadow"]["inputs"]["parameters"]["version"]
    assert version == {"componentInputParameter": "pipelinechannel--register-Output"}
    params = spec["root"]["inputDefinitions"]["parameters"]
    from mlcycle.shadow import WINDOW_HOURS, ShadowPolicy

    assert params["shadow_hours"]["defaultValue"] == WINDOW_HOURS
    assert params["shadow_min_requests"]["defaultValue"] == ShadowPolicy.min_requests
