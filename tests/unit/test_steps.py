"""Each step's logic.py on real data, without KFP."""

import json

import numpy as np
import pandas as pd
import pytest

from components.evaluate.logic import run as evaluate_run
from components.register.logic import register
from components.split.logic import split_frame
from components.train.logic import train
from components.tune.logic import tune
from mlcycle.contract import infer_contract
from mlcycle.data import make_demo_dataset
from mlcycle.errors import DataError, ModelError, RegistryError
from mlcycle.fsutil import sha256_file
from mlcycle.models import ModelBundle
from mlcycle.registry import open_registry

pytestmark = pytest.mark.unit


def test_stratified_split_keeps_class_balance(demo_frame, contract):
    train_df, val, test = split_frame(demo_frame, contract, 0.2, 0.2, seed=1)
    assert len(train_df) + len(val) + len(test) == len(demo_frame)
    rate = demo_frame["is_fraud"].mean()
    for part in (train_df, val, test):
        assert abs(part["is_fraud"].mean() - rate) < 0.005
    again = split_frame(demo_frame, contract, 0.2, 0.2, seed=1)
    pd.testing.assert_frame_equal(test, again[2])


def test_time_split_puts_newest_rows_in_test(demo_frame, contract):
    train_df, val, test = split_frame(demo_frame, contract, seed=1, timestamp="timestamp")
    assert train_df["timestamp"].max() <= val["timestamp"].min() <= val["timestamp"].max() <= test["timestamp"].min()


def test_bad_split_fractions(demo_frame, contract):
    with pytest.raises(DataError, match="split fractions"):
        split_frame(demo_frame, contract, 0.5, 0.5)


def test_train_picks_the_best_candidate_and_beats_the_baseline(splits, contract, tmp_path):
    train_df, val, _ = splits
    logs = []
    result = train(train_df, val, contract, tmp_path / "m", ["baseline", "logreg", "xgboost"], seed=3, log=logs.append)
    board = {c.family: c.metrics["roc_auc"] for c in result.leaderboard}
    assert result.best_family in ("logreg", "xgboost")
    assert board[result.best_family] == max(board.values()) and board["baseline"] == 0.5
    assert board[result.best_family] > 0.8
    assert ModelBundle.load(tmp_path / "m").family == result.best_family
    assert len(logs) == 3


def test_unknown_family(splits, contract, tmp_path):
    with pytest.raises(ModelError, match="unknown or no model families"):
        train(splits[0], splits[1], contract, tmp_path / "m", ["deep-forest"])


def test_regression_task(tmp_path):
    frame = make_demo_dataset(3000, seed=4).drop(columns=["is_fraud"])
    c = infer_contract(frame, "avg_amount_30d", task="regression", timestamp="timestamp")
    train_df, val, test = split_frame(frame, c, seed=4)
    result = train(train_df, val, c, tmp_path / "m", ["baseline", "logreg", "hgb"], seed=4)
    assert result.primary_metric == "rmse"
    board = {x.family: x.metrics for x in result.leaderboard}
    assert board[result.best_family]["rmse"] < board["baseline"]["rmse"] and board[result.best_family]["r2"] > 0.5
    ev = evaluate_run(tmp_path / "m", _parquet(test, tmp_path / "t"), c, tmp_path / "r.html")
    assert set(ev.metrics) == {"rmse", "mae", "r2"}


def _parquet(frame, path):
    frame.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("better", ["tuned", "default"])
def test_tune_logs_every_trial_and_keeps_the_better_model(splits, contract, model_dirs, tmp_path, monkeypatch, better):
    """Tuned vs default on the validation split: whichever scores better is the model tune writes."""
    import components.tune.logic as tune_logic
    from mlcycle.metrics import score_bundle

    train_df, val, _ = splits
    default_dir = model_dirs["baseline" if better == "tuned" else "logreg"]  # a constant model loses to any tuned one
    if better == "default":  # the refit with the best params comes out a constant model: worse than the default

        def constant_refit(_family, tr, va, c, seed, _params, fit=tune_logic.fit_bundle):
            return fit("baseline", tr, va, c, seed)

        monkeypatch.setattr(tune_logic, "fit_bundle", constant_refit)
    logs = []
    result = tune(
        train_df, val, contract, "logreg", default_dir, tmp_path / "t", n_trials=3, cv_folds=2, seed=1, log=logs.append
    )
    assert len(result.trials) == 3 and sum(line.startswith("trial") for line in logs) == 3
    assert all(0.5 < t.cv_mean <= 1 for t in result.trials)
    primary = result.primary_metric
    assert result.default_val == score_bundle(ModelBundle.load(default_dir), val, contract.label)[primary]
    assert result.tuned_val is not None and result.tuned_val != result.default_val
    assert result.kept == better
    kept = ModelBundle.load(tmp_path / "t")
    assert score_bundle(kept, val, contract.label)[primary] == max(result.tuned_val, result.default_val)  # roc_auc
    if better == "tuned":
        assert kept.family == "logreg" and kept.params == result.best_params
    else:
        assert sha256_file(tmp_path / "t" / "estimator.skops") == sha256_file(default_dir / "estimator.skops")


def test_tune_with_zero_budget_copies_the_model(splits, contract, model_dirs, tmp_path):
    result = tune(splits[0], splits[1], contract, "logreg", model_dirs["logreg"], tmp_path / "t", n_trials=0)
    assert result.trials == [] and sha256_file(tmp_path / "t" / "estimator.skops") == sha256_file(
        model_dirs["logreg"] / "estimator.skops"
    )


def test_evaluate_report_and_segments(splits, contract, model_dirs, tmp_path):
    _, _, test = splits
    ev = evaluate_run(
        model_dirs["xgboost"],
        _parquet(test, tmp_path / "t"),
        contract,
        tmp_path / "report.html",
        segment_column="channel",
    )
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss"):
        assert key in ev.metrics
    assert np.sum(ev.confusion) == len(test)
    assert len(ev.roc[0]) == len(ev.roc[1]) <= 200 and max(ev.roc[2]) <= 1.0
    assert set(ev.segments) <= {"pos", "online", "atm", "contactless"} and len(ev.segments) >= 3
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64") == 5  # ROC, PR, calibration, confusion, importance
    assert "Per-segment metrics: channel" in html
    assert max(ev.importance.values()) > 0


@pytest.mark.parametrize("primary", ["pr_auc", "f1", "log_loss"])
def test_permutation_importance_is_the_drop_of_the_primary_metric(splits, contract, model_dirs, primary):
    """Each feature's importance: the mean drop of the primary metric, as score_bundle reports it, over its shuffles."""
    from components.evaluate.logic import permutation_importance
    from mlcycle.metrics import better, score_bundle

    bundle, test = ModelBundle.load(model_dirs["logreg"]), splits[2]
    got = permutation_importance(bundle, test, contract, seed=3, primary=primary, rows=800, repeats=2)
    sample = test.sample(n=800, random_state=3).reset_index(drop=True)
    base = score_bundle(bundle, sample, contract.label)[primary]
    rng, expected = np.random.default_rng(3), {}
    for name in bundle.features:
        drops = []
        for _ in range(2):
            shuffled = sample.copy()
            shuffled[name] = rng.permutation(shuffled[name].to_numpy())
            drops.append(better(primary, base, score_bundle(bundle, shuffled, contract.label)[primary]))
        expected[name] = round(float(np.mean(drops)), 6)
    assert got == expected and list(got) == sorted(got, key=lambda n: -got[n])


def test_evaluate_unknown_segment(splits, contract, model_dirs, tmp_path):
    with pytest.raises(DataError, match="segment column 'nope'"):
        evaluate_run(
            model_dirs["logreg"],
            _parquet(splits[2], tmp_path / "t"),
            contract,
            tmp_path / "r.html",
            segment_column="nope",
        )
    assert not (tmp_path / "r.html").exists()


def test_register_writes_a_self_describing_version(splits, contract, model_dirs, tmp_path):
    train_df, _, test = splits
    reg = open_registry(tmp_path / "reg")
    decision = {"passed": True, "reasons": ["ok"], "champion_version": None}
    result = register(
        model_dirs["xgboost"],
        contract,
        train_df,
        {"metrics": {"roc_auc": 0.9}},
        decision,
        reg,
        "fraud",
        "a" * 64,
        "run-7",
        test=test,
    )
    assert not result.promoted and reg.aliases("fraud")[0] == {"candidate": result.version}
    meta = reg.describe("fraud", "candidate")
    assert set(meta["files"]) == {
        "bundle.json",
        "preprocessor.skops",
        "estimator.ubj",
        "evaluation.json",
        "reference.parquet",
        "fastpath.onnx",
    }
    assert meta["fast_path"]["status"] == "ready" and meta["fast_path"]["checked_on"] == "test"
    assert meta["fast_path"]["parity"]["rows"] == len(test)
    assert meta["files"]["fastpath.onnx"]["sha256"] == meta["fast_path"]["sha256"]
    assert meta["format"] == {"preprocessor": "skops", "estimator": "xgboost-ubj"}
    assert meta["lineage"]["pipeline_run_id"] == "run-7" and meta["lineage"]["dataset_fingerprint"] == "a" * 64
    assert meta["lineage"]["code_version"] and meta["libraries"]["xgboost-cpu"]
    assert meta["contract"]["label"] == "is_fraud" and meta["gate"] == decision
    local = reg.fetch("fraud", result.version, tmp_path / "dl")
    np.testing.assert_allclose(ModelBundle.load(local).score(test), ModelBundle.load(model_dirs["xgboost"]).score(test))
    assert len(pd.read_parquet(local / "reference.parquet")) == min(5000, len(train_df))


def test_register_refuses_a_failed_gate(splits, contract, model_dirs, tmp_path):
    reg = open_registry(tmp_path / "reg")
    with pytest.raises(RegistryError, match="the gate did not pass"):
        register(
            model_dirs["logreg"],
            contract,
            splits[0],
            {},
            {"passed": False, "reasons": ["FAIL x"]},
            reg,
            "fraud",
            "a",
            "r",
        )
    assert reg.list_models() == []


def test_evaluation_json_is_serialisable(splits, contract, model_dirs, tmp_path):
    from dataclasses import asdict

    ev = evaluate_run(model_dirs["hgb"], _parquet(splits[2], tmp_path / "t"), contract, tmp_path / "r.html")
    assert json.loads(json.dumps(asdict(ev)))["family"] == "hgb"
