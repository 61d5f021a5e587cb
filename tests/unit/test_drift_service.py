"""The drift service in-process: events decoded by the predictor's codec into arrays, windows as arrays,
refused rows kept out, shedding counted."""

import asyncio
import json

import numpy as np
import pandas as pd
import pytest

from inference.cloudevents import ce_headers
from inference.drift_detector.server import DriftService
from inference.traffic import v2_request
from mlcycle import drift as stats
from mlcycle.data import make_demo_dataset

pytestmark = pytest.mark.unit
HEADERS = ce_headers("1", "org.kubeflow.serving.inference.request", "test")


@pytest.fixture(scope="module")
def detector(contract):
    return stats.build(make_demo_dataset(3000, seed=11), contract, "scipy")


def records(n, seed, contract):
    frame = make_demo_dataset(max(n, 1000), seed=seed).head(n)[contract.feature_names]
    return json.loads(frame.to_json(orient="records"))


def run(coro):
    return asyncio.run(coro)


def test_events_are_appended_as_arrays_and_windows_tested_as_arrays(detector, contract):
    sent = [records(10, seed=s, contract=contract) for s in (1, 2, 3, 4)]

    async def scenario():
        service = DriftService(detector, "m", "v", window_size=25, queue_size=100)
        service.start()
        for i, recs in enumerate(sent):
            body = {"instances": recs} if i % 2 == 0 else v2_request(recs)
            assert service.offer(HEADERS, json.dumps(body).encode()) == (200, {"accepted_rows": 10})
        await service.queue.join()
        await asyncio.sleep(0)
        while service._testing is not None and not service._testing.done():
            await asyncio.sleep(0.01)
        state = service.status()
        window = service.window.rows.copy()
        await service.stop()
        return service, state, window

    service, state, window = run(scenario())
    assert state["counts"]["windows"] == 1 and state["counts"]["processed"] == 4
    assert state["counts"]["buffered_rows"] == 15  # the third event was split: 5 rows tested, 5 in the next window
    all_rows = pd.DataFrame([r for recs in sent for r in recs])
    np.testing.assert_array_equal(window, detector.encoder.encode(all_rows.iloc[25:40]))
    expected = detector.score(all_rows.head(25)).as_dict()
    tested = state["last_window"]
    assert tested["n"] == 25 and tested["p_values"] == pytest.approx(expected["p_values"], rel=1e-12)


def test_refused_rows_never_enter_a_window_and_are_counted_by_reason(detector, contract):
    good = records(4, seed=6, contract=contract)
    cases = {
        "string in a numeric column": {"instances": [dict(good[0], amount="12.5")] + good[1:]},
        "boolean in a numeric column": v2_request([dict(r, amount=True) for r in good]),
        "missing feature": {"instances": [{k: v for k, v in r.items() if k != "channel"} for r in good]},
        "unknown category": {"instances": [dict(good[0], channel="hologram")] + good[1:]},
        "null where training had none": {"instances": [dict(good[0], amount=None)] + good[1:]},
        "unknown feature": {"instances": [dict(r, extra=1) for r in good]},
    }

    async def scenario():
        service = DriftService(detector, "m", "v", window_size=1000, queue_size=100)
        service.start()
        assert service.offer(HEADERS, json.dumps({"instances": good}).encode())[0] == 200
        await service.queue.join()
        before = service.window.rows.copy()
        answers = {name: service.offer(HEADERS, json.dumps(body).encode()) for name, body in cases.items()}
        answers["not json"] = service.offer(HEADERS, b"{")
        answers["wrong type"] = service.offer({**HEADERS, "ce-type": "x"}, json.dumps({"instances": good}).encode())
        await service.queue.join()
        after = service.window.rows.copy()
        await service.stop()
        return service, answers, before, after

    service, answers, before, after = run(scenario())
    for name in cases:
        status, body = answers[name]
        assert status == 400 and body["reason"] == "invalid_input", (name, body)
    assert answers["not json"][1]["reason"] == "not_json" and answers["wrong type"][1]["reason"] == "wrong_type"
    np.testing.assert_array_equal(after, before)  # the window holds the 4 good rows only
    assert len(after) == 4 and service.queue.qsize() == 0
    assert service.counts["rejected"] == len(cases) + 2 and service.counts["processed"] == 1
    assert service.rejected_by_reason["invalid_input"] == len(cases)
    registry = service.metrics.registry
    assert registry.get_sample_value("mlcycle_drift_events_rejected_total", {"reason": "invalid_input"}) == len(cases)
    assert registry.get_sample_value("mlcycle_drift_rows_rejected_total", {"reason": "invalid_input"}) == 4 * len(cases)
    assert registry.get_sample_value("mlcycle_drift_events_rejected_total", {"reason": "not_json"}) == 1


def test_above_the_queue_limit_events_are_shed_and_counted(detector, contract):
    body = json.dumps({"instances": records(2, seed=7, contract=contract)}).encode()

    async def scenario():
        service = DriftService(detector, "m", "v", window_size=100, queue_size=3)  # consumer not started: queue fills
        codes = [service.offer(HEADERS, body)[0] for _ in range(5)]
        return service, codes

    service, codes = run(scenario())
    assert codes == [200, 200, 200, 503, 503]
    assert (
        service.counts["dropped"] == 2
        and service.metrics.registry.get_sample_value("mlcycle_drift_events_dropped_total") == 2
    )
