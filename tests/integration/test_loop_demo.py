"""`make loop-demo` end to end, as a user runs it (the issue's "done" criterion): real predictor, capture service,
drift detector and Prometheus; a retrain on captured, labelled traffic promoted through shadow and canary, and a
stale candidate stopped at the shadow with its alias cleared. A few minutes on a 2-core machine."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlcycle.registry import open_registry

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_the_loop_demo_promotes_a_retrain_and_stops_a_stale_candidate(tmp_path):
    work = tmp_path / "loop-demo"
    run = subprocess.run(
        [sys.executable, "-m", "pipelines.loop_demo", "--workdir", str(work)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = run.stdout
    assert run.returncode == 0, out[-3000:] + run.stderr[-3000:]
    for step in ("1. production model", "2. traffic", "3. retrain (", "4. shadow", "5. a worse candidate"):
        assert out.count(step) == 1, f"{step!r} printed {out.count(step)} times:\n{out}"
    assert "canary outcome: promote" in out and "SHADOW FAILED" in out, out
    stale = out[out.index("5. a worse candidate") :]
    assert "FAIL online balanced accuracy" in stale, stale  # stopped by the labels, not by latency or chance

    registry = open_registry(str(work / "registry"))
    model = "fraud-detector"
    production = registry.resolve(model, "production")
    meta = registry.metadata(model, production)
    assert meta.lineage.trigger in ("drift", "accuracy", "new_data"), meta.lineage
    assert meta.semver.split(".")[0] == "1" and meta.semver != "1.0.0", meta.semver
    assert "candidate" not in registry.aliases(model)[0]  # the stale one was cleared

    shown = subprocess.run(
        [sys.executable, "-m", "cli", "models", "show", model, "production", "--registry", str(work / "registry")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert f"semver {meta.semver} (" in shown.stdout and f"trigger {meta.lineage.trigger}" in shown.stdout
    audit = [e["event"] for e in registry.audit_log(model)]
    assert "retrain" in audit and "rollback" in audit, audit
    status = json.loads(
        subprocess.run(
            [sys.executable, "-m", "cli", "loop", "status", "--state-dir", str(work / "loop"), "--json"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    )
    assert status["last_retrain"]["version"], status
