"""A real drift detector process killed (SIGKILL) and started again: with a --state_dir it resumes its streak,
counters, windows and trigger state and says so; the local retrain it had started is still seen as running (never
two at once); without a state dir its /status says nothing was persisted."""

import json
import signal
import sys
import time

import pytest
import requests

from inference.drift_detector.persist import STATE_FILE
from inference.traffic import send_events
from mlcycle.data import DEMO_FEATURES, make_demo_dataset
from mlcycle.process import free_port

pytestmark = pytest.mark.integration
WINDOW = 200


def rows(n, seed, drift=0.0):
    frame = make_demo_dataset(max(n, 1000), seed=seed, drift=drift).head(n)[DEMO_FEATURES]
    return json.loads(frame.to_json(orient="records"))


def send(url, records):
    send_events(url, records, "test")  # urllib raises on any answer but 2xx


def status(url):
    return requests.get(url + "/status", timeout=10).json()


def wait(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def saved_windows(state_dir):
    """How many windows the state file on disk holds (None while there is none or it cannot be read)."""
    try:
        return len(json.loads((state_dir / STATE_FILE).read_text())["history"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def start(served, tmp_path, *extra):
    from inference.devserve import start_drift

    return start_drift(
        served["source"],
        free_port(),
        tmp_path / "drift.log",
        "--backend",
        "scipy",
        "--window_size",
        str(WINDOW),
        "--max_age_s",
        "3600",
        "--consecutive",
        "2",
        *extra,
    )


def test_a_killed_detector_resumes_from_its_state_dir_and_says_so(served, tmp_path):
    state_dir, marker, go = tmp_path / "state", tmp_path / "retrain-ran", tmp_path / "go"
    script = (  # a retrain that runs until the test lets it end (at most 120 s)
        "import os, time; print('retraining', flush=True); t = time.time()\n"
        f"while not os.path.exists('{go}') and time.time() - t < 120: time.sleep(0.05)\n"
        f"open('{marker}', 'w').write('ok')"
    )
    extra = ("--state_dir", str(state_dir), "--retrain_command", f'{sys.executable} -c "{script}"')
    proc = start(served, tmp_path, *extra)
    try:
        send(proc.url, rows(WINDOW, seed=1))  # one window without drift
        for seed in (7, 8, 9):  # drifted: the second starts the retrain, the third makes the streak 1
            send(proc.url, rows(WINDOW, seed=seed, drift=0.6))
        assert wait(lambda: status(proc.url)["counts"]["windows"] == 4)
        send(proc.url, rows(WINDOW // 2, seed=10))  # half a window: never persisted
        assert wait(lambda: status(proc.url)["counts"]["buffered_rows"] == WINDOW // 2)
        before = status(proc.url)
        assert before["restart"]["persisted"] is True and before["restart"]["resumed"] is False
        assert before["streak"] == 1 and before["retrain_guard"]["running"]["pid"]
        run = before["retrain_guard"]["running"]
        assert run["log"].startswith(str(state_dir / "retrain-logs"))
        # /status counts a window before its writer thread has put the state file on disk: wait for the file
        assert wait(lambda: saved_windows(state_dir) == 4), f"state file holds {saved_windows(state_dir)} windows"
        proc.process.send_signal(signal.SIGKILL)  # the detector only: its retrain runs in a session of its own
        proc.process.wait(10)
    finally:
        proc.stop()

    again = start(served, tmp_path, *extra)
    try:
        resumed = status(again.url)
        r = resumed["restart"]
        assert r["resumed"] is True and r["resumed_from"] == str(state_dir / "drift-state.json")
        assert r["previous_shutdown"] == "unclean" and r["unfinished_window_rows_lost"] == "unknown"
        assert r["restarts"] == 1 and r["streak"] == "resumed" and r["resumed_windows"] == 4
        assert resumed["streak"] == 1 and resumed["counts"]["windows"] == 4 and resumed["counts"]["received"] == 4
        assert resumed["counts"]["buffered_rows"] == 0
        assert [w["is_drift"] for w in resumed["recent_windows"]] == [False, True, True, True]
        assert r["retrain_in_flight"]["pid"] == run["pid"] and r["retrain_in_flight"]["still_running"] is True
        assert resumed["retrain_guard"]["running"]["pid"] == run["pid"]
        metrics = requests.get(again.url + "/metrics", timeout=10).text
        assert 'mlcycle_drift_windows_total{drift="true"} 3.0' in metrics and "mlcycle_drift_restarts 1.0" in metrics
        assert "mlcycle_drift_retrain_triggers_total 1.0" in metrics

        send(again.url, rows(WINDOW, seed=11, drift=0.6))  # streak 2: a trigger while the old run goes on
        assert wait(lambda: status(again.url)["counts"]["windows"] == 5)
        after = status(again.url)
        assert after["retrain"][-1]["result"].startswith("held back") and after["retrain"][-1]["held"] == "running"
        assert after["retrain_guard"]["held_back"]["running"] == 1 and after["retrain_guard"]["runs"] == []
        go.write_text("")
        assert wait(lambda: status(again.url)["retrain_guard"]["running"] is None, 20)  # the old run ended
        assert marker.read_text() == "ok" and open(run["log"]).read().strip() == "retraining"
        first = status(again.url)["retrain"][0]
        assert first["run"]["pid"] == run["pid"] and first["run"]["exit_code"].startswith("unknown")
    finally:
        go.write_text("")  # the retrain ends whatever happened
        again.stop()


def test_without_a_state_dir_a_restart_says_the_history_is_gone(served, tmp_path):
    proc = start(served, tmp_path)
    try:
        send(proc.url, rows(WINDOW, seed=1))
        assert wait(lambda: status(proc.url)["counts"]["windows"] == 1)
        proc.process.send_signal(signal.SIGKILL)
        proc.process.wait(10)
    finally:
        proc.stop()
    again = start(served, tmp_path)
    try:
        s = status(again.url)
        assert s["restart"]["persisted"] is False and s["restart"]["started_at"]
        assert s["counts"]["windows"] == 0 and s["recent_windows"] == []
    finally:
        again.stop()
