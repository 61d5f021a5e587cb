"""The ``mlcycle`` command line: compile, run the demo pipeline locally, manage the model registry."""

import argparse
import json
import os
import sys
from pathlib import Path

from mlcycle.errors import MlcycleError

DEFAULT_LOCAL_REGISTRY = ".mlcycle/registry"
HEADLINE = ("roc_auc", "pr_auc", "f1", "precision", "recall", "rmse", "mae", "r2")


def _registry_uri(args) -> str:
    return args.registry or os.environ.get("MLCYCLE_REGISTRY") or str(Path(DEFAULT_LOCAL_REGISTRY).resolve())


def cmd_compile(args) -> int:
    from pipelines.compile import compile_all

    for path in compile_all(args.out):
        print(path)
    return 0


def cmd_demo(args) -> int:
    from pipelines.local import run_local

    registry = _registry_uri(args)
    print(f"mlcycle demo: training pipeline on kfp.local, {args.rows} demo rows, registry {registry}", flush=True)
    run = run_local(registry, Path(args.runs), demo_rows=args.rows, seed=args.seed, n_trials=args.trials, model_name=args.model,
                    auto_promote=True, **({"source": args.source} if args.source else {}))
    metrics = run.evaluation["metrics"]
    d = run.decision
    lines = [
        "",
        "=" * 72,
        f"pipeline finished in {run.seconds:.1f}s — model family: {run.evaluation['family']}",
        "test metrics: " + ", ".join(f"{k}={metrics[k]:.4f}" for k in HEADLINE if k in metrics),
        f"gate: {'PASSED' if d['passed'] else 'FAILED'}"
        + (f" (champion/challenger vs production {d['champion_version']})" if d.get("champion_version") else " (no production model yet: thresholds only)"),
        *("  " + r for r in d["reasons"]),
        f"model version: {f'{registry}/{args.model}/{run.version} (now production)' if run.version else 'none registered (gate failed)'}",
        f"evaluation report: {run.report}",
        f"run artifacts: {run.run_dir}",
        "=" * 72,
    ]
    print("\n".join(lines))
    return 0 if d["passed"] or not args.strict else 3


def cmd_models(args) -> int:
    from mlcycle.registry import open_registry

    reg = open_registry(_registry_uri(args))
    if args.action == "list":
        models = [args.model] if args.model else reg.list_models()
        for model in models:
            aliases, _ = reg.aliases(model)
            by_version = {}
            for alias, version in aliases.items():
                by_version.setdefault(version, []).append(alias)
            print(model)
            for version in reg.list_versions(model):
                meta = reg.describe(model, version)
                score = {k: meta["metrics"][k] for k in HEADLINE if k in meta.get("metrics", {})}
                tag = ",".join(sorted(by_version.get(version, [])))
                print(f"  {version}  {meta.get('family', '?'):8s} {json.dumps(score)}  {tag}")
    elif args.action == "show":
        print(json.dumps(reg.describe(args.model, args.ref or "production"), indent=2))
    elif args.action == "promote":
        reg.promote(args.model, args.ref, why=args.why or "promoted by hand")
        print(f"{args.model}: production -> {args.ref}")
    elif args.action == "rollback":
        print(f"{args.model}: production -> {reg.rollback(args.model, why=args.why or 'rolled back by hand')}")
    elif args.action == "diff":
        a, b = reg.describe(args.model, args.ref or "production"), reg.describe(args.model, args.other)
        print(render_diff(a, b))
    return 0


def cmd_rollout(args) -> int:
    """Operate the canary of an InferenceService by hand (needs a kubeconfig and the mlcycle-rollout Role)."""
    from kubernetes import client, config

    try:
        config.load_config()
    except config.ConfigException as e:
        print(f"mlcycle rollout: no Kubernetes cluster configured ({e}); set KUBECONFIG or run in a cluster", file=sys.stderr)
        return 1
    from inference.rollout.kserve import GROUP, PLURAL, VERSION, KServeAdapter, detect_mode, promote_patch, rollback_patch, storage_uri
    from mlcycle.registry import open_registry

    api = client.CustomObjectsApi()
    isvc = api.get_namespaced_custom_object(GROUP, VERSION, args.namespace, PLURAL, args.name)
    mode = detect_mode(isvc)
    spec, status = isvc["spec"], isvc.get("status", {})
    canary_uri = storage_uri(spec["canary"][0]["predictor"]) if spec.get("canary") else storage_uri(spec["predictor"])
    if args.action == "status":
        weight = spec["canary"][0]["trafficPercent"] if spec.get("canary") else spec["predictor"].get("canaryTrafficPercent")
        print(json.dumps({"mode": mode, "canary_weight": weight, "canary_uri": canary_uri, "stable_uri": storage_uri(spec["predictor"]),
                          "observed_generation": status.get("observedGeneration"), "generation": isvc["metadata"].get("generation"),
                          "components": status.get("components"), "canary_statuses": status.get("canaryStatuses")}, indent=2))
        return 0
    registry = open_registry(_registry_uri(args)) if args.registry or os.environ.get("MLCYCLE_REGISTRY") else None
    adapter = KServeAdapter(args.name, args.namespace, args.stable_uri or storage_uri(spec["predictor"]), canary_uri, registry, args.model, api=api)
    if args.action == "promote":
        adapter.replace(promote_patch(isvc, mode))
        if registry:
            registry.promote(args.model, canary_uri.rstrip("/").rsplit("/", 1)[-1], why=args.why or "promoted by hand")
    else:
        if not args.stable_uri and mode == "serverless":
            print("mlcycle rollout abort: --stable-uri is required in Serverless mode (the URI to restore)", file=sys.stderr)
            return 2
        adapter.replace(rollback_patch(isvc, mode, args.stable_uri))
        if registry:
            registry.audit(args.model, "rollback", version=canary_uri.rstrip("/").rsplit("/", 1)[-1], why=args.why or "aborted by hand")
    print(f"{args.namespace}/{args.name}: {args.action} applied ({mode} mode)")
    return 0


def render_diff(a: dict, b: dict) -> str:
    rows = [("", a["version"], b["version"])]
    for section in ("metrics", "params"):
        for key in sorted(set(a.get(section, {})) | set(b.get(section, {}))):
            rows.append((f"{section}.{key}", _fmt(a.get(section, {}).get(key)), _fmt(b.get(section, {}).get(key))))
    for key in ("family", "threshold"):
        rows.append((key, _fmt(a.get(key)), _fmt(b.get(key))))
    rows.append(("lineage.dataset_fingerprint", a["lineage"]["dataset_fingerprint"][:12], b["lineage"]["dataset_fingerprint"][:12]))
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{r[0]:<{width[0]}}  {r[1]:>{width[1]}}  {r[2]:>{width[2]}}" + ("  *" if r[1] != r[2] and r[0] else "") for r in rows)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlcycle", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("compile", help="compile the pipelines to KFP IR YAML")
    p.add_argument("--out", type=Path, default=Path("build/pipelines"))
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("demo", help="run the training pipeline locally on kfp.local")
    p.add_argument("--rows", type=int, default=20_000, help="demo dataset rows")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--trials", type=int, default=6, help="hyperparameter search budget")
    p.add_argument("--source", default="", help="CSV/Parquet path or s3:// URI instead of the demo data")
    p.add_argument("--model", default="fraud-detector")
    p.add_argument("--registry", help=f"registry URI (default $MLCYCLE_REGISTRY or {DEFAULT_LOCAL_REGISTRY})")
    p.add_argument("--runs", default=".mlcycle/runs", help="kfp.local pipeline root")
    p.add_argument("--strict", action="store_true", help="exit 3 when the gate fails")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("models", help="list, show, promote, roll back and diff registered models")
    p.add_argument("action", choices=["list", "show", "promote", "rollback", "diff"])
    p.add_argument("model", nargs="?", default="")
    p.add_argument("ref", nargs="?", default="", help="version or alias (production, candidate, previous)")
    p.add_argument("other", nargs="?", default="previous", help="second version for diff (default: previous)")
    p.add_argument("--registry", help="registry URI (default $MLCYCLE_REGISTRY or .mlcycle/registry)")
    p.add_argument("--why", default="", help="reason recorded in the audit log")
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("rollout", help="canary status / promote / abort on a cluster")
    p.add_argument("action", choices=["status", "promote", "abort"])
    p.add_argument("--name", default="fraud-detector", help="InferenceService name")
    p.add_argument("-n", "--namespace", default="mlcycle")
    p.add_argument("--model", default="fraud-detector", help="registered model (aliases and audit)")
    p.add_argument("--registry", help="registry URI whose aliases follow the rollout")
    p.add_argument("--stable-uri", dest="stable_uri", default="", help="abort: storage URI to restore (Serverless mode)")
    p.add_argument("--why", default="")
    p.set_defaults(func=cmd_rollout)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "models" and args.action != "list" and not args.model:
        print(f"mlcycle models {args.action}: a model name is required", file=sys.stderr)
        return 2
    if args.command == "models" and args.action == "promote" and not args.ref:
        print("mlcycle models promote: a version is required", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except ImportError as e:
        print(f"mlcycle: error: {e}", file=sys.stderr)
        return 1
    except MlcycleError as e:
        print(f"mlcycle: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
