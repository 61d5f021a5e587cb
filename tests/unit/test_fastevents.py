"""The drift detector's lean event front: the same answers as the plain routes, body limits, and that it answers
events by itself (the FastAPI app behind it is not called)."""

import asyncio
import json

import orjson
import pytest
from fastapi import FastAPI

from inference.drift_detector import fastevents
from inference.drift_detector.fastevents import FastEvents
from inference.drift_detector.server import DriftService, create_app
from mlcycle import drift as stats
from mlcycle.data import make_demo_dataset

pytestmark = pytest.mark.unit
CE = [
    (b"ce-specversion", b"1.0"),
    (b"ce-id", b"1"),
    (b"ce-source", b"test"),
    (b"ce-type", b"org.kubeflow.serving.inference.request"),
]
JSON = [(b"content-type", b"application/json")]


@pytest.fixture(scope="module")
def detector(contract):
    return stats.build(make_demo_dataset(3000, seed=11), contract, "scipy")


def call(app, path: str, headers: list, chunks: list[bytes], method: str = "POST"):
    """One HTTP request through the ASGI app: (status, parsed JSON body)."""
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body)


def corpus(contract):
    recs = json.loads(make_demo_dataset(1000, seed=3).head(5)[contract.feature_names].to_json(orient="records"))
    bad = dict(recs[0], amount="12.5")
    return [
        ("v1 records", CE + JSON, orjson.dumps({"instances": recs})),
        (
            "v1 in another content type",
            CE + [(b"content-type", b"application/x-www-form-urlencoded")],
            orjson.dumps({"instances": recs}),
        ),
        (
            "v2",
            CE + JSON,
            orjson.dumps(
                {
                    "inputs": [
                        {"name": k, "shape": [1], "datatype": "BYTES" if isinstance(v, str) else "FP64", "data": [v]}
                        for k, v in recs[0].items()
                    ]
                }
            ),
        ),
        ("a string amount", CE + JSON, orjson.dumps({"instances": [bad]})),
        ("not JSON", CE + JSON, b"{nope"),
        ("NaN literal", CE + JSON, json.dumps({"instances": [dict(recs[0], amount=float("nan"))]}).encode()),
        ("no ce headers", JSON, orjson.dumps({"instances": recs})),
        ("a response event", CE[:3] + [(b"ce-type", b"org.kubeflow.serving.inference.response")] + JSON, b"{}"),
        ("empty body", CE + JSON, b""),
    ]


def test_the_front_answers_every_event_as_the_plain_route_does(detector, contract):
    for name, headers, body in corpus(contract):
        answers = []
        for fast in (True, False):
            service = DriftService(detector, "m", "v", window_size=50, queue_size=100)
            app = create_app(service)
            if not fast:  # the FastAPI app alone: its own routes for / and /events
                app.build_middleware_stack = FastAPI.build_middleware_stack.__get__(app)
            answers.append((call(app, "/events", headers, [body]), service.counts, dict(service.rejected_by_reason)))
        assert answers[0] == answers[1], name


def test_the_front_answers_events_without_the_app_behind_it(detector, contract):
    async def must_not_be_called(scope, receive, send):
        raise AssertionError(f"the app behind the front was called for {scope['path']}")

    service = DriftService(detector, "m", "v", window_size=50, queue_size=100)
    front = FastEvents(must_not_be_called, service, 1 << 20)
    name, headers, body = corpus(contract)[0]
    for path in ("/", "/events"):
        status, answer = call(front, path, headers, [body[:10], body[10:]])  # a body in two chunks
        assert (status, answer) == (200, {"accepted_rows": 5})
    assert service.counts["received"] == 2 and service.queue.qsize() == 2
    with pytest.raises(AssertionError, match="/status"):
        call(front, "/status", [], [b""], method="GET")
    assert isinstance(create_app(service).build_middleware_stack(), FastEvents)


def test_bodies_over_the_limit_are_refused_before_they_are_queued(detector, contract):
    service = DriftService(detector, "m", "v", window_size=50, queue_size=100)
    app = create_app(service, max_body_bytes=100)
    _, headers, body = corpus(contract)[0]
    assert len(body) > 100
    declared = headers + [(b"content-length", str(len(body)).encode())]
    status, answer = call(app, "/events", declared, [body])
    assert status == 413 and answer["reason"] == "too_large" and "100 bytes" in answer["error"]
    status, answer = call(app, "/events", headers, [body[:60], body[60:]])  # no length given: counted as it streams
    assert status == 413
    assert service.queue.qsize() == 0 and service.counts["received"] == 0
    assert service.rejected_by_reason["too_large"] == 2
    assert service.metrics.rejected.labels("too_large")._value.get() == 2
    small = create_app(DriftService(detector, "m", "v", window_size=50, queue_size=100), max_body_bytes=len(body))
    assert call(small, "/events", declared, [body])[0] == 200  # exactly the limit is allowed


def test_install_wraps_whatever_stack_the_app_builds(detector):
    service = DriftService(detector, "m", "v")
    app = FastAPI()
    fastevents.install(app, service, 10)
    stack = app.build_middleware_stack()
    assert isinstance(stack, FastEvents) and stack.max_body_bytes == 10
