"""Every overlay renders with kustomize and validates against the real schemas (Kubernetes models,
KServe's CRD from the kserve Go module); plus the security properties the manifests promise."""

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from devtools.k8s_validate import kserve_crd_schemas, render, validate_documents

pytestmark = pytest.mark.golden
ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ["kind", "production"]


@pytest.fixture(scope="module")
def schemas():
    return kserve_crd_schemas()


@pytest.fixture(scope="module")
def rendered():
    return {o: render(ROOT / "manifests" / "overlays" / o) for o in OVERLAYS}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates(rendered, schemas, overlay):
    docs = rendered[overlay]
    assert validate_documents(docs, schemas) == []
    kinds = {d["kind"] for d in docs}
    assert {"InferenceService", "Deployment", "Service", "ServiceAccount", "Role", "RoleBinding", "ConfigMap"} <= kinds
    assert all(d["metadata"].get("namespace", "mlcycle") == "mlcycle" for d in docs if d["kind"] != "Namespace")


def test_sidecar_component_renders_and_validates(schemas, tmp_path):
    build = ROOT / "build" / "sidecar-overlay"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    (build / "kustomization.yaml").write_text(
        "resources:\n  - ../../manifests/overlays/production\ncomponents:\n  - ../../manifests/components/drift-sidecar\n"
    )
    docs = render(build)
    assert validate_documents(docs, schemas) == []
    isvc = next(d for d in docs if d["kind"] == "InferenceService")
    assert isvc["spec"]["predictor"]["logger"]["url"] == "http://localhost:8090/events"
    assert [c["name"] for c in isvc["spec"]["predictor"]["containers"]] == ["kserve-container", "drift-detector"]
    # the separate detector is gone, not left running beside the sidecar
    assert not [
        d for d in docs if d["kind"] in ("Deployment", "Service") and d["metadata"]["name"] == "fraud-detector-drift"
    ]


def test_the_validator_catches_typos_and_wrong_types(rendered, schemas):
    docs = copy.deepcopy(rendered["production"])
    isvc = next(d for d in docs if d["kind"] == "InferenceService")
    isvc["spec"]["predictor"]["canaryTraficPercent"] = 10  # typo the API server would silently drop
    isvc["spec"]["predictor"]["minReplicas"] = "two"
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    deploy["spec"]["replicas"] = "1"
    deploy["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    errors = "\n".join(validate_documents(docs, schemas))
    assert "canaryTraficPercent: unknown field" in errors
    assert "minReplicas: expected integer" in errors
    assert "spec/replicas: expected int" in errors
    assert "imagePullPolice: unknown field of V1Container" in errors


def test_both_canary_apis_validate_against_the_crd(rendered, schemas):
    isvc = copy.deepcopy(next(d for d in rendered["production"] if d["kind"] == "InferenceService"))
    from mlcycle.rollout.kserve import canary_patch

    serverless = canary_patch(isvc, "serverless", "s3://mlcycle-models/fraud-detector/v2/", 25)
    standard = canary_patch(isvc, "standard", "s3://mlcycle-models/fraud-detector/v2/", 25)
    for patched in (serverless, standard):
        assert validate_documents([patched], schemas) == []
    assert serverless["spec"]["predictor"]["canaryTrafficPercent"] == 25
    assert standard["spec"]["canary"][0]["trafficPercent"] == 25
    canary_env = standard["spec"]["canary"][0]["predictor"]["containers"][0]["env"]
    assert {"name": "STORAGE_URI", "value": "s3://mlcycle-models/fraud-detector/v2/"} in canary_env


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_security_properties(rendered, overlay):
    docs = rendered[overlay]
    assert not any(d["kind"] == "Secret" for d in docs), "credentials never live in manifests"
    assert not any(d["kind"] in ("ClusterRole", "ClusterRoleBinding") for d in docs), "RBAC stays namespaced"
    for doc in docs:
        text = yaml.safe_dump(doc)
        assert ":latest" not in text
        for key in ("AWS_SECRET_ACCESS_KEY", "MINIO_ROOT_PASSWORD"):
            assert f"name: {key}\n  value" not in text
    role = next(d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "mlcycle-rollout")
    allowed = {
        "serving.kserve.io": {"get", "list", "watch", "patch"},
        "gateway.networking.k8s.io": {"get", "create", "patch"},
    }
    for rule in role["rules"]:  # no update (PUT), no delete; the HTTPRoute only for the canary split
        [group] = rule["apiGroups"]
        assert set(rule["verbs"]) <= allowed[group], rule
        assert group != "gateway.networking.k8s.io" or rule["resources"] == ["httproutes"], rule
    sa = next(d for d in docs if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == "mlcycle-serving")
    assert sa["secrets"] == [{"name": "mlcycle-s3-serving"}]
    images = [c["image"] for d in docs for c in _containers(d)]
    assert images and all(":" in i.rsplit("/", 1)[-1] for i in images), images


def _containers(doc):
    spec = doc.get("spec", {})
    if doc["kind"] == "InferenceService":
        return spec["predictor"].get("containers", [])
    pod = spec.get("template", {}).get("spec", {})
    return pod.get("containers", []) + pod.get("initContainers", [])


def test_example_secret_has_the_annotations_kserve_reads(schemas):
    secret = yaml.safe_load((ROOT / "manifests" / "examples" / "s3-serving-secret.yaml").read_text())
    assert validate_documents([secret], schemas) == []
    notes = secret["metadata"]["annotations"]
    assert "://" not in notes["serving.kserve.io/s3-endpoint"]  # host:port, the scheme comes from s3-usehttps
    assert set(secret["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_kind_config_ports_match_the_nodeports(rendered):
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    mapped = {m["containerPort"] for node in config["nodes"] for m in node.get("extraPortMappings", [])}
    node_ports = {
        p["nodePort"] for d in rendered["kind"] if d["kind"] == "Service" for p in d["spec"]["ports"] if "nodePort" in p
    }
    assert node_ports and node_ports <= mapped
