"""The capture service: payload-logger CloudEvents in, captured rows out as Parquet parts; late labels
in, joined to the captured rows, online metrics per model version out.

Request path: decode the event, append it to the local journal, join it with its other half (same
``ce-id``) in memory; never a wait on the object store. A background task writes the buffered rows
(by row count or age) in a worker thread; a failed write keeps the rows and retries, and once the
buffer is full new events are refused (503) and their rows counted as dropped.

Durability: every accepted event is appended to ``<state_dir>/journal/`` before it is acknowledged;
a successful write deletes the journal segments it covers (unjoined halves are carried into the next
segment). On start the service restores its counters from ``state.json``, replays the journal and
rebuilds the label index and the online metrics from the parts within ``label_window_days``; its
status says that it restarted, whether the previous run stopped cleanly and how many events the
journal gave back. A row re-written after a crash has the same (event_id, row) and is dropped on read.

Labels are written through: a feedback call answers only after its labels are stored (or says that
nothing was stored), so a client that sees an error can send the same batch again.
"""

import asyncio
import json
import logging
import math
import time
from collections import Counter as Tally
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Gauge

from inference.capture.events import BadEvent, Event, decode
from mlcycle.capture import LABELS, RESERVED, TRAFFIC, CaptureStore, utcnow
from mlcycle.errors import MlcycleError
from mlcycle.fsutil import write_text_atomic

log = logging.getLogger("mlcycle.capture")
MAX_FEEDBACK = 10_000
REFUSALS = (
    "malformed",
    "unknown_request_id",
    "pending",
    "row_required",
    "unknown_row",
    "duplicate",
    "wrong_type",
    "unknown_class",
)
COUNTS = (
    "events_request",
    "events_response",
    "events_rejected",
    "events_duplicate",
    "rows_captured",
    "rows_written",
    "rows_dropped",
    "parts_written",
    "flush_failures",
    "orphan_responses",
    "unanswered_requests",
    "mismatched_responses",
    "journal_errors",
    "labels_accepted",
    "labels_refused",
    "label_write_failures",
    "forwarded",
    "forward_failed",
    "forward_dropped",
)


@dataclass
class Entry:
    event_id: str
    n: int
    model_version: str
    predictions: list | None
    at: datetime


class Metrics:
    def __init__(self, model: str):
        self.registry = r = CollectorRegistry()
        self.events = Counter("mlcycle_capture_events_total", "Accepted payload-log events", ["type"], registry=r)
        self.rejected = Counter(
            "mlcycle_capture_events_rejected_total", "Events refused as malformed (400)", registry=r
        )
        self.too_large = Counter(
            "mlcycle_capture_bodies_refused_total",
            "Request bodies refused over the size limit (413)",
            ["route"],
            registry=r,
        )
        self.rows = Counter("mlcycle_capture_rows_written_total", "Captured rows stored as Parquet", registry=r)
        self.dropped = Counter(
            "mlcycle_capture_rows_dropped_total", "Captured rows lost, by reason", ["reason"], registry=r
        )
        self.flush_failures = Counter(
            "mlcycle_capture_flush_failures_total", "Failed part writes (rows kept)", registry=r
        )
        self.buffer = Gauge("mlcycle_capture_buffer_rows", "Rows waiting to be written", registry=r)
        self.pending = Gauge(
            "mlcycle_capture_pending_events", "Request/response halves waiting for the other", registry=r
        )
        self.restarts = Gauge("mlcycle_capture_restarts", "Times this service started on existing state", registry=r)
        self.labels = Counter("mlcycle_feedback_labels_total", "Labels accepted", ["model", "version"], registry=r)
        self.refused = Counter("mlcycle_feedback_refused_total", "Labels refused, by reason", ["reason"], registry=r)
        self.labelled = Gauge("mlcycle_online_labelled_rows", "Labelled predictions", ["model", "version"], registry=r)
        self.gauges = {
            name: Gauge(
                f"mlcycle_online_{name}",
                f"Online {name.replace('_', ' ')} from late labels",
                ["model", "version"],
                registry=r,
            )
            for name in ("accuracy", "precision", "recall", "false_positive_rate", "mae")
        }
        self.model = model


class CaptureService:
    def __init__(
        self,
        store: CaptureStore,
        state_dir: Path,
        flush_rows: int = 1000,
        flush_age_s: float = 60.0,
        max_buffer_rows: int = 100_000,
        join_timeout_s: float = 60.0,
        label_window_days: float = 7.0,
        retention_days: float | None = 30.0,
        retention_bytes: int | None = None,
        features: list[str] | None = None,
        forward_url: str | None = None,
        forward_queue: int = 1000,
        retention_interval_s: float = 300.0,
    ):
        self.store, self.model = store, store.model
        self.state_dir = Path(state_dir)
        self.flush_rows, self.flush_age_s, self.max_buffer_rows = flush_rows, flush_age_s, max_buffer_rows
        self.join_timeout_s, self.label_window = join_timeout_s, timedelta(days=label_window_days)
        self.retention_age = timedelta(days=retention_days) if retention_days else None
        self.retention_bytes, self.retention_interval_s = retention_bytes, retention_interval_s
        self.features, self.forward_url = features, forward_url
        self.metrics = Metrics(self.model)
        self.counts = {k: 0 for k in COUNTS}
        self.refusals = {k: 0 for k in REFUSALS}
        self.requests: dict[str, tuple[float, Event, dict]] = {}  # event_id -> (monotonic, event, raw)
        self.responses: dict[str, tuple[float, Event, dict]] = {}
        self.rows: list[dict] = []
        self.oldest_row = 0.0
        self.index: dict[str, Entry] = {}
        self.by_event: dict[str, str] = {}
        self.labelled: set[tuple[str, int]] = set()
        self.reserved: set[tuple[str, int]] = set()
        self.classes: dict[str, list] = {}
        self.confusion: dict[str, Tally] = {}
        self.errors: dict[str, list[float]] = {}
        self.last_error: str | None = None
        self.last_flush: str | None = None
        self.restart: dict = {"restarted": False}
        self.started_at = utcnow().isoformat()
        self._segment = 0
        self._journal = None
        self._flushing = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []
        self._forward_queue: asyncio.Queue | None = asyncio.Queue(forward_queue) if forward_url else None
        self._last_retention = 0.0
        self._last_checkpoint = 0.0
        self._replaying = False

    # state ------------------------------------------------------------------------------
    @property
    def _state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def _journal_dir(self) -> Path:
        return self.state_dir / "journal"

    def recover(self) -> None:
        """Counters from state.json, label index and online metrics from storage, unsaved events from the journal."""
        self._journal_dir.mkdir(parents=True, exist_ok=True)
        previous = None
        if self._state_file.exists():
            try:
                previous = json.loads(self._state_file.read_text())
            except (OSError, json.JSONDecodeError) as e:
                log.error("state.json unreadable (%s); counters restart from zero", e)
                previous = {"unreadable": True}
        if previous is not None:
            for k, v in (previous.get("counts") or {}).items():
                if k in self.counts:
                    self.counts[k] = int(v)
            for k, v in (previous.get("refusals") or {}).items():
                if k in self.refusals:
                    self.refusals[k] = int(v)
            self.classes.update(previous.get("classes") or {})
            self.restart = {
                "restarted": True,
                "restarts": int(previous.get("restarts", 0)) + 1,
                "previous_started_at": previous.get("started_at"),
                "previous_shutdown": "clean" if previous.get("clean_shutdown") else "unclean",
                "counters": "unreadable, restarted from zero"
                if previous.get("unreadable")
                else "restored from the last checkpoint",
            }
        self._restore_counters()
        self._rebuild_from_storage()
        recovered = self._replay_journal((previous or {}).get("saved_at"))
        if previous is not None:
            self.restart["recovered_events"] = recovered
        elif recovered:
            self.restart = {
                "restarted": True,
                "restarts": 1,
                "previous_shutdown": "unclean",
                "counters": "no checkpoint: restarted from zero",
                "recovered_events": recovered,
            }
        self.started_at = utcnow().isoformat()
        self._checkpoint(clean=False)

    def _restore_counters(self) -> None:
        m, c = self.metrics, self.counts
        m.events.labels("request").inc(c["events_request"])
        m.events.labels("response").inc(c["events_response"])
        m.rejected.inc(c["events_rejected"])
        m.rows.inc(c["rows_written"])
        m.flush_failures.inc(c["flush_failures"])
        if c["rows_dropped"]:
            m.dropped.labels("before_restart").inc(c["rows_dropped"])
        for reason, n in self.refusals.items():
            if n:
                m.refused.labels(reason).inc(n)
        m.restarts.set(self.restart.get("restarts", 0))

    def _rebuild_from_storage(self) -> None:
        since = utcnow() - self.label_window
        try:
            traffic = self.store.read(
                TRAFFIC, since, columns=["request_id", "event_id", "row", "model_version", "prediction", "received_at"]
            )
            labels = self.store.read(LABELS, since)
        except Exception as e:  # storage down at start: serve anyway, labels for older rows are refused as unknown
            log.error("cannot read captured traffic/labels to rebuild the label index: %s", e)
            self.restart["rebuild_error"] = str(e)
            return
        if not traffic.empty:
            traffic = traffic.drop_duplicates(subset=["event_id", "row"]).sort_values(["request_id", "row"])
            for rid, group in traffic.groupby("request_id", sort=False):
                first = group.iloc[0]
                version = first["model_version"] if isinstance(first["model_version"], str) else ""
                self.index[rid] = Entry(
                    first["event_id"],
                    int(group["row"].max()) + 1,
                    version,
                    [_plain(p) for p in group["prediction"]],
                    pd.Timestamp(first["received_at"]).to_pydatetime(),
                )
                self.by_event[first["event_id"]] = rid
        for record in labels.to_dict("records"):
            self.labelled.add((record["request_id"], int(record["row"])))
            self._score(record.get("model_version") or "", _plain(record["label"]), _plain(record.get("prediction")))
        self._export_metrics()

    def _replay_journal(self, checkpoint: str | None) -> int:
        """Re-accept the journal's events; those newer than the checkpoint were not counted yet and are now."""
        segments = sorted(self._journal_dir.glob("*.jsonl"))
        seen, replayed = set(), 0
        self._replaying = True
        for path in segments:
            for line in path.read_text().splitlines():
                try:
                    item = json.loads(line)
                    event = decode(item["headers"], item["body"].encode(), self.features)
                except (ValueError, KeyError, BadEvent) as e:
                    log.warning("journal %s: skipping an unreadable line (%s)", path.name, e)
                    continue
                key = (event.kind, event.event_id)
                if key in seen:
                    continue
                seen.add(key)
                replayed += 1
                if checkpoint is None or item["at"] > checkpoint:
                    self.counts[f"events_{event.kind}"] += 1
                    self.metrics.events.labels(event.kind).inc()
                self._accept(event, item, datetime.fromisoformat(item["at"]))
        self._replaying = False
        self._segment = int(segments[-1].stem) + 1 if segments else 0
        self._open_segment(carry=True)
        for path in segments:
            path.unlink()
        return replayed

    def _open_segment(self, carry: bool) -> int:
        """Start a new journal segment (``carry``: copy the unjoined halves into it); returns the old one's number."""
        if self._journal is not None:
            self._journal.close()
        old = self._segment
        self._segment += 1
        self._journal = open(self._journal_dir / f"{self._segment:010d}.jsonl", "a", encoding="utf-8")
        if carry:
            for _, _, raw in list(self.requests.values()) + list(self.responses.values()):
                self._journal_write(raw)
        return old

    def _journal_write(self, raw: dict) -> bool:
        try:
            self._journal.write(json.dumps(raw) + "\n")
            self._journal.flush()
            return True
        except (OSError, ValueError) as e:
            self.counts["journal_errors"] += 1
            self.last_error = f"journal write failed: {e}"
            return False

    def _checkpoint(self, clean: bool) -> None:
        self._last_checkpoint = time.monotonic()
        state = {
            "counts": self.counts,
            "refusals": self.refusals,
            "classes": self.classes,
            "restarts": self.restart.get("restarts", 0),
            "started_at": getattr(self, "started_at", None),
            "clean_shutdown": clean,
            "saved_at": utcnow().isoformat(timespec="microseconds"),
        }
        try:
            write_text_atomic(self._state_file, json.dumps(state, default=str))
        except OSError as e:
            self.last_error = f"state checkpoint failed: {e}"

    # events -----------------------------------------------------------------------------
    def offer(self, headers: dict, body: bytes) -> tuple[int, dict]:
        try:
            event = decode(headers, body, self.features)
            reserved = sorted({k for r in event.rows for k in r} & RESERVED)
            if reserved:
                raise BadEvent(f"request feature name(s) {', '.join(reserved)} collide with capture columns")
        except BadEvent as e:
            self.counts["events_rejected"] += 1
            self.metrics.rejected.inc()
            return 400, {"error": str(e)}
        if event.kind == "request" and self.buffered_rows() + len(event.rows) > self.max_buffer_rows:
            self._drop(len(event.rows), "buffer_full")
            return 503, {
                "error": f"capture buffer full ({self.max_buffer_rows} rows; storage: {self.last_error}): "
                f"{len(event.rows)} row(s) dropped and counted"
            }
        keep = {
            k: v
            for k, v in {k.lower(): v for k, v in headers.items()}.items()
            if k.startswith("ce-") or k == "content-type"
        }
        raw = {
            "headers": keep,
            "body": body.decode("utf-8", "replace"),
            "at": utcnow().isoformat(timespec="microseconds"),
        }
        self._journal_write(raw)
        self.counts[f"events_{event.kind}"] += 1
        self.metrics.events.labels(event.kind).inc()
        self._accept(event, raw, datetime.fromisoformat(raw["at"]))
        if event.kind == "request" and self._forward_queue is not None:
            try:
                self._forward_queue.put_nowait((keep, body))
            except asyncio.QueueFull:
                self.counts["forward_dropped"] += 1
        self._gauges()
        self.maybe_flush()
        return 200, {"accepted": event.kind, "rows": len(event.rows) or len(event.predictions)}

    def buffered_rows(self) -> int:
        return len(self.rows) + sum(len(e.rows) for _, e, _ in self.requests.values())

    def _drop(self, n: int, reason: str) -> None:
        self.counts["rows_dropped"] += n
        self.metrics.dropped.labels(reason).inc(n)

    def _accept(self, event: Event, raw: dict, at: datetime) -> None:
        eid = event.event_id
        mine, other = (self.requests, self.responses) if event.kind == "request" else (self.responses, self.requests)
        if eid in mine or eid in self.by_event:
            self.counts["events_duplicate"] += 1
            return
        if eid in other:
            _, half, _ = other.pop(eid)
            request, response = (event, half) if event.kind == "request" else (half, event)
            self._complete(request, response, at)
        else:
            mine[eid] = (time.monotonic(), event, raw)

    def _complete(self, request: Event, response: Event | None, at: datetime) -> None:
        n = len(request.rows)
        predictions, scores, version = [None] * n, [None] * n, ""
        if response is not None:
            version = response.model_version
            if len(response.predictions) == n:
                predictions, scores = response.predictions, response.scores or [None] * n
            else:
                self.counts["mismatched_responses"] += 1
            if response.classes and version:
                self.classes[version] = response.classes
        elif not self._replaying:
            self.counts["unanswered_requests"] += 1
        if not self.rows:
            self.oldest_row = time.monotonic()
        for i, features in enumerate(request.rows):
            self.rows.append(
                {
                    **features,
                    "request_id": request.request_id,
                    "event_id": request.event_id,
                    "row": i,
                    "model_version": version,
                    "endpoint": request.endpoint,
                    "received_at": at,
                    "prediction": predictions[i],
                    "score": scores[i],
                }
            )
        if not self._replaying:  # rows completed before the crash were counted then (up to the last checkpoint)
            self.counts["rows_captured"] += n
        self.index[request.request_id] = Entry(request.event_id, n, version, list(predictions), at)
        self.by_event[request.event_id] = request.request_id

    def expire(self) -> None:
        """Requests without a response after join_timeout_s are captured unanswered; lone responses are dropped."""
        cutoff = time.monotonic() - self.join_timeout_s
        for eid in [e for e, (t, _, _) in self.requests.items() if t < cutoff]:
            _, event, raw = self.requests.pop(eid)
            self._complete(event, None, datetime.fromisoformat(raw["at"]))
        for eid in [e for e, (t, _, _) in self.responses.items() if t < cutoff]:
            _, event, _ = self.responses.pop(eid)
            self.counts["orphan_responses"] += 1
            self._drop(len(event.predictions), "response_without_request")
        self._gauges()

    def _gauges(self) -> None:
        self.metrics.buffer.set(len(self.rows))
        self.metrics.pending.set(len(self.requests) + len(self.responses))

    # writing ----------------------------------------------------------------------------
    async def flush(self) -> dict:
        """Write every buffered row (one part per hour partition) and drop the journal it covers."""
        async with self._flushing:
            if not self.rows:
                return {"written": 0}
            snapshot, self.rows = self.rows, []
            covered = self._open_segment(carry=True)  # new events go to a new segment from here on
            frame = pd.DataFrame.from_records(snapshot)
            frame["received_at"] = pd.to_datetime(frame["received_at"], utc=True)
            hours = frame["received_at"].dt.floor("h")
            written, failed = 0, []
            for _, group in frame.groupby(hours, sort=True):
                if failed:
                    failed.append(group)
                    continue
                try:
                    await asyncio.to_thread(self.store.write, TRAFFIC, group.reset_index(drop=True), "received_at")
                except Exception as e:  # StorageUnavailable, RegistryError, OSError (disk full) ...
                    failed.append(group)
                    self.counts["flush_failures"] += 1
                    self.metrics.flush_failures.inc()
                    self.last_error = f"{type(e).__name__}: {e}"
                    log.warning("capture write failed, %d rows kept for retry: %s", len(snapshot) - written, e)
                    continue
                written += len(group)
                self.counts["parts_written"] += 1
            self.counts["rows_written"] += written
            self.metrics.rows.inc(written)
            if failed:  # keep the rows; the journal segments stay until a write covers them
                self.rows = pd.concat(failed).to_dict("records") + self.rows
                self.oldest_row = time.monotonic()
            else:
                for path in self._journal_dir.glob("*.jsonl"):
                    if int(path.stem) <= covered:
                        path.unlink()
                self.last_error = None
            self.last_flush = utcnow().isoformat()
            self._checkpoint(clean=False)
            self._gauges()
            return {"written": written, "kept": len(self.rows), "error": self.last_error}

    async def retain(self) -> dict:
        deleted = {}
        for kind, max_bytes in ((TRAFFIC, self.retention_bytes), (LABELS, None)):
            try:
                deleted[kind] = len(await asyncio.to_thread(self.store.retain, kind, self.retention_age, max_bytes))
            except Exception as e:
                self.last_error = f"retention failed: {e}"
        horizon = utcnow() - self.label_window
        for rid in [r for r, e in self.index.items() if e.at < horizon]:
            self.by_event.pop(self.index.pop(rid).event_id, None)
        self._last_retention = time.monotonic()
        return deleted

    # feedback ---------------------------------------------------------------------------
    async def feedback(self, body: bytes) -> tuple[int, dict]:
        try:
            data = json.loads(body) if body else None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return self._refuse_all(f"body is not valid JSON: {e}")
        items = (
            data.get("labels")
            if isinstance(data, dict) and "labels" in data
            else [data]
            if isinstance(data, dict)
            else data
        )
        if not isinstance(items, list) or not items:
            return self._refuse_all('send {"labels": [{"request_id": "...", "label": ...}, ...]} (a non-empty list)')
        if len(items) > MAX_FEEDBACK:
            return self._refuse_all(f"{len(items)} labels in one call exceed {MAX_FEEDBACK}; split the batch")
        accepted, refused, keys = [], [], set()
        now = utcnow()
        for i, item in enumerate(items):
            reason, detail, row = self._check_label(item, keys)
            if reason:
                refused.append(
                    {
                        "index": i,
                        "request_id": item.get("request_id") if isinstance(item, dict) else None,
                        "reason": reason,
                        "detail": detail,
                    }
                )
                continue
            keys.add(row["key"])
            accepted.append(row)
        if accepted:
            self.reserved |= keys
            frame = pd.DataFrame.from_records([{k: v for k, v in r.items() if k != "key"} for r in accepted])
            frame["labelled_at"] = now
            try:
                await asyncio.to_thread(self.store.write, LABELS, frame, "labelled_at")
            except Exception as e:
                self.counts["label_write_failures"] += 1
                self.last_error = f"{type(e).__name__}: {e}"
                return 503, {
                    "error": f"label storage unavailable ({type(e).__name__}: {e}); nothing was stored, "
                    "send the same batch again",
                    "accepted": 0,
                    "stored": False,
                }
            finally:
                self.reserved -= keys
            self.labelled |= keys
            for r in accepted:
                self._score(r["model_version"], r["label"], r["prediction"])
                self.metrics.labels.labels(self.model, r["model_version"]).inc()
            self._export_metrics()
        for r in refused:
            self.refusals[r["reason"]] += 1
            self.metrics.refused.labels(r["reason"]).inc()
        self.counts["labels_accepted"] += len(accepted)
        self.counts["labels_refused"] += len(refused)
        self._checkpoint(clean=False)
        result = {"accepted": len(accepted), "refused": refused, "stored": bool(accepted)}
        return (200 if accepted else 422), result

    def _refuse_all(self, why: str) -> tuple[int, dict]:
        self.refusals["malformed"] += 1
        self.counts["labels_refused"] += 1
        self.metrics.refused.labels("malformed").inc()
        return 400, {"error": why, "accepted": 0}

    def _check_label(self, item, batch: set) -> tuple[str | None, str, dict | None]:
        if not isinstance(item, dict):
            return "malformed", "each label is an object {request_id, label[, row]}", None
        unknown = sorted(set(item) - {"request_id", "label", "row"})
        rid, row = item.get("request_id"), item.get("row")
        if unknown:
            return "malformed", f"unknown field(s) {', '.join(unknown)}", None
        if not isinstance(rid, str) or not rid:
            return "malformed", "request_id must be a non-empty string", None
        if "label" not in item or item["label"] is None:
            return "malformed", "label is missing", None
        if row is not None and (isinstance(row, bool) or not isinstance(row, int) or row < 0):
            return "malformed", "row must be a non-negative integer", None
        canonical = rid if rid in self.index else self.by_event.get(rid)
        if canonical is None:
            if rid in self.requests or any(e.request_id == rid for _, e, _ in self.requests.values()):
                return "pending", "the request is captured but its response has not arrived yet; retry shortly", None
            window = self.label_window.total_seconds() / 86400
            return "unknown_request_id", f"no captured request {rid!r} in the last {window:g} day(s)", None
        entry = self.index[canonical]
        if row is None:
            if entry.n > 1:
                return "row_required", f"request {rid!r} scored {entry.n} rows; say which one with 'row'", None
            row = 0
        if row >= entry.n:
            return "unknown_row", f"request {rid!r} has rows 0..{entry.n - 1}, not {row}", None
        key = (canonical, row)
        if key in self.labelled or key in self.reserved or key in batch:
            return "duplicate", f"request {rid!r} row {row} is already labelled; the first label stands", None
        label = item["label"]
        classes = self.classes.get(entry.model_version) or self._classes_from_registry(entry.model_version)
        problem = _check_class(label, classes)
        if problem:
            return problem[0], problem[1], None
        prediction = entry.predictions[row] if entry.predictions else None
        return (
            None,
            "",
            {
                "key": key,
                "request_id": canonical,
                "row": row,
                "label": label,
                "model_version": entry.model_version,
                "prediction": prediction,
            },
        )

    def _classes_from_registry(self, version: str) -> list | None:
        try:
            contract = self.store.contract(version)
        except MlcycleError:  # the registry is unreachable or the manifest unreadable: classes stay unknown
            return None
        if contract is not None and contract.task == "regression":
            self.classes[version] = []
        elif contract is not None and contract.classes:
            self.classes[version] = list(contract.classes)
        return self.classes.get(version)

    # online metrics ---------------------------------------------------------------------
    def _score(self, version: str, label, prediction) -> None:
        if prediction is None:
            return
        classes = self.classes.get(version)
        if classes == [] or (classes is None and _is_number(label) and not float(label).is_integer()):
            self.errors.setdefault(version, []).append(abs(float(label) - float(prediction)))
            return
        self.confusion.setdefault(version, Tally())[(label, prediction)] += 1

    def online(self) -> dict:
        out = {}
        for version, tally in self.confusion.items():
            total = sum(tally.values())
            correct = sum(n for (a, p), n in tally.items() if a == p)
            metrics = {"labelled": total, "accuracy": correct / total if total else None}
            classes = self.classes.get(version) or sorted({a for a, _ in tally} | {p for _, p in tally}, key=str)
            if len(classes) == 2:
                pos, neg = classes[1], classes[0]
                tp, fp = tally[(pos, pos)], tally[(neg, pos)]
                fn, tn = tally[(pos, neg)], tally[(neg, neg)]
                metrics.update(
                    positive_class=pos,
                    tp=tp,
                    fp=fp,
                    fn=fn,
                    tn=tn,
                    precision=tp / (tp + fp) if tp + fp else None,
                    recall=tp / (tp + fn) if tp + fn else None,
                    false_positive_rate=fp / (fp + tn) if fp + tn else None,
                )
            out[version or "(unknown)"] = metrics
        for version, errors in self.errors.items():
            out.setdefault(version or "(unknown)", {}).update(labelled=len(errors), mae=sum(errors) / len(errors))
        return out

    def _export_metrics(self) -> None:
        for version, metrics in self.online().items():
            self.metrics.labelled.labels(self.model, version).set(metrics["labelled"])
            for name, gauge in self.metrics.gauges.items():
                if metrics.get(name) is not None:
                    gauge.labels(self.model, version).set(metrics[name])

    # lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._tick())]
        if self._forward_queue is not None:
            self._tasks.append(loop.create_task(self._forward()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        result = await self.flush()
        self._checkpoint(clean=not self.rows)
        if self._journal is not None:
            self._journal.close()
        log.info("capture stopped: %s", result)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.flush_age_s / 4, self.join_timeout_s / 4))
            try:
                self.expire()
                old = time.monotonic() - self.oldest_row >= self.flush_age_s
                if self.rows and (len(self.rows) >= self.flush_rows or old):
                    await self.flush()
                if time.monotonic() - self._last_retention >= self.retention_interval_s:
                    await self.retain()
                if time.monotonic() - self._last_checkpoint >= 5.0:
                    self._checkpoint(clean=False)
            except Exception:  # keep ticking whatever one round hit
                log.exception("capture background round failed")

    def maybe_flush(self) -> None:
        if len(self.rows) >= self.flush_rows and not self._flushing.locked():
            asyncio.get_running_loop().create_task(self.flush())

    async def _forward(self) -> None:
        async with httpx.AsyncClient(timeout=5.0) as client:
            while True:
                headers, body = await self._forward_queue.get()
                try:
                    response = await client.post(self.forward_url, content=body, headers=headers)
                    self.counts["forwarded" if response.status_code < 300 else "forward_failed"] += 1
                except httpx.HTTPError:
                    self.counts["forward_failed"] += 1

    def status(self) -> dict:
        return {
            "model": self.model,
            "store": self.store.uri,
            "restart": self.restart,
            "started_at": self.started_at,
            "counts": {
                **self.counts,
                "buffered_rows": len(self.rows),
                "pending_requests": len(self.requests),
                "pending_responses": len(self.responses),
                "indexed_requests": len(self.index),
                "labelled_rows": len(self.labelled),
            },
            "refusals": self.refusals,
            "last_error": self.last_error,
            "last_flush": self.last_flush,
            "online": self.online(),
            "config": {
                "flush_rows": self.flush_rows,
                "flush_age_s": self.flush_age_s,
                "max_buffer_rows": self.max_buffer_rows,
                "join_timeout_s": self.join_timeout_s,
                "label_window_days": self.label_window.total_seconds() / 86400,
                "retention_days": self.retention_age.total_seconds() / 86400 if self.retention_age else None,
                "retention_bytes": self.retention_bytes,
                "forward_url": self.forward_url,
            },
        }


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _plain(v):
    """NumPy / pandas scalars from Parquet as plain Python (so 1 == np.int64(1) keys one tally cell)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _check_class(label, classes: list | None) -> tuple[str, str] | None:
    if classes == []:  # regression
        if not _is_number(label) or not math.isfinite(label):
            return "wrong_type", f"label {label!r} must be a finite number (regression)"
        return None
    if isinstance(label, (dict, list)) or isinstance(label, bool):
        return "wrong_type", f"label {label!r} must be one class value, not {type(label).__name__}"
    if not classes:
        if isinstance(label, (int, str)):
            return None
        return "wrong_type", f"label {label!r} must be an integer or string"
    kinds = {type(c) for c in classes}
    if type(label) not in kinds:
        return "wrong_type", f"label {label!r} is {type(label).__name__}; this model's classes are {classes!r}"
    if label not in classes:
        return "unknown_class", f"label {label!r} is not one of the model's classes {classes!r}"
    return None
