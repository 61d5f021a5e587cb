"""The drift detector as a real server process receiving KServe payload-logger CloudEvents."""

import base64
import json
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from inference.cloudevents import ce_headers
from inference.traffic import v2_request
from mlcycle.data import DEMO_FEATURES, make_demo_dataset
from mlcycle.process import free_port

pytestmark = pytest.mark.integration
TYPE = "org.kubeflow.serving.inference.request"
FEATURES = DEMO_FEATURES


def rows(n, seed, drift=0.0):
    frame = make_demo_dataset(max(n, 1000), seed=seed, drift=drift).head(n)[FEATURES]
    return json.loads(frame.to_json(orient="records"))


def binary(url, body, ce_type=TYPE, **extra_headers):
    headers = ce_headers(str(uuid.uuid4()), ce_type, "test", extra_headers)
    return requests.post(
        url + "/events", data=body if isinstance(body, bytes) else json.dumps(body), headers=headers, timeout=10
    )


def structured(url, data, **override):
    envelope = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "test", "type": TYPE, "data": data, **override}
    return requests.post(
        url + "/events", data=json.dumps(envelope), headers={"content-type": "application/cloudevents+json"}, timeout=10
    )


@pytest.fixture(scope="module")
def drift_server(served, tmp_path_factory):
    from inference.devserve import start_drift

    marker = tmp_path_factory.mktemp("hook") / "retrained"
    hook = f"{sys.executable} -c \"open('{marker}', 'w').write('ok')\""
    proc = start_drift(
        served["source"],
        free_port(),
        tmp_path_factory.mktemp("logs") / "drift.log",
        "--window_size",
        "400",
        "--max_age_s",
        "3600",
        "--consecutive",
        "2",
        "--retrain_command",
        hook,
        "--queue_size",
        "100000",
    )
    yield {"url": proc.url, "marker": marker}
    proc.stop()


def status(url):
    return requests.get(url + "/status", timeout=10).json()


def test_reports_no_drift_then_drift_and_triggers_retraining(drift_server):
    url = drift_server["url"]
    windows = status(url)["counts"]["windows"]  # the server is the module's: count from what it has seen
    for chunk in range(4):  # 400 reference-like rows: one window, V1 binary and V2 structured events
        batch = rows(100, seed=100 + chunk)
        r = binary(url, {"instances": batch}) if chunk % 2 else structured(url, v2_request(batch))
        assert r.status_code == 200, r.text
    deadline = time.monotonic() + 30
    while status(url)["counts"]["windows"] < windows + 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    first = status(url)
    assert first["counts"]["windows"] == windows + 1 and first["drift"] is False, first["last_window"]
    for seed in (7, 8):  # two drifted windows in a row -> retrain hook
        binary(url, {"instances": rows(400, seed=seed, drift=0.6)})
    while status(url)["counts"]["windows"] < windows + 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    final = status(url)
    assert final["drift"] is True and final["last_window"]["p_values"]["amount"] < final["last_window"]["threshold"]
    assert final["retrain"] and final["retrain"][0]["result"].startswith("started local retraining")
    deadline = time.monotonic() + 15
    while not drift_server["marker"].exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert drift_server["marker"].read_text() == "ok"
    metrics = requests.get(url + "/metrics", timeout=10).text
    assert (
        'mlcycle_drift_windows_total{drift="true"} 2.0' in metrics
        and 'mlcycle_drift_feature_psi{feature="amount"}' in metrics
    )
    assert "mlcycle_drift_retrain_triggers_total 1.0" in metrics


BAD_EVENTS = [
    (
        "wrong-ce-type",
        lambda u: binary(u, {"instances": rows(2, 1)}, ce_type="org.kubeflow.serving.inference.response"),
        "is not 'org.kubeflow.serving.inference.request'",
    ),
    (
        "no-ce-headers",
        lambda u: requests.post(u + "/events", json={"instances": rows(2, 1)}, timeout=10),
        "missing attribute(s) specversion, id, source, type",
    ),
    ("truncated-body", lambda u: binary(u, b'{"instances": [{"amount": 1'), "event body is not valid JSON"),
    ("empty-body", lambda u: binary(u, b""), "event body is empty"),
    ("non-utf8", lambda u: binary(u, b"\xff\xfe\x00"), "not valid JSON"),
    ("not-an-object", lambda u: binary(u, [1, 2]), "must be a JSON object"),
    ("no-instances", lambda u: binary(u, {"rows": []}), "neither 'instances' (V1) nor 'inputs' (V2)"),
    ("empty-instances", lambda u: binary(u, {"instances": []}), "'instances' is empty"),
    ("missing-feature", lambda u: binary(u, {"instances": [{"amount": 1.0}]}), "lack feature(s) hour"),
    (
        "ragged-v2",
        lambda u: binary(u, {"inputs": [{"name": "amount", "data": [1]}, {"name": "hour", "data": [1, 2]}]}),
        "equal length",
    ),
    (
        "structured-malformed",
        lambda u: requests.post(
            u + "/events",
            data=b'{"specversion": "1.0", "id"',
            headers={"content-type": "application/cloudevents+json"},
            timeout=10,
        ),
        "structured CloudEvent is not valid JSON",
    ),
    ("structured-no-type", lambda u: structured(u, {"instances": rows(1, 1)}, type=None), "missing attribute(s) type"),
    (
        "structured-bad-base64",
        lambda u: requests.post(
            u + "/events",
            data=json.dumps({"specversion": "1.0", "id": "1", "source": "s", "type": TYPE, "data_base64": "%%%"}),
            headers={"content-type": "application/cloudevents+json"},
            timeout=10,
        ),
        "not valid base64",
    ),
    (
        "not-json-any-content-type",
        lambda u: binary(u, b"a=1", **{"content-type": "text/plain"}),
        "event body is not valid JSON",
    ),
]


@pytest.mark.parametrize("case_id, send, fragment", BAD_EVENTS, ids=[c[0] for c in BAD_EVENTS])
def test_bad_events_are_refused_clearly(drift_server, case_id, send, fragment):
    r = send(drift_server["url"])
    assert r.status_code == 400, r.text
    assert fragment in r.json()["error"]


def test_structured_base64_event_is_accepted(drift_server):
    data = base64.b64encode(json.dumps({"instances": rows(3, 2)}).encode()).decode()
    envelope = {"specversion": "1.0", "id": "b64", "source": "s", "type": TYPE, "data_base64": data}
    r = requests.post(
        drift_server["url"] + "/events",
        data=json.dumps(envelope),
        headers={"content-type": "application/cloudevents+json"},
        timeout=10,
    )
    assert r.status_code == 200 and r.json() == {"accepted_rows": 3}


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "application/octet-stream", ""]
)
def test_binary_events_are_accepted_whatever_the_clients_content_type(drift_server, content_type):
    """KServe's agent forwards the client's Content-Type (curl -d sends form-urlencoded) and loses any event not answered 200."""
    r = binary(drift_server["url"], {"instances": rows(2, seed=3)}, **{"content-type": content_type})
    assert r.status_code == 200 and r.json() == {"accepted_rows": 2}, r.text


def test_no_event_is_lost_below_the_shedding_limit(served, tmp_path):
    from inference.devserve import start_drift

    proc = start_drift(
        served["source"],
        free_port(),
        tmp_path / "d.log",
        "--window_size",
        "250",
        "--backend",
        "scipy",
        "--queue_size",
        "5000",
    )
    try:
        batch = rows(5, seed=3)
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: binary(proc.url, {"instances": batch}).status_code, range(600)))
        assert codes.count(200) == 600
        requests.post(proc.url + "/flush", timeout=30)
        counts = status(proc.url)["counts"]
        assert counts["received"] == counts["processed"] == 600 and counts["dropped"] == 0
        metrics = requests.get(proc.url + "/metrics", timeout=10).text
        assert "mlcycle_drift_rows_total 3000.0" in metrics
    finally:
        proc.stop()


def test_overload_sheds_and_counts_instead_of_blocking(served, tmp_path):
    from inference.devserve import start_drift

    # a tiny queue, and windows of one event each so the consumer is busy testing: the queue overflows
    proc = start_drift(
        served["source"],
        free_port(),
        tmp_path / "d.log",
        "--window_size",
        "1",
        "--backend",
        "alibi",
        "--queue_size",
        "2",
    )
    try:
        batch = rows(50, seed=4)
        start = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(lambda _: binary(proc.url, {"instances": batch}).status_code, range(300)))
        elapsed = time.monotonic() - start
        assert set(codes) <= {200, 503} and codes.count(503) > 0
        requests.post(proc.url + "/flush", timeout=60)
        counts = status(proc.url)["counts"]
        assert counts["dropped"] == codes.count(503) and counts["received"] == codes.count(200) == counts["processed"]
        assert elapsed < 30
        assert requests.get(proc.url + "/healthz", timeout=5).status_code == 200
    finally:
        proc.stop()


def test_rows_the_predictor_refuses_are_counted_apart_and_kept_out_of_windows(drift_server):
    """One decoder (the predictor's codec): a string in a numeric column or a missing feature is refused (400),
    counted by reason, and the window does not change."""
    url = drift_server["url"]
    good = rows(3, seed=5)
    as_string = [dict(good[0], amount="17.99")] + good[1:]
    missing = [{k: v for k, v in r.items() if k != "hour"} for r in good]
    before = status(url)
    metric = 'mlcycle_drift_events_rejected_total{reason="invalid_input"}'

    def rejected():
        line = next(x for x in requests.get(url + "/metrics", timeout=10).text.splitlines() if x.startswith(metric))
        return float(line.split()[-1])

    start = rejected()
    for body in ({"instances": as_string}, v2_request(as_string), {"instances": missing}):
        r = binary(url, body)
        assert r.status_code == 400 and r.json()["reason"] == "invalid_input", r.text
    v2 = binary(url, v2_request(as_string))
    assert "input 'amount': datatype BYTES not allowed for a numeric feature" in v2.json()["error"]
    assert binary(url, {"instances": as_string}).json()["error"].startswith("feature 'amount' row 0: expected a number")
    deadline = time.monotonic() + 5
    after = status(url)
    while after["counts"]["queued"] and time.monotonic() < deadline:
        time.sleep(0.05)
        after = status(url)
    assert after["counts"]["buffered_rows"] == before["counts"]["buffered_rows"]
    assert after["counts"]["windows"] == before["counts"]["windows"]
    assert after["counts"]["processed"] == before["counts"]["processed"]
    assert after["counts"]["rejected"] == before["counts"]["rejected"] + 5
    assert after["rejected_by_reason"]["invalid_input"] == before["rejected_by_reason"]["invalid_input"] + 5
    assert rejected() == start + 5
    assert (
        'mlcycle_drift_rows_rejected_total{reason="invalid_input"}' in requests.get(url + "/metrics", timeout=10).text
    )
