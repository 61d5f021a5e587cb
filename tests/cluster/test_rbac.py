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
    # the capture service's own account: no API access at all (S3 keys come from its Secret as env, by the kubelet)
    ("mlcycle/mlcycle-capture", "get", "secrets/mlcycle-s3-capture", "mlcycle", False),
    ("mlcycle/mlcycle-capture", "list", "secrets", "mlcycle", False),
    ("mlcycle/mlcycle-capture", "get", "configmaps", "mlcycle", False),
    ("mlcycle/mlcycle-capture", "list", "pods", "mlcycle", False),
    ("mlcycle/mlcycle-capture", "get", "inferenceservices.serving.kserve.io", "mlcycle", False),
    ("mlcycle/mlcycle-capture", "create", "events", "mlcycle", False),
    ("mlcycle/mlcycle-capture", "create", "pods", "mlcycle", False),
    ("mlcycle/mlcycle-capture", "get", "secrets", "kubeflow", False),
    # the drift detector: its own account, nothing granted (it used to share mlcycle-serving)
    ("mlcycle/mlcycle-drift", "get", "secrets/mlcycle-s3-serving", "mlcycle", False),
    ("mlcycle/mlcycle-drift", "list", "pods", "mlcycle", False),
    ("mlcycle/mlcycle-drift", "get", "inferenceservices.serving.kserve.io", "mlcycle", False),
    ("mlcycle/mlcycle-drift", "create", "pods", "mlcycle", False),
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


def test_the_capture_account_has_no_rule_beyond_what_every_account_gets(applied, tokens):
    """``auth can-i --list`` as the capture account: only the self-review APIs every authenticated user has."""

    def rules(account: str) -> set[str]:
        out = applied.kubectl("auth", "can-i", "--list", "-n", "mlcycle", kubeconfig=tokens[account])
        return {line.split()[0] for line in out.stdout.splitlines()[1:] if line.strip() and not line.startswith(" ")}

    assert "inferenceservices.serving.kserve.io" in rules("mlcycle/mlcycle-rollout")  # the listing names grants
    resources = rules("mlcycle/mlcycle-capture")
    assert "selfsubjectaccessreviews.authorization.k8s.io" in resources, resources
    granted = {r for r in resources if not r.startswith("[")} - {
        "selfsubjectreviews.authentication.k8s.io",
        "selfsubjectaccessreviews.authorization.k8s.io",
        "selfsubjectrulesreviews.authorization.k8s.io",
    }
    assert not granted, granted
    bindings = applied.get("-n", "mlcycle", "rolebindings")["items"]
    bound = [b["metadata"]["name"] for b in bindings for s in b.get("subjects", []) if s["name"] == "mlcycle-capture"]
    assert not bound, bound


def test_the_capture_pod_has_its_own_account_no_token_and_keys_by_secret_reference(applied):
    """The pod the real controllers made from the capture Deployment (ServiceAccount admission ran on it)."""
    spec = _pod_spec(applied, "fraud-detector-capture")
    assert spec["serviceAccountName"] == "mlcycle-capture"
    assert spec["automountServiceAccountToken"] is False
    projected = [v["name"] for v in spec.get("volumes", []) if "projected" in v]
    assert not projected, f"a ServiceAccount token volume was mounted: {projected}"
    container = spec["containers"][0]
    assert not container.get("envFrom"), container.get("envFrom")
    env = {e["name"]: e for e in container["env"]}
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "mlcycle-s3-capture", "key": key}, env[key]
    assert {
        p["httpGet"]["path"] for p in (container[k] for k in ("startupProbe", "readinessProbe", "livenessProbe"))
    } == {"/healthz"}
    account = applied.get("-n", "mlcycle", "serviceaccount", "mlcycle-capture")
    assert account.get("automountServiceAccountToken") is False and not account.get("secrets"), account


def test_the_drift_pod_has_its_own_account_and_no_token(applied):
    """The pod the real controllers made from the drift Deployment: its own ServiceAccount, no token volume; the
    account carries no Secrets (its init container names the serving Secret itself)."""
    spec = _pod_spec(applied, "fraud-detector-drift")
    assert spec["serviceAccountName"] == "mlcycle-drift" and spec["automountServiceAccountToken"] is False
    assert not [v["name"] for v in spec.get("volumes", []) if "projected" in v]
    account = applied.get("-n", "mlcycle", "serviceaccount", "mlcycle-drift")
    assert account.get("automountServiceAccountToken") is False and not account.get("secrets"), account


def _pod_spec(applied, name: str) -> dict:
    """The spec of the pod the real controllers made from the Deployment ``name`` (waiting up to 60 s for it)."""
    from mlcycle.process import wait_until

    def made():
        return applied.get("-n", "mlcycle", "pods", "-l", f"app.kubernetes.io/name={name}")["items"]

    pods = wait_until(made, 60, interval=0.5)
    assert pods, f"the {name} Deployment made no pod"
    return pods[0]["spec"]
