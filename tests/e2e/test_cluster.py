"""Needs a Kubernetes cluster with KServe (e.g. `make kind-up`); skipped with the reason otherwise."""

import os

import pytest

pytestmark = pytest.mark.e2e


def _cluster_or_skip():
    try:
        from kubernetes import client, config

        config.load_config()
        client.VersionApi().get_code(_request_timeout=3)
        return client
    except Exception as e:  # no kubeconfig, unreachable API server, ...
        pytest.skip(
            f"no reachable Kubernetes cluster ({type(e).__name__}: {str(e)[:120]}); run `make kind-up` or set KUBECONFIG"
        )


def test_kind_overlay_applies_server_side_and_canary_patches_are_accepted():
    client = _cluster_or_skip()
    import subprocess

    from mlcycle.rollout.kserve import GROUP, PLURAL, VERSION, canary_patch, detect_mode, promote_patch

    ns = os.environ.get("MLCYCLE_NAMESPACE", "mlcycle")
    out = subprocess.run(
        ["kubectl", "apply", "--server-side", "--dry-run=server", "-k", "manifests/overlays/kind"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    api = client.CustomObjectsApi()
    isvc = api.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "fraud-detector")
    mode = detect_mode(isvc)
    patched = canary_patch(isvc, mode, "s3://mlcycle-models/fraud-detector/e2e-canary/", 10)
    api.replace_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "fraud-detector", patched, dry_run="All")
    api.replace_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "fraud-detector", promote_patch(patched, mode), dry_run="All"
    )
