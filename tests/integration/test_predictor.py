"""The predictor as a real KServe server process, called over real HTTP and gRPC."""

import threading
import time

import numpy as np
import pytest
import requests
from kserve.protocol.infer_type import InferRequest

from mlcycle.models import ModelBundle
from tests.payloads import assert_agree, infer_three_ways, records, v2_inputs

pytestmark = pytest.mark.integration


def test_v1_v2_rest_grpc_and_offline_agree(predictor, served, splits, contract):
    _, _, test = splits
    rows = test[contract.feature_names].head(60).dropna().reset_index(drop=True)  # V2 FP64 JSON cannot carry NaN
    offline = ModelBundle.load(served["model_dir"]).score(rows)

    v1, v2, g = infer_three_ways(predictor["url"], predictor["grpc"], "fraud", rows, contract)
    assert_agree(v1, v2, g, offline)
    assert g.model_version == served["version"]  # kserve's REST client drops model_version; check the raw body
    raw = requests.post(
        f"{predictor['url']}/v2/models/fraud/infer",
        json=InferRequest("fraud", v2_inputs(rows.head(2), contract)).to_rest()[0],
        timeout=10,
    )
    assert raw.json()["model_version"] == served["version"]
    assert v1["model_version"] == served["version"] and v1["classes"] == [0, 1]


def test_nan_policy_imputes_where_training_had_missing_values(predictor, splits, contract):
    row = records(splits[2][contract.feature_names].head(1))[0]
    row["distance_from_home_km"] = None  # missing in training: the imputer fills it
    r = requests.post(f"{predictor['url']}/v1/models/fraud:predict", json={"instances": [row]}, timeout=10)
    assert r.status_code == 200, r.text
    row["amount"] = None  # never missing in training: refused
    r = requests.post(f"{predictor['url']}/v1/models/fraud:predict", json={"instances": [row]}, timeout=10)
    assert r.status_code == 400 and "feature 'amount' row 0: null/NaN not allowed" in r.json()["error"]


def test_metadata_health_and_metrics(predictor, served):
    url = predictor["url"]
    assert requests.get(f"{url}/v2/health/live", timeout=5).status_code == 200
    assert requests.get(f"{url}/v2/health/ready", timeout=5).json()["ready"] is True
    meta = requests.get(f"{url}/v2/models/fraud", timeout=5).json()
    assert {i["name"] for i in meta["inputs"]} >= {"amount", "channel"} and [o["name"] for o in meta["outputs"]] == [
        "label",
        "probabilities",
    ]
    assert requests.get(f"{url}/v1/models/fraud", timeout=5).json()["ready"] is True
    text = requests.get(f"{url}/metrics", timeout=5).text
    assert f'mlcycle_predictions_total{{label="0",model="fraud",version="{served["version"]}"}}' in text
    assert "mlcycle_prediction_score_bucket" in text and "request_predict_seconds" in text


def test_slow_model_does_not_block_health_probes(served, tmp_path):
    from inference.devserve import start_predictor
    from mlcycle.process import free_port

    http = free_port()
    proc = start_predictor(
        served["source"], "fraud", http, free_port(), tmp_path / "slow.log", "--fault_delay_ms", "5000"
    )
    try:
        row = requests.get(f"{proc.url}/v2/models/fraud", timeout=5).json()
        assert row["name"] == "fraud"
        sample = {
            "amount": 10.0,
            "hour": 12,
            "card_age_days": 100,
            "distance_from_home_km": 1.0,
            "txn_count_24h": 1,
            "avg_amount_30d": 10.0,
            "is_foreign": 0,
            "merchant_category": "grocery",
            "channel": "pos",
            "country": "KR",
        }
        slow = [
            threading.Thread(
                target=requests.post,
                args=(f"{proc.url}/v1/models/fraud:predict",),
                kwargs={"json": {"instances": [sample]}, "timeout": 30},
            )
            for _ in range(2)
        ]
        [t.start() for t in slow]
        time.sleep(0.3)  # one prediction is inside the 5 s scoring delay, the other queued behind it
        worst = 0.0
        for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/fraud/ready", "/v1/models/fraud") * 3:
            start = time.perf_counter()
            assert requests.get(proc.url + path, timeout=5).status_code == 200
            worst = max(worst, time.perf_counter() - start)
        assert any(t.is_alive() for t in slow), "the injected delay did not hold the predictions"
        # a probe stuck behind scoring would take seconds (the rest of the 5 s delay); 1 s leaves room for a slow machine
        assert worst < 1.0, f"a health probe took {worst * 1000:.0f} ms while scoring"
        [t.join() for t in slow]
    finally:
        proc.stop()


def test_tampered_version_never_becomes_ready(served, tmp_path):
    import shutil

    from inference.devserve import start_predictor
    from mlcycle.errors import MlcycleError
    from mlcycle.process import free_port
    from mlcycle.registry import open_registry

    registry_dir = tmp_path / "registry"
    shutil.copytree(served["root"] / "registry", registry_dir)
    version_dir = registry_dir / "fraud" / served["version"]
    (version_dir / "estimator.ubj").write_bytes((version_dir / "estimator.ubj").read_bytes()[:-10] + b"0123456789")
    assert open_registry(registry_dir).resolve("fraud", "production") == served["version"]
    with pytest.raises(MlcycleError, match="exited with code") as err:
        start_predictor(str(version_dir), "fraud", free_port(), free_port(), tmp_path / "tampered.log", timeout=60)
    assert "sha256 mismatch for estimator.ubj" in str(err.value)


def test_payload_log_reaches_the_drift_detector(served, tmp_path, splits, contract):
    from inference.devserve import start_drift, start_predictor
    from mlcycle.process import free_port

    drift = start_drift(
        served["source"], free_port(), tmp_path / "drift.log", "--window_size", "100000", "--backend", "scipy"
    )
    pred = start_predictor(
        served["source"],
        "fraud",
        free_port(),
        free_port(),
        tmp_path / "p.log",
        "--payload_log_url",
        f"{drift.url}/events",
    )
    try:
        rows = records(splits[2][contract.feature_names].head(5))
        for row in rows:
            assert (
                requests.post(f"{pred.url}/v1/models/fraud:predict", json={"instances": [row]}, timeout=10).status_code
                == 200
            )
        deadline = time.monotonic() + 10
        while (
            time.monotonic() < deadline
            and requests.get(f"{drift.url}/status", timeout=5).json()["counts"]["processed"] < 5
        ):
            time.sleep(0.1)
        counts = requests.get(f"{drift.url}/status", timeout=5).json()["counts"]
        assert counts["received"] == counts["processed"] == 5 and counts["rejected"] == 0
        assert (
            'mlcycle_payload_log_sent_total{model="fraud"} 5.0' in requests.get(f"{pred.url}/metrics", timeout=5).text
        )
    finally:
        pred.stop()
        drift.stop()


def test_demo_model_is_on_the_numpy_preprocessing_path(predictor, served):
    text = requests.get(f"{predictor['url']}/metrics", timeout=5).text
    assert f'mlcycle_preprocess_path{{model="fraud",path="numpy",version="{served["version"]}"}} 1.0' in text
    assert f'mlcycle_preprocess_path{{model="fraud",path="sklearn",version="{served["version"]}"}} 0.0' in text
    assert "preprocessing path: numpy (fastprep replay) for fraud" in predictor["proc"].log.read_text()


def test_a_preprocessor_the_replay_cannot_compile_is_reported_as_the_sklearn_path(
    served, splits, contract, monkeypatch, caplog
):
    """No silent fallback: the reason is logged at start-up and the gauge names the sklearn path; scores stay right."""
    import copy
    import logging

    from prometheus_client import REGISTRY
    from sklearn.preprocessing import MinMaxScaler

    import inference.predictor.model as predictor_model
    from inference.predictor.codec import Codec

    original = ModelBundle.from_version

    def load_with_minmax(version, *args, **kwargs):
        bundle = original(version, *args, **kwargs)
        ct = copy.deepcopy(bundle.preprocessor)
        pipe = ct.named_transformers_["num"]
        numeric = [c.name for c in contract.features if c.kind == "numeric"]
        scaler = MinMaxScaler().fit(pipe.named_steps["impute"].transform(splits[0][numeric]))
        pipe.steps = [(name, scaler if name == "scale" else est) for name, est in pipe.steps]
        bundle.preprocessor = ct
        return bundle

    monkeypatch.setattr(predictor_model.ModelBundle, "from_version", load_with_minmax)
    model = predictor_model.MlcycleModel("fraud-fallback", served["source"])
    assert model.load()
    with caplog.at_level(logging.INFO, logger="kserve"):
        model.start()  # what kserve's ModelServer calls once its logging is configured
    assert model.fast is None and model.preprocess_path == "sklearn"
    labels = {"model": "fraud-fallback", "version": served["version"]}
    assert REGISTRY.get_sample_value("mlcycle_preprocess_path", {**labels, "path": "sklearn"}) == 1.0
    assert REGISTRY.get_sample_value("mlcycle_preprocess_path", {**labels, "path": "numpy"}) == 0.0
    messages = [r.getMessage() for r in caplog.records]
    assert any("preprocessing path: sklearn (fallback)" in m and "MinMaxScaler" in m for m in messages), messages
    rows = splits[2][contract.feature_names].head(20).reset_index(drop=True)
    batch = Codec(contract).decode({"instances": records(rows)})
    scores, _ = model.score_batch(batch)
    # the booster runs on the compiled fast path here: equal to the native model within its registration bound
    np.testing.assert_allclose(scores, model.bundle.score(rows), atol=1e-5 if model.scoring_path == "fast" else 1e-9)
