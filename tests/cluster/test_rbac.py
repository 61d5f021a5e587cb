"""RBAC enforced by the real apiserver, with real ServiceAccount tokens (TokenRequest): each account can do
exactly what its job needs and is denied everything else."""

import pytest

pytestmark = pytest.mark.cluster

# (account namespace/name, verb, resource, namespace, allowed)
TABLE = [
    # the rollout controller: read and merge-patch InferenceServices, own the traffic-splitting HTTPRoute
    ("mlcycle/mlcycle-rollout", "get", "inferenceservices.serving.kserve.io", "mlcycle", True),
    ("mlcycle/mlcycle-rollout", "list", "inferenceservices.serving.kserve.io", "mlcycle", True),
    ("mlcycle/mlcycle-rollout", "watch", "inferenceservices.serving.kserve.io", "mlcycle", True),
    ("mlcycle/mlcycle-rollout", "patch", "inferenceservices.serving.kserve.io", "mlcycle", True),
    ("mlcycle/mlcycle-rollout", "get", "httproutes.gateway.networking.k8s.io", "mlcycle", True),
    ("mlcycle/mlcycle-rollout", "create", "httproutes.gateway.networking.k8s.io", "mlcycle", True),
    ("mlcycle/mlcycle-rollout", "patch", "httproutes.gateway.networking.k8s.io", "mlcycle", True),
    ("mlcycle/mlcycle-rollout", "update", "inferenceservices.serving.kserve.io", "mlcycle", False),
    ("mlcycle/mlcycle-rollout", "delete", "inferenceservices.serving.kserve.io", "mlcycle", False),
    ("mlcycle/mlcycle-rollout", "create", "inferenceservices.serving.kserve.io", "mlcycle", False),
    ("mlcycle/mlcycle-rollout", "delete", "httproutes.gateway.networking.k8s.io", "mlcycle", False),
    ("mlcycle/mlcycle-rollout", "get", "secrets", "mlcycle", False),
    ("mlcycle/mlcycle-rollout", "list", "pods", "mlcycle", False),
    ("mlcycle/mlcycle-rollout", "patch", "deployments.apps", "mlcycle", False),
    ("mlcycle/mlcycle-rollout", "get", "inferenceservices.serving.kserve.io", "default", False),
    ("mlcycle/mlcycle-rollout", "patch", "inferenceservices.serving.kserve.io", "kubeflow", False),
    # KFP's pipeline-runner (deploy_canary step): create and patch InferenceServices in mlcycle, nothing else
    ("kubeflow/pipeline-runner", "create", "inferenceservices.serving.kserve.io", "mlcycle", True),
    ("kubeflow/pipeline-runner", "patch", "inferenceservices.serving.kserve.io", "mlcycle", True),
    ("kubeflow/pipeline-runner", "patch", "httproutes.gateway.networking.k8s.io", "mlcycle", True),
    ("kubeflow/pipeline-runner", "delete", "inferenceservices.serving.kserve.io", "mlcycle", False),
    ("kubeflow/pipeline-runner", "get", "secrets", "mlcycle", False),
    ("kubeflow/pipeline-runner", "create", "inferenceservices.serving.kserve.io", "default", False),
    # the predictor's account: nothing at all (its token is not even mounted)
    ("mlcycle/mlcycle-serving", "get", "inferenceservices.serving.kserve.io", "mlcycle", False),
    ("mlcycle/mlcycle-serving", "get", "secrets", "mlcycle", False),
    ("mlcycle/mlcycle-serving", "list", "pods", "mlcycle", False),
]


@pytest.mark.parametrize(
    "account, verb, resource, namespace, allowed",
    TABLE,
    ids=[f"{r[0]}-{r[1]}-{r[2].split('.')[0]}-{r[3]}" for r in TABLE],
)
def test_rbac_table(applied, tokens, account, verb, resource, namespace, allowed):
    out = applied.kubectl("auth", "can-i", verb, resource, "-n", namespace, kubeconfig=tokens[account], check=False)
    assert out.stdout.strip() == ("yes" if allowed else "no"), (out.stdout, out.stderr)


def test_the_apiserver_denies_a_real_request_naming_verb_and_resource(applied, tokens):
    out = applied.kubectl("-n", "mlcycle", "get", "secrets", kubeconfig=tokens["mlcycle/mlcycle-rollout"], check=False)
    assert out.returncode != 0
    assert 'User "system:serviceaccount:mlcycle:mlcycle-rollout" cannot list resource "secrets"' in out.stderr, (
        out.stderr
    )
