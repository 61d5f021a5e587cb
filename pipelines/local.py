"""Run the training pipeline locally with kfp.local (SubprocessRunner, no cluster, no containers).

The steps run as subprocesses of this Python environment, exactly the component code a cluster runs.
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path

from mlcycle.errors import MlcycleError
from pipelines.training import PIPELINE_NAME, training_pipeline


@dataclass
class LocalRun:
    run_dir: Path
    decision: dict
    evaluation: dict
    report: Path
    version: str | None
    seconds: float


def run_local(registry_uri: str, pipeline_root: Path, **params) -> LocalRun:
    from kfp import local

    pipeline_root = Path(pipeline_root).resolve()
    pipeline_root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root), raise_on_error=True)
    before = set(pipeline_root.glob(f"{PIPELINE_NAME}-*"))
    start = time.perf_counter()
    training_pipeline(registry_uri=registry_uri, **params)
    seconds = time.perf_counter() - start
    new = sorted(set(pipeline_root.glob(f"{PIPELINE_NAME}-*")) - before)
    if not new:
        raise MlcycleError(f"kfp.local produced no run directory under {pipeline_root}")
    run_dir = new[-1]
    registered = run_dir / "register" / "executor_output.json"
    return LocalRun(
        run_dir=run_dir,
        decision=json.loads((run_dir / "gate" / "decision").read_text()),
        evaluation=json.loads((run_dir / "evaluate" / "evaluation").read_text()),
        report=run_dir / "evaluate" / "report",
        version=json.loads(registered.read_text())["parameterValues"]["Output"] if registered.exists() else None,
        seconds=seconds,
    )
