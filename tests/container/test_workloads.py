"""Every workload of the rendered overlays, started from its image with the arguments, environment, user and
securityContext its manifest gives it (read-only root, dropped capabilities, uid 65532, volumes as the kubelet makes
them), reaches ready; the InferenceService as KServe's pod mutator builds its pod, with the storage initializer
pulling the registered version from the real MinIO. Then the faults the tier exists to catch."""

import copy
import os
import tempfile
from pathlib import Path

import pytest
import requests
import yaml
from container_env import ROOT, STORAGE_INITIALIZER

from devtools.containers import ContainerFailed, Pod, pods
from devtools.k8s_validate import render
from mlcycle.process import wait_until

pytestmark = pytest.mark.container
# Third-party images in the kind overlay (quay.io/minio/minio, quay.io/prometheus/prometheus): not built by this
# project; the tests run a real MinIO server process in their place.
THIRD_PARTY = {"Deployment/minio", "Deployment/prometheus"}


def kind_pods(kind_docs):
    return {p.source: p for p in pods(kind_docs, STORAGE_INITIALIZER) if p.source not in THIRD_PARTY}


def sidecar_docs(tmp_path) -> list[dict]:
    """The kind overlay with the drift-sidecar component, as a user would compose it."""
    overlay = tmp_path / "sidecar"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(ROOT / "manifests" / "overlays" / "kind", overlay)],
                "components": [os.path.relpath(ROOT / "manifests" / "components" / "drift-sidecar", overlay)],
            }
        )
    )
    return render(overlay)


def test_workloads_cover_every_mlcycle_container(kind_docs):
    # the tier runs every container the overlay defines except the third-party ones named above
    found = kind_pods(kind_docs)
    assert set(found) == {
        "Deployment/fraud-detector-drift",
        "Deployment/fraud-detector-capture",
        "Job/minio-bootstrap",
        "InferenceService/fraud-detector",
    }
    isvc = found["InferenceService/fraud-detector"]
    assert [c["name"] for c in isvc.spec["initContainers"]] == ["storage-initializer"]


def test_bootstrap_job_completes(bootstrapped, minio_server, credentials):
    # the Job, in the pipeline image, made the bucket and the users the other workloads' Secrets name
    assert "users ready: pipeline-writer, serving-reader, capture-writer" in bootstrapped
    assert minio_server.client().bucket_exists("mlcycle-models")
    serving = credentials["mlcycle-s3-serving"].data
    reader = minio_server.client(serving["AWS_ACCESS_KEY_ID"], serving["AWS_SECRET_ACCESS_KEY"])
    assert reader.bucket_exists("mlcycle-models")


@pytest.mark.parametrize(
    "source",
    ["InferenceService/fraud-detector", "Deployment/fraud-detector-drift", "Deployment/fraud-detector-capture"],
)
def test_workload_becomes_ready_under_its_own_security_context(source, runner, kind_docs, registered):
    pod = kind_pods(kind_docs)[source]
    with runner.start(pod, timeout_s=180) as running:
        for name, c in running.containers.items():
            c.reload()
            if name in [x["name"] for x in pod.spec.get("initContainers", [])]:
                assert c.attrs["State"]["ExitCode"] == 0
                continue
            host = c.attrs["HostConfig"]
            spec = next(x for x in pod.spec["containers"] if x["name"] == name)
            # the container really ran as the manifest says (not a looser default)
            assert host["ReadonlyRootfs"] == bool(spec["securityContext"].get("readOnlyRootFilesystem"))
            assert host["CapDrop"] == ["ALL"] and c.attrs["Config"]["User"].split(":")[0] == "65532"
            assert c.status == "running"


def test_drift_sidecar_variant_loads_its_model_over_s3(runner, tmp_path, registered):
    # the sidecar's drift detector reads s3:// itself (inference/loader.py -> kserve_storage): the serving and drift
    # images must carry kserve-storage, and the download must go somewhere writable
    docs = sidecar_docs(tmp_path)
    (pod,) = [p for p in pods(docs, STORAGE_INITIALIZER) if p.source == "InferenceService/fraud-detector"]
    assert [c["name"] for c in pod.spec["containers"]] == ["kserve-container", "drift-detector"]
    with runner.start(pod, timeout_s=240) as running:
        # the sidecar has no probe in the manifest: its health route must answer while it keeps running
        assert wait_until(lambda: _healthy("http://127.0.0.1:8090/healthz"), 120), running.logs("drift-detector")
        running.containers["drift-detector"].reload()
        assert running.containers["drift-detector"].status == "running"


def _healthy(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_production_overlay_runs_the_same_containers_as_kind(kind_docs):
    # what the tier proves for kind holds for production: same images, commands, arguments, security contexts and
    # mounts; only endpoints (env values) and replica counts differ
    def shape(docs):
        out = {}
        for p in pods(docs, STORAGE_INITIALIZER):
            for c in p.spec.get("initContainers", []) + p.spec["containers"]:
                out[(p.source, c["name"])] = {
                    k: c.get(k) for k in ("image", "command", "args", "securityContext", "volumeMounts", "envFrom")
                }
        return out

    kind, production = shape(kind_docs), shape(render(ROOT / "manifests" / "overlays" / "production"))
    assert production and set(production) <= set(kind)
    for key, value in production.items():
        assert value == kind[key], key


# -- faults: each must fail the tier ------------------------------------------------------------------------------


def _with_image(pod: Pod, container: str, image: str) -> Pod:
    spec = copy.deepcopy(pod.spec)
    next(c for c in spec["containers"] if c["name"] == container)["image"] = image
    return Pod(pod.source, pod.name, spec, pod.namespace, pod.job)


def test_an_image_missing_a_module_fails_naming_the_image_and_module(
    runner, kind_docs, images, docker_client, registered
):
    # a lock or Dockerfile change that drops a package an entrypoint imports (here: orjson, the REST front's)
    broken = "mlcycle-test/serving-without-orjson:1"
    with tempfile.TemporaryDirectory() as ctx:
        Path(ctx, "Dockerfile").write_text(
            f"FROM {images['serving']}\nUSER 0\nRUN rm -rf /opt/venv/lib/python3.11/site-packages/orjson*\nUSER 65532:65532\n"
        )
        docker_client.images.build(path=ctx, tag=broken, network_mode="host", rm=True)
    try:
        pod = _with_image(kind_pods(kind_docs)["InferenceService/fraud-detector"], "kserve-container", broken)
        with pytest.raises(ContainerFailed) as e:
            runner.start(pod, timeout_s=120)
        assert e.value.image == broken and e.value.container == "kserve-container"
        assert "lacks the module 'orjson'" in str(e.value)
    finally:
        docker_client.images.remove(broken, force=True)


def test_a_write_to_the_read_only_root_is_caught(runner, kind_docs, images, registered):
    # the predictor's own securityContext with a server that writes a temporary file at start, as loader.py did
    pod = kind_pods(kind_docs)["InferenceService/fraud-detector"]
    spec = copy.deepcopy(pod.spec)
    main = spec["containers"][0]
    main["command"] = ["python", "-c", "import tempfile; tempfile.mkdtemp(); import time; time.sleep(60)"]
    main["args"] = []
    with pytest.raises(ContainerFailed) as e:
        runner.start(Pod(pod.source, pod.name, spec), timeout_s=60)
    assert "read-only" in str(e.value)


def test_run_as_non_root_with_a_root_image_is_refused(runner, kind_docs, images, docker_client, registered):
    # the kubelet refuses runAsNonRoot when the image would run as root and no runAsUser says otherwise
    root_image = "mlcycle-test/capture-as-root:1"
    with tempfile.TemporaryDirectory() as ctx:
        Path(ctx, "Dockerfile").write_text(f"FROM {images['capture']}\nUSER 0\n")
        docker_client.images.build(path=ctx, tag=root_image, rm=True)
    try:
        pod = _with_image(kind_pods(kind_docs)["Deployment/fraud-detector-capture"], "capture", root_image)
        del pod.spec["containers"][0]["securityContext"]["runAsUser"]
        with pytest.raises(ContainerFailed, match="runAsNonRoot and the container would run as root"):
            runner.start(pod, timeout_s=30)
    finally:
        docker_client.images.remove(root_image, force=True)
