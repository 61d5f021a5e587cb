"""Every overlay applied for real (server-side apply, strict field validation) to the local control plane,
admitted by KServe's webhooks and reconciled by KServe's own controller; KWOK runs the pods (no containers)."""

import copy
import json
import time

import pytest
import yaml

from devtools.cluster import ClusterError

pytestmark = pytest.mark.cluster
VERSION_URI = "s3://mlcycle-models/fraud-detector/v20261201T000000000000-abcdef/"


def _wait(check, timeout=90, what=""):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            ok, last = check()
        except ClusterError as e:  # not created yet
            ok, last = False, str(e)
        if ok:
            return last
        time.sleep(0.5)
    pytest.fail(f"{what} not reached in {timeout}s; last seen: {json.dumps(last)[:1500]}")


def _condition(obj, kind):
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), {})


def rendered(cluster, overlay: str, storage_uri: str = VERSION_URI) -> list[dict]:
    docs = [d for d in yaml.safe_load_all(cluster.kustomize(f"manifests/overlays/{overlay}")) if d]
    for d in docs:
        if d["kind"] == "InferenceService":
            for env in d["spec"]["predictor"]["containers"][0]["env"]:
                if env["name"] == "STORAGE_URI":
                    env["value"] = storage_uri
    return docs


def test_kind_overlay_is_admitted_and_reconciled(cluster, mlcycle_namespace):
    docs = rendered(cluster, "kind")
    cluster.apply(yaml.safe_dump_all(docs))
    isvc = _wait(
        lambda: (
            (o := cluster.get("-n", "mlcycle", "inferenceservice", "fraud-detector"))
            and _condition(o, "Ready").get("status") == "True",
            o,
        ),
        what="InferenceService Ready",
    )
    # KServe's defaulter ran (webhook) and its controller reconciled Standard mode into a Deployment + Service.
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    assert isvc["status"]["deploymentMode"] == "Standard"
    deploy = cluster.get("-n", "mlcycle", "deployment", "fraud-detector-predictor")
    assert deploy["status"].get("availableReplicas", 0) >= 1
    cluster.get("-n", "mlcycle", "service", "fraud-detector-predictor")
    # The pod mutator injected KServe's storage initializer with the S3 Secret's settings and pointed the model at /mnt/models.
    pods = cluster.get("-n", "mlcycle", "pods", "-l", "serving.kserve.io/inferenceservice=fraud-detector")["items"]
    assert pods, "no predictor pod"
    pod = pods[0]
    init = {c["name"]: c for c in pod["spec"].get("initContainers", [])}
    assert "storage-initializer" in init and VERSION_URI in init["storage-initializer"]["args"]
    env = {e["name"]: e for e in init["storage-initializer"].get("env", [])}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "mlcycle-s3-serving"
    assert env["S3_ENDPOINT"]["value"] == "minio.mlcycle.svc.cluster.local:9000" and env["S3_USE_HTTPS"]["value"] == "0"
    # Prometheus finds the predictor's per-version metrics (the rollout's evidence in Standard mode) on the pod.
    assert (
        pod["metadata"]["annotations"].get("prometheus.io/scrape") == "true"
        and pod["metadata"]["annotations"]["prometheus.io/port"] == "8080"
    )
    main = next(c for c in pod["spec"]["containers"] if c["name"] == "kserve-container")
    assert {"name": "STORAGE_URI", "value": "/mnt/models"} in main["env"]
    # The rest of the overlay: drift detector and capture service available, MinIO bootstrap Job complete,
    # Prometheus available.
    for name in ("fraud-detector-drift", "fraud-detector-capture", "minio", "prometheus"):
        _wait(
            lambda name=name: (
                (d := cluster.get("-n", "mlcycle", "deployment", name))
                and d["status"].get("availableReplicas", 0) >= 1,
                d,
            ),
            what=f"deployment {name} available",
        )
    _wait(
        lambda: (
            (j := cluster.get("-n", "mlcycle", "job", "minio-bootstrap")) and j["status"].get("succeeded", 0) >= 1,
            j,
        ),
        what="bootstrap Job complete",
    )


def test_production_overlay_is_admitted_and_reconciled(cluster, mlcycle_namespace):
    docs = [d for d in rendered(cluster, "production") if d["kind"] != "Namespace"]
    for d in docs:
        d.setdefault("metadata", {})["namespace"] = "mlcycle-prod"
        if d["kind"] == "InferenceService":
            d["metadata"]["name"] = "fraud-detector-prod"
    cluster.apply(yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mlcycle-prod"}}))
    isvc = next(d for d in docs if d["kind"] == "InferenceService")
    cluster.apply(yaml.safe_dump(isvc))
    seen = _wait(
        lambda: (
            (o := cluster.get("-n", "mlcycle-prod", "inferenceservice", "fraud-detector-prod"))
            and bool(o.get("status", {}).get("conditions")),
            o,
        ),
        what="a status written by KServe's controller",
    )
    # Admitted by the webhooks (defaulted) and reconciled: Knative mode needs Knative Serving, which this
    # control plane does not run, so KServe says so in the status instead of becoming Ready.
    assert seen["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] in ("Knative", "Serverless")
    assert _condition(seen, "Ready").get("status") != "True"


def test_misspelled_field_is_refused_not_dropped(cluster, mlcycle_namespace):
    isvc = copy.deepcopy(next(d for d in rendered(cluster, "kind") if d["kind"] == "InferenceService"))
    isvc["metadata"]["name"] = "misspelled"
    isvc["spec"]["predictor"]["canaryTraficPercent"] = 10
    out = cluster.kubectl(
        "apply", "--server-side", "--field-manager=test", "-f", "-", input=yaml.safe_dump(isvc), check=False
    )
    assert out.returncode != 0 and ".spec.predictor.canaryTraficPercent: field not declared in schema" in out.stderr, (
        out.stderr
    )
    assert cluster.kubectl("-n", "mlcycle", "get", "inferenceservice", "misspelled", check=False).returncode != 0
