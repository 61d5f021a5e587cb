"""The training pipeline's twin: the same steps, in the same order, with the same parameters and defaults,
called in this process instead of one container (or kfp.local subprocess) per step.

For benchmarks (per-step time without kfp.local's overhead), the local canary demo and test fixtures; the
product runs the pipeline itself (``pipelines.local.run_local`` or a KFP backend). Parameters are the
pipeline's (``training_pipeline``'s signature is read, so a default lives only there). With ``deploy`` the
shadow step runs as in the pipeline; deploy_canary itself needs a cluster and is not run here.
"""

import inspect
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from mlcycle.contract import DataContract
from mlcycle.registry import Registry
from mlcycle.shadow import ShadowDecision, ShadowPolicy

STEPS = (
    "ingest",
    "validate-data",
    "split",
    "train",
    "tune",
    "evaluate",
    "gate",
    "build-detector",
    "register",
    "shadow",  # with deploy only, as in the pipeline
)


def pipeline_defaults() -> dict:
    from pipelines.training import training_pipeline

    return {name: p.default for name, p in inspect.signature(training_pipeline.pipeline_func).parameters.items()}


@dataclass
class DirectRun:
    workdir: Path
    passed: bool
    reasons: list[str]
    metrics: dict[str, float]
    version: str | None = None  # None when the gate failed
    unchanged: bool = False  # identical to ``version``, already registered: nothing new written
    seconds: dict[str, float] = field(default_factory=dict)  # per step
    shadow: ShadowDecision | None = None  # with deploy: whether the candidate may go on to the canary

    @property
    def model_dir(self) -> Path:
        return self.workdir / "tuned"


def run_direct(
    registry: Registry,
    workdir: Path,
    run_id: str = "direct",
    log: Callable[[str], None] | None = None,
    step_done: Callable[[str, float], None] | None = None,
    **params,
) -> DirectRun:
    """Run every step of ``training_pipeline(**params)`` (except deploy_canary) against ``registry``, artifacts in ``workdir``."""
    from components.build_detector.logic import build_detector
    from components.evaluate.logic import run as evaluate
    from components.gate.logic import gate, resolve_policy
    from components.ingest.logic import ingest
    from components.register.logic import register
    from components.shadow.logic import shadow
    from components.split.logic import run as split
    from components.train.logic import train
    from components.tune.logic import tune
    from components.validate_data.logic import run as validate
    from mlcycle.triggers import parse_evidence

    p = pipeline_defaults()
    unknown = set(params) - set(p)
    if unknown:
        raise TypeError(f"not a training_pipeline parameter: {', '.join(sorted(unknown))}")
    p.update(params)
    raw = p["trigger_evidence"]  # checked before any step runs
    evidence = dict(raw) if isinstance(raw, dict) else parse_evidence(raw)
    quiet = log or (lambda *_: None)
    w = Path(workdir)
    w.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    clock = [time.perf_counter()]

    def lap(step: str) -> None:
        now = time.perf_counter()
        seconds[step] = round(now - clock[0], 3)
        clock[0] = now
        if step_done:
            step_done(step, seconds[step])

    fingerprint = ingest(p["source"], w / "data.parquet", demo_rows=p["demo_rows"], seed=p["seed"]).fingerprint
    lap("ingest")
    contract: DataContract = validate(
        w / "data.parquet",
        w / "contract.json",
        w / "data-report.md",
        p["label"],
        p["task"],
        p["timestamp_column"],
        registry,
        p["model_name"],
        p["max_categories"],
        w / "data-report.html",
    ).contract
    lap("validate-data")
    paths = (w / "train.parquet", w / "validation.parquet", w / "test.parquet")
    split(w / "data.parquet", contract, paths, p["val_fraction"], p["test_fraction"], p["seed"], p["timestamp_column"])
    lap("split")
    train_df, val_df, test_df = (pd.read_parquet(path) for path in paths)
    family = train(
        train_df, val_df, contract, w / "model", list(p["families"]), p["seed"], p["primary_metric"], log=quiet
    ).best_family
    lap("train")
    tune(
        train_df,
        val_df,
        contract,
        family,
        w / "model",
        w / "tuned",
        p["n_trials"],
        p["cv_folds"],
        p["seed"],
        primary_metric=p["primary_metric"],
        threshold_policy=p["threshold_policy"],
        log=quiet,
    )
    lap("tune")
    ev = evaluate(
        w / "tuned", paths[2], contract, w / "report.html", p["segment_column"], p["seed"], p["primary_metric"]
    )
    (w / "evaluation.json").write_text(json.dumps(asdict(ev), indent=2))
    evaluation = json.loads((w / "evaluation.json").read_text())  # what the register step reads
    lap("evaluate")
    policy = resolve_policy(
        ev.task, p["primary_metric"], dict(p["thresholds"]), p["min_improvement"], p["min_improvement_confidence"]
    )
    decision = gate(w / "tuned", test_df, p["label"], ev.metrics, policy, registry, p["model_name"])
    lap("gate")
    result = DirectRun(w, decision.passed, list(decision.reasons), dict(ev.metrics), seconds=seconds)
    if not decision.passed:
        return result
    build_detector(train_df, contract, w / "drift", backend=p["drift_backend"], p_val=p["drift_p_val"], seed=p["seed"])
    lap("build-detector")
    registered = register(
        w / "tuned",
        contract,
        train_df,
        evaluation,
        decision.as_dict(),
        registry,
        p["model_name"],
        fingerprint,
        run_id,
        w / "report.html",
        p["auto_promote"],
        w / "drift",
        trigger=p["trigger"],
        trigger_evidence=evidence,
        test=test_df,
    )
    lap("register")
    result.version, result.unchanged = registered.version, registered.unchanged
    if p["deploy"]:
        policy = ShadowPolicy(
            min_requests=p["shadow_min_requests"],
            min_agreement=p["shadow_min_agreement"],
            max_accuracy_drop=p["shadow_max_accuracy_drop"],
        )
        result.shadow = shadow(
            registry, p["model_name"], registered.version, policy, p["shadow_hours"], p["trigger"], log=quiet
        )
        lap("shadow")
    return result
