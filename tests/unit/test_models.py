import json
import pickle

import numpy as np
import pytest

from mlcycle.errors import IntegrityError, ModelError
from mlcycle.models import ModelBundle, build_pipeline

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("family", ["baseline", "logreg", "hgb", "xgboost"])
def test_bundle_roundtrip_gives_identical_scores(fitted_bundles, model_dirs, splits, family):
    """The in-memory model and the one saved and loaded back score every test row identically."""
    _, _, test = splits
    fresh, loaded = fitted_bundles[family], ModelBundle.load(model_dirs[family])
    scores = loaded.score(test)
    assert scores.shape == (len(test), 2)
    np.testing.assert_array_equal(scores, fresh.score(test))
    np.testing.assert_array_equal(loaded.predict(test), fresh.predict(test))
    meta = json.loads((model_dirs[family] / "bundle.json").read_text())
    assert meta["estimator_file"] == ("estimator.ubj" if family == "xgboost" else "estimator.skops")


def test_preprocessing_is_fitted_on_train_only(splits, contract):
    train, _, test = splits
    pipe = build_pipeline("logreg", contract, seed=1).fit(train[contract.feature_names], train[contract.label])
    scaler = pipe.named_steps["prep"].named_transformers_["num"].named_steps["scale"]
    numeric = [c.name for c in contract.features if c.kind == "numeric"]
    imputed = train[numeric].fillna(train[numeric].median())
    np.testing.assert_allclose(scaler.mean_, imputed.mean(), rtol=1e-9)
    assert not np.allclose(scaler.mean_, test[numeric].fillna(test[numeric].median()).mean(), rtol=1e-6)


def test_tampered_file_is_refused_before_loading(model_dirs, tmp_path):
    import shutil

    copy = tmp_path / "m"
    shutil.copytree(model_dirs["logreg"], copy)
    with open(copy / "estimator.skops", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(IntegrityError, match="sha256 mismatch for .*estimator.skops"):
        ModelBundle.load(copy)


def test_types_outside_the_allow_list_are_refused(tmp_path, model_dirs):
    """A skops file carrying an arbitrary type (here via a pickled payload) is refused even with a valid checksum."""
    import shutil

    import skops.io as sio

    from mlcycle.fsutil import sha256_file

    copy = tmp_path / "m"
    shutil.copytree(model_dirs["logreg"], copy)
    sio.dump({"evil": __import__("collections").Counter(a=1)}, copy / "estimator.skops")
    meta = json.loads((copy / "bundle.json").read_text())
    meta["sha256"]["estimator.skops"] = sha256_file(copy / "estimator.skops")
    (copy / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(IntegrityError, match="outside the reviewed allow-list"):
        ModelBundle.load(copy)


def test_not_a_bundle(tmp_path):
    with pytest.raises(ModelError, match="is not a model version or bundle: no bundle.json"):
        ModelBundle.load(tmp_path)


def test_pickle_files_are_never_written(model_dirs):
    """A bundle is JSON, skops archives and (XGBoost) a UBJ booster; none of its files is a pickle."""
    import zipfile

    import xgboost as xgb

    for family, directory in model_dirs.items():
        estimator = "estimator.ubj" if family == "xgboost" else "estimator.skops"
        assert sorted(p.name for p in directory.iterdir()) == sorted(["bundle.json", "preprocessor.skops", estimator])
        json.loads((directory / "bundle.json").read_text())
        for path in directory.glob("*.skops"):
            assert zipfile.is_zipfile(path) and "schema.json" in zipfile.ZipFile(path).namelist(), path
        if family == "xgboost":
            xgb.Booster().load_model(directory / estimator)
        for path in directory.iterdir():
            with pytest.raises(pickle.UnpicklingError):
                pickle.loads(path.read_bytes())
