"""Decision threshold policies against brute force over every candidate threshold."""

import numpy as np
import pytest

from mlcycle.errors import ConfigError
from mlcycle.thresholds import ThresholdPolicy, choose_threshold

pytestmark = pytest.mark.unit


def _data(seed=0, n=2000):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.1
    proba = np.clip(rng.normal(0.25 + 0.35 * y, 0.15), 0, 1).round(3)  # ties on purpose
    return y, proba


def _confusion(y, proba, t):
    pred = proba >= t
    tp, fp = int((pred & y).sum()), int((pred & ~y).sum())
    fn = int((~pred & y).sum())
    return tp, fp, fn


def _brute(y, proba):
    for t in np.unique(proba):
        tp, fp, fn = _confusion(y, proba, t)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn)
        yield t, precision, recall, fp, fn


def test_f1_policy_is_the_best_f1_of_all_thresholds():
    y, proba = _data()
    choice = choose_threshold(y, proba, ThresholdPolicy.parse("f1"))
    best = max(2 * p * r / (p + r) if p + r else 0 for _, p, r, _, _ in _brute(y, proba))
    assert choice.f1 == pytest.approx(best)
    tp, fp, fn = _confusion(y, proba, choice.threshold)
    assert choice.f1 == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_precision_target_takes_the_highest_recall_that_meets_it():
    y, proba = _data(1)
    choice = choose_threshold(y, proba, ThresholdPolicy.parse("precision:0.8"))
    feasible = [(r, t) for t, p, r, _, _ in _brute(y, proba) if p >= 0.8]
    assert choice.target_met and choice.precision >= 0.8
    assert choice.recall == pytest.approx(max(feasible)[0])


def test_recall_target_takes_the_highest_precision_that_meets_it():
    y, proba = _data(2)
    choice = choose_threshold(y, proba, ThresholdPolicy.parse("recall:0.9"))
    feasible = [p for t, p, r, _, _ in _brute(y, proba) if r >= 0.9]
    assert choice.recall >= 0.9 and choice.precision == pytest.approx(max(feasible))


@pytest.mark.parametrize("ratio", [0.1, 1.0, 5.0])
def test_cost_policy_minimises_expected_cost(ratio):
    y, proba = _data(3)
    choice = choose_threshold(y, proba, ThresholdPolicy.parse(f"cost:{ratio}"))
    cost = lambda t: ratio * _confusion(y, proba, t)[1] + _confusion(y, proba, t)[2]  # noqa: E731
    best = min([cost(t) for t in np.unique(proba)] + [int(y.sum())])  # flagging nothing costs every positive
    assert cost(choice.threshold) == pytest.approx(best)


def test_costlier_false_positives_raise_the_threshold():
    y, proba = _data(4)
    cheap = choose_threshold(y, proba, ThresholdPolicy.parse("cost:0.2")).threshold
    dear = choose_threshold(y, proba, ThresholdPolicy.parse("cost:5")).threshold
    assert dear > cheap


def test_unreachable_precision_is_reported_not_hidden():
    y = np.array([True, False, True, False])
    proba = np.array([0.5, 0.5, 0.5, 0.5])
    choice = choose_threshold(y, proba, ThresholdPolicy.parse("precision:0.99"))
    assert choice.target_met is False


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("f2", "unknown threshold policy 'f2'"),
        ("precision", "is not a number"),
        ("precision:1.5", "must be in (0, 1]"),
        ("cost:-1", "must be > 0"),
        ("f1:3", "takes no value"),
    ],
)
def test_bad_policies_are_refused_by_name(text, fragment):
    with pytest.raises(
        ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")
    ):
        ThresholdPolicy.parse(text)
