"""The container tier: the project's images, started as the rendered manifests start them (devtools.containers), over
a real MinIO prepared by the kind overlay's own bootstrap Job. `make test` builds the images (`make images`) and
points DOCKER_HOST at a daemon (scripts/docker-engine.sh); MLCYCLE_CONTAINER_TESTS=1 makes a missing daemon or image
a failure rather than a skip."""

import os
import secrets

import pytest
from container_env import BUCKET, MINIO_HOST, MODEL, ROOT, image_refs, s3_env

from devtools.containers import PodRunner, Secret, ServiceMap, pods
from devtools.k8s_validate import render


def _missing(why: str):
    if os.environ.get("MLCYCLE_CONTAINER_TESTS") == "1":
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture(scope="session")
def docker_client():
    import docker

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as e:
        _missing(f"no Docker daemon answers ({e}): run the tests through `make test` (scripts/docker-engine.sh)")
    yield client
    client.close()


@pytest.fixture(scope="session")
def images(docker_client):
    import docker.errors

    refs = image_refs()
    for role, ref in refs.items():
        try:
            docker_client.images.get(ref)
        except docker.errors.ImageNotFound:
            _missing(f"image {ref} ({role}) is not built: run `make images`")
    return refs


@pytest.fixture(scope="session")
def kind_docs():
    return render(ROOT / "manifests" / "overlays" / "kind")


@pytest.fixture(scope="session")
def credentials(minio_server):
    """The Secrets scripts/kind-up.sh creates, with fresh keys: the MinIO admin (the bootstrap Job's), and one
    least-privilege user per workload."""
    users = {
        p: (f"{p.lower()}-{secrets.token_hex(4)}", secrets.token_urlsafe(24))
        for p in ("PIPELINE", "SERVING", "CAPTURE")
    }
    admin = {"MINIO_ROOT_USER": minio_server.access_key, "MINIO_ROOT_PASSWORD": minio_server.secret_key}
    for prefix, (key, secret) in users.items():
        admin[f"{prefix}_ACCESS_KEY"], admin[f"{prefix}_SECRET_KEY"] = key, secret

    def keys(prefix):
        return {"AWS_ACCESS_KEY_ID": users[prefix][0], "AWS_SECRET_ACCESS_KEY": users[prefix][1]}

    serving_annotations = {
        "serving.kserve.io/s3-endpoint": MINIO_HOST,
        "serving.kserve.io/s3-usehttps": "0",
        "serving.kserve.io/s3-verifyssl": "0",
        "serving.kserve.io/s3-region": "us-east-1",
    }
    return {
        "mlcycle-minio-admin": Secret(admin),
        "mlcycle-s3-serving": Secret(keys("SERVING"), serving_annotations),
        "mlcycle-s3-capture": Secret(keys("CAPTURE")),
        "mlcycle-s3-pipeline": Secret(keys("PIPELINE")),
    }


@pytest.fixture(scope="session")
def runner(docker_client, images, kind_docs, minio_server, credentials, tmp_path_factory):
    services = ServiceMap(kind_docs, extra={MINIO_HOST: f"127.0.0.1:{minio_server.port}"})
    r = PodRunner(docker_client, tmp_path_factory.mktemp("pods"), services, credentials)
    r.cleanup()
    yield r
    r.cleanup()


@pytest.fixture(scope="session")
def bootstrapped(runner, kind_docs):
    """The kind overlay's minio-bootstrap Job, run to completion in the pipeline image against the real MinIO."""
    (job,) = [p for p in pods(kind_docs) if p.source == "Job/minio-bootstrap"]
    with runner.start(job, timeout_s=120) as done:
        return done.logs("bootstrap")


@pytest.fixture(scope="session")
def registered(
    bootstrapped, runner, minio_server, credentials, splits, contract, model_dirs, register_passed, tmp_path_factory
):
    """A production version of fraud-detector (XGBoost + alibi-detect detector), registered with the pipeline
    user's keys; the runner fills the manifests' VERSION placeholder with it, as the first rollout would."""
    from components.build_detector.logic import build_detector
    from mlcycle.registry import open_registry

    root = tmp_path_factory.mktemp("registered")
    build_detector(splits[0], contract, root / "drift", backend="alibi")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in s3_env(minio_server, credentials["mlcycle-s3-pipeline"]).items():
            patch.setenv(name, value)
        registry = open_registry(f"s3://{BUCKET}")
        result = register_passed(
            model_dirs["xgboost"],
            registry,
            "e" * 64,
            "container-tier",
            model_name=MODEL,
            auto_promote=True,
            drift_dir=root / "drift",
        )
    runner.replace["/VERSION/"] = f"/{result.version}/"
    return result.version
