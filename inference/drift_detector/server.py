"""The drift detector service: CloudEvents in, windows of rows, detection off the request path,
Prometheus metrics and a JSON status out, a retrain hook on sustained drift.

The request handler only decodes the event and puts its rows on a bounded queue (overflow: 503 and
a dropped-events counter, never a wait). One consumer task moves rows into the current window; a
full or old-enough window is tested in a worker thread.
"""

import asyncio
import logging
import time
from collections import deque

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from inference.drift_detector.events import BadEvent, decode
from mlcycle.drift import Backend

log = logging.getLogger("mlcycle.drift")


class Metrics:
    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.events = Counter("mlcycle_drift_events_received_total", "Accepted CloudEvents", registry=r)
        self.processed = Counter("mlcycle_drift_events_processed_total", "Events whose rows reached a window", registry=r)
        self.dropped = Counter("mlcycle_drift_events_dropped_total", "Events shed because the queue was full", registry=r)
        self.rejected = Counter("mlcycle_drift_events_rejected_total", "Events refused as malformed (HTTP 400)", registry=r)
        self.rows = Counter("mlcycle_drift_rows_total", "Rows tested for drift", registry=r)
        self.windows = Counter("mlcycle_drift_windows_total", "Windows tested", ["drift"], registry=r)
        self.flag = Gauge("mlcycle_drift_detected", "1 if the last window drifted", registry=r)
        self.p_value = Gauge("mlcycle_drift_feature_p_value", "Per-feature p-value of the last window", ["feature"], registry=r)
        self.distance = Gauge("mlcycle_drift_feature_distance", "Per-feature test statistic of the last window", ["feature"], registry=r)
        self.psi = Gauge("mlcycle_drift_feature_psi", "Per-feature population stability index of the last window", ["feature"], registry=r)
        self.queue = Gauge("mlcycle_drift_queue_depth", "Events waiting", registry=r)
        self.retrains = Counter("mlcycle_drift_retrain_triggers_total", "Retrain hook calls", registry=r)
        self.retrain_failures = Counter("mlcycle_drift_retrain_failures_total",
                                        "Retrain hook calls that raised, or whose run failed later", registry=r)


class DriftService:
    def __init__(self, detector: Backend, model: str, version: str, window_size: int = 500, max_age_s: float = 60.0,
                 min_window: int = 50, queue_size: int = 10_000, consecutive: int = 3, hook=None):
        self.detector, self.model, self.version = detector, model, version
        self.features = [f.name for f in detector.encoder.features]
        self.window_size, self.max_age_s, self.min_window = window_size, max_age_s, min_window
        self.consecutive, self.hook = consecutive, hook
        self.queue: asyncio.Queue = asyncio.Queue(queue_size)
        self.metrics = Metrics()
        self.buffer: list[pd.DataFrame] = []
        self.buffered = 0
        self.window_started = 0.0
        self.streak = 0
        self.history: deque = deque(maxlen=20)
        self.hook_results: deque = deque(maxlen=20)
        self.counts = {"received": 0, "processed": 0, "dropped": 0, "rejected": 0, "windows": 0}
        self._tasks: list[asyncio.Task] = []
        self._detecting = asyncio.Lock()
        if hasattr(hook, "on_failure"):  # what a hook started may fail after it returned
            hook.on_failure = self.hook_failed

    # request path ---------------------------------------------------------------------------
    def offer(self, headers: dict, body: bytes) -> tuple[int, dict]:
        try:
            frame = decode(headers, body, self.features)
        except BadEvent as e:
            self.counts["rejected"] += 1
            self.metrics.rejected.inc()
            return 400, {"error": str(e)}
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.counts["dropped"] += 1
            self.metrics.dropped.inc()
            return 503, {"error": "drift detector overloaded: event dropped and counted"}
        self.counts["received"] += 1
        self.metrics.events.inc()
        self.metrics.queue.set(self.queue.qsize())
        return 200, {"accepted_rows": len(frame)}  # 200: KServe's agent logs anything else as a lost event

    # background -----------------------------------------------------------------------------
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._consume()), loop.create_task(self._tick())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def _consume(self) -> None:
        while True:
            frame = await self.queue.get()
            if not self.buffer:
                self.window_started = time.monotonic()
            self.buffer.append(frame)
            self.buffered += len(frame)
            self.counts["processed"] += 1
            self.metrics.processed.inc()
            self.metrics.queue.set(self.queue.qsize())
            if self.buffered >= self.window_size:
                await self._detect()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.max_age_s / 4))
            if self.buffered >= self.min_window and time.monotonic() - self.window_started >= self.max_age_s:
                await self._detect()

    async def _detect(self) -> None:
        async with self._detecting:
            if not self.buffered:
                return
            window = pd.concat(self.buffer, ignore_index=True)
            self.buffer, self.buffered = [], 0
            report = await asyncio.to_thread(self.detector.score, window)
            self._record(report.as_dict())

    def _record(self, report: dict) -> None:
        m = self.metrics
        self.counts["windows"] += 1
        m.rows.inc(report["n"])
        m.windows.labels(str(report["is_drift"]).lower()).inc()
        m.flag.set(1 if report["is_drift"] else 0)
        for name in self.features:
            m.p_value.labels(name).set(report["p_values"][name])
            m.distance.labels(name).set(report["distances"][name])
            m.psi.labels(name).set(report["psi"][name])
        self.streak = self.streak + 1 if report["is_drift"] else 0
        report["at"] = time.time()
        report["streak"] = self.streak
        self.history.append(report)
        log.info("window of %d rows: drift=%s streak=%d", report["n"], report["is_drift"], self.streak)
        if self.streak >= self.consecutive and self.hook is not None:
            m.retrains.inc()
            try:
                result = self.hook(report)
            except Exception as e:  # a failing hook must not stop detection
                result = f"retrain hook failed: {e}"
                m.retrain_failures.inc()
            self.hook_results.append({"at": time.time(), "result": result})
            log.warning("sustained drift (%d windows): %s", self.streak, result)
            self.streak = 0

    def hook_failed(self, reason: str) -> None:
        """Called (from any thread) when what a hook started failed later: counted and shown in the status."""
        self.metrics.retrain_failures.inc()
        self.hook_results.append({"at": time.time(), "result": f"retrain failed: {reason}"})

    def status(self) -> dict:
        last = self.history[-1] if self.history else None
        return {
            "model": self.model, "version": self.version, "backend": self.detector.name, "features": self.features,
            "window_size": self.window_size, "max_age_s": self.max_age_s, "consecutive_for_retrain": self.consecutive,
            "counts": {**self.counts, "queued": self.queue.qsize(), "buffered_rows": self.buffered},
            "drift": bool(last and last["is_drift"]), "streak": self.streak, "last_window": last,
            "recent_windows": [{"at": h["at"], "n": h["n"], "is_drift": h["is_drift"]} for h in self.history],
            "retrain": list(self.hook_results),
        }

    async def flush(self) -> None:
        """Test the partial window now (used by `make traffic` and tests)."""
        while not self.queue.empty():
            await asyncio.sleep(0.01)
        await self._detect()


def create_app(service: DriftService) -> FastAPI:
    app = FastAPI(title="mlcycle drift detector", docs_url=None, redoc_url=None)

    @app.on_event("startup")
    async def _start():
        service.start()

    @app.on_event("shutdown")
    async def _stop():
        await service.stop()

    @app.post("/")
    @app.post("/events")
    async def events(request: Request):
        status, body = service.offer(dict(request.headers), await request.body())
        return JSONResponse(body, status_code=status)

    @app.get("/status")
    async def status():
        return service.status()

    @app.post("/flush")
    async def flush():
        await service.flush()
        return service.status()

    @app.get("/metrics")
    async def metrics():
        return Response(generate_latest(service.metrics.registry), media_type="text/plain; version=0.0.4")

    @app.get("/healthz")
    async def healthz():
        return {"live": True}

    return app
