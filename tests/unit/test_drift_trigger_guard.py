"""The drift detector's retrain hook behind the core's trigger guard: under constant drift at most one start per
cooldown, never two runs at once when the hook can tell, held-back triggers counted and shown; a local run's output
in a log file named in /status with its exit code; the state file written per window and resumed from."""

import asyncio
import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from inference.cloudevents import ce_headers
from inference.drift_detector.events import REQUEST_TYPE
from inference.drift_detector.hooks import CommandHook
from inference.drift_detector.persist import STATE_FILE
from inference.drift_detector.report import render_service
from inference.drift_detector.server import DriftService
from mlcycle import drift as stats
from mlcycle.data import make_demo_dataset

pytestmark = pytest.mark.unit
HEADERS = ce_headers("1", REQUEST_TYPE, "test")
WINDOW = 100


@pytest.fixture(scope="module")
def detector(contract):
    return stats.build(make_demo_dataset(3000, seed=11), contract, "scipy")


@pytest.fixture(scope="module")
def drifted(contract):
    """Bodies of one drifted window each."""
    frame = make_demo_dataset(WINDOW * 30, seed=5, drift=0.8)[contract.feature_names]
    recs = json.loads(frame.to_json(orient="records"))
    return [json.dumps({"instances": recs[i : i + WINDOW]}).encode() for i in range(0, len(recs), WINDOW)]


class Calls:
    """A hook object that counts its calls (and cannot tell when its run ends: the cooldown alone guards it)."""

    def __init__(self):
        self.at: list[float] = []

    def __call__(self, report):
        self.at.append(time.monotonic())
        return f"call {len(self.at)}"


async def feed(service: DriftService, bodies) -> None:
    for body in bodies:
        assert service.offer(HEADERS, body)[0] == 200
        await service.flush()  # the window is tested now: one window per body


async def until(condition, timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds or ``timeout`` s pass (what it reads is set by the hook's waiter thread)."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def held(service: DriftService, reason: str) -> float:
    return service.metrics.registry.get_sample_value("mlcycle_drift_retrain_held_back_total", {"reason": reason})


def test_a_trigger_storm_starts_one_retrain_per_cooldown(detector, drifted):
    hook, cooldown = Calls(), 3.0

    async def scenario():
        service = DriftService(detector, "m", "v", WINDOW, consecutive=1, hook=hook, retrain_cooldown_s=cooldown)
        service.start()
        t0 = time.monotonic()
        await feed(service, drifted[:10])  # every window drifts: 10 triggers within the cooldown
        first_phase = time.monotonic() - t0
        mid = service.status()
        await asyncio.sleep(max(0.0, cooldown - (time.monotonic() - hook.at[0])) + 0.1)
        await feed(service, drifted[10:20])  # the cooldown is over: one more start, then held back again
        status, page = service.status(), render_service(service)
        await service.stop()
        return service, first_phase, mid, status, page

    service, first_phase, mid, status, page = asyncio.run(scenario())
    assert first_phase < cooldown, "the machine was too slow to feed 10 windows within the cooldown"
    assert status["counts"]["windows"] == 20 and all(w["is_drift"] for w in status["recent_windows"])
    assert len(hook.at) == 2 and hook.at[1] - hook.at[0] >= cooldown
    assert mid["retrain_guard"]["held_back"] == {"cooldown": 9, "running": 0}
    assert status["retrain_guard"]["held_back"] == {"cooldown": 18, "running": 0}
    assert held(service, "cooldown") == 18
    assert service.metrics.registry.get_sample_value("mlcycle_drift_retrain_triggers_total") == 2
    results = [(r["result"].split(":")[0], r.get("times")) for r in status["retrain"]]
    assert results == [("call 1", None), ("held back", 9), ("call 2", None), ("held back", 9)]
    assert "cooldown" in status["retrain"][-1]["result"] and status["retrain_guard"]["cooldown_left_s"] > 0
    assert "held back: 1 consecutive drifted windows (&gt;= 1); not started: cooldown" in page
    assert page.count(" (9 times, last ") == 2


def test_never_two_local_runs_at_once_and_each_run_logged_with_its_exit_code(detector, drifted, tmp_path):
    script = "import sys, time; print('training out'); print('training err', file=sys.stderr); time.sleep(1.5)"
    hook = CommandHook(f'{sys.executable} -c "{script}"', tmp_path / "logs")

    async def scenario():
        service = DriftService(detector, "m", "v", WINDOW, consecutive=1, hook=hook, retrain_cooldown_s=0)
        service.start()
        await feed(service, drifted[:5])  # the run is still going: held back, though no cooldown
        during = service.status()
        hook._running.wait(timeout=30)
        await until(lambda: not service.status()["retrain_guard"]["running"])
        await feed(service, drifted[5:6])  # the run ended: the next trigger starts the next one
        hook._running.wait(timeout=30)
        await until(lambda: not service.status()["retrain_guard"]["running"])  # the waiter thread saw it end
        after = service.status()
        await service.stop()
        return service, during, after

    service, during, after = asyncio.run(scenario())
    assert during["retrain_guard"]["running"]["pid"] == hook.runs[0]["pid"]
    assert during["retrain_guard"]["held_back"] == {"cooldown": 0, "running": 4}
    assert "a retrain (drift) is in progress" in during["retrain"][-1]["result"]
    assert len(hook.runs) == 2 and after["retrain_guard"]["running"] is None
    started = [r for r in after["retrain"] if "run" in r]
    assert [r["run"]["exit_code"] for r in started] == [0, 0]
    for run in after["retrain_guard"]["runs"]:
        assert run["exit_code"] == 0 and run["finished_at"] is not None
        assert set(open(run["log"]).read().splitlines()) == {"training out", "training err"}
    assert started[0]["run"]["log"] != started[1]["run"]["log"]


def test_a_failing_local_run_keeps_its_output_and_exit_code(detector, drifted, tmp_path):
    hook = CommandHook(f"{sys.executable} -c \"import sys; sys.exit('bad data: no rows')\"", tmp_path)

    async def scenario():
        service = DriftService(detector, "m", "v", WINDOW, consecutive=1, hook=hook)
        service.start()
        await feed(service, drifted[:1])
        hook._running.wait(timeout=30)

        def reported():  # the waiter thread has recorded the failure and the run's end (exit codes)
            s = service.status()
            ended = s["retrain_guard"]["runs"][0]["exit_code"] is not None
            return ended and (s["retrain"][0].get("run") or {}).get("exit_code") is not None and len(s["retrain"]) > 1

        await until(reported)
        status = service.status()
        await service.stop()
        return status

    status = asyncio.run(scenario())
    run = status["retrain_guard"]["runs"][0]
    assert run["exit_code"] == 1 and open(run["log"]).read().strip() == "bad data: no rows"
    assert status["retrain"][0]["run"]["exit_code"] == 1
    assert (
        status["retrain"][-1]["result"].endswith("exited with status 1")
        and run["log"] in status["retrain"][-1]["result"]
    )


def test_state_is_written_per_window_and_resumed(detector, drifted, tmp_path):
    hook = Calls()

    async def first():
        service = DriftService(detector, "m", "v", WINDOW, consecutive=2, hook=hook, state_dir=tmp_path)
        service.start()
        assert service.status()["restart"]["resumed"] is False
        await feed(service, drifted[:3])  # windows 1-2: a start; window 3: streak 1
        saved = json.loads((tmp_path / STATE_FILE).read_text())
        part = json.loads(drifted[3])["instances"][:30]
        assert service.offer(HEADERS, json.dumps({"instances": part}).encode())[0] == 200
        await service.queue.join()
        assert service.buffered == 30  # an unfinished window: never persisted
        assert json.loads((tmp_path / STATE_FILE).read_text()) == saved  # no write per event
        return service, saved  # not stopped: as if killed

    service, saved = asyncio.run(first())
    assert (
        saved["streak"] == 1
        and saved["counters"]["windows"] == [[{"drift": "true"}, 3.0]]
        and len(saved["history"]) == 3
    )
    assert saved["format"] == 2 and "counts" not in saved and "rejected_by_reason" not in saved  # counted once
    assert saved["triggers"]["retrains"] == 1 and saved["triggers"]["last_started"] is not None

    async def second():
        again = DriftService(detector, "m", "v", WINDOW, consecutive=2, hook=hook, state_dir=tmp_path)
        again.start()
        resumed = again.status()
        await feed(again, drifted[3:4])  # streak 1 + 1 = 2: a trigger, inside the cooldown: held back
        status = again.status()
        await again.stop()
        return again, resumed, status

    again, resumed, status = asyncio.run(second())
    r = resumed["restart"]
    assert r["persisted"] and r["resumed"] and r["resumed_from"] == str(tmp_path / STATE_FILE) and r["restarts"] == 1
    assert r["previous_shutdown"] == "unclean" and r["unfinished_window_rows_lost"] == "unknown"
    assert resumed["streak"] == 1 and resumed["counts"]["windows"] == 3 and len(resumed["recent_windows"]) == 3
    assert again.metrics.registry.get_sample_value("mlcycle_drift_windows_total", {"drift": "true"}) == 4
    assert len(hook.at) == 1 and status["retrain"][-1]["result"].startswith("held back")
    assert status["retrain_guard"]["retrains_started"] == 1 and status["retrain_guard"]["cooldown_left_s"] > 0
    assert json.loads((tmp_path / STATE_FILE).read_text())["clean_shutdown"] is True


def test_a_state_file_of_format_1_with_its_counts_twice_is_resumed(detector, tmp_path):
    """tests/unit/data/drift-state-format1.json was written by the detector before the counts were stored once
    (3 windows of 100 drifted rows, 2 events refused, a clean stop); it resumes, and is written back in format 2."""
    old = Path(__file__).parent / "data" / "drift-state-format1.json"
    assert json.loads(old.read_text())["counts"]["windows"] == 3  # both there, as that version wrote them
    shutil.copy(old, tmp_path / STATE_FILE)
    service = DriftService(detector, "fraud-detector", "v1", WINDOW, consecutive=5, state_dir=tmp_path)
    status = service.status()
    assert status["restart"]["resumed"] is True and status["restart"]["previous_shutdown"] == "clean"
    counts = {k: v for k, v in status["counts"].items() if k not in ("queued", "buffered_rows")}
    assert counts == {"received": 3, "processed": 3, "dropped": 0, "rejected": 2, "windows": 3}
    assert status["rejected_by_reason"]["not_cloudevent"] == 1 and status["rejected_by_reason"]["not_json"] == 1
    assert status["streak"] == 3 and len(status["recent_windows"]) == 3
    assert service.metrics.registry.get_sample_value("mlcycle_drift_rows_total") == 300
    asyncio.run(service.stop())
    again = DriftService(detector, "fraud-detector", "v1", WINDOW, consecutive=5, state_dir=tmp_path)
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert saved["format"] == 2 and "counts" not in saved
    assert {k: again.status()["counts"][k] for k in counts} == counts and again.status()["restart"]["restarts"] == 2


def test_without_a_state_dir_the_status_says_nothing_is_persisted(detector):
    status = DriftService(detector, "m", "v").status()
    assert status["restart"]["persisted"] is False and status["restart"]["started_at"]


def test_an_unreadable_state_file_is_reported_and_the_detector_starts_from_zero(detector, tmp_path):
    (tmp_path / STATE_FILE).write_text('{"format": 1, "model": "m"')  # cut short
    status = DriftService(detector, "m", "v", state_dir=tmp_path).status()
    assert status["restart"]["persisted"] is True and status["restart"]["resumed"] is False
    assert "unreadable" in status["restart"]["error"] and status["counts"]["windows"] == 0
