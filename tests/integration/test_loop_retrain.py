"""Retrains of the real ``pipelines.loop.Loop`` on captured, labelled traffic in a real registry on a local
directory: the training pipeline runs on kfp.local (``run_local``), exactly as the loop runs it.

- bad data (labels that match no captured request) → the ingest step fails: outcome ``failed`` with its reason;
- a gate failure → ``gate_failed`` with the failed checks;
- a retrain identical to a stopped candidate → ``unchanged``, naming that version; nothing registered;
each leaves its audit record, production untouched and no ``candidate`` alias pointing at a missing version.
The loop's data fingerprint (label parts of the window) and ``new_rows`` are read through its real ``observe``.

The capture service and drift detector are small HTTP servers here answering what the loop asks of them
(``/flush``, ``/status``); the captured data itself is written with the real ``CaptureStore``."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from mlcycle import capture
from mlcycle.data import DEMO_LABEL, make_demo_dataset
from mlcycle.errors import VersionNotFound
from mlcycle.process import free_port
from mlcycle.registry import open_registry
from mlcycle.shadow import ShadowPolicy
from mlcycle.triggers import TriggerPolicy
from pipelines.loop import Loop, data_until, new_rows

# kfp.local runs
pytestmark = pytest.mark.integration
MODEL = "fraud"
# the training the loop asks for: small and quick; no contract is registered yet, so the label is ``label``
TRAIN = {"label": "label", "families": ["logreg"], "n_trials": 0, "cv_folds": 2, "drift_backend": "scipy"}


class Service:
    """Answers GET /status with ``status`` and POST /flush with {} (the loop's view of capture and drift)."""

    def __init__(self, status: dict):
        self.status, self.flushes = status, 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, body: dict):
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(owner.status)

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length") or 0))
                owner.flushes += 1
                self._send({})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def services():
    cap = Service({"counts": {"labelled_rows": 0}, "online": {}})
    drift = Service({"streak": 0})
    yield cap, drift
    cap.close()
    drift.close()


def capture_traffic(uri: str, n: int = 1500, seed: int = 11, match: bool = True, version: str = "v0") -> None:
    """``n`` scored requests and their labels, as the capture service stores them (``match=False``: labels for
    request ids that were never captured)."""
    frame = make_demo_dataset(max(n, 1000), seed=seed).head(n).reset_index(drop=True)
    now = capture.utcnow()
    ids = [f"{seed}-{i}" for i in range(n)]
    traffic = frame.drop(columns=[DEMO_LABEL]).assign(
        request_id=ids,
        event_id=ids,
        row=0,
        model_version=version,
        endpoint="default",
        received_at=now,
        prediction=0,
        score=0.1,
    )
    labels = pd.DataFrame(
        {
            "request_id": ids if match else [f"unknown-{i}" for i in ids],
            "row": 0,
            "label": frame[DEMO_LABEL].astype(int),
            "model_version": version,
            "prediction": 0,
            "labelled_at": now,
        }
    )
    store = capture.CaptureStore(uri, MODEL)
    store.write(capture.TRAFFIC, traffic, "received_at")
    store.write(capture.LABELS, labels, "labelled_at")


def make_loop(registry, services, state_dir, **train):
    cap, drift = services
    return Loop(
        registry,
        registry.uri,
        MODEL,
        drift.url,
        cap.url,
        state_dir,
        TriggerPolicy(drift_windows=2, cooldown_s=0, min_rows=1_000_000),  # drift waits: new_rows is in its reason
        ShadowPolicy(),
        train_params={**TRAIN, **train},
        log=lambda line: None,
    )


def events(registry, name: str) -> list[dict]:
    return [r for r in registry.audit_log(MODEL) if r["event"] == name]


def assert_no_dangling_candidate(registry) -> None:
    aliases, _ = registry.aliases(MODEL)
    if "candidate" in aliases:  # an alias, if any, names a complete version
        assert registry.metadata(MODEL, "candidate").version == aliases["candidate"]


def test_new_rows_is_never_negative():
    assert new_rows(450, 300) == 150 and new_rows(300, 300) == 0
    assert new_rows(120, 300) == 120  # the capture's count fell (labels aged out, restart): counted afresh
    assert new_rows(0, 0) == 0


def test_bad_data_fails_recorded_and_the_fingerprint_follows_the_labels(services, tmp_path):
    registry = open_registry(tmp_path / "registry")
    capture_traffic(registry.uri, n=1000, match=False)  # labels that join no captured request
    # a production version (any files) for the loop to read; the retrain never reaches the gate
    files = tmp_path / "files"
    files.mkdir()
    (files / "model.txt").write_text("weights")
    v1 = registry.register(MODEL, files, {"semver": "1.0.0"})
    registry.promote(MODEL, v1, why="test")
    cap, drift = services
    state = tmp_path / "loop"
    loop = make_loop(registry, services, state)

    cap.status = {"counts": {"labelled_rows": 300}, "online": {}}
    fingerprint = loop.data_fingerprint()
    assert len(fingerprint) == 64 and fingerprint == loop.data_fingerprint()  # stable while nothing is added
    d = loop.observe(manual="operator asked")
    assert d.start and d.evidence["fingerprint"] == fingerprint
    run = loop.retrains[-1]
    assert run.outcome == "failed" and run.version is None
    assert "step 'ingest' failed" in run.detail and "no labelled traffic" in run.detail, run.detail
    assert cap.flushes == 1

    (record,) = events(registry, "retrain_failed")
    assert "no labelled traffic" in record["why"] and record["evidence"]["fingerprint"] == fingerprint
    assert events(registry, "retrain")[0]["evidence"]["fingerprint"] == fingerprint
    assert registry.resolve(MODEL, "production") == v1 and registry.list_versions(MODEL) == [v1]
    assert_no_dangling_candidate(registry)

    # new_rows counts from the retrain's labelled rows (persisted), never below zero
    drift.status = {"streak": 2}
    cap.status = {"counts": {"labelled_rows": 450}, "online": {}}
    assert "waiting: 150 labelled rows" in loop.observe().reason
    again = make_loop(registry, services, state)  # a restarted loop keeps the count
    assert "waiting: 150 labelled rows" in again.observe().reason
    cap.status = {"counts": {"labelled_rows": 120}, "online": {}}
    assert "waiting: 120 labelled rows" in again.observe().reason

    # traffic without labels leaves the fingerprint; a new label part moves it
    store = capture.CaptureStore(registry.uri, MODEL)
    more = store.read(capture.TRAFFIC).head(5).assign(request_id=lambda f: "x" + f["request_id"])
    store.write(capture.TRAFFIC, more, "received_at")
    assert loop.data_fingerprint() == fingerprint
    labels = store.read(capture.LABELS).head(5)
    store.write(capture.LABELS, labels, "labelled_at")
    assert loop.data_fingerprint() != fingerprint


@pytest.fixture
def production(tmp_path):
    """Captured, labelled traffic and a production version trained on it by the pipeline's twin (run_direct)."""
    from pipelines.direct import run_direct

    registry = open_registry(tmp_path / "registry")
    capture_traffic(registry.uri)
    source = f"{capture.SCHEME}{registry.uri}#{MODEL}?days=1"
    first = run_direct(registry, tmp_path / "first", source=source, model_name=MODEL, auto_promote=True, **TRAIN)
    assert first.passed and first.version
    return registry, first.version, source


def test_gate_failure_recorded_production_untouched(production, services, tmp_path):
    registry, v1, _ = production
    loop = make_loop(registry, services, tmp_path / "loop", thresholds={"roc_auc": 0.9999})
    d = loop.observe(manual="retrain now")
    run = loop.retrains[-1]
    assert d.start and run.outcome == "gate_failed" and run.version is None, run.detail
    assert "FAIL roc_auc" in run.detail and "minimum 0.9999" in run.detail

    (record,) = events(registry, "retrain_gate_failed")
    assert "FAIL roc_auc" in record["why"] and record["version"] is None
    assert registry.resolve(MODEL, "production") == v1 and registry.list_versions(MODEL) == [v1]
    assert "candidate" not in registry.aliases(MODEL)[0]  # run_direct promoted v1; nothing made a candidate since
    assert_no_dangling_candidate(registry)
    assert json.loads((tmp_path / "loop" / "loop.json").read_text())["last_retrain"]["outcome"] == "gate_failed"


def test_a_retrain_identical_to_a_stopped_candidate_is_unchanged(production, services, tmp_path):
    """v2 (another decision threshold, same data) was a candidate and was stopped; the loop's retrain with v2's
    settings on the same data is v2 again: ``unchanged``, nothing registered, no alias moved. A retrain with other
    settings registers a candidate whose lineage carries the trigger and its evidence."""
    from pipelines.direct import run_direct

    registry, v1, source = production
    recall = {"threshold_policy": "recall:0.5", "min_improvement": -1.0}
    v2 = run_direct(registry, tmp_path / "second", source=source, model_name=MODEL, **{**TRAIN, **recall}).version
    assert v2 and v2 != v1 and registry.resolve(MODEL, "candidate") == v2
    registry.clear_alias(MODEL, "candidate", why="stopped at shadow")

    loop = make_loop(registry, services, tmp_path / "loop", **recall)
    loop.observe(manual="retrain now")
    run = loop.retrains[-1]
    assert run.outcome == "unchanged" and run.version == v2, run.detail
    assert f"identical to {v2} (no alias)" in run.detail
    (record,) = events(registry, "retrain_unchanged")
    assert record["version"] == v2 and "no alias" in record["why"]
    assert registry.list_versions(MODEL) == [v1, v2]
    assert registry.aliases(MODEL)[0] == {"production": v1}
    assert_no_dangling_candidate(registry)
    with pytest.raises(VersionNotFound):
        registry.resolve(MODEL, "candidate")

    other = make_loop(registry, services, tmp_path / "loop2", threshold_policy="precision:0.3", min_improvement=-1.0)
    d = other.observe(manual="other settings")
    run = other.retrains[-1]
    assert run.outcome == "candidate" and run.version not in (v1, v2), run.detail
    lineage = registry.metadata(MODEL, run.version).lineage
    assert lineage.trigger == "manual" and lineage.trigger_evidence["fingerprint"] == d.evidence["fingerprint"]
    started = json.loads(registry.store.get_bytes(lineage.trigger_evidence["audit_record"])[0])
    assert started["event"] == "retrain" and started["why"] == "manual: requested: other settings"
    assert registry.resolve(MODEL, "candidate") == run.version


def test_a_retrain_is_trained_on_a_snapshot_and_shadowed_on_later_requests_only(production, services, tmp_path):
    """The loop's retrain reads ``traffic://...&until=T`` (T in its lineage as ``data_until``); its shadow replays
    only requests production answered after T, never a row it was trained on."""
    registry, v1, _ = production
    capture_traffic(registry.uri, n=60, seed=12, version=v1)  # production's traffic before the retrain
    loop = make_loop(registry, services, tmp_path / "loop", threshold_policy="precision:0.3", min_improvement=-1.0)
    loop.observe(manual="snapshot")
    run = loop.retrains[-1]
    assert run.outcome == "candidate", run.detail
    until = data_until(registry, MODEL, run.version)
    assert until is not None and until >= capture.read_traffic(registry.uri, MODEL)["received_at"].max()
    assert data_until(registry, MODEL, v1) is None  # trained on a source without a snapshot time

    capture_traffic(registry.uri, n=40, seed=13, version=v1)  # production's traffic after it
    replayed, truth = loop.shadow_rows(run.version)
    assert sorted(replayed["request_id"]) == sorted(f"13-{i}" for i in range(40)), replayed["request_id"].tolist()
    assert len(truth) == 40 and None not in truth
    everything, _ = loop.shadow_rows(v1)  # a version without a snapshot: the whole window, both batches
    assert len(everything) == 100


def test_mlcycle_loop_run_retrains_then_shadows_the_candidate_on_later_requests(production, services, tmp_path):
    """``mlcycle loop run --once --now``, as a user runs it: a manual retrain on the captured traffic, then the
    candidate waits for production requests received after its data, is served by the real predictor, shadowed,
    and decided; the outcome is in the audit log, the loop's state and the aliases."""
    import os
    import subprocess
    import sys

    from mlcycle.process import wait_until

    registry, v1, _ = production
    capture_traffic(registry.uri, n=100, seed=12, version=v1)  # before the snapshot: the retrain trains on these
    cap, drift = services
    state = tmp_path / "loop"
    argv = [sys.executable, "-m", "cli.main", "loop", "run", "--registry", registry.uri, "--model", MODEL]
    argv += ["--drift-url", drift.url, "--capture-url", cap.url, "--state-dir", str(state), "--label", "label"]
    argv += ["--families", "logreg", "--min-improvement", "-1", "--cooldown", "0"]
    argv += ["--shadow-requests", "250", "--shadow-wait", "300"]
    loop = subprocess.Popen(
        [*argv, "--once", "--now", "test"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:

        def retrained() -> bool:
            try:
                last = json.loads((state / "loop.json").read_text())["last_retrain"] or {}
            except (OSError, ValueError):
                return False
            assert last.get("outcome") in (None, "running", "candidate"), last
            return last.get("outcome") == "candidate"

        assert wait_until(retrained, timeout=600, interval=1), "the retrain did not finish"
        capture_traffic(registry.uri, n=250, seed=13, version=v1)  # production's traffic after the snapshot
        out, _ = loop.communicate(timeout=300)
    finally:
        loop.kill()
    assert loop.returncode == 0, out
    last = json.loads((state / "loop.json").read_text())["last_retrain"]
    version = last["version"]
    assert "loop: manual: requested: test" in out and f"loop: retrain (manual): candidate {version}" in out, out
    (shadow,) = [r for r in registry.audit_log(MODEL) if r["event"] == "shadow"]
    assert shadow["version"] == version and shadow["evidence"]["requests"] == 250, shadow  # not the 100 it trained on
    passed = shadow["why"] == "passed"
    assert last["shadow"] == ("passed" if passed else "failed"), last
    candidate = registry.aliases(MODEL)[0].get("candidate")
    assert candidate == (version if passed else None), (candidate, out)
    assert registry.resolve(MODEL, "production") == v1  # the loop never promotes
    assert ("passed the shadow" if passed else "stopped at the shadow") in out, out


def test_mlcycle_loop_run_says_when_a_server_cannot_be_reached(production, tmp_path):
    import subprocess
    import sys

    registry, _, _ = production
    dead = f"http://127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "cli.main", "loop", "run", "--registry", registry.uri, "--model", MODEL]
    argv += ["--drift-url", dead, "--capture-url", dead, "--state-dir", str(tmp_path / "loop"), "--label", "label"]
    run = subprocess.run([*argv, "--once"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "loop: cannot observe (URLError" in run.stdout, run.stdout + run.stderr
    bad = subprocess.run([*argv, "--interval", "0"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "--interval and --days must be positive" in bad.stdout + bad.stderr
