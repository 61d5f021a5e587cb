"""The drift detector as a real process on a real registry: its HTML report (every feature, p-values after a window,
a hostile category value escaped), the report stored with a retrain's audit record, and the detector following
registry#model@production (the new version after a promotion; a tampered version refused, the old one kept)."""

import html
import json
import shutil

import pytest
import requests

from inference.devserve import start_drift
from inference.traffic import send_events
from mlcycle.data import DEMO_LABEL, DEMO_TIMESTAMP, make_demo_dataset
from mlcycle.process import free_port, wait_until
from mlcycle.registry import open_registry
from mlcycle.triggers import Decision

pytestmark = pytest.mark.integration
HOSTILE = "<img src=x onerror=alert(1)>&\"'"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;&amp;&quot;&#x27;"
TYPE = "org.kubeflow.serving.inference.request"


def hostile_frame(n, seed, drift=0.0):
    frame = make_demo_dataset(max(n, 1000), seed=seed, drift=drift).head(n)
    return frame.assign(channel=frame["channel"].replace({"online": HOSTILE}))


def send(url, records):
    send_events(url, records, "test")  # urllib raises on any answer but 2xx


def records(frame, features):
    return json.loads(frame[features].to_json(orient="records"))


def status(url):
    return requests.get(f"{url}/status", timeout=10).json()


def wait(condition, timeout=60.0):
    return wait_until(condition, timeout, 0.2)


@pytest.fixture(scope="module")
def hostile_registry(tmp_path_factory):
    """A registry whose production version was trained on data with a hostile 'channel' category."""
    from components.build_detector.logic import build_detector
    from components.register.logic import register
    from components.split.logic import split_frame
    from mlcycle.contract import infer_contract
    from mlcycle.models import fit_bundle

    root = tmp_path_factory.mktemp("hostile")
    frame = hostile_frame(4000, seed=21)
    contract = infer_contract(frame, DEMO_LABEL, timestamp=DEMO_TIMESTAMP)
    assert HOSTILE in next(f for f in contract.features if f.name == "channel").categories
    train, val, _ = split_frame(frame, contract, seed=7)
    bundle = fit_bundle("logreg", train, val, contract, seed=7)[0]
    bundle.save(root / "model")
    build_detector(train, contract, root / "drift", backend="scipy")
    registry = open_registry(root / "registry")
    version = register(
        root / "model",
        contract,
        train,
        {"metrics": {}},
        {"passed": True, "reasons": []},
        registry,
        "fraud",
        "a" * 64,
        "test-report",
        auto_promote=True,
        drift_dir=root / "drift",
    ).version
    return {"root": root / "registry", "registry": registry, "contract": contract, "version": version}


def test_report_shows_every_feature_p_values_after_a_window_escapes_and_goes_into_the_audit(hostile_registry, tmp_path):
    from pipelines.loop import record_retrain

    contract, registry = hostile_registry["contract"], hostile_registry["registry"]
    features = contract.feature_names
    proc = start_drift(
        f"{hostile_registry['root']}#fraud@production",
        free_port(),
        tmp_path / "drift.log",
        "--window_size",
        "300",
        "--max_age_s",
        "3600",
        "--consecutive",
        "1",
        "--retrain_command",
        "true",
    )
    try:
        before = requests.get(f"{proc.url}/report", timeout=10)
        assert before.status_code == 200 and before.headers["content-type"].startswith("text/html")
        assert "no window yet" in before.text
        for name in features:
            assert f'data-feature="{name}"' in before.text
        assert HOSTILE not in before.text and ESCAPED in before.text and "<script" not in before.text

        for seed in (31, 32):  # 300 rows (some with the hostile category), then 300 drifted ones
            frame = hostile_frame(300, seed=seed, drift=0.0 if seed == 31 else 0.8)
            assert (frame["channel"] == HOSTILE).any()
            send(proc.url, records(frame, features))
        assert wait(lambda: status(proc.url)["counts"]["windows"] == 2)
        state = status(proc.url)
        assert state["retrain"] and state["retrain"][0]["evidence"]["p_below"]
        page = requests.get(f"{proc.url}/report", timeout=10).text
        assert "no window yet" not in page and HOSTILE not in page and ESCAPED in page
        for name in features:
            assert f'data-feature="{name}"' in page
            assert f"p = {state['last_window']['p_values'][name]:.3g}" in page
        assert html.escape(state["retrain"][0]["why"]) in page  # the trigger history

        # the loop's record of a retrain that starts carries the page of that moment
        decision = Decision(True, "drift", "2 consecutive drifted windows (>= 2)", {"drifted_windows": 2})
        record_retrain(registry, "fraud", decision, proc.url)
    finally:
        proc.stop()
    record = registry.audit_log("fraud")[-1]
    assert record["event"] == "retrain" and record["why"].startswith("drift: ")
    key = record["attachments"]["drift_report.html"]
    assert key.startswith("fraud/_audit/reports/") and key.endswith("-drift_report.html")
    stored = registry.audit_attachment(key).decode()
    assert ESCAPED in stored and all(f'data-feature="{n}"' in stored for n in features)
    assert f"p = {state['last_window']['p_values']['amount']:.3g}" in stored
    # the detector gone: the retrain is still recorded, with the reason the page is missing
    record_retrain(registry, "fraud", decision, proc.url)
    last = registry.audit_log("fraud")[-1]
    assert "attachments" not in last and "drift_report_error" in last["evidence"]


def test_the_detector_follows_production_and_refuses_a_tampered_version(
    served, model_dirs, splits, contract, tmp_path, register_passed
):
    shutil.copytree(served["root"] / "registry", tmp_path / "registry")
    registry = open_registry(tmp_path / "registry")
    first = registry.resolve("fraud", "production")
    train, _, test = splits
    proc = start_drift(
        f"{tmp_path / 'registry'}#fraud@production",
        free_port(),
        tmp_path / "drift.log",
        "--follow_s",
        "0.3",
        "--backend",
        "scipy",
        "--window_size",
        "100",
        "--max_age_s",
        "3600",
    )

    def metrics():
        return requests.get(f"{proc.url}/metrics", timeout=10).text

    try:
        assert status(proc.url)["version"] == first and status(proc.url)["follow"]["alias"] == "production"
        send(proc.url, records(test.head(40), contract.feature_names))  # buffered under the first version
        assert wait(lambda: status(proc.url)["counts"]["buffered_rows"] == 40)
        second = register_passed(model_dirs["logreg"], registry, "e" * 64, "test-follow", auto_promote=True).version
        assert wait(lambda: status(proc.url)["version"] == second), status(proc.url)
        state = status(proc.url)
        assert state["switches"][-1] == {**state["switches"][-1], "from": first, "to": second, "discarded_rows": 40}
        assert state["counts"]["buffered_rows"] == 0 and state["follow"]["error"] == ""
        text = metrics()
        assert f'mlcycle_drift_served_version{{model="fraud",version="{second}"}} 1.0' in text
        assert f'mlcycle_drift_served_version{{model="fraud",version="{first}"}} 0.0' in text
        send(proc.url, records(test.head(100), contract.feature_names))
        assert wait(lambda: status(proc.url)["counts"]["windows"] == 1)
        assert status(proc.url)["recent_windows"][-1]["version"] == second

        third = register_passed(model_dirs["hgb"], registry, "d" * 64, "test-follow").version
        reference = tmp_path / "registry" / "fraud" / third / "reference.parquet"
        data = reference.read_bytes()
        reference.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # one byte changed
        registry.promote("fraud", third, why="test: a tampered version")
        assert wait(lambda: status(proc.url)["follow"]["error"] != ""), status(proc.url)
        state = status(proc.url)
        assert state["version"] == second and state["follow"]["refused_version"] == third
        assert state["follow"]["error"].startswith(f"{third}: IntegrityError: sha256 mismatch")
        assert 'mlcycle_drift_follow_failures_total{model="fraud"} 1.0' in metrics()
        assert "follow refused" in requests.get(f"{proc.url}/report", timeout=10).text
        send(proc.url, records(test.head(100), contract.feature_names))  # the old detector still tests windows
        assert wait(lambda: status(proc.url)["counts"]["windows"] == 2)
        assert status(proc.url)["recent_windows"][-1]["version"] == second
    finally:
        proc.stop()
