"""Shadow replay against a real predictor: the candidate answers captured requests, compared with production's answers."""

import numpy as np
import pytest

from inference.shadow import replay, shadow
from mlcycle.models import ModelBundle
from mlcycle.process import free_port
from mlcycle.shadow import ShadowPolicy

pytestmark = pytest.mark.integration

POLICY = ShadowPolicy(min_requests=100, min_agreement=0.95, max_score_ks=0.05, max_p99_ms=2000, min_labels=50)


@pytest.fixture(scope="module")
def captured(splits, contract, served):
    _, _, test = splits
    frame = test.head(120)
    bundle = ModelBundle.load(served["model_dir"])
    scores = bundle.score(frame)[:, 1]
    rows = frame[contract.feature_names].to_dict(orient="records")
    return rows, bundle.predict(frame), scores, frame[contract.label].to_numpy()


def test_a_candidate_identical_to_production_passes(predictor, captured):
    rows, labels, scores, truth = captured
    decision, got = shadow(rows, labels, scores, predictor["url"], "fraud", POLICY, truth=truth)
    assert not got.errors and len(got.answered) == len(rows)
    assert np.allclose(got.scores, scores, atol=1e-6)  # the replay reaches the real model, row by row, in order
    assert decision.passed, decision.reasons
    assert decision.evidence.agreement == 1.0 and decision.evidence.labelled == len(rows)


def test_a_candidate_that_disagrees_is_stopped(predictor, captured):
    rows, labels, scores, truth = captured
    flipped = 1 - np.asarray(labels)
    # no labels yet: agreement and score distance stand in for correctness, and stop it
    decision, _ = shadow(rows, flipped, 1 - scores, predictor["url"], "fraud", POLICY)
    assert not decision.passed
    assert any(r.startswith("FAIL decision agreement") for r in decision.reasons)
    assert any(r.startswith("FAIL score KS distance") for r in decision.reasons)
    # labels that say the candidate is the one that is wrong: the accuracy comparison stops it
    wrong = 1 - np.asarray(labels)  # production (here: the flipped answers) is right on every labelled row
    decision, _ = shadow(rows, flipped, 1 - scores, predictor["url"], "fraud", POLICY, truth=wrong.tolist())
    assert not decision.passed
    assert any(
        r.startswith("FAIL online balanced accuracy candidate 0.0000 vs production 1.0000") for r in decision.reasons
    )


def test_an_unreachable_candidate_counts_errors_and_fails():
    got = replay([{"amount": 1.0}] * 3, f"http://127.0.0.1:{free_port()}", "fraud", timeout=2)
    assert len(got.errors) == 3 and got.answered == []
    decision, _ = shadow(
        [{"amount": 1.0}] * 100, [0] * 100, [0.1] * 100, f"http://127.0.0.1:{free_port()}", "fraud", POLICY
    )
    assert not decision.passed and any("FAIL candidate error rate 1.0000" in r for r in decision.reasons)
