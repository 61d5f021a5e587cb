"""The mlcycle predictor: a KServe ``Model`` serving one verified model version over V1 and V2,
REST and gRPC. Batches up to ``inline_rows`` are scored on the event loop (the fast path scores a row in
microseconds, less than a hop to a thread); larger ones in a worker thread so the loop keeps answering probes.
The model runs on the compiled fast path (mlcycle.fastpath, ONNX) when the version has one that verifies, else
on the native booster; which one, and why, is logged at start-up and exported as ``mlcycle_scoring_path``."""

import asyncio
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import kserve
import numpy as np
from kserve.errors import InferenceError, InvalidInput
from kserve.logging import logger as log
from kserve.protocol.infer_type import InferRequest
from prometheus_client import Counter, Gauge, Histogram

from inference.loader import materialize
from inference.predictor.codec import Codec
from mlcycle import fastpath
from mlcycle.follow import AliasFollower, alias_source
from mlcycle.models import ModelBundle

PREDICTIONS = Counter("mlcycle_predictions_total", "Rows scored, by predicted class", ["model", "version", "label"])
SCORES = Histogram(
    "mlcycle_prediction_score",
    "Positive-class probability (classification) or predicted value",
    ["model", "version"],
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0, 10, 100, 1000, float("inf")),
)
INVALID = Counter("mlcycle_invalid_requests_total", "Requests refused by input validation", ["model"])
# Per-version request outcome and latency: the rollout's evidence in KServe's Standard mode, which has no
# Knative queue-proxy metrics (mlcycle/rollout/metrics.py STANDARD_QUERIES).
REQUESTS = Counter(
    "mlcycle_requests_total",
    "Predict requests by model version and outcome (ok, invalid, error)",
    ["model", "version", "outcome"],
)
LATENCY = Histogram(
    "mlcycle_request_seconds",
    "Predict latency inside the model server, by model version",
    ["model", "version"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
)
SCORING_PATH = Gauge(
    "mlcycle_scoring_path",
    "1 for the scoring path in use: fast (compiled ONNX) or native "
    "(the model's own library); reason says why the fast path is not used",
    ["model", "version", "path", "reason"],
)
PREPROCESS_PATH = Gauge(
    "mlcycle_preprocess_path",
    "1 on the preprocessing path in use: numpy (the fastprep replay) or "
    "sklearn (fallback: the replay cannot reproduce this preprocessor)",
    ["model", "version", "path"],
)
SERVED_VERSION = Gauge(
    "mlcycle_served_version", "1 for the model version this server answers with", ["model", "version"]
)
FOLLOW_FAILURES = Counter(
    "mlcycle_follow_failures_total",
    "Alias moves to a version that failed to load (the old one kept serving)",
    ["model"],
)


class MlcycleModel(kserve.Model):
    def __init__(
        self,
        name: str,
        source: str,
        max_batch_rows: int = 10_000,
        payload_log_url: str | None = None,
        fault_delay_ms: float = 0.0,
        fault_error_rate: float = 0.0,
        inline_rows: int = 1000,
        fast_path_max_rows: int = 32,
    ):
        super().__init__(name, return_response_headers=True)  # the request id goes back as x-request-id
        self.source = source
        self.max_batch_rows = max_batch_rows
        self.fault_delay_ms = fault_delay_ms
        self.fault_error_rate = fault_error_rate
        self._fault_rng = random.Random(0)
        self.version = ""
        self.bundle: ModelBundle | None = None
        self.codec: Codec | None = None
        self.fast = None
        self.scorer = None  # what scores preprocessed rows: the fast path's OnnxScorer, else the bundle itself
        self.scoring_path, self.fast_path_reason = "native", ""
        self.inline_rows = inline_rows
        self.fast_path_max_rows = fast_path_max_rows
        self._metrics = None
        self._old_scoring: tuple[str, str] | None = None
        self._loop = None  # the server's event loop, once a request came
        self.follow_error = ""
        self.preprocess_path, self.preprocess_why = "", ""
        self.ready = False
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score")
        self.payload_logger = None
        self.payload_log_url = payload_log_url
        self.rest_options: dict | None = None  # set by __main__ so REST worker processes configure their app alike
        if payload_log_url:
            from inference.predictor.payload_log import PayloadLogger

            self.payload_logger = PayloadLogger(payload_log_url, name)

    def load(self) -> bool:
        """Download (if remote), verify every sha256, then deserialize. Ready only on success."""
        self.ready = False
        self._install(self._prepare(materialize(self.source)))
        self.ready = True
        return self.ready

    def _prepare(self, version) -> dict:
        """Everything a version needs to serve, built aside (nothing served changes here)."""
        bundle = ModelBundle.from_version(version)
        paths = fastpath.select(bundle, version.directory, version.metadata.fast_path)
        return {
            "bundle": bundle,
            "codec": Codec(version.contract, self.max_batch_rows),
            "fast": paths.fast,
            "preprocess_why": paths.preprocess_why,
            "version": version.metadata.version,
            "preprocess_path": paths.preprocess_path,
            "scorer": paths.scorer,
            "scoring_path": paths.scoring_path,
            "fast_path_reason": paths.fast_path_reason,
        }

    def _install(self, state: dict) -> None:
        """Switch to a prepared version in one step (on the event loop once serving: no request sees half of it)."""
        old, old_scoring = self.version, self._old_scoring
        self.__dict__.update(state)
        for path in ("numpy", "sklearn"):
            PREPROCESS_PATH.labels(self.name, self.version, path).set(1 if path == self.preprocess_path else 0)
        SCORING_PATH.labels(self.name, self.version, self.scoring_path, self.fast_path_reason).set(1)
        SERVED_VERSION.labels(self.name, self.version).set(1)
        if old and old != self.version:  # the old version's gauges say it no longer serves
            SCORING_PATH.labels(self.name, old, *old_scoring).set(0)
            SERVED_VERSION.labels(self.name, old).set(0)
        self._old_scoring = (self.scoring_path, self.fast_path_reason)
        self._metrics = _Metrics(self.name, self.version)

    def follow(self, interval_s: float) -> None:
        """When serving an alias of a registry (``uri#model@production``), load the version it moves to: verified
        first, the old one served until the new one is ready, never a failed request. A version that fails to load
        is reported (log, ``mlcycle_follow_failures_total``, ``follow_error``) and the old one keeps serving."""
        source = alias_source(self.source)
        if source is None or interval_s <= 0:
            return

        def install(state: dict) -> None:
            loop = self._loop
            if loop is not None and loop.is_running():
                loop.call_soon_threadsafe(self._install, state)
            else:
                self._install(state)
            self.follow_error = ""

        def refused(version: str, error: Exception) -> None:
            self.follow_error = follower.error
            FOLLOW_FAILURES.labels(self.name).inc()

        follower = AliasFollower(
            source,
            lambda: self.version,
            lambda version: self._prepare(materialize(str(source.at(version)))),
            install,
            refused,
            logger=log,
        )
        follower.start(interval_s)  # not kept on self: the model is pickled into REST worker processes

    def start(self) -> None:
        """Called by kserve's ModelServer once its logging is configured: say which paths serve."""
        super().start()
        if self.fast is None:
            log.warning(
                "preprocessing path: sklearn (fallback) for %s %s: %s", self.name, self.version, self.preprocess_why
            )
        else:
            log.info("preprocessing path: numpy (fastprep replay) for %s %s", self.name, self.version)
        if self.scoring_path == "fast":
            log.info(
                "%s %s: scoring on the fast path (compiled ONNX, parity-checked at registration)",
                self.name,
                self.version,
            )
        else:
            log.warning("%s %s: scoring on the native model: %s", self.name, self.version, self.fast_path_reason)

    def __getstate__(self) -> dict:
        """KServe's --workers starts REST worker processes (spawn) and pickles the model into each: an in-memory
        hand-over between processes of this server, not a stored format. What cannot cross is rebuilt there."""
        return {**self.__dict__, "pool": None, "_metrics": None, "payload_logger": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score")
        if self.payload_log_url:
            from inference.predictor.payload_log import PayloadLogger

            self.payload_logger = PayloadLogger(self.payload_log_url, self.name)
        if self.ready:
            SCORING_PATH.labels(self.name, self.version, self.scoring_path, self.fast_path_reason).set(1)
            self._metrics = _Metrics(self.name, self.version)
        if self.rest_options is not None:  # this process's FastAPI app is a fresh import: give it the same REST front
            from kserve.model_server import app

            from inference.predictor.fastrest import configure_rest

            configure_rest(app, self, **self.rest_options)

    def get_input_types(self) -> list[dict]:
        if self.codec is None:
            return []
        return [
            {"name": c.name, "datatype": "FP64" if c.kind == "numeric" else "BYTES", "shape": [-1]}
            for c in self.codec.contract.features
        ]

    def get_output_types(self) -> list[dict]:
        if self.bundle is None:
            return []
        if self.bundle.task == "regression":
            return [{"name": "value", "datatype": "FP64", "shape": [-1]}]
        numeric = all(isinstance(c, int) for c in self.bundle.classes)
        return [
            {"name": "label", "datatype": "INT64" if numeric else "BYTES", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(self.bundle.classes)]},
        ]

    def score_batch(self, batch) -> tuple[np.ndarray, list]:
        if self.fault_delay_ms:
            time.sleep(self.fault_delay_ms / 1000)
        if self.fault_error_rate and self._fault_rng.random() < self.fault_error_rate:
            raise InferenceError("injected fault (--fault_error_rate)")
        if self.fast is not None:
            x = self.fast.transform(batch.columns, batch.n)
        else:
            import pandas as pd

            x = self.bundle.transform(pd.DataFrame(batch.columns))
        # onnxruntime's tree ensemble: ~25 µs a row; XGBoost: ~500 µs a call + ~20 µs a row (README "Benchmarks").
        # So the fast path up to the crossover, the native booster beyond (both held equal at registration).
        scorer = self.scorer if batch.n <= self.fast_path_max_rows else self.bundle
        scores = scorer.score_matrix(x)
        if self.bundle.task == "regression":
            return scores, []
        classes = self.bundle.classes
        if len(classes) == 2:
            labels = [classes[1] if p >= self.bundle.threshold else classes[0] for p in scores[:, 1]]
        else:
            labels = [classes[i] for i in scores.argmax(axis=1)]
        return scores, labels

    def _record(self, scores: np.ndarray, labels: list) -> None:
        m = self._metrics
        if self.bundle.task == "regression":
            observe = scores
        else:
            observe = scores[:, 1] if scores.shape[1] == 2 else scores.max(axis=1)
            for label in set(labels):
                m.predicted(label).inc(labels.count(label))
        m.observe_scores(observe[:1000])

    async def predict(self, payload, headers=None, response_headers=None):
        request_id = request_id_of(headers)
        if response_headers is not None:
            response_headers["x-request-id"] = request_id
        scores, labels = await self.score(payload)
        if isinstance(payload, InferRequest):
            response = self.codec.encode_v2(payload, self.name, scores, labels, self.bundle.classes, self.version)
        else:
            response = self.codec.encode_v1(scores, labels, self.bundle.classes, self.version)
        self.log_payload(payload, request_id, response)
        return response

    def log_payload(self, payload, request_id: str, response) -> None:
        """Embedded mode: the request (and with MLCYCLE_PAYLOAD_LOG_MODE=all the response) to the payload log."""
        if self.payload_logger is not None:
            body = payload.to_rest()[0] if isinstance(payload, InferRequest) else payload
            self.payload_logger.log(body, request_id, response)

    async def score(self, payload) -> tuple[np.ndarray, list]:
        """Validate, score and record one request (V1 dict or V2 InferRequest); encoding is the caller's."""
        loop = self._loop = asyncio.get_running_loop()
        start = time.perf_counter()
        m = self._metrics
        # An injected delay stands for a slow model: that one must stay off the event loop.
        inline = _rows(payload) <= self.inline_rows and not self.fault_delay_ms
        try:
            if inline:
                batch = self.codec.decode(payload)
            else:
                batch = await loop.run_in_executor(self.pool, self.codec.decode, payload)
        except InvalidInput:
            INVALID.labels(self.name).inc()
            m.invalid.inc()
            raise
        if inline:
            return self.score_decoded(batch, start)
        try:
            scores, labels = await loop.run_in_executor(self.pool, self.score_batch, batch)
        except Exception:
            m.error.inc()
            raise
        return self._finish(m, scores, labels, start)

    def score_decoded(self, batch, start: float) -> tuple[np.ndarray, list]:
        """Score and record a batch already decoded and validated, here on the calling thread (the lean fronts)."""
        m = self._metrics
        try:
            scores, labels = self.score_batch(batch)
        except Exception:
            m.error.inc()
            raise
        return self._finish(m, scores, labels, start)

    def _finish(self, m, scores: np.ndarray, labels: list, start: float) -> tuple[np.ndarray, list]:
        m.ok.inc()
        m.latency.observe(time.perf_counter() - start)
        self._record(scores, labels)
        return scores, labels


class _Metrics:
    """This version's metric children, looked up once (``labels()`` costs microseconds per call)."""

    def __init__(self, model: str, version: str):
        self.model, self.version = model, version
        self.ok, self.invalid, self.error = (REQUESTS.labels(model, version, o) for o in ("ok", "invalid", "error"))
        self.latency = LATENCY.labels(model, version)
        self.scores = SCORES.labels(model, version)
        self._predicted = {}
        self._bounds = np.asarray(self.scores._upper_bounds) if hasattr(self.scores, "_upper_bounds") else None

    def predicted(self, label):
        child = self._predicted.get(label)
        if child is None:
            child = self._predicted[label] = PREDICTIONS.labels(self.model, self.version, str(label))
        return child

    def observe_scores(self, values: np.ndarray) -> None:
        """Histogram.observe for every value, as one bucket count per bucket (same result, not one call per row)."""
        if self._bounds is None or len(values) < 4:
            for value in values:
                self.scores.observe(float(value))
            return
        n = len(self._bounds)  # a NaN lands past the last bound: observe() counts it in no bucket, only in the sum
        counts = np.bincount(np.searchsorted(self._bounds, values, side="left"), minlength=n + 1)[:n]
        for i in np.flatnonzero(counts):
            self.scores._buckets[i].inc(int(counts[i]))
        self.scores._sum.inc(float(np.sum(values)))


def _rows(payload) -> int:
    """Rows in a request, from its outer shape only (before validation; 0 when it cannot tell)."""
    if isinstance(payload, dict):
        rows = payload.get("instances", payload.get("inputs"))
        return len(rows) if isinstance(rows, list) else 0
    if isinstance(payload, InferRequest):
        return max((inp.shape[0] if inp.shape else 0 for inp in (payload.inputs or [])), default=0)
    return 0


def request_id_of(headers) -> str:
    """The client's X-Request-Id, else its Ce-Id (KServe's logger adopts it as the event id), else a new one."""
    headers = headers or {}
    return headers.get("x-request-id") or headers.get("ce-id") or uuid.uuid4().hex
