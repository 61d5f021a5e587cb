"""The mlcycle predictor: a KServe ``Model`` serving one verified model version over V1 and V2,
REST and gRPC. Scoring runs in a worker thread so the event loop keeps answering health probes."""

import asyncio
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import kserve
import numpy as np
from kserve.errors import InferenceError, InvalidInput
from kserve.logging import logger as log
from kserve.protocol.infer_type import InferRequest
from prometheus_client import Counter, Gauge, Histogram

from inference.loader import materialize
from inference.predictor.codec import Codec
from mlcycle.contract import DataContract
from mlcycle.fastprep import try_compile
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
PREPROCESS_PATH = Gauge("mlcycle_preprocess_path", "1 on the preprocessing path in use: numpy (the fastprep replay) or "
                        "sklearn (fallback: the replay cannot reproduce this preprocessor)", ["model", "version", "path"])


class MlcycleModel(kserve.Model):
    def __init__(self, name: str, source: str, max_batch_rows: int = 10_000, payload_log_url: str | None = None,
                 fault_delay_ms: float = 0.0, scoring_threads: int = 1, fault_error_rate: float = 0.0):
        super().__init__(name)
        self.source = source
        self.max_batch_rows = max_batch_rows
        self.fault_delay_ms = fault_delay_ms
        self.fault_error_rate = fault_error_rate
        self._fault_rng = random.Random(0)
        self.version = ""
        self.bundle: ModelBundle | None = None
        self.codec: Codec | None = None
        self.fast = None
        self.preprocess_path, self.preprocess_why = "", ""
        self.ready = False
        self.pool = ThreadPoolExecutor(max_workers=scoring_threads, thread_name_prefix="score")
        self.payload_logger = None
        if payload_log_url:
            from inference.predictor.payload_log import PayloadLogger

            self.payload_logger = PayloadLogger(payload_log_url, name)

    def load(self) -> bool:
        """Download (if remote), verify every sha256, then deserialize. Ready only on success."""
        self.ready = False
        directory, meta = materialize(self.source)
        self.bundle = ModelBundle.load(Path(directory))
        self.codec = Codec(DataContract.model_validate(meta["contract"]), self.max_batch_rows)
        self.fast, self.preprocess_why = try_compile(self.bundle.preprocessor)
        self.version = meta["version"]
        self.preprocess_path = "numpy" if self.fast is not None else "sklearn"
        for path in ("numpy", "sklearn"):
            PREPROCESS_PATH.labels(self.name, self.version, path).set(1 if path == self.preprocess_path else 0)
        self.ready = True
        return self.ready

    def start(self) -> None:
        """Called by kserve's ModelServer once its logging is configured: say which preprocessing path serves."""
        super().start()
        if self.fast is None:
            log.warning("preprocessing path: sklearn (fallback) for %s %s: %s", self.name, self.version, self.preprocess_why)
        else:
            log.info("preprocessing path: numpy (fastprep replay) for %s %s", self.name, self.version)

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

            x = self.bundle.transform(pd.DataFrame(batch.columns))
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
        if self.payload_logger is not None:
            self.payload_logger.log(payload.to_rest()[0] if isinstance(payload, InferRequest) else payload)
        if isinstance(payload, InferRequest):
            return self.codec.encode_v2(payload, self.name, scores, labels, self.bundle.classes, self.version)
        return self.codec.encode_v1(scores, labels, self.bundle.classes, self.version)


def _small(payload) -> bool:
    """Decode tiny requests inline (microseconds); larger ones off the event loop."""
    if isinstance(payload, dict):
        rows = payload.get("instances", payload.get("inputs"))
        return isinstance(rows, list) and len(rows) <= 16
    if isinstance(payload, InferRequest):
        return all((inp.shape[0] if inp.shape else 0) <= 16 for inp in (payload.inputs or []))
    return True
