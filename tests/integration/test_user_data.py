"""`mlcycle run` on public tabular data nobody prepared for it (scikit-learn's bundled datasets), through
the real kfp.local pipeline: binary, multiclass, regression, categoricals with missing values."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import requests

from mlcycle.process import free_port
from mlcycle.registry import open_registry

pytestmark = pytest.mark.integration
FAST = ["--trials", "1", "--cv-folds", "2"]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    from sklearn import datasets as sk

    root = tmp_path_factory.mktemp("data")
    sk.load_breast_cancer(as_frame=True).frame.to_csv(root / "breast_cancer.csv", index=False)
    sk.load_diabetes(as_frame=True, scaled=False).frame.to_csv(root / "diabetes.csv", index=False)
    iris = sk.load_iris(as_frame=True)
    frame = iris.frame.assign(species=np.asarray(iris.target_names)[iris.frame.pop("target")])
    frame.to_parquet(root / "iris.parquet", index=False)
    wine = sk.load_wine(as_frame=True).frame
    rng = np.random.default_rng(0)
    wine["alcohol_band"] = pd.cut(wine.pop("alcohol"), 3, labels=["low", "mid", "high"]).astype(object)
    wine.loc[rng.random(len(wine)) < 0.1, "alcohol_band"] = None
    wine.loc[rng.random(len(wine)) < 0.1, "magnesium"] = np.nan
    wine["cultivar"] = np.where(wine.pop("target") == 0, "barolo", "other")
    wine.to_csv(root / "wine.csv", index=False)
    return root


def mlcycle(tmp, *args):
    """The CLI as a user runs it: its own process, its own terminal output."""
    cmd = [sys.executable, "-m", "cli", *args, "--registry", str(tmp / "reg"), "--runs", str(tmp / "runs")]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def test_binary_with_no_options_then_an_identical_rerun(datasets, tmp_path):
    first = mlcycle(tmp_path, "run", "--source", str(datasets / "breast_cancer.csv"), "--label", "target")
    assert first.returncode == 0, first.stderr[-3000:]
    out = first.stdout
    assert "task: classification (inferred from label 'target'" in out and "(now production)" in out
    assert len(out.splitlines()) < 40, out  # one line per step and the summary, not kfp's executor dumps
    assert "RuntimeWarning" not in first.stdout + first.stderr and "executorInput" not in out
    report = next(line.split()[1] for line in out.splitlines() if line.startswith("reports: "))
    assert report.endswith("report.html") and "Decision threshold" in open(report).read()
    registry = open_registry(tmp_path / "reg")
    [version] = registry.list_versions("breast-cancer")
    meta = registry.describe("breast-cancer", version)
    choice = meta["training"]["threshold"]
    assert (
        choice["policy"] == "f1" and meta["threshold"] == choice["threshold"] and choice["rows"] > 400
    )  # out-of-fold: train + validation

    again = mlcycle(tmp_path, "run", "--source", str(datasets / "breast_cancer.csv"), "--label", "target")
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"unchanged: identical to production {version}" in again.stdout
    assert registry.list_versions("breast-cancer") == [version]


def test_multiclass_and_categoricals_with_missing_values(datasets, tmp_path):
    iris = mlcycle(tmp_path, "run", "--source", str(datasets / "iris.parquet"), "--label", "species", *FAST)
    assert iris.returncode == 0, iris.stderr[-3000:]
    wine = mlcycle(
        tmp_path,
        "run",
        "--source",
        str(datasets / "wine.csv"),
        "--label",
        "cultivar",
        "--threshold-policy",
        "cost:5",
        *FAST,
    )
    assert wine.returncode == 0, wine.stderr[-3000:]
    registry = open_registry(tmp_path / "reg")
    iris_meta = registry.describe("iris", "production")
    assert (
        iris_meta["contract"]["classes"] == ["setosa", "versicolor", "virginica"]
        and iris_meta["metrics"]["accuracy"] > 0.8
    )
    wine_meta = registry.describe("wine", "production")
    assert wine_meta["training"]["threshold"]["policy"] == "cost:5"
    run_dir = next(line.split()[-1] for line in wine.stdout.splitlines() if line.startswith("full log: ")).rsplit(
        "/", 1
    )[0]
    page = open(f"{run_dir}/data-report.html").read()
    assert "alcohol_band" in page and "Missing values per column" in page and "Correlation" in page


def test_a_failed_step_prints_its_own_error_and_the_log(datasets, tmp_path):
    first = mlcycle(
        tmp_path, "run", "--source", str(datasets / "wine.csv"), "--label", "cultivar", "--families", "logreg", *FAST
    )
    assert first.returncode == 0, first.stderr[-3000:]
    skewed = pd.read_csv(datasets / "wine.csv").assign(alcohol_band="extreme")
    skewed.to_csv(tmp_path / "wine.csv", index=False)
    failed = mlcycle(
        tmp_path, "run", "--source", str(tmp_path / "wine.csv"), "--label", "cultivar", "--families", "logreg", *FAST
    )
    assert failed.returncode == 1
    assert "step 'validate-data' failed: ContractViolation: data contract breached" in failed.stderr
    assert (
        "column 'alcohol_band': rule 'allowed_categories'" in failed.stderr
        and "Traceback" not in failed.stderr + failed.stdout
    )
    log = failed.stderr.split("full log: ")[1].split("\n")[0].strip()
    assert "Traceback" in open(log).read()  # the whole story is in the log
    page = failed.stderr.split("data report: ")[1].strip()  # and the breach per column on the data page
    assert "alcohol_band" in open(page).read() and "allowed_categories" in open(page).read()
    assert len(open_registry(tmp_path / "reg").list_versions("wine")) == 1


def test_xgboost_regression_trains_and_serves(datasets, tmp_path):
    from inference.devserve import start_predictor
    from mlcycle.models import ModelBundle

    run = mlcycle(
        tmp_path,
        "run",
        "--source",
        str(datasets / "diabetes.csv"),
        "--label",
        "target",
        "--families",
        "xgboost",
        "--threshold",
        "r2=0.0",
        *FAST,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    registry = open_registry(tmp_path / "reg")
    meta = registry.describe("diabetes", "production")
    assert meta["task"] == "regression" and meta["family"] == "xgboost" and "n_estimators" in meta["params"]
    rows = pd.read_csv(datasets / "diabetes.csv").head(5)
    expected = ModelBundle.load(registry.fetch("diabetes", "production", tmp_path / "local")).score(rows)
    http, grpc = free_port(), free_port()
    proc = start_predictor(
        f"{tmp_path / 'reg'}#diabetes@production", "diabetes", http, grpc, tmp_path / "predictor.log"
    )
    try:
        records = json.loads(rows.drop(columns=["target"]).to_json(orient="records"))
        v1 = requests.post(f"{proc.url}/v1/models/diabetes:predict", json={"instances": records}, timeout=30)
        assert v1.status_code == 200, v1.text
        np.testing.assert_allclose(v1.json()["predictions"], expected, rtol=1e-5)
        inputs = [
            {"name": c, "shape": [len(rows)], "datatype": "FP64", "data": rows[c].astype(float).tolist()}
            for c in rows.columns
            if c != "target"
        ]
        v2 = requests.post(f"{proc.url}/v2/models/diabetes/infer", json={"inputs": inputs}, timeout=30)
        assert v2.status_code == 200, v2.text
        [out] = [o for o in v2.json()["outputs"] if o["name"] == "value"]
        np.testing.assert_allclose(out["data"], expected, rtol=1e-5)
    finally:
        proc.stop()
