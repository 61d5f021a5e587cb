"""Task-aware defaults, regression and non-integer labels with every family, and the checks on a run's options."""

import numpy as np
import pandas as pd
import pytest

from mlcycle.contract import infer_contract, infer_task
from mlcycle.errors import ConfigError, ModelError
from mlcycle.metrics import DEFAULT_THRESHOLDS, task_defaults
from mlcycle.models import FAMILIES, ModelBundle, check_families

pytestmark = pytest.mark.unit


def _table(task: str, n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n).astype(object)
    color[rng.random(n) < 0.1] = None
    x2[rng.random(n) < 0.05] = np.nan
    signal = 2 * x1 + np.nan_to_num(x2) + (color == "red")
    if task == "regression":
        y = signal + rng.normal(scale=0.3, size=n)
    elif task == "multiclass":
        y = np.asarray(["low", "mid", "high"], dtype=object)[np.digitize(signal, [-1, 1])]
    else:
        y = np.where(signal + rng.normal(scale=0.5, size=n) > 0.5, "yes", "no")
    return pd.DataFrame({"x1": x1, "x2": x2, "color": color, "y": y})


@pytest.mark.parametrize("family", FAMILIES)
def test_regression_trains_and_scores_with_every_family(family, tmp_path):
    frame = _table("regression")
    contract = infer_contract(frame, "y", task="regression")
    bundle = ModelBundle.fit(family, frame, contract, seed=1)
    bundle.save(tmp_path / "m")
    loaded = ModelBundle.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.score(frame), bundle.score(frame), rtol=1e-5, atol=1e-5)
    if family != "baseline":
        assert np.corrcoef(loaded.score(frame), frame["y"])[0, 1] > 0.8


def test_the_params_shown_are_the_estimators_real_ones():
    frame = _table("regression")
    contract = infer_contract(frame, "y", task="regression")
    ridge = ModelBundle.fit("logreg", frame, contract, seed=1, params={"alpha": 3.0})
    assert ridge.params == {"alpha": 3.0} and ridge.estimator.alpha == 3.0
    xgb = ModelBundle.fit("xgboost", frame, contract, seed=1, params={"max_depth": 3})
    assert xgb.params["max_depth"] == 3 and xgb.params["n_estimators"] == xgb.estimator.get_params()["n_estimators"]
    with pytest.raises(ModelError, match=r"logreg \(regression\) has no hyperparameter\(s\) C; it takes alpha"):
        ModelBundle.fit("logreg", frame, contract, seed=1, params={"C": 0.03})  # a classification parameter


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_string_labels_work_with_every_family(family, kind, tmp_path):
    frame = _table(kind)
    contract = infer_contract(frame, "y")
    bundle = ModelBundle.fit(family, frame, contract, seed=1)
    assert bundle.classes == contract.classes and set(bundle.predict(frame)) <= set(contract.classes)
    bundle.save(tmp_path / "m")
    loaded = ModelBundle.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.score(frame), bundle.score(frame), atol=1e-5)
    if family != "baseline":
        assert (loaded.predict(frame) == frame["y"].to_numpy()).mean() > 0.7


@pytest.mark.parametrize(
    "values, task",
    [
        ([0, 1] * 50, "classification"),
        (list(range(100)), "regression"),
        ([0.5, 1.25] * 50, "regression"),
        (["a", "b"] * 50, "classification"),
    ],
)
def test_task_is_inferred_from_the_label(values, task):
    assert infer_task(pd.Series(values))[0] == task


def test_each_task_has_its_own_defaults():
    assert task_defaults("classification") == ("roc_auc", DEFAULT_THRESHOLDS["classification"])
    assert task_defaults("regression") == ("rmse", DEFAULT_THRESHOLDS["regression"])
    assert task_defaults("regression", "mae", {"rmse": 30.0}) == ("mae", {"rmse": 30.0})


@pytest.mark.parametrize(
    "call, fragment",
    [
        (
            lambda: task_defaults("regression", thresholds={"roc_auc": 0.8}),
            "threshold on 'roc_auc' is a classification metric; regression has: rmse",
        ),
        (lambda: task_defaults("classification", "rsme"), "unknown metric 'rsme'"),
        (lambda: task_defaults("classification", "roc-auc"), "did you mean roc_auc"),
        (lambda: task_defaults("classification", thresholds={"roc_auc": float("nan")}), "must be a finite number"),
        (lambda: check_families(["xgb"]), "unknown or no model families ['xgb']"),
        (lambda: check_families(["xgbost"]), "did you mean xgboost"),
    ],
)
def test_bad_options_are_named(call, fragment):
    with pytest.raises(ConfigError) as err:
        call()
    assert fragment in str(err.value)
