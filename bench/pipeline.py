"""Benchmark: end-to-end local training pipeline wall time at 10k / 100k / 1M rows, and the
per-step overhead of kfp.local (a subprocess per step, artifacts through files) versus calling the
same step functions directly in one process. Writes bench/results/pipeline.json.

    python bench/pipeline.py [--sizes 10000 100000 1000000] [--trials 2]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import write  # noqa: E402

STEPS = ["ingest", "validate-data", "split", "train", "tune", "evaluate", "gate", "build-detector", "register"]


def direct(rows: int, trials: int, workdir: Path) -> dict[str, float]:
    """The same logic functions, in-process, in pipeline order."""
    import pandas as pd

    from components.build_detector.logic import build_detector
    from components.evaluate.logic import run as evaluate
    from components.gate.logic import GatePolicy, gate
    from components.ingest.logic import ingest
    from components.register.logic import register
    from components.split.logic import run as split
    from components.train.logic import train
    from components.tune.logic import tune
    from components.validate_data.logic import run as validate
    from mlcycle.registry import open_registry
    from pipelines.training import DEFAULT_FAMILIES, DEMO_THRESHOLDS

    registry = open_registry(workdir / "registry")
    t, times = time.perf_counter(), {}

    def lap(name):
        nonlocal t
        now = time.perf_counter()
        times[name] = round(now - t, 3)
        t = now

    fp = ingest("demo", workdir / "data.parquet", demo_rows=rows, seed=42).fingerprint
    lap("ingest")
    contract = validate(workdir / "data.parquet", workdir / "contract.json", workdir / "report.md", "is_fraud", "classification", "", registry, "bench").contract
    lap("validate-data")
    paths = tuple(workdir / f"{n}.parquet" for n in ("train", "val", "test"))
    split(workdir / "data.parquet", contract, paths, 0.15, 0.15, 42, "")
    lap("split")
    train_df, val_df, test_df = (pd.read_parquet(p) for p in paths)
    family = train(train_df, val_df, contract, workdir / "model", DEFAULT_FAMILIES, 42, log=lambda *_: None).best_family
    lap("train")
    tune(train_df, val_df, contract, family, workdir / "model", workdir / "tuned", trials, 3, 42, log=lambda *_: None)
    lap("tune")
    ev = evaluate(workdir / "tuned", paths[2], contract, workdir / "report.html", "channel")
    lap("evaluate")
    decision = gate(workdir / "tuned", test_df, "is_fraud", ev.metrics, GatePolicy("roc_auc", DEMO_THRESHOLDS), registry, "bench")
    lap("gate")
    build_detector(train_df, contract, workdir / "drift", backend="alibi")
    lap("build-detector")
    if decision.passed:
        register(workdir / "tuned", contract, train_df, {"metrics": ev.metrics}, decision.as_dict(), registry, "bench", fp, "bench", workdir / "report.html", True,
                 workdir / "drift")
    lap("register")
    return times


def kfp_local(rows: int, trials: int, workdir: Path) -> tuple[float, dict[str, float]]:
    """Whole pipeline on kfp.local; per-step time from each step's completion timestamp (steps run in sequence)."""
    from pipelines.local import run_local

    start = time.time()
    run = run_local(str(workdir / "registry"), workdir / "runs", demo_rows=rows, n_trials=trials, model_name="bench", auto_promote=True)
    done = {s: (run.run_dir / s / "executor_output.json").stat().st_mtime for s in STEPS if (run.run_dir / s / "executor_output.json").exists()}
    times, previous = {}, start
    for step in STEPS:
        if step in done:
            times[step] = round(done[step] - previous, 3)
            previous = done[step]
    return round(run.seconds, 3), times


def warm_imports() -> None:
    """Import the heavy libraries once before timing, so the first direct run is not charged for them
    (each kfp.local step is a fresh process and pays its imports every time: that is part of its overhead)."""
    import alibi_detect.cd  # noqa: F401
    import sklearn.ensemble  # noqa: F401
    import skops.io  # noqa: F401
    import xgboost  # noqa: F401


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--trials", type=int, default=2)
    args = parser.parse_args()
    warm_imports()
    results = []
    for rows in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            d = direct(rows, args.trials, Path(tmp) / "direct")
        with tempfile.TemporaryDirectory() as tmp:
            total, k = kfp_local(rows, args.trials, Path(tmp))
        direct_total = round(sum(d.values()), 3)
        entry = {
            "rows": rows, "n_trials": args.trials,
            "kfp_local_seconds": total, "direct_seconds": direct_total, "ratio_kfp_local_over_direct": round(total / direct_total, 3),
            "per_step": {s: {"direct": d.get(s), "kfp_local": k.get(s), "overhead_seconds": round(k[s] - d[s], 3) if s in k and s in d else None} for s in STEPS},
        }
        entry["mean_overhead_per_step_seconds"] = round((total - direct_total) / len(STEPS), 3)
        print(json.dumps(entry, indent=2), flush=True)
        results.append(entry)
    write("pipeline", {"description": "local training pipeline wall time; kfp.local vs direct step calls", "runs": results})


if __name__ == "__main__":
    main()
