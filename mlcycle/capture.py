"""Captured traffic and late labels as datasets in the registry's object store; joins for training.

Layout (same on a local directory and on S3/MinIO, next to the model's versions)::

    <model>/traffic/date=YYYY-MM-DD/hour=HH/part-<ts>-<writer>-<seq>-<bytes>b.parquet   one row per scored row
    <model>/labels/date=YYYY-MM-DD/hour=HH/part-<ts>-<writer>-<seq>-<bytes>b.parquet    one row per accepted label

A part file is written to a local temporary file, then uploaded in one piece (S3: the object appears
whole; local: temporary sibling, then rename), so a reader never sees half a part. Traffic is
partitioned by the time the request was captured, labels by the time the label was accepted. The part
name carries its size so retention by total bytes needs only a listing.

Traffic columns: ``request_id`` (the client's id: KServe's ``X-Request-Id`` metadata, else ``ce-id``),
``event_id`` (ce-id), ``row`` (index in the request's batch), ``model_version``, ``endpoint``
(default / canary), ``received_at`` (UTC), ``prediction``, ``score`` (positive-class probability,
the top probability for multiclass, the value for regression), then the request's feature columns.
Label columns: ``request_id``, ``row``, ``label``, ``model_version``, ``prediction``, ``labelled_at``.

``labelled_traffic`` joins the two: the contract's features, its timestamp column (the capture time)
and its label column — a table the training pipeline ingests like any other
(``traffic://<registry>#<model>?days=7``, see ``parse_traffic_source``). ``until=<UTC ISO time>`` ends the
window: the rows captured and labelled by then, so a retrain's data is a fixed snapshot and a shadow of the
version it makes can replay only requests received after it (never rows the candidate was trained on).
"""

import hashlib
import io
import os
import re
import secrets
import tempfile
import threading
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

import pandas as pd

from mlcycle.contract import DataContract
from mlcycle.errors import DataError, RegistryError, VersionNotFound
from mlcycle.registry import open_registry, parse_model_ref

TRAFFIC, LABELS = "traffic", "labels"
KINDS = (TRAFFIC, LABELS)
TRAFFIC_META = ["request_id", "event_id", "row", "model_version", "endpoint", "received_at", "prediction", "score"]
LABEL_COLUMNS = ["request_id", "row", "label", "model_version", "prediction", "labelled_at"]
RESERVED = set(TRAFFIC_META) | set(LABEL_COLUMNS)
SCHEME = "traffic://"
_PART = re.compile(
    r"^(?P<model>[^/]+)/(?P<kind>traffic|labels)/date=(?P<date>\d{4}-\d{2}-\d{2})/hour=(?P<hour>\d{2})/"
    r"part-(?P<ts>\d{8}T\d{12}Z)-(?P<writer>[0-9a-f]+)-(?P<seq>\d+)-(?P<size>\d+)b\.parquet$"
)


@dataclass(frozen=True)
class Part:
    key: str
    kind: str
    hour: datetime  # start of the partition's hour, UTC
    size: int


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_part(key: str) -> Part | None:
    m = _PART.match(key)
    if not m:
        return None
    hour = datetime.strptime(f"{m['date']} {m['hour']}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    return Part(key, m["kind"], hour, int(m["size"]))


class CaptureStore:
    """Part files of one model under a registry URI (``s3://bucket[/prefix]``, ``file://dir`` or a path)."""

    def __init__(self, uri: str, model: str, scratch_dir: Path | None = None):
        """``scratch_dir``: where a part is written before its upload (default: the system's temporary directory;
        the capture service gives its state volume, since a container's root filesystem is read-only)."""
        self.uri, self.model = str(uri), model
        self.scratch_dir = scratch_dir
        if scratch_dir is not None:
            scratch_dir.mkdir(parents=True, exist_ok=True)
        self.registry = open_registry(uri)
        self.store = self.registry.store
        self.writer = secrets.token_hex(3)  # distinguishes replicas writing the same hour
        self._seq = 0
        self._lock = threading.Lock()
        self._meta: dict[str, DataContract | None] = {}

    # writing ----------------------------------------------------------------------------
    def write(self, kind: str, frame: pd.DataFrame, time_column: str) -> list[str]:
        """One part per hour partition of ``frame[time_column]``; returns the keys written.

        Raises whatever the store raises (StorageUnavailable, RegistryError, OSError for a full
        disk); parts already written stay (each is whole), the caller retries the rest."""
        if kind not in KINDS:
            raise ValueError(f"unknown capture kind {kind!r}")
        if frame.empty:
            return []
        times = pd.to_datetime(frame[time_column], utc=True)
        keys = []
        for hour, group in frame.groupby(times.dt.floor("h"), sort=True):
            keys.append(self._write_part(kind, group.reset_index(drop=True), hour.to_pydatetime()))
        return keys

    def _write_part(self, kind: str, frame: pd.DataFrame, hour: datetime) -> str:
        with self._lock:
            self._seq += 1
            seq = self._seq
        fd, tmp = tempfile.mkstemp(prefix=".capture-", suffix=".parquet", dir=self.scratch_dir)
        os.close(fd)
        try:
            frame.to_parquet(tmp, index=False)
            size = os.path.getsize(tmp)
            ts = utcnow().strftime("%Y%m%dT%H%M%S%fZ")
            key = (
                f"{self.model}/{kind}/date={hour:%Y-%m-%d}/hour={hour:%H}/"
                f"part-{ts}-{self.writer}-{seq:06d}-{size}b.parquet"
            )
            self.store.put_file(key, Path(tmp))
            return key
        finally:
            os.unlink(tmp)

    # reading ----------------------------------------------------------------------------
    def parts(self, kind: str, since: datetime | None = None) -> list[Part]:
        found = [p for p in map(parse_part, self.store.list(f"{self.model}/{kind}")) if p is not None]
        if since is not None:
            floor = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
            found = [p for p in found if p.hour >= floor]
        return sorted(found, key=lambda p: p.key)

    def read(
        self, kind: str, since: datetime | None = None, columns: list[str] | None = None, until: datetime | None = None
    ) -> pd.DataFrame:
        """The rows of ``kind`` captured (traffic) or accepted (labels) from ``since`` to ``until`` (both inclusive)."""
        time_column = "received_at" if kind == TRAFFIC else "labelled_at"
        bounded = since is not None or until is not None
        wanted = columns if columns is None or not bounded or time_column in columns else [*columns, time_column]
        frames = []
        for part in self.parts(kind, since):
            data, _ = self.store.get_bytes(part.key)
            frames.append(pd.read_parquet(io.BytesIO(data), columns=wanted))
        frames = [f for f in frames if not f.empty]
        if not frames:
            return pd.DataFrame(columns=columns or (TRAFFIC_META if kind == TRAFFIC else LABEL_COLUMNS))
        with warnings.catch_warnings():  # parts where a column is all missing (e.g. no score yet) keep their dtype
            warnings.simplefilter("ignore", FutureWarning)
            out = pd.concat(frames, ignore_index=True)
        if bounded and time_column in out.columns:
            at = pd.to_datetime(out[time_column], utc=True)
            keep = pd.Series(True, index=out.index)
            if since is not None:
                keep &= at >= since
            if until is not None:
                keep &= at <= until
            out = out[keep].reset_index(drop=True)
        return out if wanted is columns else out[columns]

    def contract(self, version: str) -> DataContract | None:
        """The version's data contract (features, label, classes) from its manifest; None when it has none."""
        if not version or not isinstance(version, str):
            return None
        if version not in self._meta:
            try:
                self._meta[version] = self.registry.metadata(self.model, version).contract
            except VersionNotFound:
                self._meta[version] = None
        return self._meta[version]

    def fingerprint(self, since: datetime | None = None) -> str:
        """sha256 of the names and sizes of the label parts since ``since`` (one listing; no part is read): what a
        retrain on the labelled traffic of that window trains on. New labels always add a part; a part that ages
        out of the window or is rotated away changes it too; traffic without labels does not."""
        digest = hashlib.sha256()
        for part in self.parts(LABELS, since):
            digest.update(f"{part.key}\t{part.size}\n".encode())
        return digest.hexdigest()

    # retention --------------------------------------------------------------------------
    def retain(
        self, kind: str, max_age: timedelta | None = None, max_bytes: int | None = None, now: datetime | None = None
    ) -> list[str]:
        """Delete whole parts older than ``max_age`` (by partition hour), then the oldest until the
        total is at most ``max_bytes``. Returns the deleted keys."""
        now = now or utcnow()
        parts = sorted(self.parts(kind), key=lambda p: (p.hour, p.key))
        doomed = []
        if max_age is not None:
            cutoff = now - max_age
            doomed = [p for p in parts if p.hour + timedelta(hours=1) <= cutoff]
        kept = [p for p in parts if p not in doomed]
        if max_bytes is not None:
            total = sum(p.size for p in kept)
            while kept and total > max_bytes:
                oldest = kept.pop(0)
                doomed.append(oldest)
                total -= oldest.size
        for part in doomed:
            self.store.delete(part.key)
        return [p.key for p in doomed]


# joins ----------------------------------------------------------------------------------
def _dedupe_traffic(frame: pd.DataFrame) -> pd.DataFrame:
    # a part re-written after a crash (journal replay) holds the same (event_id, row) again
    return frame.drop_duplicates(subset=["event_id", "row"], keep="first") if not frame.empty else frame


def read_traffic(uri: str, model: str, since: datetime | None = None) -> pd.DataFrame:
    return _dedupe_traffic(CaptureStore(uri, model).read(TRAFFIC, since))


@dataclass(frozen=True)
class TrafficSource:
    """A parsed ``traffic://<registry>#<model>[?days=N][&until=<UTC ISO time>]``."""

    registry: str
    model: str
    days: float | None = None
    until: datetime | None = None

    def __str__(self) -> str:
        query = [f"days={self.days:g}"] if self.days is not None else []
        if self.until is not None:
            query.append(f"until={self.until.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}")
        return f"{SCHEME}{self.registry}#{self.model}" + ("?" + "&".join(query) if query else "")


def shadow_sample(uri: str, model: str, version: str, since: datetime | None, last: int) -> tuple[pd.DataFrame, list]:
    """What a shadow replays: the newest ``last`` captured rows that ``version`` (production) answered since ``since``,
    and their late labels in the same order (None where none came yet). The rows keep every traffic column:
    the request's features, and ``prediction`` / ``score`` as production answered and logged them."""
    traffic = read_traffic(uri, model, since)
    traffic = traffic[(traffic["model_version"] == version) & traffic["prediction"].notna()].tail(last)
    traffic = traffic.reset_index(drop=True)
    labels = CaptureStore(uri, model).read(LABELS, since, ["request_id", "row", "label"])
    if traffic.empty or labels.empty:
        return traffic, [None] * len(traffic)
    labels = labels.drop_duplicates(["request_id", "row"])  # the feedback service refuses duplicates
    truth = traffic[["request_id", "row"]].merge(labels, on=["request_id", "row"], how="left")["label"]
    return traffic, [None if pd.isna(v) else v for v in truth.tolist()]


def labelled_traffic(
    uri: str,
    model: str,
    since: datetime | None = None,
    days: float | None = None,
    provenance: bool = False,
    until: datetime | None = None,
) -> pd.DataFrame:
    """Captured rows that received a label, as a training table: the requests captured since ``since`` (or the
    last ``days`` before ``until``, else before now) and by ``until``, with the labels accepted by ``until``.

    Columns: the contract's features (of the newest version among the rows), the contract's
    timestamp column filled with the capture time (when the contract has one), and the contract's
    label column; with ``provenance`` also request_id, row, model_version, prediction, received_at.
    Without a contract in the registry the label column is ``label`` and every captured feature is kept.
    """
    if since is None and days is not None:
        since = (until or utcnow()) - timedelta(days=days)
    capture = CaptureStore(uri, model)
    traffic = _dedupe_traffic(capture.read(TRAFFIC, since, until=until))
    labels = capture.read(LABELS, since, columns=["request_id", "row", "label"], until=until)
    if traffic.empty or labels.empty:
        return pd.DataFrame()
    labels = labels.drop_duplicates(subset=["request_id", "row"], keep="first")  # the service refuses duplicates
    joined = traffic.merge(labels, on=["request_id", "row"], how="inner").sort_values("received_at", kind="stable")
    joined = joined.reset_index(drop=True)
    if joined.empty:
        return joined
    versions = [v for v in joined["model_version"].dropna().unique() if isinstance(v, str)]
    contract = None
    for version in sorted(versions, reverse=True):  # version ids sort by creation time
        contract = capture.contract(version)
        if contract is not None:
            break
    extra = ["request_id", "row", "model_version", "prediction", "received_at"] if provenance else []
    if contract is None:
        features = [c for c in traffic.columns if c not in RESERVED]
        out = joined[features + ["label"] + extra].copy()
    else:
        features = [name for name in contract.feature_names if name in joined.columns]
        out = joined[features].copy()
        captured_at = pd.to_datetime(joined["received_at"], utc=True).dt.tz_localize(None)
        # the contract's time columns (declared timestamp or any datetime column): the capture time stands in
        for name in {c.name for c in contract.columns if c.kind == "datetime"} | {contract.timestamp} - {None}:
            out[name] = captured_at
        out[contract.label] = joined["label"].to_numpy()
        for column in extra:
            out[column] = joined[column].to_numpy()
    return out


def parse_traffic_source(source: str) -> TrafficSource:
    """``traffic://<registry-uri>#<model>[?days=N][&until=<UTC ISO time>]`` -> TrafficSource."""
    form = f"{SCHEME}<registry>#<model>?days=N&until=<UTC ISO time>"
    if not source.startswith(SCHEME):
        raise DataError(f"{source!r} is not a traffic source ({form})")
    reference, _, query = source[len(SCHEME) :].partition("?")
    try:
        ref = parse_model_ref(reference, versioned=False)
    except RegistryError as e:
        raise DataError(f"traffic source {source!r}: {e}") from e
    if ref is None:
        raise DataError(f"traffic source {source!r} needs a registry and a model: {form}")
    params = parse_qs(query, strict_parsing=False) if query else {}
    unknown = sorted(set(params) - {"days", "until"})
    if unknown:
        raise DataError(f"traffic source {source!r}: unknown parameter(s) {', '.join(unknown)} (only days, until)")
    days = until = None
    if "days" in params:
        try:
            days = float(params["days"][-1])
        except ValueError as e:
            raise DataError(f"traffic source {source!r}: days must be a number") from e
        if days <= 0:
            raise DataError(f"traffic source {source!r}: days must be positive")
    if "until" in params:
        try:
            until = datetime.fromisoformat(params["until"][-1].replace("Z", "+00:00"))
        except ValueError as e:
            raise DataError(f"traffic source {source!r}: until must be an ISO time, e.g. 2026-12-01T18:00:00Z") from e
        if until.tzinfo is None:
            raise DataError(f"traffic source {source!r}: until needs a time zone (Z for UTC)")
        until = until.astimezone(UTC)
    return TrafficSource(ref.registry_uri, ref.model, days, until)


def read_traffic_source(source: str) -> pd.DataFrame:
    """The labelled traffic a ``traffic://`` source names; DataError when it holds no labelled rows."""
    src = parse_traffic_source(source)
    registry, model, days = src.registry, src.model, src.days
    frame = labelled_traffic(registry, model, days=days, until=src.until)
    if frame.empty:
        window = f"in the last {days:g} days" if days else "at all"
        if src.until is not None:
            window += f" up to {src.until.isoformat()}"
        raise DataError(
            f"no labelled traffic for model {model!r} in {registry} {window}: "
            "capture traffic and send labels to the feedback endpoint first"
        )
    return frame
