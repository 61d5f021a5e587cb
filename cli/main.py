"""The ``mlcycle`` command line: compile, run the demo pipeline locally, manage the model registry."""

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mlcycle import defaults
from mlcycle.errors import ConfigError, DataError, MlcycleError

if TYPE_CHECKING:  # the schema imports pandas: not at CLI start-up
    from mlcycle.schema import VersionMetadata

HEADLINE = ("roc_auc", "pr_auc", "accuracy", "f1", "precision", "recall", "rmse", "mae", "r2")


def _registry_uri(args) -> str:
    return args.registry or os.environ.get("MLCYCLE_REGISTRY") or str(Path(defaults.LOCAL_REGISTRY).resolve())


def cmd_compile(args) -> int:
    from pipelines.compile import compile_all

    for path in compile_all(args.out):
        print(path)
    return 0


def _model_name(source: str) -> str:
    """A registry-safe model name from a data file's name ("Bank Marketing.csv" -> "bank-marketing")."""
    import re

    stem = Path(source.split("?")[0]).stem.lower()
    name = re.sub(r"[^a-z0-9]+", "-", stem).strip("-")[:63].strip("-")
    return name or "model"


def _thresholds(values: list[str]) -> dict[str, float]:
    out = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--threshold {item!r}: expected METRIC=VALUE, e.g. roc_auc=0.8") from None
    return out


def plan_run(args) -> dict:
    """Check the options and the data before any step runs; returns the pipeline's parameters.

    The label, option and contract checks are the library calls the steps make too, so a run from the KFP UI
    refuses the same inputs; task inference and the binary-only-metric check are made here only (a UI run
    passes the task, and a binary-only metric on a multiclass label fails there in train)."""
    from mlcycle.contract import check_label, infer_task
    from mlcycle.data import DEMO_SOURCES, read_table
    from mlcycle.metrics import BINARY_ONLY, task_defaults

    params = _options(args)
    thresholds = params["thresholds"]
    if args.source in DEMO_SOURCES:
        params["demo_rows"] = getattr(args, "rows", defaults.DEMO_ROWS)
        frame = None
    else:
        frame = read_table(args.source)
        if args.label not in frame.columns:
            check_label(frame, args.label, "classification")  # raises, naming close matches
    if frame is not None and not args.task:
        args.task, why = infer_task(frame[args.label])
        print(f"task: {args.task} (inferred from label '{args.label}': {why}; --task to override)")
    task = args.task or "classification"
    params["task"] = task
    primary, bounds = task_defaults(task, args.primary_metric, thresholds)
    if frame is not None:
        check_label(frame, args.label, task)
        for option, column in (
            ("--timestamp-column", args.timestamp_column),
            ("--segment-column", args.segment_column),
        ):
            if column and column not in frame.columns:
                raise DataError(
                    f"{option} '{column}' is not a column of {args.source} (columns: {', '.join(map(str, frame.columns))})"
                )
        if task == "classification" and frame[args.label].nunique() > 2:
            binary_only = sorted(({primary} | set(bounds)) & BINARY_ONLY)
            if binary_only:
                raise ConfigError(
                    f"{', '.join(binary_only)} exist only for binary labels; '{args.label}' has "
                    f"{frame[args.label].nunique()} classes"
                )
        print(f"data: {args.source} ({len(frame)} rows, {len(frame.columns)} columns), label '{args.label}'")
    sure = f" at {args.confidence:.0%} confidence" if args.confidence else ""
    print(
        f"gate: primary metric {primary}, thresholds {json.dumps(bounds)}, min improvement {args.min_improvement:+g}{sure}"
    )
    return params


def cmd_run(args) -> int:
    from pipelines.local import StepFailed, run_local

    args.model = args.model or _model_name(args.source)
    registry = _registry_uri(args)
    params = plan_run(args)
    before = _production(registry, args.model)
    runner = getattr(args, "runner", "subprocess")
    print(
        f"mlcycle {args.command}: training pipeline on kfp.local ({runner} runner) -> registry {registry}, "
        f"model '{args.model}'",
        flush=True,
    )
    try:
        run = run_local(
            registry,
            Path(args.runs),
            progress=lambda line: print(line, flush=True),
            runner=runner,
            **params,
        )
    except (StepFailed, ConfigError) as e:
        print(f"mlcycle: error: {e}", file=sys.stderr)
        return 1
    print(summary(run, registry, args.model, before))
    return 0 if run.decision["passed"] or not args.strict else 3


def summary(run, registry: str, model: str, production_before: str | None) -> str:
    metrics, d, ev = run.evaluation["metrics"], run.decision, run.evaluation
    if not run.version:
        outcome = "none registered (gate failed)"
    elif run.unchanged or run.version == production_before:
        from pipelines.local import identical_to

        held = run.aliases or (["production"] if run.version == production_before else [])
        outcome = f"unchanged: {identical_to(run.version, held)}"
    else:
        outcome = f"{registry}/{model}/{run.version}" + (
            " (now production)" if _production(registry, model) == run.version else " (candidate)"
        )
    threshold = ev.get("threshold")
    lines = [
        "",
        "=" * 72,
        f"pipeline finished in {run.seconds:.1f}s — model family: {ev['family']}",
        "test metrics: " + ", ".join(f"{k}={metrics[k]:.4f}" for k in HEADLINE if k in metrics),
        *(
            [
                f"decision threshold: {threshold['threshold']:.4f} (policy {threshold['policy']}, out-of-fold precision "
                f"{threshold['precision']:.3f}, recall {threshold['recall']:.3f})"
            ]
            if threshold
            else []
        ),
        f"gate: {'PASSED' if d['passed'] else 'FAILED'}"
        + (
            f" (champion/challenger vs production {d['champion_version']})"
            if d.get("champion_version")
            else " (no production model yet: thresholds only)"
        ),
        *("  " + r for r in d["reasons"]),
        f"model version: {outcome}",
        f"reports: {run.report}  (data: {run.page('data-report.html').name}, gate: {run.page('gate-report.html').name})",
        f"full log: {run.log}" if run.log else f"run artifacts: {run.run_dir}",
        "=" * 72,
    ]
    return "\n".join(lines)


def _production(registry: str, model: str) -> str | None:
    """The version behind the model's production alias (None when there is no model or alias yet)."""
    from mlcycle.registry import open_registry

    try:
        return open_registry(registry).aliases(model)[0].get("production")
    except MlcycleError:
        return None


def _reason_missing(what: str, why: str) -> bool:
    """Promote/rollback/abort by hand need a reason for the audit log; says so when it is missing."""
    if why.strip():
        return False
    print(f'{what}: --why "reason" is required (it is recorded in the audit log)', file=sys.stderr)
    return True


def cmd_demo(args) -> int:
    from mlcycle.data import DEMO_LABEL, DEMO_SEGMENT
    from mlcycle.registry import open_registry
    from pipelines.training import DEMO_THRESHOLDS

    if args.seed is None:  # every demo run trains on the next batch of the bundled data, as if new data had arrived
        try:
            batch = len(open_registry(_registry_uri(args)).list_versions(args.model))
        except MlcycleError:
            batch = 0
        args.seed = defaults.SEED + batch
        print(f"demo data: batch {batch + 1} of the bundled fraud data ({args.rows} rows, seed {args.seed})")
    args.source, args.label, args.task = "demo", DEMO_LABEL, "classification"
    args.segment_column, args.timestamp_column = DEMO_SEGMENT, ""
    args.threshold = args.threshold or [f"{k}={v}" for k, v in DEMO_THRESHOLDS.items()]
    return cmd_run(args)


def cmd_submit(args) -> int:
    """Compile the pipeline and start a run of it on a Kubeflow Pipelines host."""
    import tempfile

    if not args.registry or not args.registry.startswith("s3://"):
        raise ConfigError(
            "mlcycle submit needs --registry s3://BUCKET: the cluster's steps cannot see a local directory"
        )
    if not args.source.startswith("s3://") and args.source != "demo":
        raise ConfigError(
            f"mlcycle submit: the cluster's steps cannot read the local file {args.source!r}; "
            "upload it to s3:// (the registry's MinIO) and pass that URI, or use --source demo"
        )
    args.model = args.model or _model_name(args.source)
    params = plan_run(args) if args.source == "demo" else _unchecked_params(args)
    params["registry_uri"] = args.registry
    params["deploy"] = args.deploy
    import kfp
    from kfp import compiler

    from pipelines.training import training_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        package = Path(tmp) / "mlcycle-training.yaml"
        compiler.Compiler().compile(training_pipeline, str(package))
        try:
            client = kfp.Client(host=args.host)
            run = client.create_run_from_pipeline_package(
                str(package),
                arguments=params,
                experiment_name=args.experiment,
                run_name=f"{args.model}-{args.source.rsplit('/', 1)[-1]}",
            )
        except Exception as e:  # kfp raises urllib3/ApiException/ValueError; all mean "not submitted"
            print(f"mlcycle submit: error: could not submit to {args.host}: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
    print(f"submitted run {run.run_id}: {args.host.rstrip('/')}/#/runs/details/{run.run_id}")
    return 0


_DURATION = {"s": 1, "m": 60, "h": 3600, "d": 86400}
LOOP_STATE_DIR = ".mlcycle/loop-demo/loop"  # where `make loop-demo` keeps its loop's state


def _interval_seconds(text: str) -> int:
    """``3600``, ``90s``, ``30m``, ``6h``, ``1d`` -> whole seconds (positive)."""
    number, unit = (text[:-1], text[-1]) if text and text[-1] in _DURATION else (text, "s")
    try:
        seconds = float(number) * _DURATION[unit]
    except ValueError:
        seconds = 0
    if seconds < 1 or seconds != int(seconds):
        raise ConfigError(f"--interval {text!r}: expected whole seconds or a duration such as 90m, 6h, 1d")
    return int(seconds)


def _cron(text: str) -> str:
    """A KFP cron expression: six fields, seconds first (the SDK's format), or a @-descriptor such as @daily."""
    if text.startswith("@") or len(text.split()) == 6:
        return text
    hint = f"; for {text!r} that is '0 {text}'" if len(text.split()) == 5 else ""
    raise ConfigError(
        f"--cron {text!r}: KFP takes 6 fields, seconds first (e.g. '0 0 3 * * *' = 03:00 every day){hint}"
    )


def schedule_spec(args) -> dict:
    """The recurring run `mlcycle schedule` creates: its trigger, max_concurrency 1 (two retrains never overlap),
    no_catchup (missed intervals are not backfilled), and the pipeline's parameters, each option checked."""
    from mlcycle import capture

    if not args.registry or not args.registry.startswith("s3://"):
        raise ConfigError(
            "mlcycle schedule needs --registry s3://BUCKET: the cluster's steps cannot see a local directory"
        )
    if (args.cron is None) == (args.interval is None):
        raise ConfigError("mlcycle schedule: give exactly one of --cron or --interval")
    if args.days <= 0:
        raise ConfigError(f"--days must be positive, got {args.days:g}")
    if args.source == "traffic":  # the registry's captured, labelled traffic of the model
        args.model = args.model or defaults.MODEL_NAME
        args.source = f"{capture.SCHEME}{args.registry}#{args.model}?days={args.days:g}"
    elif args.source.startswith(capture.SCHEME):
        named = capture.parse_traffic_source(args.source)
        traffic_registry, traffic_model = named.registry, named.model
        if not traffic_registry.startswith("s3://"):
            raise ConfigError(
                f"mlcycle schedule: the cluster's steps read captured traffic from an s3:// registry, not {traffic_registry!r}"
            )
        args.model = args.model or traffic_model
    elif not args.source.startswith("s3://") and args.source != "demo":
        raise ConfigError(
            f"mlcycle schedule: the cluster's steps cannot read the local file {args.source!r}; give "
            "--source traffic (the captured traffic), a traffic:// or an s3:// URI"
        )
    args.model = args.model or _model_name(args.source)
    params = _unchecked_params(args)
    if args.source == "demo":
        params["demo_rows"] = defaults.DEMO_ROWS
    # with a canary rollout, the rollout promotes (as the drift hook's runs do); without one, --promote decides
    params.update(registry_uri=args.registry, deploy=args.deploy, trigger="schedule")
    params["auto_promote"] = args.promote and not args.deploy
    trigger = (
        {"cron_schedule": {"cron": _cron(args.cron)}}
        if args.cron is not None
        else {"periodic_schedule": {"interval_second": _interval_seconds(args.interval)}}
    )
    return {
        "host": args.host,
        "experiment": args.experiment,
        "display_name": args.name or f"{args.model}-scheduled-retrain",
        "description": f"mlcycle: scheduled retrain of {args.model} on {args.source}",
        "trigger": trigger,
        "max_concurrency": 1,
        "no_catchup": not args.catchup,
        "mode": "ENABLE",
        "parameters": params,
    }


def cmd_schedule(args) -> int:
    """Compile the training pipeline and create a KFP recurring run of it (the schedule trigger on a cluster)."""
    import tempfile

    from kfp import compiler

    from pipelines.direct import pipeline_defaults
    from pipelines.training import PIPELINE_NAME, training_pipeline

    spec = schedule_spec(args)
    unknown = sorted(set(spec["parameters"]) - set(pipeline_defaults()))
    if unknown:  # the API server would refuse them; say so before anything is sent
        raise ConfigError(f"mlcycle schedule: {PIPELINE_NAME} has no parameter(s) {', '.join(unknown)}")
    if args.dry_run:
        print(json.dumps({**spec, "pipeline": PIPELINE_NAME}, indent=2, sort_keys=True))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        package = Path(tmp) / f"{PIPELINE_NAME}.yaml"
        compiler.Compiler().compile(training_pipeline, str(package))
        try:
            job = _create_recurring_run(spec, package)
        except _Refused as e:
            print(f"mlcycle schedule: error: {e}", file=sys.stderr)
            return 1
        except Exception as e:  # urllib3 errors, kfp_server_api.ApiException, ValueError: all mean "not scheduled"
            print(
                f"mlcycle schedule: error: could not create the recurring run on {args.host}: {type(e).__name__}: {e}",
                file=sys.stderr,
            )
            return 1
    when = spec["trigger"].get("cron_schedule", {}).get("cron") or (
        f"every {spec['trigger']['periodic_schedule']['interval_second']} s"
    )
    print(
        f"scheduled recurring run {job.recurring_run_id} ({spec['display_name']}, {when}, max_concurrency 1): "
        f"{args.host.rstrip('/')}/#/recurringrun/details/{job.recurring_run_id}"
    )
    return 0


class _Refused(Exception):
    """The host is reachable but the recurring run is not created (a schedule of that name exists)."""


def _create_recurring_run(spec: dict, package: Path):
    import kfp

    client = kfp.Client(host=spec["host"])
    experiment = client.create_experiment(name=spec["experiment"])
    same_name = json.dumps(
        {"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": spec["display_name"]}]}
    )
    existing = client.list_recurring_runs(experiment_id=experiment.experiment_id, filter=same_name).recurring_runs
    if existing:  # a second schedule of the same retrain would start runs beside the first one's
        raise _Refused(
            f"experiment {spec['experiment']!r} already has recurring run {spec['display_name']!r} "
            f"({existing[0].recurring_run_id}); delete it in the KFP UI first, or give another --name"
        )
    trigger = spec["trigger"]
    return client.create_recurring_run(
        experiment_id=experiment.experiment_id,
        job_name=spec["display_name"],
        description=spec["description"],
        cron_expression=trigger.get("cron_schedule", {}).get("cron"),
        interval_second=trigger.get("periodic_schedule", {}).get("interval_second"),
        max_concurrency=spec["max_concurrency"],
        no_catchup=spec["no_catchup"],
        params=spec["parameters"],
        pipeline_package_path=str(package),
        enabled=spec["mode"] == "ENABLE",
    )


def cmd_loop(args) -> int:
    """``mlcycle loop status``: what the local loop controller persisted, and the model's aliases."""
    from pipelines.loop import NoLoop, loop_status

    registry = args.registry or os.environ.get("MLCYCLE_REGISTRY")
    try:
        report = loop_status(Path(args.state_dir), registry, args.model)
    except NoLoop as e:
        print(f"mlcycle loop status: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2, sort_keys=True, default=str) if args.json else render_loop_status(report))
    return 0


def cmd_loop_run(args) -> int:
    """``mlcycle loop run``: the loop controller in the foreground (``pipelines.loop.Loop.run``)."""
    import signal

    from mlcycle.models import check_families
    from mlcycle.registry import open_registry
    from mlcycle.shadow import ShadowPolicy
    from mlcycle.triggers import TriggerPolicy
    from pipelines.loop import Loop

    registry_uri = args.registry or os.environ.get("MLCYCLE_REGISTRY")
    if not registry_uri:
        raise ConfigError("mlcycle loop run: give --registry or set MLCYCLE_REGISTRY")
    if args.interval <= 0 or args.days <= 0 or args.shadow_wait_s < 0:
        raise ConfigError("mlcycle loop run: --interval and --days must be positive, --shadow-wait not negative")
    triggers = TriggerPolicy(
        drift_windows=args.drift_windows,
        min_accuracy=args.min_accuracy,
        min_samples=args.min_samples,
        new_rows=args.new_rows,
        schedule_s=args.schedule_s,
        cooldown_s=args.cooldown_s,
        min_rows=args.min_rows,
    )
    train = {"label": args.label, "task": args.task, "n_trials": args.trials, "min_improvement": args.min_improvement}
    if args.threshold:
        train["thresholds"] = _thresholds(args.threshold)
    if args.families:
        train["families"] = check_families(args.families.split(","))
    stop: list[int] = []

    def stopping(signum, frame) -> None:
        stop.append(signum)
        print("loop: stopping after the current step", flush=True)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stopping)
    loop = Loop(
        open_registry(registry_uri),
        registry_uri,
        args.model,
        args.drift_url.rstrip("/"),
        args.capture_url.rstrip("/"),
        Path(args.state_dir),
        triggers,
        ShadowPolicy(min_requests=args.shadow_requests),
        train_params=train,
        traffic_days=args.days,
        log=lambda line: print(line, flush=True),
    )
    print(f"loop: watching {args.drift_url} and {args.capture_url} for {registry_uri}#{args.model}", flush=True)
    return loop.run(args.interval, args.once, args.now, args.shadow_wait_s, stopping=lambda: bool(stop))


def _when(at: float | None) -> str:
    import time
    from datetime import UTC, datetime

    if at is None:
        return "-"
    ago = time.time() - at
    return f"{datetime.fromtimestamp(at, UTC).isoformat(timespec='seconds')} ({ago:.0f} s ago)"


def render_loop_status(r: dict) -> str:
    trig, last, decision = r["last_trigger"], r["last_retrain"], r["last_decision"]
    running = {True: "running", False: "not running", None: "unknown (another host)"}[r["loop_running"]]
    lines = [
        f"loop: {r['registry']}#{r['model']}  (state {r['state_dir']}; loop pid {r['loop_pid']}: {running})",
        "last trigger: "
        + (
            f"{trig['kind']} at {_when(trig['at'])}: {trig['reason']}  evidence {json.dumps(trig['evidence'])}"
            if trig
            else "none yet"
        ),
        f"retrains started: {r['retrains']}",
        "cooldown: "
        + (
            f"{r['cooldown_left_s']:.0f} s left (of {r['cooldown_s']:g} s)"
            if r.get("cooldown_left_s")
            else "none (a trigger may start a retrain now)"
        ),
        f"retrain in progress: {'yes (' + r['retrain_in_progress'] + ')' if r['retrain_in_progress'] else 'no'}",
    ]
    if decision and not decision.get("start"):
        lines.append(f"last decision: {decision['trigger']} at {_when(decision['at'])}: {decision['reason']}")
    if last:
        produced = f"version {last['version']}" if last.get("version") else last.get("detail") or "-"
        lines.append(
            f"last retrain: {last['outcome']} — {produced} (trigger {last['trigger']}, {last.get('seconds', 0):g} s, "
            f"started {_when(last.get('started_at'))})"
        )
    else:
        lines.append("last retrain: none yet")
    for alias in ("production", "candidate", *sorted(set(r["aliases"]) - {"production", "candidate"})):
        entry = r["aliases"].get(alias)
        lines.append(f"{alias}: {entry['version']} (semver {entry['semver'] or '-'})" if entry else f"{alias}: none")
    lines.append(f"log: {r['log'] or 'no retrain log yet'}")
    return "\n".join(lines)


def _add_loop_commands(sub) -> None:
    """`mlcycle schedule` and `mlcycle loop`: the schedule trigger on a cluster, the local loop's state."""
    p = sub.add_parser(
        "schedule",
        help="create a KFP recurring run of the training pipeline (the schedule trigger on a cluster)",
        description="Compile the training pipeline and create a Kubeflow Pipelines recurring run of it: "
        "trigger=schedule, deploy=true, max_concurrency 1, no catch-up. --source traffic: the model's captured, "
        "labelled traffic in the registry (traffic://REGISTRY#MODEL?days=DAYS).",
    )
    _training_options(p)
    p.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8888")
    p.add_argument("--experiment", default="mlcycle", help="KFP experiment (default mlcycle; created if missing)")
    p.add_argument("--name", default="", help="recurring run name (default MODEL-scheduled-retrain)")
    p.add_argument("--cron", help="KFP cron, 6 fields with seconds first, e.g. '0 0 3 * * *' (03:00 daily)")
    p.add_argument("--interval", help="or a period: seconds or 90m, 6h, 1d")
    p.add_argument(
        "--days", type=float, default=7.0, help="--source traffic: the last DAYS of captured traffic (default 7)"
    )
    p.add_argument(
        "--deploy",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="roll each registered version out as a KServe canary (default: yes; the rollout then promotes)",
    )
    p.add_argument(
        "--catchup",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="backfill intervals missed while paused (default: no; only the latest one runs)",
    )
    p.add_argument("--dry-run", dest="dry_run", action="store_true", help="print the recurring run, create nothing")
    p.set_defaults(func=cmd_schedule)

    loop = sub.add_parser("loop", help="the local loop controller: run it (mlcycle loop run), or its state (status)")
    actions = loop.add_subparsers(dest="action", required=True)
    state_dir = os.environ.get("MLCYCLE_LOOP_STATE", LOOP_STATE_DIR)
    p = actions.add_parser("status", help="what the local loop persisted, and the model's aliases")
    p.add_argument("--registry", help="registry URI the loop ran against (default: the one its state names)")
    p.add_argument("--model", default="", help="registered model (default: the one its state names)")
    p.add_argument(
        "--state-dir",
        dest="state_dir",
        default=state_dir,
        help=f"the loop's state directory (default $MLCYCLE_LOOP_STATE or {LOOP_STATE_DIR}, make loop-demo's)",
    )
    p.add_argument("--json", action="store_true", help="the status as JSON")
    p.set_defaults(func=cmd_loop)

    p = actions.add_parser(
        "run",
        help="run the loop controller against a running drift detector and capture service",
        description="Watch the drift detector and the capture service; when a trigger fires, retrain on the "
        "captured, labelled traffic (the kfp.local pipeline), then shadow the candidate against production's "
        "requests received after its training data. A passed shadow leaves it the candidate for a canary or "
        "`mlcycle models promote`; the loop never promotes. SIGINT/SIGTERM stop it after the current step.",
    )
    p.add_argument("--registry", help="registry URI (default $MLCYCLE_REGISTRY)")
    p.add_argument("--model", default=defaults.MODEL_NAME, help=f"registered model (default {defaults.MODEL_NAME})")
    p.add_argument(
        "--drift-url", dest="drift_url", required=True, help="the drift detector, e.g. http://127.0.0.1:8090"
    )
    p.add_argument("--capture-url", dest="capture_url", required=True, help="the capture service (its /status, /flush)")
    p.add_argument("--label", required=True, help="label column of the retrain's training table")
    p.add_argument("--task", choices=["classification", "regression"], default="classification")
    p.add_argument("--families", default="", help="comma-separated model families (default: the pipeline's)")
    p.add_argument("--trials", type=int, default=0, help="hyperparameter search budget of a retrain (default 0)")
    p.add_argument("--threshold", action="append", default=[], metavar="METRIC=VALUE", help="gate bound, repeatable")
    p.add_argument(
        "--min-improvement",
        dest="min_improvement",
        type=float,
        default=0.0,
        help="champion/challenger: required gain in the primary metric (default 0)",
    )
    p.add_argument("--state-dir", dest="state_dir", default=state_dir, help="where the loop keeps its state and logs")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between observations (default 10)")
    p.add_argument("--days", type=float, default=1.0, help="traffic window of a retrain and a shadow (default 1)")
    p.add_argument("--drift-windows", dest="drift_windows", type=int, default=3, help="consecutive drifted windows")
    p.add_argument("--min-accuracy", dest="min_accuracy", type=float, help="retrain when online accuracy is below")
    p.add_argument(
        "--min-samples", dest="min_samples", type=int, default=200, help="labelled requests an accuracy trigger needs"
    )
    p.add_argument("--new-rows", dest="new_rows", type=int, help="retrain after this many new labelled rows")
    p.add_argument("--schedule", dest="schedule_s", type=float, help="retrain every this many seconds")
    p.add_argument("--cooldown", dest="cooldown_s", type=float, default=3600.0, help="seconds between retrains")
    p.add_argument("--min-rows", dest="min_rows", type=int, default=0, help="labelled rows a retrain needs")
    p.add_argument(
        "--shadow-requests", dest="shadow_requests", type=int, default=200, help="requests a shadow needs (200)"
    )
    p.add_argument(
        "--shadow-wait", dest="shadow_wait_s", type=float, default=900.0, help="seconds to wait for them (900)"
    )
    p.add_argument("--now", metavar="REASON", help="a manual retrain at the first observation, with this reason")
    p.add_argument("--once", action="store_true", help="one observation (and what it starts), then exit")
    p.set_defaults(func=cmd_loop_run)


def _options(args) -> dict:
    """The pipeline parameters the options give, each option checked (the data is not read here)."""
    from mlcycle.models import check_families
    from mlcycle.thresholds import ThresholdPolicy

    ThresholdPolicy.parse(args.threshold_policy)
    if not 0 <= args.confidence < 1:
        raise ConfigError(f"--confidence must be 0 (report only) or between 0 and 1, got {args.confidence}")
    params = {
        "source": args.source,
        "label": args.label,
        "seed": args.seed,
        "n_trials": args.trials,
        "cv_folds": args.cv_folds,
        "primary_metric": args.primary_metric,
        "thresholds": _thresholds(args.threshold),
        "min_improvement": args.min_improvement,
        "min_improvement_confidence": args.confidence,
        "threshold_policy": args.threshold_policy,
        "timestamp_column": args.timestamp_column,
        "segment_column": args.segment_column,
        "model_name": args.model,
        "auto_promote": args.promote,
    }
    if args.families:
        params["families"] = check_families(args.families.split(","))
    return params


def _unchecked_params(args) -> dict:
    """Parameters for a source this machine may not read (s3:// on the cluster): options checked, data checked by the steps."""
    from mlcycle.metrics import task_defaults

    params = _options(args)
    params["task"] = args.task or "classification"
    task_defaults(params["task"], args.primary_metric, params["thresholds"])
    return params


def cmd_serve(args) -> int:
    from inference.devserve import serve

    return serve(
        _registry_uri(args),
        args.model,
        args.ref,
        args.http_port,
        args.grpc_port,
        args.drift_port if args.drift else None,
        args.window_size,
        args.retrain_command,
    )


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
                meta = reg.metadata(model, version)
                score = {k: meta.metrics[k] for k in HEADLINE if k in meta.metrics}
                tag = ",".join(sorted(by_version.get(version, [])))
                trigger = meta.lineage.trigger if meta.lineage else "?"
                print(
                    f"  {version}  {meta.semver or '-':8s} {meta.family or '?':8s} {trigger:9s} {json.dumps(score)}  {tag}"
                )
    elif args.action == "show":
        meta = reg.metadata(args.model, args.ref or "production")
        lineage = meta.lineage
        print(
            f"{meta.model} {meta.version}  semver {meta.semver or '-'} ({meta.semver_reason or 'not recorded'})  "
            f"trigger {lineage.trigger if lineage else '-'}"
        )
        print(json.dumps(reg.describe(args.model, args.ref or "production"), indent=2))
    elif args.action == "promote":
        reg.promote(args.model, args.ref, why=args.why)
        print(f"{args.model}: production -> {args.ref}")
    elif args.action == "rollback":
        print(f"{args.model}: production -> {reg.rollback(args.model, why=args.why)}")
    elif args.action == "diff":
        a, b = reg.metadata(args.model, args.ref or "production"), reg.metadata(args.model, args.other)
        print(render_diff(a, b))
    return 0


def cmd_rollout(args) -> int:
    """Operate the canary of an InferenceService by hand (needs a kubeconfig and the mlcycle-rollout Role)."""
    from kubernetes import client, config

    try:
        if os.environ.get("KUBECONFIG"):  # read now: the client library reads $KUBECONFIG once, at import
            config.load_kube_config(config_file=os.environ["KUBECONFIG"])  # the client merges a path list itself
        else:
            config.load_config()
    except (config.ConfigException, OSError) as e:
        print(
            f"mlcycle rollout: no Kubernetes cluster configured ({e}); set KUBECONFIG or run in a cluster",
            file=sys.stderr,
        )
        return 1
    from mlcycle.registry import open_registry
    from mlcycle.rollout.kserve import (
        SERVERLESS,
        STANDARD,
        KServeAdapter,
        promote_patch,
        rollback_patch,
        storage_uri,
        version_of,
    )

    probe = KServeAdapter(args.name, args.namespace, "", "", api=client.CustomObjectsApi())
    isvc = probe.get()
    spec, status = isvc["spec"], isvc.get("status", {})
    canary_uri = storage_uri(spec["canary"][0]["predictor"]) if spec.get("canary") else storage_uri(spec["predictor"])
    if args.action == "status":
        weight = (
            spec["canary"][0]["trafficPercent"] if spec.get("canary") else spec["predictor"].get("canaryTrafficPercent")
        )
        report = {
            "mode": probe.mode,
            "canary_weight": weight,
            "canary_uri": canary_uri if weight is not None else None,
            "stable_uri": storage_uri(spec["predictor"]),
            "canary_statuses": status.get("canaryStatuses"),
            "conditions": {c["type"]: c["status"] for c in status.get("conditions", [])},
            "components": status.get("components"),
        }
        if probe.mode == STANDARD:
            try:
                report["route_weights"] = probe.route_weights()
            except MlcycleError as e:
                report["route_weights"] = f"no mlcycle HTTPRoute ({e})"
        print(json.dumps(report, indent=2))
        return 0
    if probe.mode == STANDARD and not spec.get("canary"):
        print(f"mlcycle rollout {args.action}: {args.namespace}/{args.name} has no canary", file=sys.stderr)
        return 2
    if _reason_missing(f"mlcycle rollout {args.action}", args.why):
        return 2
    adapter = probe  # the InferenceService is read once; the adapter learns the URIs and the registry now
    adapter.stable_uri, adapter.canary_uri = args.stable_uri or storage_uri(spec["predictor"]), canary_uri
    adapter.registry = (
        open_registry(_registry_uri(args)) if args.registry or os.environ.get("MLCYCLE_REGISTRY") else None
    )
    adapter.model, registry = args.model, adapter.registry
    if args.action == "promote":
        adapter.write(promote_patch(isvc, adapter.mode))
        if registry:
            registry.promote(args.model, version_of(canary_uri), why=args.why)
    else:
        if not args.stable_uri and adapter.mode == SERVERLESS:
            print(
                "mlcycle rollout abort: --stable-uri is required in Knative mode (the URI to restore)", file=sys.stderr
            )
            return 2
        adapter.write(rollback_patch(isvc, adapter.mode, args.stable_uri))
        if registry:
            registry.audit(args.model, "rollback", version=version_of(canary_uri), why=args.why)
    print(f"{args.namespace}/{args.name}: {args.action} applied ({adapter.mode} mode)")
    return 0


def render_diff(a: "VersionMetadata", b: "VersionMetadata") -> str:
    rows = [("", a.version, b.version)]
    for section in ("metrics", "params"):
        left, right = getattr(a, section), getattr(b, section)
        for key in sorted(set(left) | set(right)):
            rows.append((f"{section}.{key}", _fmt(left.get(key)), _fmt(right.get(key))))
    rows += [("family", _fmt(a.family), _fmt(b.family)), ("threshold", _fmt(a.threshold), _fmt(b.threshold))]
    rows.append(("lineage.dataset_fingerprint", _fingerprint(a), _fingerprint(b)))
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        f"{r[0]:<{width[0]}}  {r[1]:>{width[1]}}  {r[2]:>{width[2]}}" + ("  *" if r[1] != r[2] and r[0] else "")
        for r in rows
    )


def _fingerprint(meta: "VersionMetadata") -> str:
    return meta.lineage.dataset_fingerprint[:12] if meta.lineage else "-"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)


def _runner_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--runner",
        choices=["subprocess", "docker"],
        default="subprocess",
        help="kfp.local runner: subprocess (default) or docker (each step in its image, as on a cluster: build them "
        "with `make images`; needs an s3:// registry)",
    )


def _training_options(p: argparse.ArgumentParser, demo: bool = False) -> None:
    """The options of a training run, shared by run, demo and submit."""
    if not demo:
        p.add_argument("--source", required=True, help="training table: a .csv/.parquet path or s3://bucket/key URI")
        p.add_argument("--label", required=True, help="label column")
        p.add_argument(
            "--task", choices=["classification", "regression"], help="default: inferred from the label (and said so)"
        )
        p.add_argument(
            "--timestamp-column",
            dest="timestamp_column",
            default="",
            help="split by time on this column (default: stratified random split)",
        )
        p.add_argument(
            "--segment-column",
            dest="segment_column",
            default="",
            help="per-segment metrics on this column (default: none)",
        )
        p.add_argument("--model", default="", help="registered model name (default: from the file name)")
        p.add_argument(
            "--seed",
            type=int,
            default=defaults.SEED,
            help=f"seed of splits, estimators and the search (default {defaults.SEED})",
        )
    else:
        p.add_argument(
            "--rows", type=int, default=defaults.DEMO_ROWS, help=f"demo dataset rows (default {defaults.DEMO_ROWS})"
        )
        p.add_argument(
            "--model", default=defaults.MODEL_NAME, help=f"registered model name (default {defaults.MODEL_NAME})"
        )
        p.add_argument(
            "--seed",
            type=int,
            default=None,
            help=f"demo data and training seed (default: {defaults.SEED} + the number of registered versions, so each run sees a new batch)",
        )
    p.add_argument(
        "--families", default="", help="comma-separated model families (default: baseline,logreg,hgb,xgboost)"
    )
    p.add_argument("--trials", type=int, default=6, help="hyperparameter search budget (default 6; 0 = no search)")
    p.add_argument("--cv-folds", dest="cv_folds", type=int, default=3, help="cross-validation folds (default 3)")
    p.add_argument(
        "--primary-metric",
        dest="primary_metric",
        default="",
        help="metric for model selection, search and champion/challenger (default: roc_auc / rmse by task)",
    )
    p.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help="gate bound, repeatable: a minimum, or a maximum for log_loss/rmse/mae/brier "
        "(default: roc_auc=0.7 for classification, r2=0.1 for regression"
        + ("; the demo: pr_auc=0.15, roc_auc=0.75)" if demo else ")"),
    )
    p.add_argument(
        "--min-improvement",
        dest="min_improvement",
        type=float,
        default=0.0,
        help="required gain of the primary metric over production (default 0; negative = tolerated regression)",
    )
    p.add_argument(
        "--confidence",
        type=float,
        default=0.0,
        help="require the gain's paired-bootstrap interval at this confidence (e.g. 0.95) to clear "
        "--min-improvement (default 0: the interval is reported only)",
    )
    p.add_argument(
        "--threshold-policy",
        dest="threshold_policy",
        default="f1",
        help="binary decision threshold, chosen on out-of-fold predictions: f1 (default), precision:P, recall:R, "
        "or cost:C where C = cost of a false positive / cost of a false negative",
    )
    p.add_argument(
        "--registry",
        help=f"registry URI: a directory or s3://bucket (default $MLCYCLE_REGISTRY or {defaults.LOCAL_REGISTRY})",
    )
    p.add_argument(
        "--promote",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="move the production alias when the gate passes (default: yes; --no-promote leaves it a candidate)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlcycle", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("compile", help="compile the pipelines to KFP IR YAML")
    p.add_argument("--out", type=Path, default=Path("build/pipelines"))
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser(
        "run",
        help="train, gate and register a model on your own data (the pipeline on kfp.local)",
        description="Run the training pipeline on kfp.local: ingest, validate, split, train, tune, evaluate, gate, register.",
    )
    _training_options(p)
    p.add_argument("--runs", default=".mlcycle/runs", help="kfp.local pipeline root (run directories, logs, reports)")
    _runner_option(p)
    p.add_argument("--strict", action="store_true", help="exit 3 when the gate fails")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="the training pipeline on the bundled fraud data (kfp.local)")
    _training_options(p, demo=True)
    p.add_argument("--runs", default=".mlcycle/runs", help="kfp.local pipeline root")
    _runner_option(p)
    p.add_argument("--strict", action="store_true", help="exit 3 when the gate fails")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("submit", help="compile the pipeline and start a run on a Kubeflow Pipelines host")
    _training_options(p)
    p.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8888")
    p.add_argument("--experiment", default="mlcycle", help="KFP experiment (default mlcycle)")
    p.add_argument("--deploy", action="store_true", help="roll the registered version out as a KServe canary")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("serve", help="serve a registered version: KServe predictor (+ drift detector) on this machine")
    p.add_argument("--registry", help=f"registry URI (default $MLCYCLE_REGISTRY or {defaults.LOCAL_REGISTRY})")
    p.add_argument("--model", default=defaults.MODEL_NAME, help=f"registered model (default {defaults.MODEL_NAME})")
    p.add_argument("--ref", default="production", help="version or alias to serve (default production)")
    p.add_argument("--http-port", dest="http_port", type=int, default=8080, help="predictor REST port (default 8080)")
    p.add_argument("--grpc-port", dest="grpc_port", type=int, default=8081, help="predictor gRPC port (default 8081)")
    p.add_argument("--drift-port", dest="drift_port", type=int, default=8090, help="drift detector port (default 8090)")
    p.add_argument(
        "--drift", action=argparse.BooleanOptionalAction, default=True, help="run the drift detector too (default: yes)"
    )
    p.add_argument("--window-size", dest="window_size", type=int, default=500, help="drift window rows (default 500)")
    p.add_argument("--retrain-command", default="", help="command the drift detector runs on sustained drift")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("models", help="list, show, promote, roll back and diff registered models")
    p.add_argument("action", choices=["list", "show", "promote", "rollback", "diff"])
    p.add_argument("model", nargs="?", default="")
    p.add_argument("ref", nargs="?", default="", help="version or alias (production, candidate, previous)")
    p.add_argument("other", nargs="?", default="previous", help="second version for diff (default: previous)")
    p.add_argument("--registry", help="registry URI (default $MLCYCLE_REGISTRY or .mlcycle/registry)")
    p.add_argument("--why", default="", help="reason recorded in the audit log (required for promote and rollback)")
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("rollout", help="canary status / promote / abort on a cluster")
    p.add_argument("action", choices=["status", "promote", "abort"])
    p.add_argument("--name", default=defaults.MODEL_NAME, help="InferenceService name")
    p.add_argument("-n", "--namespace", default="mlcycle")
    p.add_argument("--model", default=defaults.MODEL_NAME, help="registered model (aliases and audit)")
    p.add_argument("--registry", help="registry URI whose aliases follow the rollout")
    p.add_argument(
        "--stable-uri", dest="stable_uri", default="", help="abort: storage URI to restore (Serverless mode)"
    )
    p.add_argument("--why", default="")
    p.set_defaults(func=cmd_rollout)
    _add_loop_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "models" and args.action != "list" and not args.model:
        print(f"mlcycle models {args.action}: a model name is required", file=sys.stderr)
        return 2
    if args.command == "models" and args.action == "promote" and not args.ref:
        print("mlcycle models promote: a version is required", file=sys.stderr)
        return 2
    if (
        args.command == "models"
        and args.action in ("promote", "rollback")
        and _reason_missing(f"mlcycle models {args.action}", args.why)
    ):
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
