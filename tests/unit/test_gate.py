import pytest

from components.gate.logic import GatePolicy, decide, gate
from mlcycle.registry import open_registry

pytestmark = pytest.mark.unit

POLICY = GatePolicy("roc_auc", {"roc_auc": 0.75, "log_loss": 0.2}, min_improvement=0.0)


@pytest.mark.parametrize(
    "challenger, champion, policy, passed, fragment",
    [
        ({"roc_auc": 0.80, "log_loss": 0.1}, None, POLICY, True, "no production model yet"),
        ({"roc_auc": 0.70, "log_loss": 0.1}, None, POLICY, False, "FAIL roc_auc=0.7000 < minimum 0.75"),
        ({"roc_auc": 0.80, "log_loss": 0.3}, None, POLICY, False, "FAIL log_loss=0.3000 > maximum 0.2"),
        ({"roc_auc": 0.80}, None, POLICY, False, "FAIL log_loss: not computed"),
        ({"roc_auc": 0.80, "log_loss": 0.1}, {"roc_auc": 0.79}, POLICY, True, "gain +0.0100"),
        (
            {"roc_auc": 0.80, "log_loss": 0.1},
            {"roc_auc": 0.80},
            POLICY,
            True,
            "gain +0.0000, required >= +0.0000",
        ),  # >=, not >
        (
            {"roc_auc": 0.80, "log_loss": 0.1},
            {"roc_auc": 0.81},
            POLICY,
            False,
            "FAIL roc_auc: challenger 0.8000 vs champion",
        ),
        (
            {"roc_auc": 0.80, "log_loss": 0.1},
            {"roc_auc": 0.805},
            GatePolicy("roc_auc", {}, -0.01),
            True,
            "required >= -0.0100",
        ),
        (
            {"roc_auc": 0.80, "log_loss": 0.1},
            {"roc_auc": 0.78},
            GatePolicy("roc_auc", {}, 0.05),
            False,
            "required >= +0.0500",
        ),
        ({"rmse": 1.0}, {"rmse": 1.2}, GatePolicy("rmse", {"rmse": 2.0}), True, "gain +0.2000"),  # lower is better
        ({"rmse": 1.3}, {"rmse": 1.2}, GatePolicy("rmse", {"rmse": 2.0}), False, "gain -0.1000"),
    ],
)
def test_decide(challenger, champion, policy, passed, fragment):
    decision = decide(challenger, champion, policy, champion_version="v1" if champion else None)
    assert decision.passed is passed
    assert any(fragment in r for r in decision.reasons), decision.reasons


def test_unscorable_champion_fails_closed():
    decision = decide({"roc_auc": 0.9}, None, GatePolicy("roc_auc"), "v1", champion_error="KeyError: 'new_feature'")
    assert not decision.passed and "could not be scored" in decision.reasons[0]


def test_gate_scores_the_production_model_on_the_same_test_set(tmp_path, model_dirs, splits, register_passed):
    from mlcycle.metrics import score_bundle
    from mlcycle.models import ModelBundle

    _, _, test = splits
    registry = open_registry(tmp_path / "reg")
    champion_metrics = score_bundle(ModelBundle.load(model_dirs["logreg"]), test, "is_fraud")
    first = register_passed(
        model_dirs["logreg"], registry, "f" * 64, "run-1", champion_metrics, ["first"], auto_promote=True
    )
    challenger = score_bundle(ModelBundle.load(model_dirs["baseline"]), test, "is_fraud")
    decision = gate(model_dirs["baseline"], test, "is_fraud", challenger, GatePolicy("roc_auc"), registry, "fraud")
    assert decision.champion_version == first.version
    assert decision.champion["roc_auc"] == pytest.approx(champion_metrics["roc_auc"])
    assert not decision.passed  # a Dummy model must not replace logistic regression
    assert [r["event"] for r in registry.audit_log("fraud")][-1] == "gate"


def _synthetic(n=2000, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    good = np.clip(y * 0.6 + rng.normal(0.2, 0.25, n), 0, 1)
    noisy = np.clip(y * 0.3 + rng.normal(0.35, 0.3, n), 0, 1)
    as_scores = lambda p: np.column_stack([1 - p, p])  # noqa: E731
    return y, as_scores(good), as_scores(noisy)


def test_paired_bootstrap_interval_covers_the_gain_and_orders_the_models():
    from mlcycle.metrics import metric_value, paired_bootstrap

    y, good, noisy = _synthetic()
    ci = paired_bootstrap("roc_auc", "classification", y, good, noisy, [0, 1], resamples=300)
    gain = metric_value("roc_auc", "classification", y, good, [0, 1]) - metric_value(
        "roc_auc", "classification", y, noisy, [0, 1]
    )
    assert ci["gain"] == pytest.approx(gain, abs=1e-6)
    assert 0 < ci["low"] < gain < ci["high"]  # clearly better: the whole interval is above 0
    same = paired_bootstrap("roc_auc", "classification", y, good, good, [0, 1], resamples=100)
    assert same["low"] == same["high"] == 0.0  # paired: identical models differ by exactly 0 on every resample
    reverse = paired_bootstrap("roc_auc", "classification", y, noisy, good, [0, 1], resamples=300)
    assert reverse["high"] < 0
    rmse = paired_bootstrap("rmse", "regression", y.astype(float), good[:, 1], noisy[:, 1], resamples=200)
    assert rmse["low"] > 0  # lower rmse is better: the gain is oriented by the metric's direction


@pytest.mark.parametrize(
    "low, confidence, passed, fragment",
    [
        (0.004, 0.95, True, "ok   roc_auc: 95% interval of the gain [+0.0040"),
        (-0.002, 0.95, False, "FAIL roc_auc: 95% interval of the gain [-0.0020"),
        (-0.002, 0.0, True, "info roc_auc: 95% interval"),  # reported, not required
    ],
)
def test_the_gate_can_require_the_intervals_lower_bound(low, confidence, passed, fragment):
    ci = {"metric": "roc_auc", "gain": 0.01, "low": low, "high": 0.02, "confidence": 0.95, "resamples": 1000}
    decision = decide(
        {"roc_auc": 0.81}, {"roc_auc": 0.80}, GatePolicy("roc_auc", {}, 0.0, confidence), "v1", bootstrap=ci
    )
    assert decision.passed is passed
    assert any(r.startswith(fragment) for r in decision.reasons), decision.reasons
    assert decision.bootstrap == ci


def test_a_required_interval_that_was_not_computed_fails_closed():
    decision = decide({"roc_auc": 0.81}, {"roc_auc": 0.80}, GatePolicy("roc_auc", {}, 0.0, 0.95), "v1")
    assert not decision.passed and "not computed" in decision.reasons[-1]


def test_gate_reports_the_interval_against_the_real_champion(tmp_path, model_dirs, splits, register_passed):
    from mlcycle.metrics import score_bundle
    from mlcycle.models import ModelBundle

    _, _, test = splits
    registry = open_registry(tmp_path / "reg")
    register_passed(model_dirs["baseline"], registry, "f" * 64, "run-1", auto_promote=True)
    challenger = score_bundle(ModelBundle.load(model_dirs["xgboost"]), test, "is_fraud")
    decision = gate(
        model_dirs["xgboost"], test, "is_fraud", challenger, GatePolicy("roc_auc", {}, 0.0, 0.95), registry, "fraud"
    )
    assert decision.bootstrap["low"] > 0.1  # XGBoost over a constant model: far beyond the test set's noise
    assert decision.passed


def test_the_bootstrap_auc_is_sklearns_roc_auc_on_resampled_rows_with_ties():
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from mlcycle.metrics import _binary_auc

    rng = np.random.default_rng(5)
    y = np.array(["legit", "fraud"])[rng.integers(0, 2, 3000)]
    p = np.round(rng.random(3000), 2)  # coarse scores: many ties, as resampling duplicates rows
    scores = np.column_stack([1 - p, p])
    for _ in range(20):
        idx = rng.integers(0, 3000, 3000)
        expected = roc_auc_score(y[idx] == "legit", scores[idx, 1])
        assert abs(_binary_auc("roc_auc", "classification", y[idx], scores[idx], ["fraud", "legit"]) - expected) < 1e-12
