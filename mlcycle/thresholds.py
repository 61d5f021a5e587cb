"""Decision thresholds for binary classifiers, chosen on out-of-fold predictions by a named policy.

A policy is a short string (a pipeline parameter and a CLI option):

- ``f1`` (default): the threshold with the best F1;
- ``precision:P``: the highest recall whose precision is at least P (e.g. ``precision:0.9``);
- ``recall:R``: the highest precision whose recall is at least R;
- ``cost:C``: the lowest expected cost when a false positive costs C times a false negative
  (the fraud case: blocking a good customer's card vs missing a fraud; ``cost:0.2`` means a missed
  fraud costs five times a false alarm).

Thresholds are chosen on out-of-fold scores from cross-validation over train + validation rather
than on one small validation split, whose lowest positive score is often the "best" F1 threshold.
"""

from dataclasses import asdict, dataclass

import numpy as np

from mlcycle.errors import ConfigError

KINDS = ("f1", "precision", "recall", "cost")


@dataclass(frozen=True)
class ThresholdPolicy:
    kind: str = "f1"
    target: float | None = None

    @classmethod
    def parse(cls, text: str) -> "ThresholdPolicy":
        kind, _, value = (text or "f1").strip().partition(":")
        if kind not in KINDS:
            raise ConfigError(f"unknown threshold policy '{text}'; use f1, precision:P, recall:R or cost:C")
        if kind == "f1":
            if value:
                raise ConfigError(f"threshold policy 'f1' takes no value (got '{text}')")
            return cls("f1")
        try:
            target = float(value)
        except ValueError:
            raise ConfigError(f"threshold policy '{text}': '{value}' is not a number") from None
        if kind in ("precision", "recall") and not 0 < target <= 1:
            raise ConfigError(f"threshold policy '{text}': the target {kind} must be in (0, 1]")
        if kind == "cost" and not target > 0:
            raise ConfigError(f"threshold policy '{text}': the false-positive/false-negative cost ratio must be > 0")
        return cls(kind, target)

    def __str__(self) -> str:
        return self.kind if self.target is None else f"{self.kind}:{self.target:g}"


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    policy: str
    precision: float
    recall: float
    f1: float
    false_positive_rate: float
    rows: int
    target_met: bool = True

    def as_dict(self) -> dict:
        """The estimates rounded for people; the threshold exact (it is the one the model applies)."""
        return {k: (round(v, 6) if isinstance(v, float) and k != "threshold" else v) for k, v in asdict(self).items()}


def choose_threshold(positive: np.ndarray, proba: np.ndarray, policy: ThresholdPolicy) -> ThresholdChoice:
    """The threshold ``policy`` picks on (out-of-fold) scores ``proba`` of the positive class."""
    positive = np.asarray(positive, dtype=bool)
    proba = np.asarray(proba, dtype=np.float64)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return ThresholdChoice(0.5, str(policy), 0.0, 0.0, 0.0, 0.0, len(proba), False)
    # Candidate thresholds: every distinct score; predicted positive when score >= threshold.
    order = np.argsort(-proba, kind="stable")
    scores, pos = proba[order], positive[order]
    last = np.r_[np.flatnonzero(np.diff(scores) != 0), len(scores) - 1]  # the last index of each distinct score
    tp = np.cumsum(pos)[last].astype(np.float64)
    fp = (last + 1 - tp).astype(np.float64)
    thresholds = scores[last]
    precision = tp / (tp + fp)
    recall = tp / n_pos
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    met = True
    if policy.kind == "f1":
        best = int(np.argmax(f1))
    elif policy.kind == "precision":
        ok = np.flatnonzero(precision >= policy.target)
        met = ok.size > 0
        best = int(ok[np.argmax(recall[ok])]) if met else int(np.argmax(precision))
    elif policy.kind == "recall":
        ok = np.flatnonzero(recall >= policy.target)
        met = ok.size > 0
        best = int(ok[np.argmax(precision[ok])]) if met else int(np.argmax(recall))
    else:
        cost = policy.target * fp + (n_pos - tp)
        best = int(np.argmin(cost))
        if n_pos < cost[best]:  # flagging nothing is cheaper still
            return ThresholdChoice(float(np.nextafter(scores[0], np.inf)), str(policy), 0.0, 0.0, 0.0, 0.0, len(proba))
    threshold = float(thresholds[best])
    return ThresholdChoice(
        threshold,
        str(policy),
        float(precision[best]),
        float(recall[best]),
        float(f1[best]),
        float(fp[best] / n_neg),
        len(proba),
        met,
    )
