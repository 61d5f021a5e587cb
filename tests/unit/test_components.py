"""The KFP shims, called through ``.python_func`` with real artifact objects: the same code KFP runs."""

import json

import pandas as pd
import pytest
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Markdown, Metrics, Model

from components.build_detector.component import build_detector
from components.evaluate.component import evaluate
from components.gate.component import gate
from components.ingest.component import ingest
from components.register.component import register
from components.split.component import split
from components.train.component import train
from components.tune.component import tune
from components.validate_data.component import validate_data
from mlcycle.contract import DataContract
from mlcycle.registry import open_registry

pytestmark = pytest.mark.unit


def test_shims_chain_end_to_end(tmp_path):
    a = lambda cls, name: cls(name=name, uri=str(tmp_path / name), metadata={})  # noqa: E731
    reg = str(tmp_path / "registry")
    # Arguments that several steps take, named once (as pipelines/training.py does)
    registry = {"registry_uri": reg, "model_name": "fraud"}
    scoring = {"seed": 5, "primary_metric": ""}
    data = a(Dataset, "dataset")
    fp = ingest.python_func(source="demo", demo_rows=3000, seed=5, dataset=data)
    assert len(fp) == 64 and data.metadata["rows"] == 3000

    contract, report, page = a(Artifact, "contract"), a(Markdown, "report"), a(HTML, "exploration")
    columns = {"label": "is_fraud", "task": "classification", "timestamp_column": "timestamp"}
    validate_data.python_func(
        dataset=data, **columns, **registry, max_categories=1000, contract=contract, report=report, exploration=page
    )
    assert json.loads(open(contract.path).read())["label"] == "is_fraud"
    assert "Columns and contract verdict" in open(page.path).read()

    tr, va, te = a(Dataset, "train"), a(Dataset, "val"), a(Dataset, "test")
    shares = {"val_fraction": 0.2, "test_fraction": 0.2}
    split.python_func(
        dataset=data, contract=contract, **shares, seed=5, timestamp_column="", train=tr, validation=va, test=te
    )

    model, board = a(Model, "model"), a(Metrics, "board")
    fit_on = {"train": tr, "validation": va, "contract": contract}
    family = train.python_func(**fit_on, families=["baseline", "logreg"], **scoring, model=model, leaderboard=board)
    assert family == "logreg" and board.metadata["baseline_roc_auc"] == 0.5

    tuned, trials, trial_log = a(Model, "tuned"), a(Metrics, "trials"), a(Artifact, "trial_log")
    search = {"trained_model": model, "family": family, "n_trials": 2, "cv_folds": 2, "threshold_policy": "recall:0.5"}
    tune.python_func(**fit_on, **search, **scoring, model=tuned, trials=trials, trial_log=trial_log)
    assert len(open(trial_log.path).read().splitlines()) == 2
    bundle = json.loads(open(f"{tuned.path}/bundle.json").read())
    assert (
        bundle["training"]["threshold"]["policy"] == "recall:0.5" and bundle["training"]["threshold"]["recall"] >= 0.5
    )
    assert (
        bundle["threshold"]
        == bundle["training"]["threshold"]["threshold"]
        == pytest.approx(trials.metadata["decision_threshold"], abs=1e-6)
    )

    metrics, cm, html, ev = a(Metrics, "metrics"), a(ClassificationMetrics, "cm"), a(HTML, "html"), a(Artifact, "ev")
    evaluate.python_func(
        model=tuned,
        test=te,
        contract=contract,
        segment_column="channel",
        **scoring,
        metrics=metrics,
        classification_metrics=cm,
        report=html,
        evaluation=ev,
    )
    assert metrics.metadata["roc_auc"] > 0.75
    assert len(cm.metadata["confusionMatrix"]["rows"]) == 2 and len(cm.metadata["confidenceMetrics"]) > 10

    decision, comparison = a(Artifact, "decision"), a(HTML, "comparison")
    scored = {"model": tuned, "test": te, "evaluation": ev}
    bar = {"thresholds": {"roc_auc": 0.7}, "min_improvement": 0.0, "confidence": 0.0}
    passed = gate.python_func(
        **scored,
        label="is_fraud",
        **registry,
        primary_metric="roc_auc",
        **bar,
        decision=decision,
        comparison=comparison,
    )
    assert passed is True and decision.metadata["passed"] is True
    assert "Gate: PASSED" in open(comparison.path).read()

    detector = a(Artifact, "detector")
    build_detector.python_func(train=tr, contract=contract, backend="scipy", p_val=0.05, seed=5, detector=detector)
    assert detector.metadata["reference_rows"] == 1800

    out = a(Model, "registered")
    lineage = {"dataset_fingerprint": fp, "run_id": "r1", "trigger": "drift"}
    version = register.python_func(
        **scored,
        contract=contract,
        train=tr,
        decision=decision,
        **registry,
        report=html,
        drift_detector=detector,
        **lineage,
        auto_promote=True,
        trigger_evidence='{"drifted_windows": 3, "fingerprint": "abc"}',
        registered=out,
    )
    registry = open_registry(reg)
    assert registry.resolve("fraud", "production") == version == out.metadata["version"]
    lineage = registry.metadata("fraud", version).lineage
    assert lineage.trigger == "drift" and lineage.trigger_evidence == {"drifted_windows": 3, "fingerprint": "abc"}
    files = registry.describe("fraud", version)["files"]
    assert "report.html" in files and "drift/config.json" in files and "drift/reference.npy" in files
    assert registry.describe("fraud", version)["fast_path"]["checked_on"] == "test"
    # The reference sample is drawn once, with the pipeline's seed: the registered one is the detector's.
    from mlcycle.drift import reference_sample

    local = registry.fetch("fraud", version, tmp_path / "fetched")
    stored = pd.read_parquet(local / "reference.parquet")
    pd.testing.assert_frame_equal(
        stored,
        reference_sample(
            pd.read_parquet(tr.path), DataContract.model_validate_json(open(contract.path).read()), seed=5
        ).reset_index(drop=True),
        check_dtype=False,
    )


def test_step_executor_loads_no_heavy_library(tmp_path):
    """A step's process loads its component's module (kfp.dsl only, with _KFP_RUNTIME=true) before it runs; the
    libraries a step uses are imported in the function body. Guards the per-step start-up: no kfp.client/kubernetes,
    minio, pandas, scikit-learn, alibi-detect... while the executor loads the module."""
    import os
    import subprocess
    import sys

    from pipelines import training

    comps = [v for v in vars(training).values() if hasattr(v, "component_spec") and hasattr(v, "python_func")]
    assert len(comps) == 11
    for c in comps:
        (tmp_path / f"{c.python_func.__name__}.py").write_text(c.component_spec.implementation.container.command[-1])
    probe = (
        "import sys\nfrom kfp.dsl import utils\n"
        "heavy = ('kfp.client', 'kubernetes', 'kfp.kubernetes', 'minio', 'pandas', 'numpy', 'sklearn', 'xgboost', "
        "'skops', 'matplotlib', 'alibi_detect', 'scipy', 'pipelines', 'mlcycle')\n"
        f"for name in {sorted(c.python_func.__name__ for c in comps)!r}:\n"
        f"    utils.load_module(module_name=name, module_directory={str(tmp_path)!r})\n"
        "    loaded = sorted(m for m in heavy if m in sys.modules)\n"
        "    assert not loaded, (name, loaded)\n"
    )
    env = {**os.environ, "_KFP_RUNTIME": "true"}
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
