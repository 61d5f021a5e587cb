import numpy as np
import pandas as pd
import pytest

from mlcycle import drift as stats
from mlcycle.data import make_demo_dataset
from mlcycle.errors import MlcycleError

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def reference(contract):
    return make_demo_dataset(6000, seed=11)


@pytest.mark.parametrize("backend", ["alibi", "scipy"])
def test_flags_a_shifted_stream_and_not_an_unshifted_one(reference, contract, backend, tmp_path):
    detector = stats.build(reference, contract, backend)
    stats.save(detector, tmp_path / "d")
    detector = stats.load(tmp_path / "d", contract)
    assert detector.name == backend
    for seed in (21, 22, 23):
        same = detector.score(make_demo_dataset(1000, seed=seed).head(500))
        shifted = detector.score(make_demo_dataset(1000, seed=seed, drift=0.5).head(500))
        assert not same.is_drift, same.p_values
        assert shifted.is_drift and shifted.p_values["amount"] < shifted.threshold
        assert shifted.psi["amount"] > same.psi["amount"] and max(same.psi.values()) < 0.1
    assert same.threshold == pytest.approx(0.05 / len(contract.features))  # Bonferroni


def test_backends_agree(reference, contract):
    window = make_demo_dataset(1000, seed=5, drift=0.3).head(400)
    a = stats.build(reference, contract, "alibi").score(window)
    s = stats.build(reference, contract, "scipy").score(window)
    assert a.is_drift == s.is_drift
    for name in ("amount", "hour", "card_age_days"):  # numeric: the same KS test
        assert a.p_values[name] == pytest.approx(s.p_values[name], rel=1e-3, abs=1e-6)


def test_unknown_categories_and_missing_values_are_encoded(reference, contract):
    detector = stats.build(reference, contract, "scipy")
    window = make_demo_dataset(1000, seed=3).head(300).assign(channel="hologram")
    window.loc[:10, "amount"] = np.nan
    report = detector.score(window)
    assert report.is_drift and report.p_values["channel"] < 1e-6


def test_unknown_backend(reference, contract):
    with pytest.raises(MlcycleError, match="unknown drift backend 'torch'"):
        stats.build(reference, contract, "torch")


def test_missing_values_are_encoded_with_the_models_imputer(model_dirs, splits, contract, tmp_path):
    """The detector fills a missing numeric value as the served model does: with its imputer's statistics."""
    from components.build_detector.logic import build_detector
    from mlcycle.fastprep import compile_preprocessor
    from mlcycle.models import ModelBundle

    train, _, test = splits
    build_detector(train, contract, tmp_path / "d", backend="scipy")
    detector = stats.load(tmp_path / "d", contract)
    assert detector.encoder.fill_source == stats.MODEL_IMPUTER
    for family in ("logreg", "xgboost"):
        bundle = ModelBundle.load(model_dirs[family])
        imputer = bundle.preprocessor.named_transformers_["num"].named_steps["impute"]
        numeric = list(bundle.preprocessor.transformers_[0][2])
        assert detector.encoder.fill == dict(zip(numeric, map(float, imputer.statistics_), strict=False))
        assert detector.encoder.fill == dict(
            zip(numeric, map(float, compile_preprocessor(bundle.preprocessor).fill), strict=False)
        )
    window = test[contract.feature_names].head(5).reset_index(drop=True)
    window["distance_from_home_km"] = np.nan
    x = detector.encoder.encode(window)
    j = contract.feature_names.index("distance_from_home_km")
    assert (x[:, j] == float(imputer.statistics_[numeric.index("distance_from_home_km")])).all()


def test_missing_and_unseen_categories_have_buckets_of_their_own(reference, contract):
    encoder = stats.build(reference, contract, "scipy").encoder
    spec = contract.column("channel")
    j = contract.feature_names.index("channel")
    columns = {
        s.name: reference[s.name].head(4).to_numpy(dtype=np.float64 if s.kind == "numeric" else object)
        for s in contract.features
    }
    columns["channel"] = np.array([spec.categories[2], None, np.nan, "hologram"], dtype=object)
    x = encoder.encode_columns(columns, 4)
    k = len(spec.categories)
    assert x[:, j].tolist() == [2, k, k, k + 1]  # category index, missing (as the model's "__missing__"), unseen
    np.testing.assert_array_equal(x, encoder.encode(pd.DataFrame(columns)))


def test_a_detector_saved_with_reference_medians_still_loads(reference, contract, tmp_path):
    import json

    detector = stats.build(reference, contract, "scipy")
    stats.save(detector, tmp_path / "d")
    config = json.loads((tmp_path / "d" / "config.json").read_text())
    config["medians"] = config.pop("fill")
    del config["fill_source"]
    (tmp_path / "d" / "config.json").write_text(json.dumps(config))
    loaded = stats.load(tmp_path / "d", contract)
    assert loaded.encoder.fill == detector.encoder.fill and "older mlcycle" in loaded.encoder.fill_source


@pytest.mark.parametrize("drift", [0.0, 0.3])
def test_scipy_backend_equals_the_per_feature_scipy_calls(reference, contract, drift):
    """The prepared-reference KS / chi-squared / PSI give exactly what ks_2samp, chi2_contingency and psi() give."""
    from scipy.stats import chi2_contingency, ks_2samp

    detector = stats.build(reference, contract, "scipy")
    window = make_demo_dataset(1000, seed=9, drift=drift).head(300)
    window.loc[window.index[:40], "channel"] = None  # a bucket the reference lacks: the table grows a column
    x = detector.encoder.encode(window)
    report = detector.score_matrix(x)
    for j, spec in enumerate(contract.features):
        ref, cur = detector.x_ref[:, j], x[:, j]
        if j in detector.encoder.categorical:
            k = detector.encoder.categorical[j]
            table = np.vstack([np.bincount(ref.astype(int), minlength=k), np.bincount(cur.astype(int), minlength=k)])
            d, p = chi2_contingency(table[:, table.sum(axis=0) > 0])[:2]
        else:
            d, p = ks_2samp(ref, cur, method="asymp")
        assert report.distances[spec.name] == pytest.approx(d, rel=1e-12, abs=1e-12), spec.name
        assert report.p_values[spec.name] == pytest.approx(p, rel=1e-9, abs=1e-300), spec.name
        expected_psi = stats.psi(ref, cur, j in detector.encoder.categorical)
        assert report.psi[spec.name] == pytest.approx(round(expected_psi, 6), abs=1e-12), spec.name
