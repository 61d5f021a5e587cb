"""Shadow replay: send captured production requests to a candidate predictor, keep its answers from every client,
and compare them with the answers production gave (``mlcycle.shadow``).

Replay rather than a live mirror: KServe has no traffic mirroring without a mesh, and a mirror inside the
predictor would put the candidate's latency and failures on production's request path. The replay uses the
same V1 protocol clients use, at a bounded concurrency, one captured request per call.
"""

import json
import math
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from mlcycle.shadow import ShadowDecision, ShadowPolicy, compare, decide


@dataclass
class Replayed:
    labels: list = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)  # indices of the requests the candidate answered
    errors: list[str] = field(default_factory=list)
    version: str | None = None


def _clean(row: dict) -> dict:
    """A captured row as a client sends it in JSON: NaN as null, NumPy scalars as numbers, times as ISO strings."""
    return {k: _plain(v) for k, v in row.items()}


def _plain(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, np.generic):
        return _plain(v.item())
    if isinstance(v, datetime):  # pandas.Timestamp too (a datetime column read back from Parquet); NaT != NaT
        return v.isoformat() if v == v else None
    return v


def _positive(answer: dict, i: int) -> float:
    probs = answer.get("probabilities")
    return float(probs[i][-1]) if probs else float(answer["predictions"][i])


def replay(rows: list[dict], url: str, model: str, concurrency: int = 4, timeout: float = 10.0) -> Replayed:
    """Each row as one V1 request to ``url``; answers in request order."""
    endpoint = f"{url.rstrip('/')}/v1/models/{model}:predict"

    def one(i: int):
        body = json.dumps({"instances": [_clean(rows[i])]}).encode()
        req = urllib.request.Request(endpoint, data=body, headers={"content-type": "application/json"}, method="POST")
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                answer = json.loads(r.read())
            return i, (time.perf_counter() - start) * 1000, answer, None
        except (urllib.error.URLError, OSError, ValueError) as e:
            return i, None, None, f"{type(e).__name__}: {e}"

    out = Replayed()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for i, ms, answer, error in pool.map(one, range(len(rows))):
            if error:
                out.errors.append(error)
                continue
            out.answered.append(i)
            out.labels.append(answer["predictions"][0])
            out.scores.append(_positive(answer, 0))
            out.latency_ms.append(ms)
            out.version = answer.get("model_version", out.version)
    return out


def shadow(
    rows: list[dict],
    production_labels,
    production_scores,
    candidate_url: str,
    model: str,
    policy: ShadowPolicy,
    truth=None,
    concurrency: int = 4,
) -> tuple[ShadowDecision, Replayed]:
    """Replay ``rows`` against the candidate and decide with ``policy``; production's answers are the logged ones."""
    got = replay(rows, candidate_url, model, concurrency)
    idx = np.asarray(got.answered, dtype=int)
    p_lab, p_sco = np.asarray(production_labels)[idx], np.asarray(production_scores, float)[idx]
    t = None if truth is None else np.asarray(truth, dtype=object)[idx]
    evidence = compare(
        p_lab, np.asarray(got.labels), p_sco, np.asarray(got.scores, float), got.latency_ms, len(got.errors), t
    )
    return decide(evidence, policy), got
