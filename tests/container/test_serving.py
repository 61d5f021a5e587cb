"""Serving as KServe runs it, every part in its image: KServe's storage initializer (the image `make images` builds
from kserve-storage, under the name KServe's config gives it) pulls the registered version from the real MinIO with
the Secret-derived environment KServe injects, into the volume the predictor container serves from /mnt/models;
V1 and V2 REST and V2 gRPC requests to the container; the payload-log CloudEvents KServe's agent would send go to
the capture container, which stores them in MinIO and passes the requests on to the drift detector container; a late
label is counted."""

import json
import uuid

import pytest
import requests
from container_env import BUCKET, MODEL, STORAGE_INITIALIZER

from devtools.containers import pods
from inference.cloudevents import REQUEST_TYPE, RESPONSE_TYPE, ce_headers
from mlcycle.models import ModelBundle
from mlcycle.process import wait_until
from tests.payloads import assert_agree, infer_three_ways, records

pytestmark = pytest.mark.container
PREDICTOR = "http://127.0.0.1:8080"  # kserve-container's --http_port; gRPC on KServe's default 8081
CAPTURE = "http://127.0.0.1:8091"
DRIFT = "http://127.0.0.1:8090"


@pytest.fixture(scope="module")
def stack(runner, kind_docs, registered):
    found = {p.source: p for p in pods(kind_docs, STORAGE_INITIALIZER)}
    started = []
    try:
        for source in (
            "Deployment/fraud-detector-drift",
            "Deployment/fraud-detector-capture",
            "InferenceService/fraud-detector",
        ):
            started.append(runner.start(found[source], timeout_s=240))
        yield {p.pod.source: p for p in started}
    finally:
        for p in reversed(started):
            p.stop()


def test_storage_initializer_pulls_the_registered_version(stack, registered):
    logs = stack["InferenceService/fraud-detector"].logs("storage-initializer")
    assert f"downloading s3://{BUCKET}/{MODEL}/{registered}/ into /mnt/models" in logs, logs


def test_v1_v2_rest_and_grpc_agree_with_the_offline_model(stack, registered, splits, contract, model_dirs):
    rows = splits[2][contract.feature_names].head(40).dropna().reset_index(drop=True)
    offline = ModelBundle.load(model_dirs["xgboost"]).score(rows)

    v1, v2, g = infer_three_ways(PREDICTOR, "127.0.0.1:8081", MODEL, rows, contract)
    assert_agree(v1, v2, g, offline)
    assert g.model_version == registered


def _agent_event(kind: str, request_id: str, body: bytes) -> requests.Response:
    # binary mode, as KServe's agent sends it: the raw bytes, the request id as the event id, its extensions
    extra = {
        "ce-inferenceservicename": MODEL,
        "ce-namespace": "mlcycle",
        "ce-component": "predictor",
        "ce-endpoint": "",
    }
    headers = ce_headers(
        request_id, REQUEST_TYPE if kind == "request" else RESPONSE_TYPE, "http://localhost:9081/", extra
    )
    return requests.post(f"{CAPTURE}/events", data=body, headers=headers, timeout=10)


def test_payload_log_events_reach_capture_and_the_drift_detector_and_a_late_label_counts(
    stack, splits, contract, minio_server, registered
):
    test = splits[2]
    rows = records(test[contract.feature_names].head(5))
    truth = [int(x) for x in test[contract.label].head(5)]
    received_before = requests.get(f"{DRIFT}/status", timeout=10).json()["counts"]["received"]
    ids = []
    for row in rows:
        request_id = uuid.uuid4().hex
        body = json.dumps({"instances": [row]}).encode()
        answer = requests.post(
            f"{PREDICTOR}/v1/models/{MODEL}:predict",
            data=body,
            headers={"content-type": "application/json", "x-request-id": request_id},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        assert _agent_event("request", request_id, body).status_code == 200
        assert _agent_event("response", request_id, answer.content).status_code == 200
        ids.append(request_id)

    # capture joined the pairs; the drift detector got the requests from capture's forwarder
    def counts(url):
        return requests.get(f"{url}/status", timeout=10).json()["counts"]

    logs = {name: pod.logs for name, pod in stack.items()}
    assert wait_until(lambda: counts(CAPTURE)["rows_captured"] >= 5, 30), (
        counts(CAPTURE),
        logs["Deployment/fraud-detector-capture"]("capture"),
    )
    assert wait_until(lambda: counts(DRIFT)["received"] >= received_before + 5, 30), (
        counts(DRIFT),
        logs["Deployment/fraud-detector-drift"]("drift-detector"),
    )
    # capture writes its Parquet part to MinIO from a read-only root filesystem
    flushed = requests.post(f"{CAPTURE}/flush", timeout=60).json()
    assert flushed["flush"]["written"] == 5 and flushed["flush"]["error"] is None, flushed
    parts = [
        o.object_name for o in minio_server.client().list_objects(BUCKET, prefix=f"{MODEL}/traffic/", recursive=True)
    ]
    assert parts and all(p.endswith(".parquet") for p in parts), parts
    # a late label for a captured request is accepted and counted
    r = requests.post(
        f"{CAPTURE}/v1/feedback", json={"labels": [{"request_id": ids[0], "label": truth[0]}]}, timeout=10
    )
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    metrics = requests.get(f"{CAPTURE}/metrics", timeout=10).text
    assert f'mlcycle_feedback_labels_total{{model="{MODEL}",version="{registered}"}} 1.0' in metrics, metrics
