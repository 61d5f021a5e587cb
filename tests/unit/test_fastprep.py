"""The NumPy replay of the fitted preprocessing (mlcycle/fastprep.py) equals scikit-learn's transform to 1e-9."""

import numpy as np
import pandas as pd
import pytest

from mlcycle.fastprep import compile_preprocessor, try_compile
from mlcycle.models import ModelBundle, model_input

pytestmark = pytest.mark.unit
FAMILIES = ("baseline", "logreg", "hgb", "xgboost")


def hard_rows(test: pd.DataFrame, contract, n: int = 40) -> pd.DataFrame:
    """Test rows with NaN in every numeric feature, None and NaN in every categorical one, and unseen categories."""
    frame = test[contract.feature_names].head(n).reset_index(drop=True).copy()
    numeric = [c.name for c in contract.features if c.kind == "numeric"]
    categorical = [c.name for c in contract.features if c.kind == "categorical"]
    for j, name in enumerate(numeric):
        frame[name] = frame[name].astype(float)
        frame.loc[[j % n, (j + 7) % n], name] = np.nan
    for j, name in enumerate(categorical):
        frame[name] = frame[name].astype(object)
        frame.loc[(3 * j) % n, name] = None
        frame.loc[(3 * j + 1) % n, name] = np.nan
        frame.loc[(3 * j + 2) % n, name] = "never-seen-in-training"  # OneHotEncoder(handle_unknown="ignore"): all zeros
    return frame


def columns_of(frame: pd.DataFrame, fast) -> dict[str, np.ndarray]:
    """The arrays the predictor's codec hands over: float64 numerics (NaN for missing), object categoricals."""
    return {name: frame[name].to_numpy(dtype=np.float64 if name in fast.numeric else object) for name in frame.columns}


def assert_parity(ct, frame: pd.DataFrame) -> np.ndarray:
    """The replay against the fitted ColumnTransformer, fed as every caller feeds it (models.model_input)."""
    fast, why = try_compile(ct)
    assert fast is not None, why
    expected = np.asarray(ct.transform(model_input(frame, list(frame.columns))), dtype=np.float64)
    got = fast.transform(columns_of(frame, fast), len(frame))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    return expected


@pytest.mark.parametrize("family", FAMILIES)
def test_replay_equals_sklearn_on_missing_none_and_unseen_values(family, model_dirs, splits, contract):
    bundle = ModelBundle.load(model_dirs[family])
    frame = hard_rows(splits[2], contract)
    assert frame.isna().any().all(), "every feature must have a missing value in the probe rows"
    expected = assert_parity(bundle.preprocessor, frame)
    # the rows really exercise imputation and unknown categories, not just the easy path
    fast = compile_preprocessor(bundle.preprocessor)
    unseen = frame.index[frame["channel"] == "never-seen-in-training"][0]
    offset = len(fast.numeric) + sum(len(c) for c in fast.categories[: fast.categorical.index("channel")])
    assert expected[unseen, offset : offset + len(fast.categories[fast.categorical.index("channel")])].sum() == 0
    # and the model scores the replayed matrix exactly as it scores the DataFrame
    x = fast.transform(columns_of(frame, fast), len(frame))
    np.testing.assert_allclose(bundle.score_matrix(x), bundle.score(frame), rtol=0, atol=1e-9)


def test_replay_equals_sklearn_when_training_had_missing_categories(splits, contract):
    """With missing categories in training, "__missing__" is a category of its own: None and NaN must map to it."""
    train = splits[0].copy()
    train["channel"] = train["channel"].astype(object)
    train.loc[train.index[::13], "channel"] = None  # as Parquet gives it back: None, not NaN
    ct = ModelBundle.fit("baseline", train, contract, seed=7).preprocessor
    learned = list(ct.named_transformers_["cat"].named_steps["onehot"].categories_[1])
    assert "__missing__" in learned and None not in learned  # None was imputed, not learned as a category
    frame = hard_rows(splits[2], contract)
    expected = assert_parity(ct, frame)
    fast = compile_preprocessor(ct)
    missing_col = len(fast.numeric) + len(fast.categories[0]) + fast.categories[1]["__missing__"]
    rows = frame.index[frame["channel"].isna()]
    assert len(rows) == 2 and (expected[rows, missing_col] == 1.0).all()


def _swap(ct, transformer: str, step: str, replacement):
    import copy

    ct = copy.deepcopy(ct)
    pipe = ct.named_transformers_[transformer]
    pipe.steps = [(name, replacement if name == step else est) for name, est in pipe.steps]
    return ct


def test_structures_the_replay_does_not_reproduce_are_refused_with_the_reason(model_dirs, splits, contract):
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder

    ct = ModelBundle.load(model_dirs["logreg"]).preprocessor
    numeric = [c.name for c in contract.features if c.kind == "numeric"]
    imputed = ct.named_transformers_["num"].named_steps["impute"].transform(splits[0][numeric])
    minmax = _swap(ct, "num", "scale", MinMaxScaler().fit(imputed))
    fast, why = try_compile(minmax)
    assert fast is None and "MinMaxScaler" in why
    assert compile_preprocessor(minmax) is None
    cats = [c.name for c in contract.features if c.kind == "categorical"]
    strict = _swap(ct, "cat", "onehot", OneHotEncoder(handle_unknown="error", sparse_output=False).fit(splits[0][cats]))
    assert try_compile(strict)[0] is None and "unknown" in try_compile(strict)[1]
    assert try_compile(object())[1].startswith("preprocessor is a object")


def test_a_replay_that_would_differ_is_refused(model_dirs, monkeypatch):
    """The probe rows catch a replay that compiles but would compute something else (here: a shifted scaler mean)."""
    import mlcycle.fastprep as fp

    ct = ModelBundle.load(model_dirs["hgb"]).preprocessor
    assert try_compile(ct)[0] is not None
    original = fp._compile

    def skewed(c):
        fast = original(c)
        fast.mean = fast.mean + 1e-6 * fast.scale
        return fast

    monkeypatch.setattr(fp, "_compile", skewed)
    fast, why = try_compile(ct)
    assert fast is None and "differs" in why
