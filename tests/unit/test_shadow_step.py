"""The pipeline's shadow step on a real local registry: production's traffic captured by the real CaptureStore,
the candidate scored in process from its verified download, the outcome in the audit log and the aliases."""

import json
import shutil
from datetime import timedelta

import pandas as pd
import pytest
from kfp.dsl import Artifact

from components.register.logic import register
from components.shadow.component import shadow as shadow_component
from components.shadow.logic import shadow
from mlcycle import capture
from mlcycle.models import ModelBundle, fit_bundle, set_decision
from mlcycle.registry import open_registry
from mlcycle.shadow import ShadowPolicy

pytestmark = pytest.mark.unit

MODEL = "fraud"
POLICY = ShadowPolicy(min_requests=200, min_agreement=0.9, max_score_ks=0.2, max_p99_ms=1000, min_labels=100)
ANSWERED, OLD, LABELLED = 300, 100, 150


def _capture(uri: str, frame: pd.DataFrame, bundle: ModelBundle, version: str, first: int, flip: bool = False):
    """``frame``'s rows as the capture service stores them: one request each, answered by ``version``."""
    store = capture.CaptureStore(uri, MODEL)
    scores = bundle.score(frame)[:, 1]
    predictions = bundle.predict(frame)
    if flip:
        scores, predictions = 1 - scores, 1 - predictions
    ids = [f"req-{first + i}" for i in range(len(frame))]
    now = capture.utcnow()
    traffic = (
        frame[bundle.features]
        .reset_index(drop=True)
        .assign(
            request_id=ids,
            event_id=ids,
            row=0,
            model_version=version,
            endpoint="default",
            received_at=[now - timedelta(minutes=30) + timedelta(seconds=i) for i in range(len(frame))],
            prediction=predictions,
            score=scores,
        )
    )
    store.write(capture.TRAFFIC, traffic, "received_at")
    return ids


@pytest.fixture(scope="module")
def registries(tmp_path_factory, splits, contract):
    """Three copies of one registry (production, an identical retrain, one that flags every request):
    ``bare`` without traffic, ``traffic`` with captured traffic, ``labelled`` with late labels for half of it."""
    root = tmp_path_factory.mktemp("shadow-step")
    train, validation, test = splits
    fit_bundle("xgboost", train, validation, contract, seed=7, params={"n_estimators": 60})[0].save(root / "xgboost")
    registry = open_registry(root / "bare")

    def put(model_dir, fingerprint: str, promote: bool) -> str:
        return register(
            model_dir,
            contract,
            train,
            {"metrics": {}},
            {"passed": True, "reasons": []},
            registry,
            MODEL,
            fingerprint,
            "test",
            auto_promote=promote,
        ).version

    def bundle_with(threshold: float, name: str):
        shutil.copytree(root / "xgboost", root / name)
        set_decision(root / name, threshold, {"seed": 7, "threshold_policy": name})
        return root / name

    served = bundle_with(0.1, "served")  # a threshold that finds about half the fraud of the test rows
    production = put(served, "a" * 64, True)
    same = put(served, "b" * 64, False)
    worse = put(bundle_with(0.0, "flag-everything"), "c" * 64, False)

    shutil.copytree(root / "bare", root / "traffic")
    uri = str(root / "traffic")
    bundle = ModelBundle.load(served)
    fraud = test[contract.label] == 1
    rows = pd.concat([test[fraud], test[~fraud]], ignore_index=True)  # every fraud case among the labelled rows
    ids = _capture(uri, rows.iloc[:ANSWERED], bundle, production, 0)
    # answered by an earlier version, wrongly: never replayed (a filter that let them in would break agreement)
    _capture(uri, rows.iloc[ANSWERED : ANSWERED + OLD], bundle, "v-older", ANSWERED, flip=True)
    shutil.copytree(root / "traffic", root / "labelled")
    labels = pd.DataFrame(
        {
            "request_id": ids[:LABELLED],
            "row": 0,
            "label": rows[contract.label].iloc[:LABELLED].to_numpy(),
            "model_version": production,
            "prediction": bundle.predict(rows.iloc[:LABELLED]),
            "labelled_at": capture.utcnow(),
        }
    )
    capture.CaptureStore(str(root / "labelled"), MODEL).write(capture.LABELS, labels, "labelled_at")
    return {"root": root, "production": production, "same": same, "worse": worse}


def _open(registries, name: str, tmp_path, candidate: str):
    shutil.copytree(registries["root"] / name, tmp_path / name)
    registry = open_registry(tmp_path / name)
    registry.set_alias(MODEL, "candidate", candidate, why="test: registered")
    return registry


def _last_shadow(registry) -> dict:
    return [r for r in registry.audit_log(MODEL) if r["event"] == "shadow"][-1]


def test_an_identical_retrain_passes_on_production_traffic_and_labels(registries, tmp_path):
    registry = _open(registries, "labelled", tmp_path, registries["same"])
    decision = shadow(registry, MODEL, registries["same"], POLICY, hours=24)
    assert decision.passed, decision.reasons
    e = decision.evidence
    assert (e.requests, e.errors, e.agreement, e.labelled) == (ANSWERED, 0, 1.0, LABELLED)
    # the candidate scores on the compiled fast path (float32), production logged the same: at most a tie moves
    assert e.score_ks <= 1 / ANSWERED + 1e-6 and e.p99_ms is not None and e.p99_ms > 0
    assert e.accuracy["candidate"] == e.accuracy["production"]
    record = _last_shadow(registry)
    assert record["version"] == registries["same"] and record["why"] == "passed"
    assert record["evidence"]["reasons"] == decision.reasons and record["evidence"]["requests"] == ANSWERED
    assert registry.aliases(MODEL)[0]["candidate"] == registries["same"]


def test_a_candidate_that_flags_everything_is_stopped_by_the_labels(registries, tmp_path):
    registry = _open(registries, "labelled", tmp_path, registries["worse"])
    decision = shadow(registry, MODEL, registries["worse"], POLICY, hours=24, trigger="drift")
    assert not decision.passed
    assert any(r.startswith("FAIL online balanced accuracy candidate 0.5000") for r in decision.reasons)
    aliases = registry.aliases(MODEL)[0]
    assert "candidate" not in aliases and aliases["production"] == registries["production"]
    record = _last_shadow(registry)
    assert record["why"] == "failed" and record["evidence"]["trigger"] == "drift"
    assert record["evidence"]["accuracy"]["candidate"] == 0.5
    cleared = [r for r in registry.audit_log(MODEL) if r["event"] == "alias:candidate"][-1]
    assert cleared["why"].startswith("cleared: stopped at shadow: FAIL")


def test_without_labels_agreement_and_score_distance_stop_it(registries, tmp_path):
    registry = _open(registries, "traffic", tmp_path, registries["worse"])
    decision = shadow(registry, MODEL, registries["worse"], POLICY, hours=24)
    assert not decision.passed and decision.evidence.labelled == 0
    assert any(r.startswith("FAIL decision agreement") for r in decision.reasons)
    assert "candidate" not in registry.aliases(MODEL)[0]


def test_too_few_requests_fail_and_wait(registries, tmp_path):
    registry = _open(registries, "traffic", tmp_path, registries["same"])
    decision = shadow(registry, MODEL, registries["same"], ShadowPolicy(min_requests=1000), hours=24, trigger="drift")
    assert not decision.passed and decision.reasons == [f"wait {ANSWERED} shadowed requests < 1000"]
    assert "candidate" not in registry.aliases(MODEL)[0]


def test_no_captured_traffic_passes_a_manual_run_and_stops_a_drift_retrain(registries, tmp_path):
    registry = _open(registries, "bare", tmp_path, registries["worse"])
    decision = shadow(registry, MODEL, registries["worse"], POLICY, hours=24, trigger="manual")
    assert decision.passed and decision.evidence.requests == 0
    assert "no traffic to shadow" in decision.reasons[0]
    assert _last_shadow(registry)["why"] == "passed"
    assert registry.aliases(MODEL)[0]["candidate"] == registries["worse"]

    decision = shadow(registry, MODEL, registries["worse"], POLICY, hours=24, trigger="drift")
    assert not decision.passed and decision.reasons[0].startswith("FAIL no traffic to shadow")
    assert "candidate" not in registry.aliases(MODEL)[0]
    assert _last_shadow(registry)["why"] == "failed"


def test_production_itself_has_nothing_to_shadow_against(registries, tmp_path):
    registry = _open(registries, "traffic", tmp_path, registries["same"])
    decision = shadow(registry, MODEL, registries["production"], POLICY, hours=24, trigger="drift")
    assert decision.passed and "is production" in decision.reasons[0]


def test_the_component_shim_writes_the_evidence_and_returns_the_outcome(registries, tmp_path):
    registry = _open(registries, "labelled", tmp_path, registries["worse"])
    out = Artifact(name="evidence", uri=str(tmp_path / "evidence"), metadata={})
    passed = shadow_component.python_func(
        registry_uri=str(tmp_path / "labelled"),
        model_name=MODEL,
        version=registries["worse"],
        hours=24.0,
        trigger="drift",
        min_requests=200,
        min_agreement=0.9,
        max_accuracy_drop=0.01,
        evidence=out,
    )
    body = json.loads(open(out.path).read())
    assert passed is False and body["passed"] is False and out.metadata["passed"] is False
    assert body["requests"] == ANSWERED and body["labelled"] == LABELLED
    assert "candidate" not in registry.aliases(MODEL)[0]


def test_a_bad_window_is_refused(registries, tmp_path):
    registry = _open(registries, "bare", tmp_path, registries["same"])
    with pytest.raises(ValueError, match="hours must be positive"):
        shadow(registry, MODEL, registries["same"], POLICY, hours=0)


def test_the_direct_twin_runs_the_shadow_only_with_deploy(tmp_path):
    from mlcycle.defaults import MODEL_NAME as name
    from pipelines.direct import run_direct

    registry = open_registry(tmp_path / "registry")
    small = {"demo_rows": 2000, "families": ["logreg"], "n_trials": 0, "thresholds": {"roc_auc": 0.5}}
    run = run_direct(registry, tmp_path / "plain", auto_promote=True, **small)
    assert run.version and run.shadow is None and "shadow" not in run.seconds
    assert registry.resolve(name, "production") == run.version
    assert not [r for r in registry.audit_log(name) if r["event"] == "shadow"]

    run = run_direct(registry, tmp_path / "deploy", deploy=True, **{**small, "seed": 8, "min_improvement": -1.0})
    assert run.shadow is not None and run.shadow.passed and "shadow" in run.seconds
    # production is the first run's version (auto_promote), and no traffic was ever captured: a manual run passes
    assert run.shadow.reasons[0].startswith("info no traffic to shadow")
    record = [r for r in registry.audit_log(name) if r["event"] == "shadow"][-1]
    assert record["version"] == run.version and record["evidence"]["trigger"] == "manual"
