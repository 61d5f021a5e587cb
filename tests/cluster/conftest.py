"""The local control plane (devtools.cluster): etcd, kube-apiserver, controller-manager, scheduler, KWOK and
KServe's own controller with its webhooks — started once per test run for the tests marked ``cluster``."""

import base64

import pytest
import yaml

NAMESPACE = "mlcycle"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    from devtools.cluster import Cluster

    c = Cluster(tmp_path_factory.mktemp("cluster")).up()
    yield c
    c.down()


def secret(name: str, data: dict, annotations: dict | None = None, namespace: str = NAMESPACE) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


@pytest.fixture(scope="session")
def mlcycle_namespace(cluster):
    """The namespace with what kind-up creates out of band: Secrets (KServe's S3 annotations), the kubeflow
    namespace with KFP's pipeline-runner ServiceAccount, and a pre-bound volume for MinIO's claim."""
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubeflow"}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "pipeline-runner", "namespace": "kubeflow"},
        },
        secret(
            "mlcycle-s3-serving",
            {"AWS_ACCESS_KEY_ID": "serving", "AWS_SECRET_ACCESS_KEY": "serving-secret"},
            {
                "serving.kserve.io/s3-endpoint": "minio.mlcycle.svc.cluster.local:9000",
                "serving.kserve.io/s3-usehttps": "0",
                "serving.kserve.io/s3-region": "us-east-1",
            },
        ),
        secret("mlcycle-s3-capture", {"AWS_ACCESS_KEY_ID": "capture", "AWS_SECRET_ACCESS_KEY": "capture-secret"}),
        secret(
            "mlcycle-minio-admin",
            {
                "MINIO_ROOT_USER": "admin",
                "MINIO_ROOT_PASSWORD": "admin-secret-0123",
                "PIPELINE_ACCESS_KEY": "pipeline",
                "PIPELINE_SECRET_KEY": "pipeline-secret",
                "SERVING_ACCESS_KEY": "serving",
                "SERVING_SECRET_KEY": "serving-secret",
                "CAPTURE_ACCESS_KEY": "capture",
                "CAPTURE_SECRET_KEY": "capture-secret",
            },
        ),
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": "minio-data-local"},
            "spec": {
                "capacity": {"storage": "10Gi"},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": "/tmp/mlcycle-minio"},
                "claimRef": {"namespace": NAMESPACE, "name": "minio-data"},
                "persistentVolumeReclaimPolicy": "Retain",
            },
        },
    ]
    cluster.apply(yaml.safe_dump_all(docs))
    return NAMESPACE


@pytest.fixture(scope="session")
def applied(cluster, mlcycle_namespace):
    """The kind overlay's RBAC, ServiceAccounts and services (everything but the InferenceService) applied."""
    docs = [
        d
        for d in yaml.safe_load_all(cluster.kustomize("manifests/overlays/kind"))
        if d and d["kind"] != "InferenceService"
    ]
    cluster.apply(yaml.safe_dump_all(docs))
    return cluster


@pytest.fixture(scope="session")
def tokens(applied, tmp_path_factory):
    """Kubeconfigs with real, apiserver-signed ServiceAccount tokens: {"namespace/name": path}."""
    root = tmp_path_factory.mktemp("tokens")
    out = {}
    accounts = (
        "mlcycle/mlcycle-rollout",
        "kubeflow/pipeline-runner",
        "mlcycle/mlcycle-serving",
        "mlcycle/mlcycle-capture",
        "mlcycle/mlcycle-drift",
    )
    for account in accounts:
        ns, name = account.split("/")
        out[account] = applied.token_kubeconfig(ns, name, root / f"{ns}-{name}.kubeconfig")
    return out
