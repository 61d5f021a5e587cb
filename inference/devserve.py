"""Start the predictor and the drift detector as local processes (``make serve``, tests, benchmarks).

``python -m inference.devserve [--registry DIR] [--model NAME]`` (or ``mlcycle serve``) serves the
registry's production version: the predictor on :8080 (REST) / :8081 (gRPC) forwarding its payload
log to the drift detector on :8090, the way KServe's logger would in a cluster; ports are options.
SIGINT or SIGTERM stops every process it started.
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mlcycle import defaults
from mlcycle.errors import ProcessError
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


def _module_argv(module: str, flags: dict, extra: tuple[str, ...]) -> list[str]:
    """``python -m module --flag value ... *extra`` with this interpreter."""
    return [sys.executable, "-m", module, *(a for k, v in flags.items() for a in (f"--{k}", str(v))), *extra]


def _spawn(argv: list[str], url: str, health: str, log: Path, timeout: float, env: dict | None = None) -> Proc:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})}
        )
    try:
        wait_http_ok(url + health, timeout, argv[2], process, f"; log: {log}")
    except ProcessError as e:
        Proc(process, url, log).stop()
        raise ProcessError(f"{e}\n{log.read_text()[-2000:]}") from e
    except BaseException:  # Ctrl-C / SIGTERM while waiting: the child has its own session, stop it here
        Proc(process, url, log).stop()
        raise
    return Proc(process, url, log)


def start_predictor(
    source: str,
    name: str,
    http_port: int,
    grpc_port: int,
    log: Path,
    *extra: str,
    timeout: float = 60,
    env: dict | None = None,
) -> Proc:
    """``env``: extra environment, e.g. ``{"MLCYCLE_PAYLOAD_LOG_MODE": "all"}`` to log responses too."""
    flags = {"model_name": name, "storage_uri": source, "http_port": http_port, "grpc_port": grpc_port}
    argv = _module_argv("inference.predictor", flags, extra)
    return _spawn(argv, f"http://127.0.0.1:{http_port}", f"/v2/models/{name}/ready", log, timeout, env)


def start_drift(source: str, port: int, log: Path, *extra: str, timeout: float = 90) -> Proc:
    argv = _module_argv("inference.drift_detector", {"storage_uri": source, "port": port}, extra)
    return _spawn(argv, f"http://127.0.0.1:{port}", "/healthz", log, timeout)


def start_capture(
    registry: str,
    model: str,
    port: int,
    state_dir: Path,
    log: Path,
    *extra: str,
    timeout: float = 60,
    env: dict | None = None,
) -> Proc:
    """``env``: extra environment, e.g. the capture user's own S3 keys (``AWS_ACCESS_KEY_ID``, ...)."""
    flags = {"registry": registry, "model": model, "port": port, "state_dir": state_dir}
    argv = _module_argv("inference.capture", flags, extra)
    return _spawn(argv, f"http://127.0.0.1:{port}", "/healthz", log, timeout, env)


def serve(
    registry: str,
    model: str,
    ref: str = "production",
    http_port: int = 8080,
    grpc_port: int = 8081,
    drift_port: int | None = 8090,
    window_size: int = 500,
    retrain_command: str = "",
    logs: Path = Path(".mlcycle/logs"),
) -> int:
    """Serve ``registry#model@ref`` until SIGINT or SIGTERM, then stop every process it started."""
    registry = str(Path(registry).resolve()) if "://" not in registry else registry
    source = f"{registry}#{model}@{ref}"

    def _terminate(signum, _frame):  # SIGTERM (kill, make forwarding it) ends the same way as Ctrl-C
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    started: list[Proc] = []
    try:
        extra = []
        if drift_port is not None:
            drift_extra = ["--window_size", str(window_size), "--state_dir", str(logs.parent / "drift-state")] + (
                ["--retrain_command", retrain_command] if retrain_command else []
            )
            started.append(start_drift(source, drift_port, logs / "drift.log", *drift_extra))
            extra = ["--payload_log_url", f"{started[-1].url}/events"]
        predictor = start_predictor(source, model, http_port, grpc_port, logs / "predictor.log", *extra)
        started.append(predictor)
        print(
            f"predictor: {predictor.url}/v1/models/{model}:predict  {predictor.url}/v2/models/{model}/infer  grpc 127.0.0.1:{grpc_port}"
        )
        if drift_port is not None:
            print(f"drift detector: {started[0].url}/status  {started[0].url}/report  {started[0].url}/metrics")
        print(f"logs in {logs}/ — Ctrl-C (or SIGTERM) stops everything", flush=True)
        while all(p.process.poll() is None for p in started):
            time.sleep(0.5)
        dead = next(p for p in started if p.process.poll() is not None)
        print(f"a server exited (code {dead.process.returncode}); see {dead.log}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in reversed(started):
            proc.stop()
        signal.signal(signal.SIGTERM, previous)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--registry", default=os.environ.get("MLCYCLE_REGISTRY", defaults.LOCAL_REGISTRY))
    p.add_argument("--model", default=defaults.MODEL_NAME)
    p.add_argument("--ref", default="production")
    p.add_argument("--http_port", type=int, default=8080)
    p.add_argument("--grpc_port", type=int, default=8081)
    p.add_argument("--drift_port", type=int, default=8090)
    p.add_argument("--window_size", type=int, default=500)
    p.add_argument("--retrain_command", default="", help="run on sustained drift (default: none)")
    args = p.parse_args()
    return serve(
        args.registry,
        args.model,
        args.ref,
        args.http_port,
        args.grpc_port,
        args.drift_port,
        args.window_size,
        args.retrain_command,
    )


if __name__ == "__main__":
    sys.exit(main())
