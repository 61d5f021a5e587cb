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
        ({"roc_auc": 0.80, "log_loss": 0.1}, {"roc_auc": 0.80}, POLICY, True, "gain +0.0000, required >= +0.0000"),  # >=, not >
        ({"roc_auc": 0.80, "log_loss": 0.1}, {"roc_auc": 0.81}, POLICY, False, "FAIL roc_auc: challenger 0.8000 vs champion"),
        ({"roc_auc": 0.80, "log_loss": 0.1}, {"roc_auc": 0.805}, GatePolicy("roc_auc", {}, -0.01), True, "required >= -0.0100"),
        ({"roc_auc": 0.80, "log_loss": 0.1}, {"roc_auc": 0.78}, GatePolicy("roc_auc", {}, 0.05), False, "required >= +0.0500"),
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


def test_gate_scores_the_production_model_on_the_same_test_set(tmp_path, model_dirs, splits, contract):
    from components.register.logic import register
    from mlcycle.metrics import score_bundle
    from mlcycle.models import ModelBundle

    train, _, test = splits
    registry = open_registry(tmp_path / "reg")
    champion_metrics = score_bundle(ModelBundle.load(model_dirs["logreg"]), test, "is_fraud")
    passed = {"passed": True, "reasons": ["first"]}
    first = register(model_dirs["logreg"], contract, train, {"metrics": champion_metrics}, passed, registry, "fraud", "f" * 64, "run-1", auto_promote=True)
    challenger = score_bundle(ModelBundle.load(model_dirs["baseline"]), test, "is_fraud")
    decision = gate(model_dirs["baseline"], test, "is_fraud", challenger, GatePolicy("roc_auc"), registry, "fraud")
    assert decision.champion_version == first.version
    assert decision.champion["roc_auc"] == pytest.approx(champion_metrics["roc_auc"])
    assert not decision.passed  # a Dummy model must not replace logistic regression
    assert [r["event"] for r in registry.audit_log("fraud")][-1] == "gate"
