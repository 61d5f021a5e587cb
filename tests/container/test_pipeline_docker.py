"""The compiled pipeline end to end with kfp.local's DockerRunner on the built images — the executor a KFP backend
runs in each pod — writing to the real MinIO with the pipeline user's keys (as the kind overlay's bootstrap Job made
them): the version it registers equals the subprocess runner's on the same data and seed. A user's own CSV through
`mlcycle run --runner docker`; a step failing in its container; the registry unreachable from the containers."""

import pytest
from container_env import BUCKET, s3_env

from mlcycle.registry import open_registry
from pipelines.local import StepFailed, run_local

pytestmark = pytest.mark.container
SMALL = {"demo_rows": 3000, "n_trials": 1, "cv_folds": 2, "families": ["baseline", "logreg", "xgboost"], "seed": 11}
REGISTRY = f"s3://{BUCKET}"


@pytest.fixture
def pipeline_user(minio_server, bootstrapped, credentials, monkeypatch):
    """This process's S3 variables: the pipeline user's (the Docker runner passes them to each step)."""
    for name, value in s3_env(minio_server, credentials["mlcycle-s3-pipeline"]).items():
        monkeypatch.setenv(name, value)


def test_pipeline_in_its_images_registers_the_same_version_as_the_subprocess_runner(images, pipeline_user, tmp_path):
    lines = []
    docker = run_local(REGISTRY, tmp_path / "docker", lines.append, runner="docker", model_name="in-docker", **SMALL)
    local = run_local(REGISTRY, tmp_path / "local", runner="subprocess", model_name="in-process", **SMALL)
    log = docker.log.read_text()
    # every step really ran in its image (kfp.local's Docker handler prints the image it found)
    assert f"Found image '{images['pipeline']}'" in log and f"Found image '{images['drift']}'" in log
    assert docker.decision["passed"] and docker.version and local.version
    registry = open_registry(REGISTRY)
    a, b = registry.describe("in-docker", docker.version), registry.describe("in-process", local.version)
    assert sorted(a["files"]) == sorted(b["files"])
    for name, value in b["metrics"].items():
        assert a["metrics"][name] == pytest.approx(value, abs=1e-6), name
    assert a["gate"]["passed"] == b["gate"]["passed"]
    # the same bytes where the libraries write deterministically (the locks pin the same versions as the dev venv)
    same = [f for f in a["files"] if a["files"][f]["sha256"] == b["files"][f]["sha256"]]
    assert "model/model.ubj" in same or any(f.endswith(".ubj") for f in same), (a["files"], b["files"])
    # one progress line per step, none reported before it finished
    assert any(line.split()[:2] == ["register", "ok"] for line in lines), lines


def test_a_users_csv_through_the_cli_in_containers(images, pipeline_user, tmp_path, capsys):
    from sklearn import datasets

    from cli.main import main as cli

    csv = tmp_path / "breast_cancer.csv"
    datasets.load_breast_cancer(as_frame=True).frame.to_csv(csv, index=False)
    args = ["run", "--source", str(csv), "--label", "target", "--runner", "docker", "--registry", REGISTRY]
    args += ["--model", "user-csv", "--trials", "1", "--cv-folds", "2", "--runs", str(tmp_path / "runs")]
    assert cli(args) == 0
    out = capsys.readouterr().out
    assert "(docker runner)" in out and "(now production)" in out, out
    meta = open_registry(REGISTRY).describe("user-csv", open_registry(REGISTRY).resolve("user-csv", "production"))
    assert meta["metrics"]["roc_auc"] > 0.9


def test_a_step_failing_in_its_container_fails_the_run_with_its_error(images, pipeline_user, tmp_path):
    csv = tmp_path / "no_label.csv"
    csv.write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(StepFailed) as e:
        run_local(
            REGISTRY, tmp_path / "runs", print, runner="docker", source=str(csv), model_name="failing", label="is_fraud"
        )
    assert e.value.step in ("ingest", "validate-data") and "is_fraud" in e.value.error, str(e.value)
    assert open_registry(REGISTRY).list_versions("failing") == []


def test_the_registry_unreachable_from_the_containers_names_the_endpoint(images, pipeline_user, tmp_path):
    from mlcycle.process import free_port

    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", closed)
        with pytest.raises(StepFailed) as e:
            run_local(REGISTRY, tmp_path / "runs", print, runner="docker", model_name="unreachable", **SMALL)
    assert closed.removeprefix("http://") in str(e.value), str(e.value)
    # the pipeline user's endpoint again: nothing was written under the model's prefix
    assert open_registry(REGISTRY).list_versions("unreachable") == []
