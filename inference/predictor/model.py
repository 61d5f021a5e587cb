"""The mlcycle predictor: a KServe ``Model`` serving one verified model version over V1 and V2,
REST and gRPC. Scoring runs in a worker thread so the event loop keeps answering health probes."""

import asyncio
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import kserve
import numpy as np
from kserve.errors import InferenceError, InvalidInput
from kserve.protocol.infer_type import InferRequest
from prometheus_client import Counter, Histogram

from inference.loader import materialize
from inference.predictor.codec import Codec
from mlcycle.fastprep import compile_preprocessor
from mlcycle.models import ModelBundle

PREDICTIONS = Counter("mlcycle_predictions_total", "Rows scored, by predicted class", ["model", "version", "label"])
SCORES = Histogram("mlcycle_prediction_score", "Positive-class probability (classification) or predicted value",
                   ["model", "version"], buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0, 10, 100, 1000, float("inf")))
INVALID = Counter("mlcycle_invalid_requests_total", "Requests refused by input validation", ["model"])
# Per-version request outcome and latency: the rollout's evidence in KServe's Standard mode, which has no
# Knative queue-proxy metrics (mlcycle/rollout/metrics.py STANDARD_QUERIES).
REQUESTS = Counter("mlcycle_requests_total", "Predict requests by model version and outcome (ok, invalid, error)",
                   ["model", "version", "outcome"])
LATENCY = Histogram("mlcycle_request_seconds", "Predict latency inside the model server, by model version", ["model", "version"],
                    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0))


class MlcycleModel(kserve.Model):
    def __init__(self, name: str, source: str, max_batch_rows: int = 10_000, payload_log_url: str | None = None,
                 fault_delay_ms: float = 0.0, fault_error_rate: float = 0.0):
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
        self.ready = False
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score")
        self.payload_logger = None
        if payload_log_url:
            from inference.predictor.payload_log import PayloadLogger

            self.payload_logger = PayloadLogger(payload_log_url, name)

    def load(self) -> bool:
        """Download (if remote), verify every sha256, then deserialize. Ready only on success."""
        self.ready = False
        version = materialize(self.source)
        self.bundle = ModelBundle.from_version(version)
        self.codec = Codec(version.contract, self.max_batch_rows)
        self.fast = compile_preprocessor(self.bundle.preprocessor)
        self.version = version.metadata.version
        self.ready = True
        return self.ready

    def get_input_types(self) -> list[dict]:
        if self.codec is None:
            return []
        return [{"name": c.name, "datatype": "FP64" if c.kind == "numeric" else "BYTES", "shape": [-1]} for c in self.codec.contract.features]

    def get_output_types(self) -> list[dict]:
        if self.bundle is None:
            return []
        if self.bundle.task == "regression":
            return [{"name": "value", "datatype": "FP64", "shape": [-1]}]
        numeric = all(isinstance(c, int) for c in self.bundle.classes)
        return [{"name": "label", "datatype": "INT64" if numeric else "BYTES", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(self.bundle.classes)]}]

    def score_batch(self, batch) -> tuple[np.ndarray, list]:
        if self.fault_delay_ms:
            time.sleep(self.fault_delay_ms / 1000)
        if self.fault_error_rate and self._fault_rng.random() < self.fault_error_rate:
            raise InferenceError("injected fault (--fault_error_rate)")
        if self.fast is not None:
            x = self.fast.transform(batch.columns, batch.n)
        else:
            import pandas as pd

            x = self.bundle.preprocessor.transform(pd.DataFrame(batch.columns)[self.bundle.features])
        scores = self.bundle.score_matrix(x)
        if self.bundle.task == "regression":
            return scores, []
        classes = self.bundle.classes
        if len(classes) == 2:
            labels = [classes[1] if p >= self.bundle.threshold else classes[0] for p in scores[:, 1]]
        else:
            labels = [classes[i] for i in scores.argmax(axis=1)]
        return scores, labels

    def _record(self, scores: np.ndarray, labels: list) -> None:
        if self.bundle.task == "regression":
            observe = scores
        else:
            observe = scores[:, 1] if scores.shape[1] == 2 else scores.max(axis=1)
            for label in set(labels):
                PREDICTIONS.labels(self.name, self.version, str(label)).inc(labels.count(label))
        hist = SCORES.labels(self.name, self.version)
        for value in observe[:1000]:
            hist.observe(float(value))

    async def predict(self, payload, headers=None, response_headers=None):
        loop = asyncio.get_running_loop()
        request_id = request_id_of(headers)
        if response_headers is not None:
            response_headers["x-request-id"] = request_id
        start = time.perf_counter()
        try:
            batch = self.codec.decode(payload) if _small(payload) else await loop.run_in_executor(self.pool, self.codec.decode, payload)
        except InvalidInput:
            INVALID.labels(self.name).inc()
            REQUESTS.labels(self.name, self.version, "invalid").inc()
            raise
        try:
            scores, labels = await loop.run_in_executor(self.pool, self.score_batch, batch)
        except Exception:
            REQUESTS.labels(self.name, self.version, "error").inc()
            raise
        REQUESTS.labels(self.name, self.version, "ok").inc()
        LATENCY.labels(self.name, self.version).observe(time.perf_counter() - start)
        self._record(scores, labels)
        if isinstance(payload, InferRequest):
            response = self.codec.encode_v2(payload, self.name, scores, labels, self.bundle.classes, self.version)
        else:
            response = self.codec.encode_v1(scores, labels, self.bundle.classes, self.version)
        if self.payload_logger is not None:
            body = payload.to_rest()[0] if isinstance(payload, InferRequest) else payload
            self.payload_logger.log(body, request_id, response)
        return response


def request_id_of(headers) -> str:
    """The client's X-Request-Id, else its Ce-Id (KServe's logger adopts it as the event id), else a new one."""
    headers = headers or {}
    return headers.get("x-request-id") or headers.get("ce-id") or uuid.uuid4().hex


def _small(payload) -> bool:
    """Decode tiny requests inline (microseconds); larger ones off the event loop."""
    if isinstance(payload, dict):
        rows = payload.get("instances", payload.get("inputs"))
        return isinstance(rows, list) and len(rows) <= 16
    if isinstance(payload, InferRequest):
        return all((inp.shape[0] if inp.shape else 0) <= 16 for inp in (payload.inputs or []))
    return True
