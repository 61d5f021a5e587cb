"""Shadow: replay production's captured traffic against the candidate version, in process, and decide with the
written ``ShadowPolicy`` (``mlcycle.shadow``) before the candidate may take canary traffic.

Mesh-free by replay: KServe has no traffic mirroring without a service mesh, and a mirror would put the candidate's
latency and failures on production's request path. Here the rows production answered (captured by the capture
service into the registry's object store, with the answers production gave) are scored again by the candidate in
this step's own process: production serves no extra load, and the candidate's answers never reach a client.
The candidate is loaded through the registry's verified download (every file's sha256 checked) and the skops
allow-list / XGBoost UBJ loader, never an unverified pickle, and scores each request on the predictor's own path
(NumPy preprocessing replay, compiled ONNX fast path when the version has one): the latency measured is the
predictor's compute for a one-row request, without the network and the server around it (the canary measures those).
"""

import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from mlcycle import capture, fastpath
from mlcycle.metrics import apply_threshold
from mlcycle.models import ModelBundle
from mlcycle.registry import Registry
from mlcycle.schema import VersionFiles
from mlcycle.shadow import ShadowDecision, ShadowPolicy, compare, decide, record, skipped, stop

MAX_ROWS = 2000  # the newest captured rows replayed (one request each), so the step's time stays bounded
# Triggers whose evidence is production's own traffic: a retrain they started is never rolled out unshadowed.
TRAFFIC_TRIGGERS = ("drift", "accuracy", "new_data")


@dataclass
class Scored:
    labels: list
    scores: list[float]
    latency_ms: list[float]
    answered: list[int]  # indices of the rows the candidate answered
    errors: list[str]


class Candidate:
    """The candidate on the predictor's own scoring path: the NumPy preprocessing replay (mlcycle.fastprep) and the
    compiled fast path (mlcycle.fastpath, parity-checked at registration) when the version has them, else the
    model's own; a one-row request is scored as the predictor scores it, so its latency is the predictor's compute."""

    def __init__(self, files: VersionFiles):
        self.bundle = ModelBundle.from_version(files, nthread=1)
        paths = fastpath.select(self.bundle, files.directory, files.metadata.fast_path)
        self.fast, self.scorer = paths.fast, paths.scorer
        self.path = f"{paths.preprocess_path} preprocessing, {paths.scoring_path} scoring"

    def score(self, columns: dict[str, np.ndarray], frame: pd.DataFrame, i: int) -> np.ndarray:
        if self.fast is not None:
            x = self.fast.transform({k: v[i : i + 1] for k, v in columns.items()}, 1)
        else:
            x = self.bundle.transform(frame.iloc[[i]])
        return self.scorer.score_matrix(x)


def score_rows(candidate: Candidate, rows: pd.DataFrame) -> Scored:
    """Score each row as one request, as a client sends it (timed; a failure counts as the candidate's error).
    Labels as the predictor decides them: the bundle's threshold on the positive class, else the top class."""
    out = Scored([], [], [], [], [])
    bundle = candidate.bundle
    classes = bundle.classes or []
    try:
        columns = fastpath.columns_of(rows, bundle)
    except KeyError as e:  # the candidate needs a feature production's requests do not carry: it fails every one
        out.errors = [f"row {i}: missing feature {e}" for i in range(len(rows))]
        return out
    for i in range(len(rows)):
        start = time.perf_counter()
        try:
            scores = candidate.score(columns, rows, i)
            label = apply_threshold(scores, classes, bundle.threshold)[0]
            score = float(scores[0, 1] if len(classes) == 2 else scores[0].max())  # as the capture logs it
        except Exception as e:  # whatever the model raises on a request is the candidate failing it
            out.errors.append(f"row {i}: {type(e).__name__}: {e}")
            continue
        out.latency_ms.append((time.perf_counter() - start) * 1000)
        out.answered.append(i)
        out.labels.append(label.item() if isinstance(label, np.generic) else label)
        out.scores.append(score)
    return out


def shadow(
    registry: Registry,
    model: str,
    version: str,
    policy: ShadowPolicy,
    hours: float,
    trigger: str = "manual",
    last: int = MAX_ROWS,
    log=print,
) -> ShadowDecision:
    """Shadow ``version`` against production on the traffic captured in the last ``hours``; the outcome is the audit
    record ``shadow``, and a failed shadow clears the candidate alias (production is not touched).

    Nothing to replay: no production version (a first deployment) or ``version`` is production (an identical
    retrain) passes, and so does a model with no captured traffic at all when the run was not started by production's
    traffic (manual, schedule: e.g. ``source=demo``, or a predictor without the capture service) — recorded with its
    reason. A retrain triggered by drift, accuracy or new data with no captured traffic fails: its trigger came
    from traffic the shadow should have seen. Some traffic, but under ``policy.min_requests``: ``decide`` says
    wait, which fails the step (no canary without enough evidence). A regression model passes through, recorded:
    the comparison is of class decisions."""
    if hours <= 0:
        raise ValueError(f"shadow: hours must be positive, not {hours}")
    production = registry.aliases(model)[0].get("production")
    if production is None or production == version:
        why = "no production version (first deployment)" if production is None else f"{version} is production"
        decision = skipped(True, f"info nothing to shadow against: {why}")
        record(registry, model, version, decision, production=production)
        return decision
    since = capture.utcnow() - timedelta(hours=hours)
    traffic, truth = capture.shadow_sample(registry.uri, model, production, since, last)
    if traffic.empty:
        window = (
            f"no traffic to shadow: no captured request answered by production {production} in the last {hours:g} h"
        )
        if trigger in TRAFFIC_TRIGGERS:
            decision = skipped(False, f"FAIL {window}; a retrain triggered by {trigger} is not rolled out unshadowed")
        else:
            decision = skipped(True, f"info {window} (trigger {trigger}): passed through to the canary")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            candidate = Candidate(registry.fetch_version(model, version, Path(tmp) / "candidate"))
        if candidate.bundle.task == "regression":  # agreement of decisions has no meaning for real values
            decision = skipped(
                True, "info regression: the shadow compares class decisions; passed through to the canary"
            )
            record(registry, model, version, decision, production=production, hours=hours, trigger=trigger)
            return decision
        log(f"shadow: {len(traffic)} captured requests replayed against {version} ({candidate.path})")
        got = score_rows(candidate, traffic)
        idx = np.asarray(got.answered, dtype=int)
        evidence = compare(
            traffic["prediction"].to_numpy()[idx],
            np.asarray(got.labels),
            traffic["score"].to_numpy(float)[idx],
            np.asarray(got.scores, float),
            got.latency_ms,
            len(got.errors),
            np.asarray(truth, dtype=object)[idx],
        )
        decision = decide(evidence, policy)
        for error in got.errors[:5]:
            log(f"shadow: candidate error {error}")
    record(registry, model, version, decision, production=production, hours=hours, trigger=trigger)
    if not decision.passed:
        stop(registry, model, version, decision)
    return decision
