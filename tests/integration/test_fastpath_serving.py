"""The predictor on the compiled fast path by default, and on the native model when the fast path is refused."""

import asyncio
import json
import shutil

import numpy as np
import pytest
import requests
from prometheus_client import REGISTRY

from mlcycle import fastpath
from mlcycle.models import ModelBundle

pytestmark = pytest.mark.integration


def version_dir(served):
    root = served["root"] / "registry" / "fraud"
    return root / json.loads((root / "_aliases.json").read_text())["aliases"]["production"]


def _test_rows(splits, contract, n):
    """The complete rows among the first ``n`` of the test set, and the same as V1 instances (NaN as null)."""
    rows = splits[2][contract.feature_names].head(n).dropna()
    records = [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
        for r in rows.to_dict("records")
    ]
    return rows, records


def test_registered_xgboost_has_a_parity_checked_fast_path(served):
    meta = json.loads((version_dir(served) / "metadata.json").read_text())
    entry = meta["fast_path"]
    assert entry["status"] == "ready" and entry["parity"]["label_mismatches"] == 0
    assert entry["parity"]["max_abs_diff"] <= fastpath.TOLERANCE
    assert meta["files"][entry["file"]]["sha256"] == entry["sha256"]


def test_the_server_scores_on_the_fast_path_and_says_so(predictor, served):
    text = requests.get(f"{predictor['url']}/metrics", timeout=5).text
    assert f'mlcycle_scoring_path{{model="fraud",path="fast",reason="",version="{served["version"]}"}} 1.0' in text


def test_a_tampered_fast_path_is_refused_and_the_native_model_serves(served, splits, contract, tmp_path):
    from inference.predictor.model import MlcycleModel

    copy = tmp_path / "version"
    shutil.copytree(version_dir(served), copy)
    onnx = copy / fastpath.FAST_FILE
    onnx.write_bytes(onnx.read_bytes()[:-8] + b"tampered")
    model = MlcycleModel("fraud-tampered", str(copy))
    assert model.load()
    assert model.scoring_path == "native" and "sha256 mismatch" in model.fast_path_reason
    labels = {"model": "fraud-tampered", "version": model.version, "path": "native", "reason": model.fast_path_reason}
    assert REGISTRY.get_sample_value("mlcycle_scoring_path", labels) == 1.0
    rows, records = _test_rows(splits, contract, 5)
    out = asyncio.run(model.predict({"instances": records}))
    offline = ModelBundle.load(served["model_dir"]).score(rows)
    np.testing.assert_allclose(np.asarray(out["probabilities"]), offline, atol=1e-6)


def test_the_model_crosses_to_a_rest_worker_process_and_scores_the_same(served, splits, contract):
    """KServe's --workers pickles the model into spawned REST workers: the ONNX session and pool are rebuilt there."""
    import pickle

    from inference.predictor.model import MlcycleModel

    model = MlcycleModel("fraud-workers", served["source"])
    model.load()
    clone = pickle.loads(pickle.dumps(model))
    assert clone.scoring_path == "fast" and clone.scorer.session is not None and clone.pool is not model.pool
    rows, records = _test_rows(splits, contract, 20)
    a = asyncio.run(model.predict({"instances": records}))
    b = asyncio.run(clone.predict({"instances": records}))
    assert a == b


def test_a_registered_logistic_regression_serves_on_its_onnx_fast_path(
    model_dirs, register_passed, splits, contract, tmp_path
):
    """The demo's usual winner: compiled by skl2onnx at registration, loaded on the fast path, same probabilities."""
    from inference.predictor.model import MlcycleModel
    from mlcycle.registry import open_registry

    registry = open_registry(tmp_path / "registry")
    version = register_passed(model_dirs["logreg"], registry, "e" * 64, "logreg").version
    entry = registry.metadata("fraud", version).fast_path
    assert entry["status"] == "ready" and entry["parity"]["label_mismatches"] == 0, entry
    model = MlcycleModel("fraud-logreg", str(tmp_path / "registry" / "fraud" / version))
    assert model.load()
    assert model.scoring_path == "fast" and model.fast_path_reason == ""
    rows, records = _test_rows(splits, contract, 20)
    out = asyncio.run(model.predict({"instances": records}))
    offline = ModelBundle.load(model_dirs["logreg"]).score(rows)
    np.testing.assert_allclose(np.asarray(out["probabilities"]), offline, atol=fastpath.TOLERANCE)
