"""Capture end to end with real processes: the KServe predictor logs request + response CloudEvents to the
capture service, which stores Parquet parts in a real MinIO; late labels join them; ingest reads the
labelled traffic. Then the faults: MinIO down (the predictor does not slow down, rows are kept, then
shed and counted), MinIO back (the kept rows are written), and a SIGKILLed capture process."""

import json
import math
import os
import signal
import statistics
import time

import pytest
import requests

from mlcycle.process import free_port, wait_until

pytestmark = pytest.mark.integration
MODEL = "fraud"


def _wait(predicate, timeout=30.0):
    value = wait_until(predicate, timeout)
    assert value, "condition not met in time"
    return value


@pytest.fixture(scope="module")
def stack(tmp_path_factory, splits, contract, register_passed):
    from devtools.minio import MinioServer
    from inference.devserve import start_capture, start_predictor
    from mlcycle.models import fit_bundle
    from mlcycle.registry import open_registry
    from mlcycle.registry.s3 import S3Store

    if not (os.environ.get("MINIO_BIN") or __import__("shutil").which("minio")):
        pytest.fail("MinIO binary not found: set MINIO_BIN")
    root = tmp_path_factory.mktemp("capture")
    minio = MinioServer(root / "minio").start()
    s3_env = minio.env()  # the servers get theirs through env=
    patch = pytest.MonkeyPatch()  # this process's (the registry, ingest and read_traffic read them): undone below
    for name, value in s3_env.items():
        patch.setenv(name, value)
    state = {}
    try:
        S3Store.from_env("mlcycle-models").ensure_bucket()
        train, val, _ = splits
        bundle, _ = fit_bundle("logreg", train, val, contract, seed=7)
        bundle.save(root / "model")
        registry = open_registry("s3://mlcycle-models")
        version = register_passed(
            root / "model", registry, "f" * 64, "test", model_name=MODEL, auto_promote=True
        ).version
        port = free_port()
        capture_args = [
            "--flush_rows",
            "1000000",
            "--flush_age_s",
            "3600",
            "--join_timeout_s",
            "3600",
            "--max_buffer_rows",
            "60",
        ]
        logs = root / "logs"

        def run_capture():
            return start_capture(
                "s3://mlcycle-models", MODEL, port, root / "state", logs / "capture.log", *capture_args, env=s3_env
            )

        capture = run_capture()
        predictor = start_predictor(
            f"s3://mlcycle-models#{MODEL}@production",
            MODEL,
            free_port(),
            free_port(),
            logs / "predictor.log",
            "--payload_log_url",
            f"{capture.url}/events",
            env={**s3_env, "MLCYCLE_PAYLOAD_LOG_MODE": "all"},  # responses too: the capture joins them
        )
        state.update(minio=minio, capture=capture, predictor=predictor, version=version, start_capture=run_capture)
        yield state
    finally:
        for name in ("predictor", "capture"):
            if name in state:
                state[name].stop()
        minio.stop()
        patch.undo()


def records(frame):
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in json.loads(frame.to_json(orient="records"))
    ]


def status(stack):
    return requests.get(stack["capture"].url + "/status", timeout=10).json()


def predict(stack, rows, request_id=None):
    headers = {"x-request-id": request_id} if request_id else {}
    start = time.perf_counter()
    r = requests.post(
        f"{stack['predictor'].url}/v1/models/{MODEL}:predict", json={"instances": rows}, headers=headers, timeout=30
    )
    return r, time.perf_counter() - start


def test_capture_feedback_and_ingest_end_to_end_then_storage_faults_and_a_crash(stack, splits, contract, tmp_path):
    from components.ingest.logic import ingest

    _, _, test = splits
    rows = records(test[contract.feature_names].head(80))
    truth = test[contract.label].head(80).tolist()
    # 1. the predictor returns the request id (the client's, or one it made up) and logs request + response
    baseline = []
    for i in range(10):
        r, seconds = predict(stack, [rows[i]], f"req-{i}")
        assert r.status_code == 200 and r.headers["x-request-id"] == f"req-{i}"
        baseline.append(seconds)
    r, _ = predict(stack, rows[10:12])
    generated = r.headers["x-request-id"]
    assert r.status_code == 200 and len(generated) == 32
    _wait(lambda: status(stack)["counts"]["rows_captured"] >= 12)
    flushed = requests.post(stack["capture"].url + "/flush", timeout=60).json()
    assert flushed["flush"]["written"] == 12 and flushed["counts"]["pending_requests"] == 0

    # 2. late labels: accepted, refused with reasons; online metrics per version
    labels = [{"request_id": f"req-{i}", "label": int(truth[i])} for i in range(10)]
    labels += [
        {"request_id": generated, "row": 1, "label": int(truth[11])},
        {"request_id": "never-sent", "label": 1},
        {"request_id": "req-0", "label": int(truth[0])},
        {"request_id": generated, "row": 0, "label": "fraud"},
    ]
    r = requests.post(stack["capture"].url + "/v1/feedback", json={"labels": labels}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 11
    assert [x["reason"] for x in body["refused"]] == ["unknown_request_id", "duplicate", "wrong_type"]
    online = status(stack)["online"][stack["version"]]
    assert online["labelled"] == 11 and 0 <= online["false_positive_rate"] <= 1
    metrics = requests.get(stack["capture"].url + "/metrics", timeout=10).text
    assert f'mlcycle_online_accuracy{{model="{MODEL}",version="{stack["version"]}"}}' in metrics
    assert 'mlcycle_feedback_refused_total{reason="duplicate"} 1.0' in metrics

    # 3. the training pipeline's ingest reads the labelled traffic with the contract's columns
    result = ingest(f"traffic://s3://mlcycle-models#{MODEL}?days=1", tmp_path / "traffic.parquet")
    assert result.rows == 11 and result.columns == contract.feature_names + [contract.timestamp, contract.label]

    # 4. MinIO down: predictions stay fast, the capture keeps rows, then sheds and counts them
    stack["minio"].stop()
    during = []
    for i in range(12, 80):
        r, seconds = predict(stack, [rows[i]], f"down-{i}")
        assert r.status_code == 200
        during.append(seconds)
    assert statistics.median(during) < max(3 * statistics.median(baseline), statistics.median(baseline) + 0.25)
    _wait(lambda: status(stack)["counts"]["rows_captured"] + status(stack)["counts"]["rows_dropped"] >= 80)
    flushed = requests.post(stack["capture"].url + "/flush", timeout=120).json()
    assert flushed["flush"]["written"] == 0 and "unreachable" in (flushed["last_error"] or "")
    kept, dropped = flushed["counts"]["buffered_rows"], flushed["counts"]["rows_dropped"]
    assert kept == 60 and dropped == 68 - 60 and flushed["counts"]["flush_failures"] >= 1

    # 5. MinIO back: the kept rows are written whole; nothing else was lost
    stack["minio"].start()
    flushed = requests.post(stack["capture"].url + "/flush", timeout=120).json()
    assert flushed["flush"]["written"] == 60 and flushed["last_error"] is None

    # 6. a SIGKILLed capture process: unsaved rows come back from its journal and it says it restarted
    for i in range(3):
        assert predict(stack, [rows[i]], f"crash-{i}")[0].status_code == 200
    _wait(lambda: status(stack)["counts"]["rows_captured"] >= 12 + 60 + 3)
    os.killpg(stack["capture"].process.pid, signal.SIGKILL)
    stack["capture"].process.wait()
    stack["capture"] = stack["start_capture"]()
    after = status(stack)
    assert after["restart"]["restarted"] and after["restart"]["previous_shutdown"] == "unclean"
    # the 6 unsaved events, plus the lone responses of the 8 requests shed while MinIO was down (still waiting)
    assert after["restart"]["recovered_events"] == 6 + 8 and after["counts"]["rows_dropped"] == 8
    assert after["counts"]["labelled_rows"] == 11  # the label index came back from storage
    flushed = requests.post(stack["capture"].url + "/flush", timeout=60).json()
    assert flushed["flush"]["written"] == 3
    from mlcycle.capture import read_traffic

    assert len(read_traffic("s3://mlcycle-models", MODEL)) == 12 + 60 + 3
