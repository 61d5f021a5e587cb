"""``python -m inference.predictor --model_name NAME --storage_uri SOURCE [KServe's own flags]``.

SOURCE: a directory (KServe mounts the version at /mnt/models), ``s3://bucket/model/version/``,
or a registry reference ``<registry-uri>#<model>@<alias>``.
"""

import argparse
import logging
import os

import kserve
from kserve import model_server

from inference.predictor.fastrest import quiet_access_log
from inference.predictor.model import MlcycleModel
from mlcycle.defaults import MAX_BODY_BYTES
from mlcycle.process import freeze_heap

parser = argparse.ArgumentParser(parents=[model_server.parser], description=__doc__)
parser.add_argument(
    "--storage_uri", default=os.environ.get("STORAGE_URI", "/mnt/models"), help="model version to serve"
)
parser.add_argument(
    "--max_batch_rows", type=int, default=10_000, help="refuse larger batches (400) before any model work"
)
parser.add_argument(
    "--max_body_bytes",
    type=int,
    default=MAX_BODY_BYTES,
    help="refuse larger REST bodies (413); gRPC uses --grpc_max_receive_message_length",
)
parser.add_argument(
    "--payload_log_url",
    default=os.environ.get("MLCYCLE_PAYLOAD_LOG_URL"),
    help="embedded mode: forward requests as CloudEvents here",
)
parser.add_argument(
    "--inline_rows",
    type=int,
    default=1000,
    help="score batches up to this many rows on the event loop (no thread hop); larger in a thread",
)
parser.add_argument(
    "--fast_path_max_rows",
    type=int,
    default=32,
    help="batches up to this many rows on the compiled fast path, larger ones on the native booster",
)
parser.add_argument(
    "--access_log",
    action=argparse.BooleanOptionalAction,
    default=False,
    help="log one line per request (off by default: it costs more than scoring a row)",
)
parser.add_argument(
    "--fast_rest",
    action=argparse.BooleanOptionalAction,
    default=True,
    help="answer plain JSON V1/V2 predict requests without FastAPI's per-request models (fastrest.py)",
)
parser.add_argument(
    "--fast_grpc",
    action=argparse.BooleanOptionalAction,
    default=True,
    help="answer plain gRPC ModelInfer calls without KServe's per-call conversions and interceptors (fastgrpc.py)",
)
parser.add_argument(
    "--follow_s",
    type=float,
    default=10.0,
    help="serving registry#model@alias: check the alias this often and load the version it moves to (0: off)",
)
parser.add_argument(
    "--fault_delay_ms", type=float, default=0.0, help="resilience testing only: sleep this long in every scoring call"
)
parser.add_argument(
    "--fault_error_rate",
    type=float,
    default=0.0,
    help="resilience testing only: fail this share of predictions with 500",
)


def main() -> None:
    args, _ = parser.parse_known_args()
    model = MlcycleModel(
        args.model_name,
        args.storage_uri,
        args.max_batch_rows,
        args.payload_log_url,
        args.fault_delay_ms,
        fault_error_rate=args.fault_error_rate,
        inline_rows=args.inline_rows,
        fast_path_max_rows=args.fast_path_max_rows,
    )
    try:
        model.load()
    except Exception:
        logging.getLogger("mlcycle").exception("model load failed; refusing to serve %s", args.storage_uri)
        raise SystemExit(3) from None
    from kserve.model_server import app

    from inference.predictor.fastrest import configure_rest

    model.rest_options = {
        "max_body_bytes": args.max_body_bytes,
        "fast_rest": args.fast_rest,
        "access_log": args.access_log,
    }
    configure_rest(app, model, **model.rest_options)
    if args.fast_grpc:
        from inference.predictor.fastgrpc import install

        install(model, access_log=args.access_log)
    model.follow(args.follow_s)
    server = kserve.ModelServer(http_port=args.http_port, grpc_port=args.grpc_port)
    quiet_access_log(args.access_log)
    log = logging.getLogger("mlcycle")
    log.info("event loop: %s (--event_loop %s)", use_event_loop(args.event_loop), args.event_loop)
    log.info("start-up heap frozen for the garbage collector: %d objects", freeze_heap())
    server.start([model])


def use_event_loop(choice: str) -> str:
    """The loop KServe's ``--event_loop`` asks for. kserve 0.20 hands it to uvicorn's Config, but starts its servers
    under its own ``asyncio.run``, where uvicorn never picks the loop: "auto" (uvloop when installed) and "uvloop"
    end up on asyncio's default loop. Set the policy that ``asyncio.run`` uses; returns the loop's name."""
    import asyncio

    if choice == "asyncio":
        return "asyncio"
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SystemExit("--event_loop uvloop: uvloop is not installed") from None
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.set_event_loop(asyncio.new_event_loop())  # KServe's setup_event_loop asks for a current loop first
    return "uvloop"


if __name__ == "__main__":
    main()
