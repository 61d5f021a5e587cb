"""The shadow phase: a candidate answers a copy of production's traffic, its answers are kept from clients and
compared with production's on the same requests. ``compare`` turns the paired answers into evidence,
``decide`` applies the written thresholds; both pure and table-tested. ``record`` and ``stop`` write the outcome
to the registry (the audit record ``shadow``, the candidate alias cleared), the same for the local loop and the
pipeline's shadow step.

How the copy is made (KServe has no mirroring, and a mesh is not assumed): the captured request log is
replayed against the candidate (``inference.shadow`` over HTTP in the local loop, ``components.shadow`` in
process in the cluster pipeline), so production serves no extra load and the clients see nothing;
production's answers are the ones it gave and logged.
"""

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mlcycle.registry import Registry

WINDOW_HOURS = 24.0  # captured traffic of this many hours is replayed


@dataclass(frozen=True)
class ShadowPolicy:
    min_requests: int = 200
    min_agreement: float = 0.9  # share of requests where both decide the same class
    max_score_ks: float = 0.2  # KS distance between the two score distributions
    max_p99_ms: float = 100.0  # the candidate's p99 latency
    max_error_rate: float = 0.0  # the candidate's failed requests
    min_labels: int = 100  # online accuracy is compared once this many replayed requests have labels
    max_accuracy_drop: float = 0.01  # candidate accuracy >= production accuracy - this


@dataclass(frozen=True)
class ShadowEvidence:
    requests: int
    errors: int
    agreement: float | None
    score_ks: float | None
    p99_ms: float | None
    labelled: int = 0
    # balanced accuracy of both on the same labelled rows: {"production": ..., "candidate": ...}
    accuracy: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ShadowDecision:
    passed: bool
    reasons: list[str]
    evidence: ShadowEvidence


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic (largest gap between the empirical CDFs)."""
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    grid = np.concatenate([a, b])
    return float(
        np.max(np.abs(np.searchsorted(a, grid, "right") / len(a) - np.searchsorted(b, grid, "right") / len(b)))
    )


def _balanced(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Balanced accuracy: the mean recall over the classes present. Plain accuracy rewards a fraud model that flags
    nothing (97 % of transactions are honest); this does not."""
    recalls = [np.mean(predicted[truth == c] == c) for c in set(truth.tolist())]
    return round(float(np.mean(recalls)), 6)


def compare(
    production_labels, candidate_labels, production_scores, candidate_scores, latency_ms, errors: int, truth=None
) -> ShadowEvidence:
    """Evidence from paired answers: arrays over the requests both answered (``errors``: the candidate's failures,
    not in the arrays); ``truth``: late labels (NaN/None where none came yet)."""
    p_lab, c_lab = np.asarray(production_labels), np.asarray(candidate_labels)
    n = len(p_lab)
    if n != len(c_lab) or n != len(production_scores) or n != len(candidate_scores):
        raise ValueError("shadow compare: production and candidate answers are not paired")
    total = n + errors
    evidence: dict[str, Any] = {
        "requests": total,
        "errors": errors,
        "agreement": round(float(np.mean(p_lab == c_lab)), 6) if n else None,
        "score_ks": round(ks_distance(production_scores, candidate_scores), 6) if n else None,
        "p99_ms": round(float(np.percentile(latency_ms, 99)), 3) if len(latency_ms) else None,
    }
    if truth is not None:
        t = np.asarray(truth, dtype=object)
        known = np.array([v is not None and not (isinstance(v, float) and np.isnan(v)) for v in t], dtype=bool)
        evidence["labelled"] = int(known.sum())
        if known.any():
            evidence["accuracy"] = {
                "production": _balanced(p_lab[known], t[known]),
                "candidate": _balanced(c_lab[known], t[known]),
            }
    return ShadowEvidence(**evidence)


def decide(e: ShadowEvidence, policy: ShadowPolicy) -> ShadowDecision:
    if e.requests < policy.min_requests:
        return ShadowDecision(False, [f"wait {e.requests} shadowed requests < {policy.min_requests}"], e)
    reasons, passed = [], True

    def check(ok: bool, text: str) -> None:
        nonlocal passed
        passed &= ok
        reasons.append(f"{'ok  ' if ok else 'FAIL'} {text}")

    rate = e.errors / e.requests
    check(rate <= policy.max_error_rate, f"candidate error rate {rate:.4f} (max {policy.max_error_rate})")
    check(
        e.p99_ms is not None and e.p99_ms <= policy.max_p99_ms, f"candidate p99 {e.p99_ms} ms (max {policy.max_p99_ms})"
    )
    labelled = e.labelled >= policy.min_labels and bool(e.accuracy)
    # Agreement and score distance stand in for correctness while the truth is unknown. Once enough replayed
    # requests have labels, the accuracy of both on the same rows decides: a retrain on drifted data is meant to
    # disagree where production is wrong.
    agree = e.agreement is not None and e.agreement >= policy.min_agreement
    close = e.score_ks is not None and e.score_ks <= policy.max_score_ks
    proxy = [
        (agree, f"decision agreement {e.agreement} (min {policy.min_agreement})"),
        (close, f"score KS distance {e.score_ks} (max {policy.max_score_ks})"),
    ]
    for ok, text in proxy:
        if labelled:
            reasons.append(f"info {text}{'' if ok else ': outside, but the labels decide'}")
        else:
            check(ok, text)
    if labelled:
        drop = e.accuracy["production"] - e.accuracy["candidate"]
        check(
            drop <= policy.max_accuracy_drop,
            f"online balanced accuracy candidate {e.accuracy['candidate']:.4f} vs production "
            f"{e.accuracy['production']:.4f} on {e.labelled} labelled requests (max drop {policy.max_accuracy_drop})",
        )
    else:
        reasons.append(f"info {e.labelled} labelled requests < {policy.min_labels}: accuracy not compared yet")
    return ShadowDecision(passed, reasons, e)


def skipped(passed: bool, reason: str) -> ShadowDecision:
    """The decision when there was nothing to replay (no production, no captured traffic): no evidence."""
    return ShadowDecision(passed, [reason], ShadowEvidence(0, 0, None, None, None))


def record(registry: "Registry", model: str, version: str, decision: ShadowDecision, **evidence: Any) -> None:
    """The audit record ``shadow``: the outcome, every reason and the evidence it was decided on."""
    registry.audit(
        model,
        "shadow",
        version=version,
        why="passed" if decision.passed else "failed",
        evidence={"reasons": decision.reasons, **decision.evidence.as_dict(), **evidence},
    )


def stop(registry: "Registry", model: str, version: str, decision: ShadowDecision) -> bool:
    """A failed shadow: clear the candidate alias if it still names ``version`` (production is not touched).
    Returns whether it was cleared (another run may have moved the alias meanwhile)."""
    if registry.aliases(model)[0].get("candidate") != version:
        return False
    failed = [r for r in decision.reasons if not r.startswith(("ok", "info"))]
    registry.clear_alias(model, "candidate", why="stopped at shadow: " + "; ".join(failed))
    return True
