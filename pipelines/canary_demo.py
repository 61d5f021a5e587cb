"""``make canary-demo``: the canary loop locally, no cluster.

Production and a freshly trained candidate are served by real KServe predictor processes; a load
generator splits traffic by the current weight; a real Prometheus scrapes it; the controller steps
the weight and promotes the good candidate. Then a deliberately broken candidate (an injected 30 %
error rate) is rolled back automatically. Every decision is printed with its evidence.
"""

import argparse
import sys
import tempfile
from pathlib import Path

from inference.devserve import start_predictor
from inference.rollout.local import Backend, LocalAdapter, PrometheusServer, TrafficSplitter, local_policy
from mlcycle import defaults
from mlcycle.data import DEMO_ROW
from mlcycle.process import free_port
from mlcycle.registry import open_registry
from mlcycle.rollout import controller
from mlcycle.rollout.metrics import PrometheusProvider
from pipelines.direct import run_direct

SAMPLE = {"instances": [DEMO_ROW]}
# the broken canary fails on errors; a p99 bound of 1 s only catches a stalled canary on a loaded 2-core machine
DEMO_POLICY = local_policy(ready_timeout_s=60, interval_s=3, min_requests=20, max_metric_errors=3, max_p99_ms=1000.0)


def train_candidate(registry, model: str, seed: int) -> str:
    """A new candidate version from a fresh batch of demo data, registered without promotion."""
    with tempfile.TemporaryDirectory() as tmp:
        run = run_direct(
            registry,
            Path(tmp),
            run_id="canary-demo",
            seed=seed,
            model_name=model,
            families=["logreg", "xgboost"],
            n_trials=0,
            thresholds={"roc_auc": 0.75},
            min_improvement=-0.05,
            drift_backend="scipy",
            auto_promote=False,
        )
    if not run.passed:
        raise SystemExit("candidate failed the gate: " + "; ".join(run.reasons))
    return run.version


def rollout(
    registry,
    registry_dir: str,
    model: str,
    stable_version: str,
    candidate: str,
    logs: Path,
    prometheus_dir: Path,
    *faults: str,
) -> str:
    stable_proc = start_predictor(
        f"{registry_dir}#{model}@{stable_version}", model, free_port(), free_port(), logs / "stable.log"
    )
    canary_proc = start_predictor(
        f"{registry_dir}#{model}@{candidate}", model, free_port(), free_port(), logs / "canary.log", *faults
    )
    splitter = TrafficSplitter(Backend(stable_version, stable_proc.url, model), SAMPLE, rate=40).start()
    prometheus = PrometheusServer(prometheus_dir, [f"127.0.0.1:{splitter.port}"]).start()
    try:
        adapter = LocalAdapter(splitter, Backend(candidate, canary_proc.url, model), registry, model)
        provider = PrometheusProvider(prometheus.url, window="6s")
        final = controller.run(
            adapter,
            provider,
            DEMO_POLICY,
            stable_version,
            on_action=lambda a: print("  " + controller.describe(a), flush=True),
        )
        print(f"  traffic sent: {splitter.sent}")
        return final.kind
    finally:
        splitter.stop()
        prometheus.stop()
        canary_proc.stop()
        stable_proc.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--registry", default=defaults.LOCAL_REGISTRY)
    p.add_argument("--model", default=defaults.MODEL_NAME)
    args = p.parse_args()
    registry_dir = str(Path(args.registry).resolve())
    registry = open_registry(registry_dir)
    stable = registry.resolve(args.model, "production")
    logs = Path(".mlcycle/logs")
    print(f"production: {stable}\ntraining a candidate ...", flush=True)
    good = train_candidate(registry, args.model, seed=7)
    print(f"\n[1] canary {good} (healthy) vs stable {stable}", flush=True)
    first = rollout(registry, registry_dir, args.model, stable, good, logs, Path(tempfile.mkdtemp(prefix="prom-")))
    stable = registry.resolve(args.model, "production")
    bad = train_candidate(registry, args.model, seed=8)
    print(f"\n[2] canary {bad} (deliberately broken: 30 % injected errors) vs stable {stable}", flush=True)
    second = rollout(
        registry,
        registry_dir,
        args.model,
        stable,
        bad,
        logs,
        Path(tempfile.mkdtemp(prefix="prom-")),
        "--fault_error_rate",
        "0.3",
    )
    print(
        f"\nresult: healthy canary -> {first}; broken canary -> {second}; production now {registry.resolve(args.model, 'production')}"
    )
    return 0 if (first, second) == ("promote", "rollback") else 1


if __name__ == "__main__":
    sys.exit(main())
