"""The canary loop without a cluster: two real KServe predictor processes (stable and canary), a
load generator that splits traffic by the current weight and exports per-revision metrics, a real
Prometheus scraping it, and an adapter that moves the weight and the registry aliases."""

import os
import random
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from mlcycle.errors import ToolMissing
from mlcycle.process import free_port, wait_http_ok
from mlcycle.rollout.policy import Action, Policy, with_checks


def local_policy(
    ready_timeout_s: float,
    interval_s: float = 2,
    min_requests: int = 15,
    max_metric_errors: int = 2,
    max_p99_ms: float = 500.0,
) -> Policy:
    """A rollout policy paced for this loop (seconds, not minutes): the canary steps 25 % at a time to 50 %, two
    failed checks roll it back, a check allows at most 2 % errors and a p99 of ``max_p99_ms`` (no drift check)."""
    pace = {"interval_s": interval_s, "min_requests": min_requests, "max_metric_errors": max_metric_errors}
    steps = {"threshold": 2, "step_weight": 25, "max_weight": 50, "ready_timeout_s": ready_timeout_s}
    return with_checks(None, max_error_rate=0.02, max_p99_ms=max_p99_ms, drift=False, **pace, **steps)


class Backend:
    def __init__(self, revision: str, url: str, model: str):
        self.revision, self.url, self.model = revision, url, model

    @property
    def predict_url(self) -> str:
        return f"{self.url}/v1/models/{self.model}:predict"


class TrafficSplitter:
    """Open-loop load generator: ``rate`` requests/s, each to the canary with probability weight/100."""

    def __init__(self, stable: Backend, payload: dict, rate: float = 50.0, workers: int = 8, seed: int = 0):
        self.stable, self.canary, self.weight = stable, None, 0
        self.payload, self.rate = payload, rate
        self.lock = threading.Lock()
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mlcycle_lb_requests", "Requests by revision and status", ["revision", "code"], registry=self.registry
        )
        self.latency = Histogram(
            "mlcycle_lb_request_seconds",
            "Latency by revision",
            ["revision"],
            registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
        )
        self.sent: dict[str, int] = {}
        self.port = free_port()
        self._server = None
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(workers)
        self._thread: threading.Thread | None = None
        self._rng = random.Random(seed)
        self._session = requests.Session()

    def route(self, canary: Backend | None, weight: int) -> None:
        with self.lock:
            self.canary, self.weight = canary, weight

    def promote(self) -> None:
        with self.lock:
            self.stable, self.canary, self.weight = self.canary, None, 0

    def _pick(self) -> Backend:
        with self.lock:
            if self.canary is not None and self._rng.random() * 100 < self.weight:
                return self.canary
            return self.stable

    def _send(self, backend: Backend) -> None:
        start = time.perf_counter()
        try:
            code = str(self._session.post(backend.predict_url, json=self.payload, timeout=5).status_code)
        except requests.RequestException:
            code = "599"
        self.latency.labels(backend.revision).observe(time.perf_counter() - start)
        self.requests.labels(backend.revision, code).inc()

    def _loop(self) -> None:
        period, next_at = 1.0 / self.rate, time.monotonic()
        while not self._stop.is_set():
            backend = self._pick()
            self.sent[backend.revision] = self.sent.get(backend.revision, 0) + 1
            self._pool.submit(self._send, backend)
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def start(self) -> "TrafficSplitter":
        self._server = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._server:
            self._server[0].shutdown()


def prometheus_binary(binary: str | None = None) -> str:
    """The Prometheus server to run: ``binary`` if given, else $PROMETHEUS_BIN (``make test`` sets it from
    scripts/ensure-prometheus.sh), else ``prometheus`` on PATH; a named one that is not an executable is an error."""
    for given, where in ((binary, "the binary argument"), (os.environ.get("PROMETHEUS_BIN"), "$PROMETHEUS_BIN")):
        if given:
            found = shutil.which(given)
            if found is None:
                raise ToolMissing(f"prometheus binary {given!r} ({where}) is not an executable file")
            return found
    found = shutil.which("prometheus")
    if found is None:
        raise ToolMissing(
            "no prometheus binary: pass one (binary=...), set PROMETHEUS_BIN or put 'prometheus' on PATH"
            " (scripts/ensure-prometheus.sh installs Debian's package and prints its path)"
        )
    return found


class PrometheusServer:
    """A real Prometheus (Debian package) scraping the given targets every second."""

    def __init__(self, workdir: Path, targets: list[str], binary: str | None = None):
        self.binary = prometheus_binary(binary)
        self.workdir, self.targets, self.port = Path(workdir), targets, free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> "PrometheusServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        targets = ", ".join(f"'{t}'" for t in self.targets)
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"scrape_configs:\n  - job_name: mlcycle\n    static_configs:\n      - targets: [{targets}]\n"
        )
        log = open(self.workdir / "prometheus.log", "ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_http_ok(
            f"{self.url}/-/ready", timeout, "Prometheus", self.proc, f"; see {self.workdir / 'prometheus.log'}"
        )
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class LocalAdapter:
    """Moves the splitter's weight and the registry's aliases; readiness from the canary's own endpoint."""

    def __init__(self, splitter: TrafficSplitter, canary: Backend, registry=None, model: str = "", log=print):
        self.splitter, self.canary, self.registry, self.model, self.log = splitter, canary, registry, model, log
        self.applied: list[Action] = []

    def observe_canary(self) -> tuple[str | None, bool]:
        canary = self.canary
        if canary is None:
            return None, False
        try:
            ready = requests.get(f"{canary.url}/v2/models/{canary.model}/ready", timeout=1).status_code == 200
        except requests.RequestException:
            ready = False
        return canary.revision, ready

    def replace_canary(self, canary: Backend | None) -> None:
        """A new canary revision (or none): traffic to the old one stops at once."""
        self.canary = canary
        self.splitter.route(canary, 0)

    def apply(self, action: Action) -> None:
        self.applied.append(action)
        if action.kind in ("set_weight", "restart", "wait"):
            self.splitter.route(self.canary, action.state.weight)
        elif action.kind == "rollback":
            self.splitter.route(None, 0)
            if self.registry is not None:
                self.registry.audit(
                    self.model,
                    "rollback",
                    version=action.state.canary,
                    actor="rollout-controller",
                    why=action.reason,
                    evidence=action.evidence,
                )
        elif action.kind == "promote":
            self.splitter.route(self.canary, 100)
            self.splitter.promote()
            if self.registry is not None:
                self.registry.promote(
                    self.model,
                    action.state.canary,
                    actor="rollout-controller",
                    why=action.reason,
                    evidence=action.evidence,
                )
