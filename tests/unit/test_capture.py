"""Traffic capture and late labels in-process: the CloudEvent join, part files, feedback refusals,
online metrics, storage faults, restarts, retention and the labelled training table."""

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from inference.capture.events import BadEvent, decode
from inference.capture.service import CaptureService
from inference.cloudevents import ce_headers
from mlcycle.capture import (
    LABELS,
    TRAFFIC,
    CaptureStore,
    labelled_traffic,
    parse_part,
    parse_traffic_source,
    read_traffic,
    read_traffic_source,
    utcnow,
)
from mlcycle.errors import DataError, StorageUnavailable

pytestmark = pytest.mark.unit
CE = "org.kubeflow.serving.inference."


def event(kind, eid, body, **extra):
    headers = ce_headers(eid, CE + kind, "test", {"ce-endpoint": "default", **extra})
    return headers, json.dumps(body).encode()


def v1_response(predictions, version="v1"):
    return {
        "predictions": predictions,
        "probabilities": [[1 - 0.9 * p, 0.9 * p] for p in predictions],
        "classes": [0, 1],
        "model_version": version,
    }


def call(service, rows, predictions, eid=None, version="v1", response_first=False):
    eid = eid or str(uuid.uuid4())
    halves = [event("request", eid, {"instances": rows}), event("response", eid, v1_response(predictions, version))]
    for headers, body in reversed(halves) if response_first else halves:
        status, answer = service.offer(headers, body)
        assert status == 200, answer
    return eid


def row(i=0):
    return {"amount": 10.0 + i, "channel": "pos"}


def make(tmp_path, **kw):
    service = CaptureService(CaptureStore(tmp_path / "registry", "fraud"), tmp_path / "state", flush_rows=10**6, **kw)
    service.recover()
    return service


def run(coro):
    return asyncio.run(coro)


def feedback(service, *labels):
    return run(service.feedback(json.dumps({"labels": list(labels)}).encode()))


# events -------------------------------------------------------------------------------------
def test_decodes_v1_v2_requests_and_responses_and_the_forwarded_request_id():
    e = decode(*event("request", "ce1", {"instances": [row()]}, **{"ce-metadata": '{"X-Request-Id": ["client-7"]}'}))
    assert (e.kind, e.event_id, e.request_id, e.rows) == ("request", "ce1", "client-7", [row()])
    v2 = {
        "inputs": [
            {"name": "amount", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]},
            {"name": "channel", "shape": [2, 1], "datatype": "BYTES", "data": [["pos"], ["atm"]]},
        ]
    }
    expected = [{"amount": 1.0, "channel": "pos"}, {"amount": 2.0, "channel": "atm"}]
    assert decode(*event("request", "ce2", v2)).rows == expected
    out = {
        "model_name": "fraud",
        "model_version": "v9",
        "outputs": [
            {"name": "label", "shape": [2], "datatype": "INT64", "data": [0, 1]},
            {
                "name": "probabilities",
                "shape": [2, 2],
                "datatype": "FP64",
                "data": [0.8, 0.2, 0.3, 0.7],
                "parameters": {"classes": "0,1"},
            },
        ],
    }
    r = decode(*event("response", "ce2", out))
    assert (r.model_version, r.predictions, r.scores, r.classes) == ("v9", [0, 1], [0.2, 0.7], [0, 1])
    for headers, body, why in [
        (*event("request", "x", {"instances": []}), "empty"),
        ({"content-type": "application/json"}, b'{"instances": [{}]}', "missing attribute"),
        (*event("explanation", "x", {}), "neither"),
        (*event("request", "x", {"instances": [[1, 2]]}), "feature order"),
    ]:
        with pytest.raises(BadEvent, match=why):
            decode(headers, body)


# capture ------------------------------------------------------------------------------------
def test_request_and_response_join_in_either_order_into_hourly_parquet_parts(tmp_path):
    service = make(tmp_path)
    a = call(service, [row(0), row(1)], [0, 1])
    b = call(service, [row(2)], [1], version="v2", response_first=True)
    assert service.status()["counts"]["buffered_rows"] == 3
    assert run(service.flush())["written"] == 3
    keys = service.store.store.list("fraud/traffic")
    assert len(keys) == 1 and parse_part(keys[0]).size == (tmp_path / "registry" / keys[0]).stat().st_size
    assert keys[0].startswith(f"fraud/traffic/date={utcnow():%Y-%m-%d}/hour=")
    frame = read_traffic(str(tmp_path / "registry"), "fraud").sort_values(["request_id", "row"])
    got = {(r.request_id, r.row): (r.prediction, r.model_version, r.amount) for r in frame.itertuples()}
    assert got == {(a, 0): (0, "v1", 10.0), (a, 1): (1, "v1", 11.0), (b, 0): (1, "v2", 12.0)}
    scores = {(r.request_id, r.row): round(r.score, 2) for r in frame.itertuples()}
    assert scores == {(a, 0): 0.0, (a, 1): 0.9, (b, 0): 0.9}
    assert not list((tmp_path / "state" / "journal").glob("*.jsonl"))[0].read_text()  # the write covered the journal


def test_malformed_events_are_refused_and_counted(tmp_path):
    service = make(tmp_path)
    status, body = service.offer(*event("request", "x", {"instances": [{"request_id": "a", "amount": 1}]}))
    assert status == 400 and "collide" in body["error"]
    status, body = service.offer({"content-type": "application/json", "ce-id": "x"}, b"not json")
    assert status == 400 and "not valid JSON" in body["error"]
    assert service.counts["events_rejected"] == 2 and not service.rows


def test_unanswered_requests_are_captured_and_lone_responses_counted_as_dropped(tmp_path):
    service = make(tmp_path, join_timeout_s=0.0)
    service.offer(*event("request", "q", {"instances": [row()]}))
    service.offer(*event("response", "r", v1_response([1])))
    service.expire()
    assert service.counts["unanswered_requests"] == 1 and service.counts["orphan_responses"] == 1
    assert service.counts["rows_dropped"] == 1 and service.rows[0]["prediction"] is None


# feedback -----------------------------------------------------------------------------------
def test_feedback_refuses_unknown_duplicate_wrong_type_and_wrong_class_labels_with_reasons(tmp_path):
    service = make(tmp_path)
    single, batch = call(service, [row()], [1]), call(service, [row(0), row(1)], [0, 0])
    status, body = feedback(
        service,
        {"request_id": single, "label": 1},
        {"request_id": single, "label": 0},
        {"request_id": "no-such-id", "label": 1},
        {"request_id": batch, "label": 1},
        {"request_id": batch, "row": 1, "label": "1"},
        {"request_id": batch, "row": 1, "label": True},
        {"request_id": batch, "row": 1, "label": 3},
        {"request_id": batch, "row": 5, "label": 1},
        {"request_id": batch, "row": 0, "label": 1, "extra": 1},
        {"request_id": batch, "row": 1, "label": 0},
    )
    assert status == 200 and body["accepted"] == 2
    assert [(r["index"], r["reason"]) for r in body["refused"]] == [
        (1, "duplicate"),
        (2, "unknown_request_id"),
        (3, "row_required"),
        (4, "wrong_type"),
        (5, "wrong_type"),
        (6, "unknown_class"),
        (7, "unknown_row"),
        (8, "malformed"),
    ]
    assert "already labelled" in body["refused"][0]["detail"] and "[0, 1]" in body["refused"][5]["detail"]
    status, body = feedback(service, {"request_id": single, "label": 1})  # a later duplicate alone: 422, nothing stored
    assert status == 422 and body["refused"][0]["reason"] == "duplicate"
    assert run(service.feedback(b"{oops"))[0] == 400
    assert service.refusals["duplicate"] == 2 and service.refusals["malformed"] == 2
    labels = service.store.read(LABELS)
    assert sorted(zip(labels["request_id"], labels["row"], labels["label"], strict=False)) == sorted(
        [(single, 0, 1), (batch, 1, 0)]
    )


def test_online_metrics_per_version_with_the_false_positive_rate(tmp_path):
    service = make(tmp_path)
    # v1: 3 predicted fraud (2 right), 3 predicted legit (1 missed fraud); v2: one false positive
    outcomes = {"v1": [(1, 1), (1, 1), (1, 0), (0, 0), (0, 0), (0, 1)], "v2": [(1, 0), (0, 0)]}
    for version, pairs in outcomes.items():
        for predicted, actual in pairs:
            rid = call(service, [row()], [predicted], version=version)
            assert feedback(service, {"request_id": rid, "label": actual})[0] == 200
    online = service.status()["online"]
    assert online["v1"]["accuracy"] == pytest.approx(4 / 6) and online["v1"]["precision"] == pytest.approx(2 / 3)
    assert online["v1"]["recall"] == pytest.approx(2 / 3)
    assert online["v1"]["false_positive_rate"] == pytest.approx(1 / 3)
    assert online["v2"]["false_positive_rate"] == pytest.approx(0.5) and online["v2"]["precision"] == 0
    from prometheus_client import generate_latest

    text = generate_latest(service.metrics.registry).decode()
    assert 'mlcycle_online_false_positive_rate{model="fraud",version="v2"} 0.5' in text
    assert 'mlcycle_feedback_labels_total{model="fraud",version="v1"} 6.0' in text


# faults -------------------------------------------------------------------------------------
def test_storage_down_keeps_rows_then_sheds_and_counts_then_recovers_without_loss(tmp_path, monkeypatch):
    service = make(tmp_path, max_buffer_rows=4)
    real = service.store.write

    def down(*_a, **_k):
        raise StorageUnavailable("S3 endpoint 127.0.0.1:9 unreachable after 4 attempts")

    monkeypatch.setattr(service.store, "write", down)
    for i in range(3):
        call(service, [row(i)], [0])
    result = run(service.flush())
    assert result["written"] == 0 and result["kept"] == 3 and "unreachable" in result["error"]
    call(service, [row(3)], [0])
    status, body = service.offer(*event("request", "over", {"instances": [row(4), row(5)]}))
    assert status == 503 and "dropped and counted" in body["error"]
    assert service.counts["rows_dropped"] == 2 and service.counts["flush_failures"] == 1
    assert not service.store.store.list("fraud")
    status, body = feedback(service, {"request_id": service.rows[0]["request_id"], "label": 0})
    assert status == 503 and body["stored"] is False
    monkeypatch.setattr(service.store, "write", real)
    assert run(service.flush())["written"] == 4
    assert feedback(service, {"request_id": service.index and next(iter(service.index)), "label": 0})[0] == 200
    assert len(read_traffic(str(tmp_path / "registry"), "fraud")) == 4


def test_a_part_that_fails_mid_upload_leaves_nothing_behind(tmp_path, monkeypatch):
    import mlcycle.registry.store as store_module

    def disk_full(path):
        yield b"PAR1"
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_module, "file_chunks", disk_full)
    capture = CaptureStore(tmp_path / "registry", "fraud")
    frame = pd.DataFrame({"request_id": ["a"], "event_id": ["a"], "row": [0], "received_at": [pd.Timestamp.now("UTC")]})
    with pytest.raises(OSError, match="No space"):
        capture.write(TRAFFIC, frame, "received_at")
    assert [p for p in (tmp_path / "registry").rglob("*") if p.is_file() and p.name != ".lock"] == []


def test_restart_after_a_crash_replays_the_journal_and_says_so(tmp_path):
    service = make(tmp_path)
    written = call(service, [row(0)], [1])
    run(service.flush())
    assert feedback(service, {"request_id": written, "label": 0})[0] == 200
    unsaved = call(service, [row(1)], [1])
    half = str(uuid.uuid4())
    service.offer(*event("request", half, {"instances": [row(2)]}))
    service._journal.close()  # the process dies here: no flush, no clean checkpoint

    again = make(tmp_path)
    assert again.restart["restarted"] and again.restart["previous_shutdown"] == "unclean"
    assert again.restart["recovered_events"] == 3 and again.counts["events_request"] == 3
    assert again.online()["v1"]["false_positive_rate"] == 1.0  # rebuilt from the stored labels
    assert feedback(again, {"request_id": written, "label": 1})[1]["refused"][0]["reason"] == "duplicate"
    assert feedback(again, {"request_id": unsaved, "label": 1})[0] == 200
    assert feedback(again, {"request_id": half, "label": 1})[1]["refused"][0]["reason"] == "pending"
    again.offer(*event("response", half, v1_response([0])))
    assert run(again.flush())["written"] == 2
    run(again.stop())
    third = make(tmp_path)
    assert third.restart["previous_shutdown"] == "clean" and third.restart["recovered_events"] == 0
    assert third.restart["restarts"] == 2 and len(read_traffic(str(tmp_path / "registry"), "fraud")) == 3


def test_a_part_written_twice_after_a_crash_is_read_once(tmp_path):
    service = make(tmp_path)
    call(service, [row(0)], [1])
    snapshot = list(service.rows)
    run(service.flush())
    service.rows = snapshot  # as if the journal was replayed after the part was stored
    run(service.flush())
    assert len(service.store.store.list("fraud/traffic")) == 2
    assert len(read_traffic(str(tmp_path / "registry"), "fraud")) == 1


# retention ----------------------------------------------------------------------------------
def test_retention_by_age_and_by_total_bytes(tmp_path):
    capture = CaptureStore(tmp_path / "registry", "fraud")
    now = utcnow()
    for hours_ago in (80, 50, 2, 1):
        t = now - timedelta(hours=hours_ago)
        capture.write(TRAFFIC, pd.DataFrame({"x": [1.0] * 50, "received_at": [t] * 50}), "received_at")
    assert len(capture.parts(TRAFFIC)) == 4
    assert len(capture.retain(TRAFFIC, max_age=timedelta(days=3), now=now)) == 1
    sizes = [p.size for p in capture.parts(TRAFFIC)]
    deleted = capture.retain(TRAFFIC, max_bytes=sum(sizes[1:]))
    assert len(deleted) == 1 and len(capture.parts(TRAFFIC)) == 2
    hour = (now - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    assert min(p.hour for p in capture.parts(TRAFFIC)) >= hour  # the oldest went first


# the training table -------------------------------------------------------------------------
def test_labelled_traffic_has_the_contracts_columns_and_label_and_ingest_reads_it(tmp_path, contract, demo_frame):
    from components.ingest.logic import ingest
    from mlcycle.registry import open_registry

    registry = open_registry(tmp_path / "registry")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.bin").write_bytes(b"x")
    version = registry.register("fraud", tmp_path / "model", {"contract": contract.model_dump()})
    service = make(tmp_path)
    records = json.loads(demo_frame[contract.feature_names].head(30).to_json(orient="records"))
    truth = demo_frame[contract.label].head(30).tolist()
    ids = [call(service, [r], [0], version=version) for r in records]
    run(service.flush())
    status, body = feedback(
        service, *({"request_id": i, "label": int(y)} for i, y in zip(ids[:20], truth, strict=False))
    )
    assert status == 200 and body["accepted"] == 20
    frame = labelled_traffic(str(tmp_path / "registry"), "fraud", days=7)
    assert list(frame.columns) == contract.feature_names + [contract.timestamp, contract.label]
    assert len(frame) == 20 and frame[contract.label].tolist() == [int(y) for y in truth[:20]]
    source = f"traffic://{tmp_path / 'registry'}#fraud?days=7"
    result = ingest(source, tmp_path / "dataset.parquet")
    assert result.rows == 20 and set(result.columns) == set(frame.columns)
    named = parse_traffic_source("traffic://s3://mlcycle-models#fraud-detector?days=1.5")
    assert (named.registry, named.model, named.days, named.until) == (
        "s3://mlcycle-models",
        "fraud-detector",
        1.5,
        None,
    )
    assert parse_traffic_source(str(named)) == named
    bad_sources = ("traffic://#fraud", "traffic:///r#m?days=-1", "traffic:///r#m?weeks=1")
    for bad in bad_sources + ("traffic:///r#m?until=yesterday", "traffic:///r#m?until=2026-12-01T10:00:00"):
        with pytest.raises(DataError):
            parse_traffic_source(bad)
    with pytest.raises(DataError, match="no labelled traffic"):
        ingest(f"traffic://{tmp_path / 'empty'}#fraud", tmp_path / "none.parquet")
    assert not Path(tmp_path / "none.parquet").exists()


def test_capture_writer_policy_is_scoped_to_the_bucket_and_model_asked_for():
    from mlcycle.errors import RegistryError
    from mlcycle.registry.bootstrap import load_policy, policy_name

    text = json.dumps(load_policy("capture-writer", "b1", "churn"))
    assert "arn:aws:s3:::b1/churn/traffic/*" in text and "arn:aws:s3:::b1/churn/labels/*" in text
    assert "mlcycle-models" not in text and "fraud-detector" not in text
    assert policy_name("capture-writer", "b1", "churn") == "mlcycle-capture-writer-b1-churn"
    assert policy_name("serving-reader", "b1", "churn") == "mlcycle-serving-reader-b1"
    with pytest.raises(RegistryError, match="invalid model name 'Bad/Name'"):
        load_policy("capture-writer", "b1", "Bad/Name")
    with pytest.raises(RegistryError, match="unknown MinIO policy 'admin'"):
        load_policy("admin", "b1")


def test_a_source_with_until_is_a_snapshot_later_requests_and_labels_are_not_in_it(tmp_path):
    service = make(tmp_path)
    early = [call(service, [row(i)], [0]) for i in range(6)]
    status, body = feedback(service, *({"request_id": r, "label": 1} for r in early[:4]))
    assert status == 200 and body["accepted"] == 4
    run(service.flush())
    cut = utcnow()
    late = [call(service, [row(10 + i)], [1]) for i in range(3)]
    status, body = feedback(service, *({"request_id": r, "label": 0} for r in early[4:] + late))
    assert status == 200 and body["accepted"] == 5
    run(service.flush())
    uri = str(tmp_path / "registry")
    snapshot = labelled_traffic(uri, "fraud", days=1, until=cut, provenance=True)
    assert sorted(snapshot["request_id"]) == sorted(early[:4])  # neither the later requests nor the later labels
    assert len(labelled_traffic(uri, "fraud", days=1)) == 9
    named = parse_traffic_source(f"traffic://{uri}#fraud?days=1&until={cut.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}")
    assert named.until == cut and parse_traffic_source(str(named)) == named
    with pytest.raises(DataError, match="until must be an ISO time"):
        parse_traffic_source(f"traffic://{uri}#fraud?until=yesterday")
    with pytest.raises(DataError, match="until needs a time zone"):
        parse_traffic_source(f"traffic://{uri}#fraud?until=2026-12-01T10:00:00")
    with pytest.raises(DataError, match=r"no labelled traffic .* up to "):
        read_traffic_source(f"traffic://{uri}#fraud?days=1&until=2020-01-01T00:00:00Z")


# body limit ---------------------------------------------------------------------------------
def test_bodies_over_the_limit_are_refused_with_413_before_they_are_read_whole(tmp_path):
    from fastapi.testclient import TestClient

    from inference.capture.server import create_app

    service = make(tmp_path)
    app = create_app(service, max_body_bytes=2000)
    big = json.dumps({"instances": [row(i) for i in range(200)]}).encode()
    assert len(big) > 2000
    headers = {"content-type": "application/json", "ce-specversion": "1.0", "ce-id": "e1", "ce-source": "t"}
    headers["ce-type"] = "org.kubeflow.serving.inference.request"

    def chunks():  # no Content-Length: refused once the chunks read pass the limit
        for i in range(0, len(big), 500):
            yield big[i : i + 500]

    with TestClient(app) as client:
        declared = client.post("/events", content=big, headers=headers)
        chunked = client.post("/events", content=chunks(), headers=headers)
        labels = client.post("/v1/feedback", content=b"x" * 5000, headers={"content-type": "application/json"})
        small = client.post("/events", content=json.dumps({"instances": [row()]}).encode(), headers=headers)
        metrics = client.get("/metrics").text
    assert declared.status_code == chunked.status_code == labels.status_code == 413, declared.text
    assert "over 2000 bytes" in declared.json()["error"]
    assert small.status_code == 200  # under the limit: accepted as before
    assert service.counts["events_rejected"] == 0 and service.buffered_rows() == 1  # nothing refused reached the data
    assert 'mlcycle_capture_bodies_refused_total{route="events"} 2.0' in metrics
    assert 'mlcycle_capture_bodies_refused_total{route="feedback"} 1.0' in metrics
