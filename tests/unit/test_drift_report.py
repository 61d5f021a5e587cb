"""The drift report page (inference/drift_detector/report.py) and the drift service's version switch, in-process."""

import asyncio
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from inference.cloudevents import ce_headers
from inference.drift_detector.events import REQUEST_TYPE
from inference.drift_detector.report import Profile, render
from inference.drift_detector.server import DriftService
from mlcycle import drift as stats
from mlcycle.contract import infer_contract
from mlcycle.data import DEMO_LABEL, DEMO_TIMESTAMP, make_demo_dataset

pytestmark = pytest.mark.unit
HOSTILE = "<script>alert('x')</script>&\"pwn\""
HEADERS = ce_headers("1", REQUEST_TYPE, "test")


def hostile_frame(n, seed, drift=0.0):
    frame = make_demo_dataset(max(n, 1000), seed=seed, drift=drift).head(n)
    return frame.assign(channel=frame["channel"].replace({"online": HOSTILE}))


@pytest.fixture(scope="module")
def hostile():
    frame = hostile_frame(3000, seed=11)
    contract = infer_contract(frame, DEMO_LABEL, timestamp=DEMO_TIMESTAMP)
    assert HOSTILE in next(f for f in contract.features if f.name == "channel").categories
    return contract, stats.build(frame, contract, "scipy")


class Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def parse(page):
    p = Elements()
    p.feed(page)
    return p


def test_before_any_window_the_page_shows_the_reference_and_says_no_window_yet(hostile):
    contract, detector = hostile
    page = render("fraud", "v1", "scipy", Profile(detector), None, [], [])
    assert "no window yet" in page
    for name in contract.feature_names:
        assert f'data-feature="{name}"' in page
    assert "<script" not in page.lower() and "javascript" not in page.lower()
    assert not re.search(r"(src|href)=", page)  # no external asset


def test_p_values_newest_first_bounded_and_every_category_escaped(hostile):
    contract, detector = hostile
    profile = Profile(detector)
    history, windows = [], []
    for i, drift in enumerate((0.0, 0.7)):
        x = detector.encoder.encode(hostile_frame(400, seed=50 + i, drift=drift)[contract.feature_names])
        report = detector.score_matrix(x).as_dict()
        history.append({**report, "at": 1_700_000_000 + i, "version": f"v{i}"})
        windows.append({"at": 1_700_000_000 + i, "n": len(x), "version": f"v{i}", "counts": profile.counts(x)})
    triggers = [{"at": 1_700_000_002, "result": f"started {HOSTILE}", "why": "2 drifted", "evidence": {"k": HOSTILE}}]
    page = render("fraud", "v1", "scipy", profile, windows[-1], history, triggers)
    assert "no window yet" not in page
    assert HOSTILE not in page and "<script>" not in page
    assert page.count("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;&quot;pwn&quot;") >= 3
    text = "".join(parse(page).text)
    assert HOSTILE in text  # the reader sees the category as it is
    rows = re.findall(r"<tr><td>[^<]*UTC</td><td>(v\d)</td>", page)
    assert rows == ["v1", "v0"]  # newest first
    amount_p = f"{history[-1]['p_values']['amount']:.3g}"
    assert amount_p in page and f"{history[0]['p_values']['amount']:.3g}" in page
    # the drifted window's amount histogram differs from the reference's
    amount = next(f for f in profile.features if f.name == "amount")
    assert sum(windows[-1]["counts"]["amount"]) == 400 and amount.reference.sum() == len(detector.x_ref)
    ref_share = amount.reference / amount.reference.sum()
    cur_share = np.array(windows[-1]["counts"]["amount"]) / 400
    assert np.abs(ref_share - cur_share).sum() > 0.2


def test_category_bins_count_missing_and_every_training_category(hostile):
    contract, detector = hostile
    profile = Profile(detector)
    channel = next(f for f in profile.features if f.name == "channel")
    spec = next(f for f in contract.features if f.name == "channel")
    assert channel.labels == [*spec.categories, "(missing)", "(unseen)"]
    frame = hostile_frame(10, seed=3)[contract.feature_names]
    frame.loc[frame.index[:3], "channel"] = None
    counts = profile.counts(detector.encoder.encode(frame))["channel"]
    assert counts[-2] == 3 and sum(counts) == 10


def test_a_version_switch_resets_the_windows_and_drops_the_old_versions_rows(hostile):
    contract, detector = hostile
    other = stats.build(hostile_frame(2000, seed=12), contract, "scipy")
    body = json.dumps(
        {"instances": json.loads(hostile_frame(30, seed=4)[contract.feature_names].to_json(orient="records"))}
    )

    async def scenario():
        service = DriftService(detector, "fraud", "v1", window_size=50, queue_size=100)
        service.start()
        for _ in range(2):  # 60 rows: one window of v1, 10 rows buffered
            assert service.offer(HEADERS, body.encode())[0] == 200
        await service.queue.join()
        while service._testing is not None and not service._testing.done():
            await asyncio.sleep(0.01)
        assert service.offer(HEADERS, body.encode())[0] == 200  # queued under v1, switched before it is consumed
        await service.switch(other, "v2")
        await service.queue.join()
        after_switch = service.status()
        for _ in range(2):
            service.offer(HEADERS, body.encode())
        await service.flush()
        state = service.status()
        await service.stop()
        return service, after_switch, state

    service, after_switch, state = asyncio.run(scenario())
    assert after_switch["version"] == "v2" and after_switch["counts"]["buffered_rows"] == 0
    assert after_switch["switches"][0]["discarded_rows"] == 10 and after_switch["streak"] == 0
    assert [w["version"] for w in state["recent_windows"]] == ["v1", "v2", "v2"]  # 50 + 10 rows of v2 only
    assert [w["n"] for w in state["recent_windows"]] == [50, 50, 10]
    registry = service.metrics.registry
    assert registry.get_sample_value("mlcycle_drift_rows_discarded_total") == 40  # 10 buffered + 30 queued
    assert registry.get_sample_value("mlcycle_drift_served_version", {"model": "fraud", "version": "v1"}) == 0
    assert registry.get_sample_value("mlcycle_drift_served_version", {"model": "fraud", "version": "v2"}) == 1
    assert service.detector is other and service.last_window["version"] == "v2"
