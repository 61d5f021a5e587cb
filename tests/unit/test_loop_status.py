"""`mlcycle loop status`: the local loop's state, read from what the Loop controller and its trigger controller
persist (``loop.json``, ``triggers.json``), with the model's aliases from a real registry on a local directory.

The loop here is the real ``pipelines.loop.Loop``; its retrain starts from its own trigger controller (a manual
trigger) and reaches a real HTTP capture service whose ``/flush`` the test controls: it answers 500, so the
retrain fails fast with the server's reason, or it first asks for the status while the retrain is in flight."""

import contextlib
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cli.main import main as cli
from mlcycle.registry import open_registry
from mlcycle.shadow import ShadowPolicy
from mlcycle.triggers import Observation, TriggerPolicy
from pipelines.loop import Loop

pytestmark = pytest.mark.unit
MODEL = "fraud"


@pytest.fixture
def registry(tmp_path):
    """A registry with production 1.0.0 and a candidate 1.0.1."""
    files = tmp_path / "version"
    files.mkdir()
    (files / "model.txt").write_text("weights")
    reg = open_registry(str(tmp_path / "registry"))
    v1 = reg.register(MODEL, files, {"semver": "1.0.0", "semver_reason": "first version"})
    v2 = reg.register(MODEL, files, {"semver": "1.0.1", "semver_reason": "retrained on new data"})
    reg.promote(MODEL, v1, why="test")
    reg.set_alias(MODEL, "candidate", v2, why="test")
    return reg, v1, v2


class Capture:
    """The capture service's ``/flush``: ``during`` runs while a retrain waits on it, then it answers 500."""

    def __init__(self):
        self.during = None
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length") or 0))
                if owner.during:
                    owner.during()
                data = b'{"error": "capture store unavailable"}'
                try:
                    self.send_response(500)
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the loop process that asked was killed meanwhile
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # port 0: the kernel picks a free one
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def capture_service():
    server = Capture()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def _loop(registry, capture_service, state_dir):
    reg = registry[0]
    return Loop(
        reg,
        reg.uri,
        MODEL,
        "http://127.0.0.1:9",  # the drift detector: not asked, the trigger is manual
        capture_service.url,
        state_dir,
        TriggerPolicy(drift_windows=2, cooldown_s=600),
        ShadowPolicy(),
        log=lambda line: None,
    )


def _status(state_dir, registry_uri, *extra):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli(["loop", "status", "--state-dir", str(state_dir), "--registry", registry_uri, *extra])
    return code, out.getvalue() + err.getvalue()


def test_no_loop_state_is_said_plainly(registry, tmp_path):
    for extra in ([], ["--json"]):
        code, out = _status(tmp_path / "nowhere", registry[0].uri, "--model", MODEL, *extra)
        assert code == 1 and f"no loop has run against {registry[0].uri}#{MODEL}" in out, out
        assert "Traceback" not in out


def test_status_after_a_failed_retrain(registry, capture_service, tmp_path):
    reg, v1, v2 = registry
    state = tmp_path / "loop"
    loop = _loop(registry, capture_service, state)
    before = time.time()
    d = loop.triggers.observe(Observation(now=before, manual="operator asked", fingerprint="labelled-rows-2500"))
    assert d.start and loop.retrains[-1].outcome == "failed"

    code, text = _status(state, reg.uri)
    assert code == 0, text
    assert f"loop: {reg.uri}#{MODEL}" in text and "running)" in text
    assert "last trigger: manual at " in text and "requested: operator asked" in text
    assert '"fingerprint": "labelled-rows-2500"' in text
    assert "s left (of 600 s)" in text
    assert "retrain in progress: no" in text
    assert "last retrain: failed" in text and "HTTP 500" in text and "capture store unavailable" in text
    assert f"production: {v1} (semver 1.0.0)" in text and f"candidate: {v2} (semver 1.0.1)" in text
    assert f"log: {state / 'retrain-1.log'}" in text

    code, raw = _status(state, reg.uri, "--json")
    report = json.loads(raw)
    assert report["last_trigger"]["kind"] == "manual" and report["last_trigger"]["at"] == pytest.approx(before)
    assert report["last_trigger"]["evidence"] == {"fingerprint": "labelled-rows-2500"}
    assert 590 < report["cooldown_left_s"] <= 600 and report["cooldown_s"] == 600
    assert report["retrain_in_progress"] is None and report["retrains"] == 1
    assert report["last_retrain"]["outcome"] == "failed" and report["last_retrain"]["version"] is None
    assert "HTTP 500" in report["last_retrain"]["detail"]
    assert report["aliases"]["production"] == {"version": v1, "semver": "1.0.0"}
    assert report["aliases"]["candidate"] == {"version": v2, "semver": "1.0.1"}
    assert report["log"] == str(state / "retrain-1.log") and (state / "retrain-1.log").exists()

    # the registry however written (the loop recorded file://...; a path names the same one)
    assert _status(state, str(tmp_path / "registry"), "--model", MODEL)[0] == 0
    code, out = _status(state, reg.uri, "--model", "other")
    assert code == 1 and f"no loop has run against {reg.uri}#other" in out and f"ran against {reg.uri}#{MODEL}" in out


def test_status_while_a_retrain_runs_and_the_last_decision(registry, capture_service, tmp_path):
    reg = registry[0]
    state = tmp_path / "loop"
    loop = _loop(registry, capture_service, state)
    seen = {}
    capture_service.during = lambda: seen.update(during=_status(state, reg.uri, "--json"))
    loop.triggers.observe(Observation(now=time.time(), manual="now"))
    code, raw = seen["during"]
    during = json.loads(raw)
    assert code == 0 and during["retrain_in_progress"] == "manual" and during["loop_running"] is True
    assert during["last_retrain"]["outcome"] == "running" and during["last_retrain"]["trigger"] == "manual"

    # a drift trigger held back by the cooldown is what the loop decided last; status says so
    capture_service.during = None
    held = loop.triggers.observe(Observation(now=time.time(), drifted_windows=2, fingerprint="labelled-rows-9"))
    assert not held.start and "cooldown" in held.reason
    code, text = _status(state, reg.uri)
    assert "last decision: drift at " in text and "not started: cooldown" in text
    assert "retrain in progress: no" in text and "last trigger: manual" in text


def test_a_loop_that_died_during_a_retrain_is_said_so(registry, capture_service, tmp_path):
    """A real loop process stops mid-retrain (killed while its capture flush waits): status says the run was
    lost instead of "in progress", and the next loop on that state says so and may start again."""
    import os
    import signal
    import subprocess
    import sys

    reg = registry[0]
    state = tmp_path / "loop"
    arrived, release = threading.Event(), threading.Event()
    capture_service.during = lambda: (arrived.set(), release.wait(30))
    script = (
        "import sys, time\n"
        "from mlcycle.registry import open_registry\n"
        "from mlcycle.shadow import ShadowPolicy\n"
        "from mlcycle.triggers import Observation, TriggerPolicy\n"
        "from pipelines.loop import Loop\n"
        "reg = open_registry(sys.argv[1])\n"
        "loop = Loop(reg, reg.uri, sys.argv[2], 'http://127.0.0.1:9', sys.argv[3], sys.argv[4],\n"
        "            TriggerPolicy(cooldown_s=600), ShadowPolicy(), log=lambda line: None)\n"
        "loop.triggers.observe(Observation(now=time.time(), manual='nightly'))\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen(
        [sys.executable, "-c", script, reg.uri, MODEL, capture_service.url, str(state)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
    )
    try:
        assert arrived.wait(120), "the loop process never reached the capture flush"
        code, raw = _status(state, reg.uri, "--json")
        assert code == 0 and json.loads(raw)["retrain_in_progress"] == "manual"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        release.set()
        if proc.poll() is None:
            proc.kill()
    code, raw = _status(state, reg.uri, "--json")
    report = json.loads(raw)
    assert report["loop_running"] is False and report["retrain_in_progress"] is None
    assert report["last_retrain"]["outcome"] == "lost" and "is gone" in report["last_retrain"]["detail"]
    lines: list[str] = []
    again = Loop(
        reg,
        reg.uri,
        MODEL,
        "http://127.0.0.1:9",
        capture_service.url,
        state,
        TriggerPolicy(cooldown_s=600),
        ShadowPolicy(),
        log=lines.append,
    )
    assert again.triggers.restarted and "outcome is unknown" in lines[0]
    code, text = _status(state, reg.uri)
    assert "last retrain: lost" in text and "retrain in progress: no" in text and "loop pid" in text
