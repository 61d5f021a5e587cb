import numpy as np
import pytest

from mlcycle.shadow import ShadowEvidence, ShadowPolicy, compare, decide, ks_distance

pytestmark = pytest.mark.unit

# the other bounds are ShadowPolicy's defaults: agreement >= 0.9, score KS <= 0.2, no errors, accuracy drop <= 0.01
P = ShadowPolicy(min_requests=100, max_p99_ms=50, min_labels=50)


def test_ks_distance_matches_scipy():
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 500), rng.normal(0.3, 1.2, 700)
    assert ks_distance(a, b) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)
    assert ks_distance(a, a) == 0.0


def test_compare_pairs_the_answers():
    prod = np.array([0, 1, 1, 0, 1])
    cand = np.array([0, 1, 0, 0, 1])
    truth = [0, 1, None, 1, float("nan")]
    e = compare(
        prod, cand, [0.1, 0.9, 0.8, 0.2, 0.7], [0.1, 0.9, 0.4, 0.2, 0.7], [1, 2, 3, 4, 100], errors=1, truth=truth
    )
    assert (e.requests, e.errors, e.agreement, e.labelled) == (6, 1, 0.8, 3)
    assert e.accuracy == {"production": 0.75, "candidate": 0.75}  # balanced: recall 1/1 on class 0, 1/2 on class 1
    assert e.p99_ms == pytest.approx(np.percentile([1, 2, 3, 4, 100], 99))
    with pytest.raises(ValueError, match="not paired"):
        compare(prod, cand[:3], prod, cand, [1], 0)


GOOD = ShadowEvidence(
    requests=500,
    errors=0,
    agreement=0.97,
    score_ks=0.05,
    p99_ms=12.0,
    labelled=200,
    accuracy={"production": 0.90, "candidate": 0.93},
)


@pytest.mark.parametrize(
    "change, passed, fragment",
    [
        ({}, True, "ok   online balanced accuracy candidate 0.9300"),
        ({"requests": 99}, False, "wait 99 shadowed requests"),
        ({"errors": 1}, False, "FAIL candidate error rate 0.0020"),
        ({"agreement": 0.85, "labelled": 10}, False, "FAIL decision agreement 0.85"),
        # with enough labels the accuracy decides: a retrain is meant to disagree where production is wrong
        ({"agreement": 0.85}, True, "info decision agreement 0.85 (min 0.9): outside, but the labels decide"),
        ({"score_ks": 0.3, "labelled": 10}, False, "FAIL score KS distance 0.3"),
        ({"score_ks": 0.3, "accuracy": {"production": 0.9, "candidate": 0.85}}, False, "FAIL online balanced accuracy"),
        ({"p99_ms": 80.0}, False, "FAIL candidate p99 80.0 ms"),
        ({"accuracy": {"production": 0.9, "candidate": 0.85}}, False, "FAIL online balanced accuracy candidate 0.8500"),
        ({"labelled": 10}, True, "info 10 labelled requests < 50"),
    ],
)
def test_decide(change, passed, fragment):
    from dataclasses import replace

    d = decide(replace(GOOD, **change), P)
    assert d.passed is passed
    assert any(r.startswith(fragment) for r in d.reasons), d.reasons


def test_a_replayed_row_is_sent_as_a_client_sends_json():
    import math

    import numpy as np
    import pandas as pd

    from inference.shadow import _clean

    row = {"t": pd.Timestamp("2026-01-01 10:00"), "nat": pd.NaT, "nan": math.nan, "n": np.int64(3), "s": "pos"}
    assert _clean(row) == {"t": "2026-01-01T10:00:00", "nat": None, "nan": None, "n": 3, "s": "pos"}
