"""The capture service in the manifests: the logger sends requests and responses to it, it forwards requests
to the drift detector, and the sidecar variant goes back to request-only logging to the local detector."""

from pathlib import Path

import pytest

from devtools.k8s_validate import render

pytestmark = pytest.mark.golden
ROOT = Path(__file__).resolve().parents[2]


def test_logger_feeds_the_capture_service_which_forwards_to_the_drift_detector():
    docs = render(ROOT / "manifests" / "overlays" / "production")
    logger = next(d for d in docs if d["kind"] == "InferenceService")["spec"]["predictor"]["logger"]
    assert logger == {
        "mode": "all",
        "url": "http://fraud-detector-capture.mlcycle.svc.cluster.local/events",
        "metadataHeaders": ["X-Request-Id"],
    }
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    assert {"fraud-detector-capture", "fraud-detector-drift"} <= services
    capture = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "fraud-detector-capture")
    container = capture["spec"]["template"]["spec"]["containers"][0]
    # its own image, whose entrypoint is the service (the container tier starts it from the image)
    assert container["image"] == "ghcr.io/mlcycle/mlcycle-capture:0.1.0" and "command" not in container
    assert "--forward_url=http://fraud-detector-drift.mlcycle.svc.cluster.local/events" in container["args"]
    pod = capture["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "mlcycle-capture" and pod["automountServiceAccountToken"] is False
    account = next(d for d in docs if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == "mlcycle-capture")
    assert "secrets" not in account and account["automountServiceAccountToken"] is False
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert refs == {k: {"name": "mlcycle-s3-capture", "key": k} for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    endpoint = next(e["value"] for e in container["env"] if e["name"] == "AWS_ENDPOINT_URL")
    assert endpoint == "https://s3.example.internal"  # production's external S3, not the kind overlay's MinIO
    policies = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "mlcycle-minio-policies")
    assert "capture-writer.json" in policies["data"]


def test_the_sidecar_variant_logs_requests_to_the_local_detector_only():
    build = ROOT / "build" / "sidecar-capture-overlay"
    build.mkdir(parents=True, exist_ok=True)
    (build / "kustomization.yaml").write_text(
        "resources:\n  - ../../manifests/overlays/production\n"
        "components:\n  - ../../manifests/components/drift-sidecar\n"
    )
    docs = render(build)
    logger = next(d for d in docs if d["kind"] == "InferenceService")["spec"]["predictor"]["logger"]
    assert logger["mode"] == "request" and logger["url"] == "http://localhost:8090/events"
    assert not [d for d in docs if d["metadata"]["name"] in ("fraud-detector-capture", "mlcycle-capture")]
