"""Start the predictor and the drift detector as local processes (``make serve``, tests, benchmarks).

``python -m inference.devserve [--registry DIR] [--model NAME]`` serves the registry's production
version: the predictor on :8080 (REST) / :8081 (gRPC) forwarding its payload log to the drift
detector on :8090, the way KServe's logger would in a cluster.
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mlcycle.errors import MlcycleError
from mlcycle.process import wait_http_ok


@dataclass
class Proc:
    process: subprocess.Popen
    url: str
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _spawn(argv: list[str], url: str, health: str, log: Path, timeout: float, env: dict | None = None) -> Proc:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})})
    try:
        wait_http_ok(url + health, timeout, argv[2], process, f"; log: {log}")
    except MlcycleError as e:
        Proc(process, url, log).stop()
        raise MlcycleError(f"{e}\n{log.read_text()[-2000:]}") from e
    return Proc(process, url, log)


def start_predictor(source: str, name: str, http_port: int, grpc_port: int, log: Path, *extra: str, timeout: float = 60) -> Proc:
    argv = [sys.executable, "-m", "inference.predictor", "--model_name", name, "--storage_uri", source,
            "--http_port", str(http_port), "--grpc_port", str(grpc_port), *extra]
    return _spawn(argv, f"http://127.0.0.1:{http_port}", f"/v2/models/{name}/ready", log, timeout)


def start_drift(source: str, port: int, log: Path, *extra: str, timeout: float = 90) -> Proc:
    argv = [sys.executable, "-m", "inference.drift_detector", "--storage_uri", source, "--port", str(port), *extra]
    return _spawn(argv, f"http://127.0.0.1:{port}", "/healthz", log, timeout)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--registry", default=os.environ.get("MLCYCLE_REGISTRY", ".mlcycle/registry"))
    p.add_argument("--model", default="fraud-detector")
    p.add_argument("--ref", default="production")
    p.add_argument("--http_port", type=int, default=8080)
    p.add_argument("--grpc_port", type=int, default=8081)
    p.add_argument("--drift_port", type=int, default=8090)
    p.add_argument("--window_size", type=int, default=500)
    p.add_argument("--retrain_command", default="", help="run on sustained drift (default: none)")
    args = p.parse_args()
    registry = str(Path(args.registry).resolve()) if "://" not in args.registry else args.registry
    source = f"{registry}#{args.model}@{args.ref}"
    logs = Path(".mlcycle/logs")
    drift_extra = ["--window_size", str(args.window_size)] + (["--retrain_command", args.retrain_command] if args.retrain_command else [])
    drift = start_drift(source, args.drift_port, logs / "drift.log", *drift_extra)
    try:
        predictor = start_predictor(source, args.model, args.http_port, args.grpc_port, logs / "predictor.log",
                                    "--payload_log_url", f"{drift.url}/events")
    except BaseException:
        drift.stop()
        raise
    print(f"predictor: {predictor.url}/v1/models/{args.model}:predict  {predictor.url}/v2/models/{args.model}/infer  grpc 127.0.0.1:{args.grpc_port}")
    print(f"drift detector: {drift.url}/status  {drift.url}/metrics   (logs in {logs}/)  — Ctrl-C to stop")
    try:
        while predictor.process.poll() is None and drift.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        predictor.stop()
        drift.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
