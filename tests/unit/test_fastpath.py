"""The compiled fast path (mlcycle.fastpath): conversion, parity at registration, refusal, loading."""

import hashlib

import numpy as np
import pytest

from mlcycle import fastpath
from mlcycle.models import ModelBundle

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def xgb_bundle(model_dirs):
    return ModelBundle.load(model_dirs["xgboost"], nthread=1)


def test_xgboost_compiles_and_matches_the_native_model_on_every_test_row(xgb_bundle, splits, tmp_path):
    _, _, test = splits
    entry = fastpath.build(xgb_bundle, test, tmp_path)
    assert entry["status"] == "ready", entry
    data = (tmp_path / fastpath.FAST_FILE).read_bytes()
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["parity"]["rows"] == len(test) and entry["parity"]["label_mismatches"] == 0
    assert entry["parity"]["preprocessing"] == "numpy-replay"
    scorer, why = fastpath.load(tmp_path, entry, "classification")
    assert scorer is not None and why == ""
    x = xgb_bundle.transform(test)
    fast, native = scorer.score_matrix(x), xgb_bundle.score_matrix(x)
    assert fast.shape == native.shape
    np.testing.assert_allclose(fast, native, atol=fastpath.TOLERANCE)
    assert data[:2] != b"\x80\x04" and b"pickle" not in data[:64]  # an ONNX protobuf, not a pickle


def test_a_family_without_converter_gets_no_fast_path_and_says_why(model_dirs, splits, tmp_path):
    _, _, test = splits
    entry = fastpath.build(ModelBundle.load(model_dirs["baseline"]), test, tmp_path)
    assert entry["status"] == "absent" and "baseline" in entry["reason"]
    assert not (tmp_path / fastpath.FAST_FILE).exists()


@pytest.mark.parametrize("family", ["logreg", "hgb"])
def test_scikit_learn_models_compile_by_skl2onnx_or_say_why_not(family, model_dirs, splits, tmp_path):
    """A logistic regression compiles and matches predict_proba on every test row; a histogram gradient boosting
    model either does the same or is refused on parity (its float32 split thresholds), never stored disagreeing."""
    _, _, test = splits
    bundle = ModelBundle.load(model_dirs[family])
    entry = fastpath.build(bundle, test, tmp_path)
    if family == "hgb" and entry["status"] == "absent":
        assert "parity" in entry["reason"] or "differ" in entry["reason"], entry
        assert not (tmp_path / fastpath.FAST_FILE).exists()
        return
    assert entry["status"] == "ready", entry
    assert entry["parity"]["rows"] == len(test) and entry["parity"]["label_mismatches"] == 0
    assert "skl2onnx" in entry["libraries"]
    scorer, why = fastpath.load(tmp_path, entry, "classification")
    assert why == ""
    x = bundle.transform(test)
    np.testing.assert_allclose(scorer.score_matrix(x), bundle.score_matrix(x), atol=fastpath.TOLERANCE)


def test_a_booster_the_converter_cannot_handle_is_refused_with_the_converters_reason(
    xgb_bundle, splits, contract, tmp_path
):
    """A linear booster (gblinear): a real XGBoost model that onnxmltools cannot convert."""
    import xgboost as xgb

    from mlcycle.models import encode_labels

    train, _, test = splits
    y = encode_labels(train[contract.label].to_numpy(), contract)
    linear = xgb.train(
        {"objective": "binary:logistic", "booster": "gblinear"}, xgb.DMatrix(xgb_bundle.transform(train), label=y), 5
    )
    bundle = ModelBundle(
        "xgboost", "classification", xgb_bundle.features, xgb_bundle.preprocessor, linear, xgb_bundle.classes
    )
    entry = fastpath.build(bundle, test, tmp_path)
    assert entry["status"] == "absent" and "cannot convert" in entry["reason"]
    assert not (tmp_path / fastpath.FAST_FILE).exists()


def test_a_fast_path_that_disagrees_with_the_native_model_is_not_stored(xgb_bundle, splits, contract, tmp_path):
    """A converter that compiles a different (real) booster: parity fails, nothing written, reason recorded."""
    from mlcycle.models import fit_bundle

    train, val, test = splits
    other, _ = fit_bundle("xgboost", train, val, contract, seed=8, params={"n_estimators": 5})
    entry = fastpath.build(xgb_bundle, test, tmp_path, converter=lambda _: fastpath.convert(other_booster(other)))
    assert entry["status"] == "absent" and entry["reason"].startswith("parity check failed")
    assert not (tmp_path / fastpath.FAST_FILE).exists()


def test_a_fast_path_file_whose_checksum_fails_is_refused(xgb_bundle, splits, tmp_path):
    _, _, test = splits
    entry = fastpath.build(xgb_bundle, test, tmp_path)
    path = tmp_path / fastpath.FAST_FILE
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    scorer, why = fastpath.load(tmp_path, entry, "classification")
    assert scorer is None and "sha256 mismatch" in why
    path.unlink()
    assert fastpath.load(tmp_path, entry, "classification")[0] is None
    assert fastpath.load(tmp_path, None, "classification") == (None, fastpath.load(tmp_path, {}, "classification")[1])


def test_the_predictor_and_the_shadow_take_the_paths_one_selection_gives(xgb_bundle, model_dirs, splits, tmp_path):
    _, _, test = splits
    entry = fastpath.build(xgb_bundle, test, tmp_path)
    paths = fastpath.select(xgb_bundle, tmp_path, entry)
    assert (paths.preprocess_path, paths.scoring_path) == ("numpy", "fast") and paths.fast_path_reason == ""
    assert isinstance(paths.scorer, fastpath.OnnxScorer) and paths.fast is not None and paths.preprocess_why == ""
    native = fastpath.select(xgb_bundle, tmp_path, None)
    assert native.scoring_path == "native" and native.scorer is xgb_bundle and "no fast path" in native.fast_path_reason
    (tmp_path / fastpath.FAST_FILE).write_bytes(b"not onnx")
    refused = fastpath.select(xgb_bundle, tmp_path, entry)
    assert refused.scoring_path == "native" and "sha256 mismatch" in refused.fast_path_reason


def other_booster(bundle):
    booster = bundle.estimator.get_booster() if hasattr(bundle.estimator, "get_booster") else bundle.estimator
    return ModelBundle(bundle.family, bundle.task, bundle.features, bundle.preprocessor, booster, bundle.classes)
