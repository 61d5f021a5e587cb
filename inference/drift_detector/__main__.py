"""``python -m inference.drift_detector --storage_uri SOURCE [--port 8090] [--backend alibi|scipy] ...``

Serves the drift detector stored in a model version (``drift/``; built from ``reference.parquet``
when absent). As a sidecar, point KServe's logger at http://localhost:PORT; as a service, at its
Service URL.
"""

import argparse
import json
import logging
import os
from pathlib import Path

import uvicorn

from inference.drift_detector.follow import follow
from inference.drift_detector.hooks import CommandHook, KfpHook, retrain_params
from inference.drift_detector.server import DriftService, create_app
from inference.loader import materialize
from mlcycle import drift as stats
from mlcycle.defaults import MAX_BODY_BYTES
from mlcycle.errors import ConfigError
from mlcycle.process import freeze_heap
from mlcycle.registry import parse_model_ref
from mlcycle.schema import VersionFiles
from mlcycle.triggers import TriggerPolicy


def load_detector(version: VersionFiles, backend: str | None) -> stats.Backend:
    directory, contract = version.directory, version.contract
    if (directory / "drift" / "config.json").exists():
        return stats.load(directory / "drift", contract, backend)
    import pandas as pd

    logging.getLogger("mlcycle.drift").warning("version has no saved detector; building one from reference.parquet")
    return stats.build(pd.read_parquet(directory / "reference.parquet"), contract, backend or "alibi")


def _registry_of(storage_uri: str) -> str:
    """The registry of ``uri#model@alias``; s3://bucket/<model>/<version>/ (KServe's storageUri) is taken to be in
    the registry s3://bucket (a registry under a prefix: give --registry)."""
    ref = parse_model_ref(storage_uri)
    if ref is not None:
        return ref.registry_uri
    if storage_uri.startswith("s3://"):
        return "s3://" + storage_uri.removeprefix("s3://").split("/", 1)[0]
    return storage_uri


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--storage_uri", default=os.environ.get("STORAGE_URI", "/mnt/models"))
    p.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 in a container)")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument(
        "--backend",
        choices=stats.BACKENDS,
        default=os.environ.get("MLCYCLE_DRIFT_BACKEND"),
        help="default: as saved (alibi)",
    )
    p.add_argument("--window_size", type=int, default=500)
    p.add_argument("--max_age_s", type=float, default=60.0)
    p.add_argument("--min_window", type=int, default=50)
    p.add_argument("--queue_size", type=int, default=10_000)
    p.add_argument(
        "--max_body_bytes", type=int, default=MAX_BODY_BYTES, help="refuse larger event bodies (413, counted)"
    )
    p.add_argument(
        "--follow_s",
        type=float,
        default=10.0,
        help="serving registry#model@alias: check the alias this often and detect with the version it moves to (0: off)",
    )
    p.add_argument("--consecutive", type=int, default=3, help="drifted windows in a row before the retrain hook runs")
    p.add_argument(
        "--retrain_cooldown_s",
        type=float,
        default=float(os.environ.get("MLCYCLE_RETRAIN_COOLDOWN_S", TriggerPolicy.cooldown_s)),
        help="at most one retrain started per this many seconds; later triggers are held back and counted",
    )
    p.add_argument(
        "--state_dir",
        default=os.environ.get("MLCYCLE_DRIFT_STATE_DIR"),
        help="streak, counters, recent windows and trigger state (drift-state.json, after each window) and the "
        "local retrain logs; resumed on start (default: none, nothing survives a restart)",
    )
    p.add_argument(
        "--retrain_command", default=os.environ.get("MLCYCLE_RETRAIN_COMMAND"), help="local hook: a command to run"
    )
    p.add_argument("--kfp_host", default=os.environ.get("KFP_HOST"), help="KFP hook: the KFP API endpoint")
    p.add_argument(
        "--kfp_package", default=os.environ.get("KFP_PIPELINE_PACKAGE", "/app/pipelines/mlcycle-training.yaml")
    )
    p.add_argument(
        "--kfp_poll_s",
        type=float,
        default=float(os.environ.get("MLCYCLE_KFP_POLL_S", "30")),
        help="KFP hook: read the submitted run's state this often; the next retrain waits for its end",
    )
    p.add_argument(
        "--kfp_poll_give_up_s",
        type=float,
        default=float(os.environ.get("MLCYCLE_KFP_POLL_GIVE_UP_S", "600")),
        help="KFP hook: after this long without an answer about the run, count it as failed and no longer running",
    )
    p.add_argument(
        "--registry",
        default=os.environ.get("MLCYCLE_REGISTRY"),
        help="KFP hook: the s3:// registry holding the captured traffic (default: from an s3:// storage_uri)",
    )
    p.add_argument(
        "--retrain_days",
        type=float,
        default=float(os.environ.get("MLCYCLE_RETRAIN_DAYS", "7")),
        help="KFP hook: retrain on the captured, labelled traffic of this many days",
    )
    p.add_argument(
        "--retrain_params",
        default=os.environ.get("MLCYCLE_RETRAIN_PARAMS", "{}"),
        help="KFP hook: JSON of further training_pipeline arguments (e.g. namespace, inference_service)",
    )
    args = p.parse_args()
    if args.retrain_cooldown_s < 0 or args.consecutive < 1:
        p.error(
            f"--retrain_cooldown_s must be >= 0 and --consecutive >= 1 (got {args.retrain_cooldown_s}, {args.consecutive})"
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    version = materialize(args.storage_uri)
    detector = load_detector(version, args.backend)
    hook = None
    if args.kfp_host:
        registry = args.registry or _registry_of(args.storage_uri)
        try:
            params = retrain_params(
                version.contract, version.metadata.model, registry, args.retrain_days, json.loads(args.retrain_params)
            )
            hook = KfpHook(
                args.kfp_host,
                args.kfp_package,
                params=params,
                poll_s=args.kfp_poll_s,
                poll_give_up_s=args.kfp_poll_give_up_s,
            )
        except (ConfigError, ValueError) as e:
            p.error(f"{e} (--registry / MLCYCLE_REGISTRY names the s3:// registry when --storage_uri is a local path)")
    elif args.retrain_command:
        try:
            hook = CommandHook(args.retrain_command, Path(args.state_dir) / "retrain-logs" if args.state_dir else None)
        except ConfigError as e:
            p.error(f"--retrain_command: {e}")
    service = DriftService(
        detector,
        version.metadata.model,
        version.metadata.version,
        args.window_size,
        args.max_age_s,
        args.min_window,
        args.queue_size,
        args.consecutive,
        hook,
        retrain_cooldown_s=args.retrain_cooldown_s,
        state_dir=args.state_dir,
    )
    follow(service, args.storage_uri, args.follow_s, lambda files: load_detector(files, args.backend))
    logging.getLogger("mlcycle.drift").info("start-up heap frozen for the garbage collector: %d objects", freeze_heap())
    uvicorn.run(
        create_app(service, args.max_body_bytes), host=args.host, port=args.port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
