"""The predictor serving registry#model@production follows the alias: the new version after a promotion, no failed
request during the switch; a tampered version is refused and the old one keeps serving."""

import json
import shutil
import threading
import time
import urllib.request

import pytest

from inference.devserve import start_predictor
from inference.traffic import post
from mlcycle.process import free_port, wait_until
from mlcycle.registry import open_registry

pytestmark = pytest.mark.integration


def _predict(url: str, row: dict) -> dict:
    return post(f"{url}/v1/models/fraud:predict", {"instances": [row]}, timeout=10)


def _wait(condition, timeout=60.0):
    return wait_until(condition, timeout, 0.2)


def test_the_predictor_follows_production_without_a_failed_request(
    served, model_dirs, splits, contract, tmp_path, register_passed
):
    shutil.copytree(served["root"] / "registry", tmp_path / "registry")
    registry = open_registry(tmp_path / "registry")
    first = registry.resolve("fraud", "production")
    _, _, test = splits
    row = json.loads(test[contract.feature_names].head(1).to_json(orient="records"))[0]
    proc = start_predictor(
        f"{tmp_path / 'registry'}#fraud@production",
        "fraud",
        free_port(),
        free_port(),
        tmp_path / "p.log",
        "--follow_s",
        "0.3",
    )
    answers, errors, stop = [], [], threading.Event()

    def load():
        while not stop.is_set():
            try:
                answers.append(_predict(proc.url, row)["model_version"])
            except Exception as e:  # noqa: BLE001 - every failure is the test's finding
                errors.append(repr(e))

    worker = threading.Thread(target=load)
    worker.start()
    try:
        assert _wait(lambda: len(answers) > 5)
        second = register_passed(model_dirs["logreg"], registry, "e" * 64, "test-follow", auto_promote=True).version
        assert _wait(lambda: answers and answers[-1] == second), answers[-3:]
        n = len(answers)
        assert _wait(lambda: len(answers) > n + 5)
        # a promotion to a version whose files were tampered with: refused, the old version keeps serving
        third = register_passed(model_dirs["hgb"], registry, "d" * 64, "test-follow").version
        estimator = next(
            p for p in (tmp_path / "registry" / "fraud" / third).iterdir() if p.name.startswith("estimator")
        )
        data = estimator.read_bytes()
        estimator.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # one byte changed
        registry.promote("fraud", third, why="test: a tampered version")

        def refused():
            with urllib.request.urlopen(f"{proc.url}/metrics", timeout=10) as r:
                return 'mlcycle_follow_failures_total{model="fraud"} 1.0' in r.read().decode()

        assert _wait(refused)
        time.sleep(1)
    finally:
        stop.set()
        worker.join()
        proc.stop()
    assert errors == []
    assert answers[0] == first and second in answers and third not in answers and answers[-1] == second
    log = (tmp_path / "p.log").read_text()
    assert f"now serving {second}" in log and f"{third} refused, still serving {second}" in log
