"""``python -m inference.capture --registry URI --model NAME [--port 8091] [--state_dir DIR] ...``

Receives KServe's payload log (``logger.mode: all``) and late labels; writes captured traffic and
labels as Parquet parts under ``<registry>/<model>/traffic|labels/`` (layout: mlcycle.capture).
With ``--forward_url`` every request event is passed on (e.g. to the drift detector), since KServe's
logger posts to one URL only.
"""

import argparse
import logging
import os
from pathlib import Path

import uvicorn

from inference.capture.server import create_app
from inference.capture.service import CaptureService
from mlcycle import defaults
from mlcycle.capture import CaptureStore
from mlcycle.process import freeze_heap


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--registry", default=os.environ.get("MLCYCLE_REGISTRY", defaults.LOCAL_REGISTRY))
    p.add_argument("--model", default=defaults.MODEL_NAME)
    p.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 in a container)")
    p.add_argument("--port", type=int, default=8091)
    p.add_argument(
        "--state_dir",
        default=os.environ.get("MLCYCLE_CAPTURE_STATE", ".mlcycle/capture"),
        help="journal and counters (a persistent volume in a cluster)",
    )
    p.add_argument("--flush_rows", type=int, default=1000, help="write a part once this many rows are buffered")
    p.add_argument("--flush_age_s", type=float, default=60.0, help="... or once the oldest buffered row is this old")
    p.add_argument("--max_buffer_rows", type=int, default=100_000, help="refuse (503) and count rows beyond this")
    p.add_argument("--join_timeout_s", type=float, default=60.0, help="wait this long for a request's response")
    p.add_argument("--label_window_days", type=float, default=7.0, help="labels accepted for requests this recent")
    p.add_argument("--retention_days", type=float, default=30.0, help="delete parts older than this (0: keep)")
    p.add_argument("--retention_bytes", type=int, default=0, help="keep at most this many bytes of traffic (0: no cap)")
    p.add_argument(
        "--forward_url",
        default=os.environ.get("MLCYCLE_CAPTURE_FORWARD_URL"),
        help="pass request events on to this URL (the drift detector's /events)",
    )
    p.add_argument(
        "--max_body_bytes",
        type=int,
        default=defaults.MAX_BODY_BYTES,
        help="refuse larger request bodies with 413 before reading them whole (counted)",
    )
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    store = CaptureStore(args.registry, args.model, scratch_dir=Path(args.state_dir) / "scratch")
    features = None
    try:  # the production contract's feature order lets V1 rows given as lists be named
        features = store.registry.metadata(args.model, "production").contract.feature_names
    except Exception as e:
        logging.getLogger("mlcycle.capture").warning("no production contract (%s): V1 list rows will be refused", e)
    service = CaptureService(
        store,
        Path(args.state_dir),
        args.flush_rows,
        args.flush_age_s,
        args.max_buffer_rows,
        args.join_timeout_s,
        args.label_window_days,
        args.retention_days or None,
        args.retention_bytes or None,
        features,
        args.forward_url,
    )
    logging.getLogger("mlcycle.capture").info(
        "start-up heap frozen for the garbage collector: %d objects", freeze_heap()
    )
    uvicorn.run(create_app(service, args.max_body_bytes), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
