"""mlcycle's own pods meet Pod Security "restricted" (and a read-only root on top), read from the rendered overlays.

Checked: seccomp RuntimeDefault (pod or container), runAsNonRoot, no privilege escalation, every capability dropped,
no privileged container, no host namespaces or hostPath volumes, and a read-only root filesystem. Not checked here,
and why: the kind overlay's MinIO and Prometheus (third-party images, run as their images' users); the storage
initializer KServe v0.20 injects into the predictor pod (the pod mutator gives it no securityContext; a
ClusterStorageContainer carrying one is the way to close that)."""

from pathlib import Path

import pytest

from devtools.containers import pods
from devtools.k8s_validate import render

pytestmark = pytest.mark.golden
ROOT = Path(__file__).resolve().parents[2]
THIRD_PARTY = {"Deployment/minio", "Deployment/prometheus"}


def _containers(pod):
    declared = pod.spec.get("initContainers", []) + pod.spec["containers"]
    if pod.source.startswith("InferenceService/"):  # what the user declares, not what KServe injects
        declared = [c for c in declared if c["name"] != "storage-initializer"]
    return declared


@pytest.mark.parametrize("overlay", ["kind", "production"])
def test_mlcycle_pods_are_restricted_with_a_read_only_root(overlay):
    found = [p for p in pods(render(ROOT / "manifests" / "overlays" / overlay)) if p.source not in THIRD_PARTY]
    assert {p.source for p in found} >= {"Deployment/fraud-detector-drift", "InferenceService/fraud-detector"}
    problems = []
    for pod in found:
        spec, psc = pod.spec, pod.spec.get("securityContext", {})
        if any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")):
            problems.append(f"{pod.source}: host namespaces")
        problems += [f"{pod.source}: hostPath volume {v['name']}" for v in spec.get("volumes", []) if "hostPath" in v]
        for c in _containers(pod):
            sc, where = c.get("securityContext", {}), f"{pod.source}/{c['name']}"
            seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
            caps = sc.get("capabilities", {})
            checks = {
                "seccompProfile RuntimeDefault": seccomp == "RuntimeDefault",
                "runAsNonRoot": sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True,
                "allowPrivilegeEscalation false": sc.get("allowPrivilegeEscalation") is False,
                "capabilities drop ALL": "ALL" in caps.get("drop", [])
                and set(caps.get("add", [])) <= {"NET_BIND_SERVICE"},
                "not privileged": not sc.get("privileged"),
                "readOnlyRootFilesystem": sc.get("readOnlyRootFilesystem") is True,
            }
            problems += [f"{where}: {name}" for name, ok in checks.items() if not ok]
    assert not problems, "\n".join(problems)
