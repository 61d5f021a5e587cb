import numpy as np
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
