"""The drift detector service: CloudEvents in, windows of rows, detection off the request path,
Prometheus metrics and a JSON status out, a retrain hook on sustained drift.

The request handler only decodes the event with the predictor's codec (column arrays, no DataFrame)
and puts the batch on a bounded queue (overflow: 503 and a dropped-events counter, never a wait);
a refused event is answered 400 and counted by reason, and none of its rows reaches a window. One
consumer task encodes batches into a preallocated window array (an event larger than the room left
is split across windows, so every window has exactly ``window_size`` rows unless aged out or
flushed). A full or old-enough window is handed to a single detection thread while the next one
fills in a second buffer; the consumer waits only if that thread is still busy with the previous
window, and then the queue absorbs the burst up to its limit.

Retrain triggers go through the core's ``mlcycle.triggers.decide``: at most one start per ``retrain_cooldown_s``,
never while the hook's previous run is still going; a trigger held back is counted
(``mlcycle_drift_retrain_held_back_total{reason}``) and listed in ``/status`` and ``/report``. With a
``state_dir`` the streak, counters, recent window summaries, trigger history and trigger state are written
atomically to ``drift-state.json`` after each tested window (never per event) and resumed from on start; the
rows of an unfinished window are not persisted (after a crash their number is unknown). ``/status``'s
``restart`` block says which it was.
"""

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CollectorRegistry, Counter, Gauge

from inference.drift_detector import fastevents, persist
from inference.drift_detector.events import REASONS, BadEvent, decode
from inference.drift_detector.guard import HELD_REASONS, RetrainGuard
from inference.drift_detector.report import Profile, render_service
from inference.predictor.codec import Batch, Codec
from inference.probes import add_probes
from mlcycle.defaults import MAX_BODY_BYTES
from mlcycle.drift import Backend, Encoder
from mlcycle.follow import AliasFollower
from mlcycle.triggers import TriggerPolicy

log = logging.getLogger("mlcycle.drift")


class Metrics:
    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.events = Counter("mlcycle_drift_events_received_total", "Accepted CloudEvents", registry=r)
        self.processed = Counter(
            "mlcycle_drift_events_processed_total", "Events whose rows reached a window", registry=r
        )
        self.dropped = Counter(
            "mlcycle_drift_events_dropped_total", "Events shed because the queue was full", registry=r
        )
        self.rejected = Counter(
            "mlcycle_drift_events_rejected_total",
            "Events refused (HTTP 400) by reason; none of their rows enters a window",
            ["reason"],
            registry=r,
        )
        self.rows_rejected = Counter(
            "mlcycle_drift_rows_rejected_total",
            "Rows of refused events (where the count is known)",
            ["reason"],
            registry=r,
        )
        for reason in REASONS:
            self.rejected.labels(reason)
            self.rows_rejected.labels(reason)
        self.rows = Counter("mlcycle_drift_rows_total", "Rows tested for drift", registry=r)
        self.windows = Counter("mlcycle_drift_windows_total", "Windows tested", ["drift"], registry=r)
        self.flag = Gauge("mlcycle_drift_detected", "1 if the last window drifted", registry=r)
        self.p_value = Gauge(
            "mlcycle_drift_feature_p_value", "Per-feature p-value of the last window", ["feature"], registry=r
        )
        self.distance = Gauge(
            "mlcycle_drift_feature_distance", "Per-feature test statistic of the last window", ["feature"], registry=r
        )
        self.psi = Gauge(
            "mlcycle_drift_feature_psi",
            "Per-feature population stability index of the last window",
            ["feature"],
            registry=r,
        )
        self.queue = Gauge("mlcycle_drift_queue_depth", "Events waiting", registry=r)
        self.retrains = Counter("mlcycle_drift_retrain_triggers_total", "Retrain hook calls", registry=r)
        self.held_back = Counter(
            "mlcycle_drift_retrain_held_back_total",
            "Retrain triggers not started: cooldown since the last start, or the previous run still going",
            ["reason"],
            registry=r,
        )
        for reason in HELD_REASONS:
            self.held_back.labels(reason)
        self.restarts = Gauge("mlcycle_drift_restarts", "Times this detector resumed from its state file", registry=r)
        self.retrain_failures = Counter(
            "mlcycle_drift_retrain_failures_total",
            "Retrain hook calls that raised, or whose run failed later",
            registry=r,
        )
        self.served_version = Gauge(
            "mlcycle_drift_served_version",
            "1 for the model version whose detector tests the windows",
            ["model", "version"],
            registry=r,
        )
        self.follow_failures = Counter(
            "mlcycle_drift_follow_failures_total",
            "Alias moves to a version whose detector failed to load (the old one kept detecting)",
            ["model"],
            registry=r,
        )
        self.discarded = Counter(
            "mlcycle_drift_rows_discarded_total",
            "Rows of the old version (its unfinished window and queued events) dropped at a version switch",
            registry=r,
        )


class Window:
    """One window's rows, encoded into a preallocated array as batches arrive."""

    def __init__(self, encoder: Encoder, capacity: int):
        self.encoder = encoder
        self.x = np.empty((capacity, len(encoder.features)), dtype=np.float64)
        self.n = 0
        self.started = 0.0

    @property
    def full(self) -> bool:
        return self.n == len(self.x)

    def append(self, batch: Batch, start: int = 0) -> int:
        """Encode rows ``start:`` of ``batch`` into the room left; returns how many rows were taken."""
        take = min(batch.n - start, len(self.x) - self.n)
        if take <= 0:
            return 0
        if self.n == 0:
            self.started = time.monotonic()
        columns = batch.columns
        if start or take < batch.n:
            columns = {k: v[start : start + take] for k, v in columns.items()}
        self.encoder.encode_columns(columns, take, out=self.x[self.n : self.n + take])
        self.n += take
        return take

    @property
    def rows(self) -> np.ndarray:
        return self.x[: self.n]


class DriftService:
    def __init__(
        self,
        detector: Backend,
        model: str,
        version: str,
        window_size: int = 500,
        max_age_s: float = 60.0,
        min_window: int = 50,
        queue_size: int = 10_000,
        consecutive: int = 3,
        hook=None,
        max_batch_rows: int = 10_000,
        retrain_cooldown_s: float = TriggerPolicy.cooldown_s,
        state_dir: Path | str | None = None,
    ):
        self.model = model
        self.window_size, self.max_age_s, self.min_window = window_size, max_age_s, min_window
        self.consecutive, self.hook = consecutive, hook
        self.queue: asyncio.Queue = asyncio.Queue(queue_size)
        self.metrics = Metrics()
        self.metrics.queue.set_function(self.queue.qsize)  # read when scraped, not set on every event
        self._use(detector, version, max_batch_rows)
        self.history: deque = deque(maxlen=20)
        self.follower: AliasFollower | None = None  # set by drift_detector.follow when serving an alias
        self.follow_s = 0.0
        self.switches: deque = deque(maxlen=20)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.counts = {"received": 0, "processed": 0, "dropped": 0, "rejected": 0, "windows": 0}
        self.rejected_by_reason = dict.fromkeys(REASONS, 0)
        self._tasks: list[asyncio.Task] = []
        self._rotating = asyncio.Lock()
        self._testing: asyncio.Task | None = None
        self._detector_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drift-detect")
        policy = TriggerPolicy(drift_windows=consecutive, cooldown_s=retrain_cooldown_s)
        self.guard = RetrainGuard(hook, policy, self.metrics)
        self.guard.on_change = self.save_state
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drift-state")
        self._saved: Future | None = None
        self.started_at = time.time()
        self.restart: dict = {"persisted": False, "started_at": persist.iso(self.started_at)}
        if self.state_dir is not None:
            self._resume()

    def _use(self, detector: Backend, version: str, max_batch_rows: int) -> None:
        """Detect with ``detector`` (of ``version``) from now on: its decoder, empty window buffers and report bins;
        the streak starts at 0. At start and at a version switch."""
        self.detector, self.version = detector, version
        self.codec = Codec(detector.encoder.contract, max_batch_rows)  # the predictor's own decoder and rules
        self.features = [f.name for f in detector.encoder.features]
        self.window = Window(detector.encoder, self.window_size)
        self._spare = Window(detector.encoder, self.window_size)  # filled while self.window is being tested
        self.profile = Profile(detector)  # the report's bins; the window's counts are taken in the detection thread
        self.last_window: dict | None = None
        self.streak = 0
        self.metrics.served_version.labels(self.model, version).set(1)

    @property
    def buffered(self) -> int:
        return self.window.n

    # request path ---------------------------------------------------------------------------
    def offer(self, headers: dict, body: bytes) -> tuple[int, dict]:
        try:
            batch = decode(headers, body, self.codec, self.model)
        except BadEvent as e:
            self.refused(e.reason, e.rows)
            return 400, {"error": str(e), "reason": e.reason}
        try:
            self.queue.put_nowait((self.version, batch))  # tagged: a batch of another version never enters a window
        except asyncio.QueueFull:
            self.counts["dropped"] += 1
            self.metrics.dropped.inc()
            return 503, {"error": "drift detector overloaded: event dropped and counted"}
        self.counts["received"] += 1
        self.metrics.events.inc()
        return 200, {"accepted_rows": batch.n}  # 200: KServe's agent logs anything else as a lost event

    def refused(self, reason: str, rows: int = 0) -> None:
        """Count an event refused for ``reason`` (one of REASONS) and, when known, its rows."""
        self.counts["rejected"] += 1
        self.rejected_by_reason[reason] += 1
        self.metrics.rejected.labels(reason).inc()
        if rows:
            self.metrics.rows_rejected.labels(reason).inc(rows)

    # background -----------------------------------------------------------------------------
    def start(self) -> None:
        log.info(
            "drift windows of %d rows; numeric fill values from the %s",
            self.window_size,
            self.detector.encoder.fill_source,
        )
        loop = self._loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._consume()), loop.create_task(self._tick())]
        if self.follower is not None and self.follow_s > 0:
            self.follower.start(self.follow_s, "drift-follow-alias")

    async def stop(self) -> None:
        if self.follower is not None:
            self.follower.stop()
        close = getattr(self.hook, "close", None)
        if close is not None:  # the KFP hook stops following its run (saved as in progress: followed after a restart)
            close()
        for task in self._tasks:
            task.cancel()
        self._detector_thread.shutdown(wait=False, cancel_futures=True)
        self.save_state(clean=True)
        self._writer.shutdown(wait=True)  # the clean-stop snapshot is on disk

    async def _consume(self) -> None:
        while True:
            version, batch = await self.queue.get()
            try:
                start = 0
                while start < batch.n:
                    if version != self.version:  # decoded for a version no longer served: windows never mix
                        self.metrics.discarded.inc(batch.n - start)
                        break
                    start += self.window.append(batch, start)
                    if self.window.full:
                        await self._rotate()
                self.counts["processed"] += 1
                self.metrics.processed.inc()
            finally:
                self.queue.task_done()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.max_age_s / 4))
            if self.window.n >= self.min_window and time.monotonic() - self.window.started >= self.max_age_s:
                await self._rotate()

    async def _rotate(self) -> None:
        """Hand the current window to the detection thread and fill the spare buffer meanwhile."""
        async with self._rotating:
            if not self.window.n:
                return
            if self._testing is not None:
                await self._testing  # the spare buffer is free once the previous window's test is done
            full, self.window = self.window, self._spare
            self.window.n = 0
            self._spare = full
            self._testing = asyncio.get_running_loop().create_task(
                self._test(full, self.detector, self.profile, self.version)
            )

    async def _test(self, window: Window, detector: Backend, profile: Profile, version: str) -> None:
        loop = asyncio.get_running_loop()
        report, counts = await loop.run_in_executor(self._detector_thread, _score, detector, profile, window.rows)
        report["version"] = version
        self.last_window = {"at": time.time(), "n": report["n"], "version": version, "counts": counts}
        self._record(report)

    async def switch(self, detector: Backend, version: str) -> None:
        """Detect with another version's detector from now on (on the event loop, between windows): the window being
        tested finishes with the old one, the unfinished window and the queued events of the old version are
        discarded (counted), the streak starts again."""
        async with self._rotating:
            if self._testing is not None:
                await self._testing
            old, discarded = self.version, self.window.n
            m = self.metrics
            m.discarded.inc(discarded)
            m.served_version.labels(self.model, old).set(0)
            self._use(detector, version, self.codec.max_batch_rows)
            for gauge in (m.p_value, m.distance, m.psi):
                gauge.clear()  # the old version's features may not exist any more
            m.flag.set(0)
            self.switches.append({"at": time.time(), "from": old, "to": version, "discarded_rows": discarded})
        log.info("now detecting with %s (was %s); %d buffered rows of %s discarded", version, old, discarded, old)

    def follow_failed(self, version: str, error: Exception) -> None:
        """An alias move to a version whose detector could not be loaded: counted; the follower keeps the reason."""
        self.metrics.follow_failures.labels(self.model).inc()

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
            self.guard.trigger(report, self.streak, self.consecutive)
            self.streak = 0
        self.save_state()

    @property
    def hook_results(self) -> deque:
        return self.guard.results

    def status(self) -> dict:
        last = self.history[-1] if self.history else None
        return {
            "model": self.model,
            "version": self.version,
            "backend": self.detector.name,
            "features": self.features,
            "window_size": self.window_size,
            "max_age_s": self.max_age_s,
            "consecutive_for_retrain": self.consecutive,
            "counts": {**self.counts, "queued": self.queue.qsize(), "buffered_rows": self.buffered},
            "rejected_by_reason": dict(self.rejected_by_reason),
            "drift": bool(last and last["is_drift"]),
            "streak": self.streak,
            "last_window": last,
            "recent_windows": [
                {"at": h["at"], "n": h["n"], "is_drift": h["is_drift"], "version": h.get("version")}
                for h in self.history
            ],
            "retrain": [dict(r) for r in self.hook_results],
            "retrain_guard": self.guard.status(),
            "restart": self.restart,
            "follow": None if self.follower is None else self.follower.status(),
            "switches": list(self.switches),
        }

    # persisted state ------------------------------------------------------------------------
    @property
    def state_file(self) -> Path | None:
        return None if self.state_dir is None else self.state_dir / persist.STATE_FILE

    def save_state(self, clean: bool = False) -> None:
        """Write the state file (after each window, at each run's end, at a clean stop); never raises."""
        if self.state_file is None:
            return
        g = self.guard
        with g.lock:
            state = persist.DriftState.model_construct(  # validated when read back, not on every write
                model=self.model,
                version=self.version,
                saved_at=time.time(),
                started_at=self.started_at,
                restarts=self.restart.get("restarts", 0),
                clean_shutdown=clean,
                unsaved_rows=self.window.n if clean else None,
                unsaved_events=self.queue.qsize() if clean else None,
                streak=self.streak,
                counters={n: persist.counter_samples(getattr(self.metrics, n)) for n in persist.PERSISTED_COUNTERS},
                history=list(self.history),
                last_window=self.last_window,
                hook_results=list(g.results),
                triggers=persist.trigger_dict(g.state),
                running_run=g.running_run,
            )
            try:
                text = persist.dumps(state)
            except (TypeError, ValueError) as e:
                log.error("drift state not saved: %s", e)
                self.restart["last_save_error"] = str(e)
                return
            # the file is written by one thread, snapshots in the order taken: the event loop does not wait on disk
            try:
                self._saved = self._writer.submit(self._write, self.state_file, text)
            except RuntimeError:  # stopped (a run that ends after the stop): the writer is done, write here
                self._write(self.state_file, text)

    def _write(self, path: Path, text: str) -> None:
        try:
            persist.write(path, text)
        except OSError as e:
            log.error("drift state not saved to %s: %s", path, e)
            self.restart["last_save_error"] = str(e)

    async def saved(self) -> None:
        """Wait until the last snapshot taken is on disk."""
        if self._saved is not None:
            await asyncio.wrap_future(self._saved)

    def _resume(self) -> None:
        path = self.state_file
        assert path is not None
        self.restart["state_file"] = str(path)
        try:
            saved = persist.read(path)
        except persist.StateFileError as e:
            log.error("%s: starting from zero", e)
            self.restart.update(persisted=True, resumed=False, error=f"{e}; started from zero")
            return
        if saved is None:
            self.restart.update(persisted=True, resumed=False, note="no state file yet: first start in this state_dir")
            return
        same = (saved.model, saved.version) == (self.model, self.version)
        persist.restore_counters(self.metrics, saved.counters)  # the counts of /status are read from the same
        self.counts.update({k: saved.count(name) for k, name in persist.COUNTED.items()})
        for k, v in saved.by_label("rejected", "reason").items():
            if k in self.rejected_by_reason:
                self.rejected_by_reason[k] = v
        self.history.extend(saved.history)
        if same:  # the streak and the last window's bins belong to the version that was tested
            self.streak, self.last_window = saved.streak, saved.last_window
        in_flight = self.guard.resume(saved.trigger_state(), saved.running_run, saved.hook_results)
        clean = saved.clean_shutdown
        self.restart = {
            "persisted": True,
            "resumed": True,
            "resumed_from": str(path),
            "at": persist.iso(self.started_at),
            "started_at": persist.iso(self.started_at),
            "restarts": saved.restarts + 1,
            "previous_started_at": persist.iso(saved.started_at),
            "saved_at": persist.iso(saved.saved_at),
            "previous_shutdown": "clean" if clean else "unclean",
            "previous_version": saved.version,
            "streak": "resumed" if same else f"restarted at 0: the state is of version {saved.version}",
            "resumed_windows": len(saved.history),
            # the unfinished window's rows are never persisted: after a crash their number is unknown
            "unfinished_window_rows_lost": saved.unsaved_rows if clean else "unknown",
            "queued_events_lost": saved.unsaved_events if clean else "unknown",
            "retrain_in_flight": in_flight,
        }
        self.metrics.restarts.set(saved.restarts + 1)
        log.warning(
            "resumed from %s (saved %s): streak %d, %d windows; the unfinished window's rows were not persisted",
            path,
            self.restart["saved_at"],
            self.streak,
            self.counts["windows"],
        )

    async def flush(self) -> None:
        """Test the partial window now, once every queued event is in it (used by `make traffic` and tests)."""
        await self.queue.join()
        await self._rotate()
        if self._testing is not None:
            await self._testing
        await self.saved()


def create_app(service: DriftService, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    app = FastAPI(title="mlcycle drift detector", docs_url=None, redoc_url=None)
    fastevents.install(app, service, max_body_bytes)  # POST / and /events, outermost

    @app.on_event("startup")
    async def _start():
        service.start()

    @app.on_event("shutdown")
    async def _stop():
        await service.stop()

    async def events(request: Request):
        status, body = service.offer(dict(request.headers), await request.body())
        return JSONResponse(body, status_code=status)

    # what FastEvents answers first; kept as routes so the app alone (without the front) serves the same API
    app.add_route("/", events, methods=["POST"])
    app.add_route("/events", events, methods=["POST"])

    @app.get("/status")
    async def status():
        return service.status()

    @app.post("/flush")
    async def flush():
        await service.flush()
        return service.status()

    @app.get("/report", response_class=HTMLResponse)
    async def report():
        return HTMLResponse(render_service(service))

    add_probes(app, lambda: service.metrics.registry)

    return app


def _score(detector: Backend, profile: Profile, x: np.ndarray) -> tuple[dict, dict[str, list[int]]]:
    """A window's test and its bin counts for the report, in the detection thread."""
    return detector.score_matrix(x).as_dict(), profile.counts(x)
