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
from pipelines.direct import STEPS, run_direct  # noqa: E402


def direct(rows: int, trials: int, workdir: Path) -> dict[str, float]:
    """The same steps, in-process, in pipeline order (the pipeline's twin, pipelines.direct)."""
    from mlcycle.registry import open_registry

    run = run_direct(
        open_registry(workdir / "registry"),
        workdir,
        demo_rows=rows,
        n_trials=trials,
        model_name="bench",
        auto_promote=True,
        segment_column="channel",
    )
    return run.seconds


def kfp_local(rows: int, trials: int, workdir: Path) -> tuple[float, dict[str, float]]:
    """Whole pipeline on kfp.local; per-step time from each step's completion timestamp (steps run in sequence)."""
    from pipelines.local import run_local

    start = time.time()
    run = run_local(
        str(workdir / "registry"),
        workdir / "runs",
        demo_rows=rows,
        n_trials=trials,
        model_name="bench",
        auto_promote=True,
    )
    done = {
        s: (run.run_dir / s / "executor_output.json").stat().st_mtime
        for s in STEPS
        if (run.run_dir / s / "executor_output.json").exists()
    }
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
            "rows": rows,
            "n_trials": args.trials,
            "kfp_local_seconds": total,
            "direct_seconds": direct_total,
            "ratio_kfp_local_over_direct": round(total / direct_total, 3),
            "per_step": {
                s: {
                    "direct": d.get(s),
                    "kfp_local": k.get(s),
                    "overhead_seconds": round(k[s] - d[s], 3) if s in k and s in d else None,
                }
                for s in STEPS
            },
        }
        entry["mean_overhead_per_step_seconds"] = round((total - direct_total) / len(STEPS), 3)
        print(json.dumps(entry, indent=2), flush=True)
        results.append(entry)
    write(
        "pipeline",
        {"description": "local training pipeline wall time; kfp.local vs direct step calls", "runs": results},
    )


if __name__ == "__main__":
    main()
