"""Full training pipeline runs on kfp.local (SubprocessRunner): the real component code, no cluster."""

import pytest

from cli.main import main as cli
from mlcycle.data import make_demo_dataset
from mlcycle.registry import open_registry
from pipelines.local import run_local

pytestmark = pytest.mark.integration
SMALL = {"demo_rows": 3000, "n_trials": 1, "cv_folds": 2, "families": ["baseline", "logreg", "xgboost"]}


def test_demo_twice_exercises_champion_challenger(tmp_path, capsys):
    reg_dir, runs = tmp_path / "registry", tmp_path / "runs"
    args = ["demo", "--rows", "3000", "--trials", "1", "--registry", str(reg_dir), "--runs", str(runs)]
    assert cli(args) == 0
    first = capsys.readouterr().out
    assert "gate: PASSED (no production model yet" in first and "(now production)" in first
    registry = open_registry(reg_dir)
    v1 = registry.resolve("fraud-detector", "production")

    assert cli(args) == 0
    second = capsys.readouterr().out
    assert "demo data: batch 2 of the bundled fraud data (3000 rows, seed 43)" in second
    assert f"champion/challenger vs production {v1}" in second
    assert "challenger" in second and "vs champion" in second
    assert len(second.splitlines()) < 30, second  # fits on one screen
    v2 = registry.resolve("fraud-detector", "production")
    assert v2 != v1 and registry.aliases("fraud-detector")[0]["previous"] == v1
    meta = registry.describe("fraud-detector", v2)
    assert meta["lineage"]["parent"] == v1 and meta["gate"]["champion_version"] == v1
    assert meta["lineage"]["pipeline_run_id"]  # the KFP job id placeholder was resolved
    # Two different models compared on the same test set: the second run trained on a new batch.
    assert meta["gate"]["challenger"]["roc_auc"] != meta["gate"]["champion"]["roc_auc"]
    assert (
        meta["lineage"]["dataset_fingerprint"]
        != registry.describe("fraud-detector", v1)["lineage"]["dataset_fingerprint"]
    )
    page = next(runs.glob("mlcycle-training-*/gate-report.html"), None)
    assert page is not None and f"champion {v1}" in "".join(
        p.read_text() for p in runs.glob("mlcycle-training-*/gate-report.html")
    )
    assert (runs.glob("mlcycle-training-*/evaluate/report").__next__()).read_text().startswith("<!doctype html>")


def test_failed_gate_skips_registration(tmp_path):
    reg_dir = tmp_path / "registry"
    run = run_local(str(reg_dir), tmp_path / "runs", thresholds={"roc_auc": 0.999}, auto_promote=True, **SMALL)
    assert run.decision["passed"] is False and "FAIL roc_auc" in run.decision["reasons"][0]
    assert run.version is None and not (run.run_dir / "register").exists()  # the dsl.If branch did not run
    assert open_registry(reg_dir).list_models() == []


def test_contract_breach_fails_the_run_naming_column_and_rule(tmp_path, capfd):
    reg_dir = tmp_path / "registry"
    run_local(str(reg_dir), tmp_path / "runs", auto_promote=True, **SMALL)
    skewed = make_demo_dataset(3000, seed=42).assign(channel="satellite")
    skewed.to_csv(tmp_path / "skewed.csv", index=False)
    with pytest.raises(RuntimeError, match=r"Inner task failed: \S*'validate-data'"):  # kfp.local's words (colored)
        run_local(str(reg_dir), tmp_path / "runs", source=str(tmp_path / "skewed.csv"), auto_promote=True, **SMALL)
    log = capfd.readouterr()
    assert "column 'channel': rule 'allowed_categories' observed 100.00% unseen" in log.out + log.err
    assert len(open_registry(reg_dir).list_versions("fraud-detector")) == 1


def test_pipeline_registers_to_minio_and_cli_manages_it(tmp_path, minio_server, monkeypatch, capsys):
    import secrets

    from mlcycle.registry.s3 import S3Store

    bucket = f"pipe-{secrets.token_hex(4)}"
    S3Store(minio_server.client(), bucket).ensure_bucket()
    for key, value in minio_server.env().items():
        monkeypatch.setenv(key, value)  # as the Kubernetes Secret does in a cluster; kfp.local steps inherit it
    uri = f"s3://{bucket}"
    first = run_local(uri, tmp_path / "runs", auto_promote=True, **SMALL)
    second = run_local(
        uri, tmp_path / "runs", auto_promote=False, min_improvement=-1.0, seed=43, **SMALL
    )  # a new batch of data
    assert first.version and second.version and second.decision["champion_version"] == first.version
    registry = open_registry(uri)
    assert registry.aliases("fraud-detector")[0] == {"production": first.version, "candidate": second.version}

    assert cli(["models", "list", "--registry", uri]) == 0
    listing = capsys.readouterr().out
    assert first.version in listing and "production" in listing and "candidate" in listing
    assert cli(["models", "promote", "fraud-detector", second.version, "--registry", uri, "--why", "manual test"]) == 0
    assert cli(["models", "diff", "fraud-detector", "production", "previous", "--registry", uri]) == 0
    diff = capsys.readouterr().out
    assert "metrics.roc_auc" in diff and second.version in diff and first.version in diff
    assert cli(["models", "rollback", "fraud-detector", "--registry", uri]) == 2  # a reason is required
    assert cli(["models", "rollback", "fraud-detector", "--registry", uri, "--why", "manual rollback"]) == 0
    assert registry.resolve("fraud-detector", "production") == first.version
    assert cli(["models", "show", "fraud-detector", "nope", "--registry", uri]) == 1
    assert "no version 'nope'" in capsys.readouterr().err
    audit = [(r["event"], r["why"]) for r in registry.audit_log("fraud-detector")]
    assert ("promote", "manual test") in audit and audit[-1] == ("rollback", "manual rollback")
