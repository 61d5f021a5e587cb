"""`mlcycle run` refuses bad input before any step runs: a clear message naming the problem, exit 1,
nothing written (no registry entry, no run directory)."""

import numpy as np
import pandas as pd
import pytest

from cli.main import _model_name
from cli.main import main as cli

pytestmark = pytest.mark.unit


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "income": rng.normal(50, 10, n).round(2),
            "city": rng.choice(["seoul", "busan", "incheon"], n),
            "churned": rng.integers(0, 2, n),
            "price": rng.normal(100, 20, n),
            "one": 1,
        }
    )
    frame.to_csv(tmp_path / "customers.csv", index=False)
    return tmp_path


def _run(data, capsys, *args):
    code = cli(["run", "--registry", str(data / "reg"), "--runs", str(data / "runs"), *args])
    out = capsys.readouterr()
    return code, out.out + out.err


CASES = [
    (["--label", "churn"], "label column 'churn' not found; did you mean 'churned'?"),
    (["--label", "one"], "label column 'one' is constant (only value 1)"),
    (
        ["--label", "city", "--task", "regression"],
        "label column 'city' is categorical (dtype object, e.g. 'incheon') but the task is regression",
    ),
    (["--label", "churned", "--families", "xgboost,forest"], "unknown or no model families ['forest']"),
    (["--label", "churned", "--primary-metric", "auc"], "unknown metric 'auc'"),
    (
        ["--label", "price", "--threshold", "roc_auc=0.8"],
        "threshold on 'roc_auc' is a classification metric; regression has: rmse, mae, r2",
    ),
    (["--label", "churned", "--threshold", "roc_auc"], "expected METRIC=VALUE"),
    (["--label", "churned", "--threshold-policy", "precision:2"], "the target precision must be in (0, 1]"),
    (["--label", "churned", "--segment-column", "region"], "--segment-column 'region' is not a column"),
    (["--label", "city", "--primary-metric", "pr_auc"], "pr_auc exist only for binary labels; 'city' has 3 classes"),
]


@pytest.mark.parametrize("args, fragment", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_options_and_labels_are_refused_before_any_step(data, capsys, args, fragment):
    code, out = _run(data, capsys, "--source", str(data / "customers.csv"), *args)
    assert code == 1 and fragment in out, out
    assert "Traceback" not in out
    assert not (data / "reg").exists() and not (data / "runs").exists()


def test_a_directory_source_is_refused(data, capsys):
    code, out = _run(data, capsys, "--source", str(data), "--label", "y")
    assert code == 1 and "is a directory; give one .csv or .parquet file" in out


def test_a_parquet_file_that_is_not_parquet_is_refused(data, capsys):
    (data / "fake.parquet").write_text("a,b\n1,2\n")
    code, out = _run(data, capsys, "--source", str(data / "fake.parquet"), "--label", "a")
    assert code == 1 and f"cannot parse {data / 'fake.parquet'} as parquet" in out


def test_an_s3_source_without_credentials_is_refused(data, capsys, monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    code, out = _run(data, capsys, "--source", "s3://bucket/data.csv", "--label", "y")
    assert code == 1 and "cannot read s3://bucket/data.csv: no S3 credentials: set AWS_ACCESS_KEY_ID" in out


def test_task_inference_is_said(data, capsys, monkeypatch):
    import cli.main as cli_module

    seen = {}
    monkeypatch.setattr(
        "pipelines.local.run_local",
        lambda registry, root, progress=None, **params: seen.update(params) or (_ for _ in ()).throw(SystemExit(0)),
    )
    with pytest.raises(SystemExit):
        cli_module.main(
            ["run", "--source", str(data / "customers.csv"), "--label", "price", "--registry", str(data / "reg")]
        )
    out = capsys.readouterr().out
    assert "task: regression (inferred from label 'price': numeric with non-integer values; --task to override)" in out
    assert seen["task"] == "regression" and seen["segment_column"] == "" and seen["model_name"] == "customers"
    assert 'gate: primary metric rmse, thresholds {"r2": 0.1}' in out


@pytest.mark.parametrize("action", [["promote", "m", "v1"], ["rollback", "m"]])
def test_promote_and_rollback_by_hand_need_a_reason(tmp_path, capsys, action):
    assert cli(["models", *action, "--registry", str(tmp_path)]) == 2
    assert '--why "reason" is required' in capsys.readouterr().err


def test_model_names_from_file_names():
    assert _model_name("/data/Bank Marketing.csv") == "bank-marketing"
    assert _model_name("s3://b/x/__.parquet") == "model"


SUBMIT = ["submit", "--host", "http://127.0.0.1:9", "--label", "y"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--source", "s3://b/d.csv"], "needs --registry s3://BUCKET"),
        (["--registry", "s3://b", "--source", "{tmp}/d.csv"], "cannot read the local file"),
        (
            ["--registry", "s3://b", "--source", "s3://b/d.csv", "--threshold", "rmse=3"],
            "threshold on 'rmse' is a regression metric",
        ),
    ],
)
def test_submit_refuses_what_a_cluster_cannot_run(args, message, tmp_path, capsys):
    assert cli(SUBMIT + [arg.format(tmp=tmp_path) for arg in args]) == 1
    assert message in capsys.readouterr().err


def test_submit_to_an_unreachable_host_says_so(capsys):
    code = cli(SUBMIT + ["--registry", "s3://mlcycle-models", "--source", "s3://b/d.csv"])
    assert code == 1 and "could not submit to http://127.0.0.1:9" in capsys.readouterr().err
