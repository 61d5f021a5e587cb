"""The Kubernetes side of the rollout: patch bodies for both KServe canary APIs (pure functions),
and an adapter that applies them to an InferenceService and reads its readiness.

- Serverless (Knative) mode: the canary is the latest revision; ``spec.predictor.canaryTrafficPercent``
  is its share, the previous ready revision keeps the rest. Promotion removes the field (100 %
  latest); rollback sets it to 0 and restores the stable STORAGE_URI.
- Standard (raw Deployment) mode, KServe >= 0.20: ``spec.canary: [{predictor, trafficPercent}]``
  next to the stable ``spec.predictor``. Promotion moves the canary predictor into
  ``spec.predictor``; rollback removes ``spec.canary``.
The adapter detects the mode from the deployment-mode annotation/status and, for Standard mode,
checks that the cluster's InferenceService CRD has ``spec.canary``.
"""

import copy
import time

from inference.rollout.policy import Action
from mlcycle.errors import MlcycleError

SERVERLESS, STANDARD = "serverless", "standard"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"


class RolloutError(MlcycleError):
    pass


def detect_mode(isvc: dict, crd_has_canary_list: bool = True) -> str:
    declared = (isvc.get("metadata", {}).get("annotations", {}) or {}).get(MODE_ANNOTATION) or isvc.get("status", {}).get("deploymentMode", "")
    if declared.lower() in ("serverless", ""):
        return SERVERLESS
    if declared.lower() in ("standard", "rawdeployment"):
        if not crd_has_canary_list:
            raise RolloutError("this KServe's InferenceService CRD has no spec.canary (Standard-mode canaries need KServe >= 0.20)")
        return STANDARD
    raise RolloutError(f"unknown KServe deployment mode {declared!r}")


def _with_storage_uri(predictor: dict, storage_uri: str) -> dict:
    predictor = copy.deepcopy(predictor)
    if predictor.get("model"):
        predictor["model"]["storageUri"] = storage_uri
        return predictor
    container = predictor["containers"][0]
    env = [e for e in container.get("env", []) if e.get("name") != "STORAGE_URI"]
    container["env"] = [{"name": "STORAGE_URI", "value": storage_uri}] + env
    return predictor


def storage_uri(predictor: dict) -> str | None:
    if predictor.get("model"):
        return predictor["model"].get("storageUri")
    for e in predictor.get("containers", [{}])[0].get("env", []):
        if e.get("name") == "STORAGE_URI":
            return e.get("value")
    return None


def canary_patch(isvc: dict, mode: str, canary_uri: str, weight: int) -> dict:
    """The InferenceService with ``canary_uri`` as the canary at ``weight`` percent."""
    out = copy.deepcopy(isvc)
    spec = out["spec"]
    if mode == SERVERLESS:
        spec["predictor"] = _with_storage_uri(spec["predictor"], canary_uri)
        spec["predictor"]["canaryTrafficPercent"] = weight
    else:
        stable = {k: v for k, v in spec["predictor"].items() if k != "canaryTrafficPercent"}
        spec["canary"] = [{"predictor": _with_storage_uri(stable, canary_uri), "trafficPercent": weight}]
    return out


def promote_patch(isvc: dict, mode: str) -> dict:
    out = copy.deepcopy(isvc)
    if mode == SERVERLESS:
        out["spec"]["predictor"].pop("canaryTrafficPercent", None)
    else:
        canary = out["spec"].pop("canary", None)
        if not canary:
            raise RolloutError("nothing to promote: spec.canary is empty")
        out["spec"]["predictor"] = canary[0]["predictor"]
    return out


def rollback_patch(isvc: dict, mode: str, stable_uri: str) -> dict:
    out = copy.deepcopy(isvc)
    if mode == SERVERLESS:
        out["spec"]["predictor"] = _with_storage_uri(out["spec"]["predictor"], stable_uri)
        out["spec"]["predictor"]["canaryTrafficPercent"] = 0
    else:
        out["spec"].pop("canary", None)
    return out


class KServeAdapter:
    """Applies rollout actions to one InferenceService (needs the mlcycle-rollout Role)."""

    def __init__(self, name: str, namespace: str, stable_uri: str, canary_uri: str, registry=None, model: str = "",
                 api=None, timeout_s: float = 300):
        from kubernetes import client, config

        if api is None:
            config.load_config()
            api = client.CustomObjectsApi()
        self.api, self.name, self.namespace = api, name, namespace
        self.stable_uri, self.canary_uri, self.registry, self.model, self.timeout_s = stable_uri, canary_uri, registry, model, timeout_s
        self.mode = detect_mode(self.get())

    def get(self) -> dict:
        return self.api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name)

    def replace(self, body: dict) -> dict:
        updated = self.api.replace_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name, body)
        self.wait_observed(updated["metadata"]["generation"])
        return updated

    def wait_observed(self, generation: int) -> None:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self.get().get("status", {}).get("observedGeneration", 0) >= generation:
                return
            time.sleep(1)
        raise RolloutError(f"{self.namespace}/{self.name} did not observe generation {generation} within {self.timeout_s}s")

    def observe_canary(self) -> tuple[str | None, bool]:
        isvc = self.get()
        status = isvc.get("status", {})
        if self.mode == SERVERLESS:
            predictor = status.get("components", {}).get("predictor", {})
            created, ready = predictor.get("latestCreatedRevision"), predictor.get("latestReadyRevision")
            if storage_uri(isvc["spec"]["predictor"]) != self.canary_uri:
                return None, False
            return created, created is not None and created == ready
        canaries = status.get("canaryStatuses") or []
        if not isvc["spec"].get("canary"):
            return None, False
        return storage_uri(isvc["spec"]["canary"][0]["predictor"]), bool(canaries and canaries[0].get("ready"))

    def start(self, weight: int = 0) -> None:
        self.replace(canary_patch(self.get(), self.mode, self.canary_uri, weight))

    def apply(self, action: Action) -> None:
        isvc = self.get()
        if action.kind in ("set_weight", "restart"):
            self.replace(canary_patch(isvc, self.mode, self.canary_uri, action.weight))
        elif action.kind == "promote":
            self.replace(promote_patch(isvc, self.mode))
            if self.registry is not None:
                self.registry.promote(self.model, self.canary_uri.rstrip("/").rsplit("/", 1)[-1], actor="rollout-controller",
                                      why=action.reason, evidence=action.evidence)
        elif action.kind == "rollback":
            self.replace(rollback_patch(isvc, self.mode, self.stable_uri))
            if self.registry is not None:
                self.registry.audit(self.model, "rollback", version=self.canary_uri.rstrip("/").rsplit("/", 1)[-1], actor="rollout-controller",
                                    why=action.reason, evidence=action.evidence)
