"""The Kubernetes side of the rollout: patch bodies for both KServe canary APIs (pure functions),
an adapter that applies them to an InferenceService and reads its readiness from the status fields KServe
writes, and the HTTPRoute that splits traffic in Standard mode.

- Knative mode (legacy name Serverless): the canary is the latest revision;
  ``spec.predictor.canaryTrafficPercent`` is its share, the previous rolled-out revision keeps the rest.
  Promotion removes the field (100 % latest); rollback sets it to 0 and restores the stable STORAGE_URI.
  Readiness: ``status.components.predictor.latestReadyRevision == latestCreatedRevision``.
- Standard mode (legacy name RawDeployment), KServe v0.20: ``spec.canary: [{predictor, trafficPercent}]``
  next to the stable ``spec.predictor``. KServe's webhook requires the canary's ``predictor.name`` (a DNS
  label other than the stable's) and refuses ``maxReplicas``; KServe creates the canary's Deployment and
  Service ``<isvc>-<name>-predictor`` and reports ``status.canaryStatuses[{name, ready, trafficPercent}]``,
  but v0.20.0 routes no traffic to it. mlcycle therefore owns an HTTPRoute ``<isvc>-mlcycle`` whose
  weighted backendRefs are the stable and canary predictor Services at ``100 - w`` / ``w`` (Flagger's
  Gateway API pattern; the shape later KServe releases write themselves). Promotion sets
  ``spec.predictor`` to the canary's predictor (its name included: a name change with a model change)
  and drops the entry; rollback drops the entry; the route follows.
The mode is read from ``status.deploymentMode`` (what KServe decided), else the annotation.
Writes are merge patches (RBAC verb ``patch``), never PUTs.
"""

import copy
import re
import time

from mlcycle.errors import MlcycleError
from mlcycle.rollout.policy import Action

SERVERLESS, STANDARD = "serverless", "standard"  # SERVERLESS: KServe's Knative mode
MODES = {"knative": SERVERLESS, "serverless": SERVERLESS, "standard": STANDARD, "rawdeployment": STANDARD}
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
ROUTE_GROUP, ROUTE_VERSION, ROUTE_PLURAL = "gateway.networking.k8s.io", "v1", "httproutes"
DEFAULT_GATEWAY = ("kserve", "kserve-ingress-gateway")
# Fields KServe's webhook refuses on a canary predictor ("canary uses fixed replicas").
SCALING_FIELDS = ("maxReplicas", "scaleTarget", "scaleMetric", "scaleMetricType", "autoScaling")
CANARY_FORBIDDEN = (*SCALING_FIELDS, "canaryTrafficPercent")


class RolloutError(MlcycleError):
    pass


def detect_mode(isvc: dict) -> str:
    """The canary API of an InferenceService: KServe's effective mode first (status), then the annotation."""
    declared = (
        isvc.get("status", {}).get("deploymentMode")
        or (isvc.get("metadata", {}).get("annotations", {}) or {}).get(MODE_ANNOTATION)
        or ""
    )
    if not declared:
        return SERVERLESS  # KServe's Helm default (Knative)
    mode = MODES.get(declared.lower())
    if mode is None:
        raise RolloutError(
            f"unknown KServe deployment mode {declared!r} (expected Knative, Standard, Serverless or RawDeployment)"
        )
    return mode


def version_of(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def canary_name(canary_uri: str) -> str:
    """The canary predictor's name: a lowercase DNS label from the version id (``c-v20261201t…-e92c3a``)."""
    label = re.sub(r"[^a-z0-9-]+", "-", version_of(canary_uri).lower()).strip("-")
    return ("c-" + label)[:40].rstrip("-")


def predictor_service(isvc_name: str, predictor: dict) -> str:
    """The Service KServe creates for a predictor (Standard mode)."""
    name = predictor.get("name")
    return f"{isvc_name}-{name}-predictor" if name else f"{isvc_name}-predictor"


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
        spec["canary"] = [{"predictor": canary_predictor(spec["predictor"], canary_uri), "trafficPercent": weight}]
    return out


def canary_predictor(stable: dict, canary_uri: str) -> dict:
    """The stable predictor with the canary's model, a name of its own and fixed replicas (what KServe's webhook accepts).

    Resources and everything else are the stable's, so promotion restarts nothing."""
    predictor = {k: v for k, v in _with_storage_uri(stable, canary_uri).items() if k not in CANARY_FORBIDDEN}
    predictor["name"] = canary_name(canary_uri)
    # One pod even at 0 % (KServe would run ceil(stable minimum x 0 %) = 0 and the canary could never get ready),
    # never more than the stable's minimum (the webhook's rule).
    stable_min = stable.get("minReplicas")
    predictor["minReplicas"] = 1 if stable_min is None else min(1, stable_min)
    return predictor


def promote_patch(isvc: dict, mode: str) -> dict:
    out = copy.deepcopy(isvc)
    if mode == SERVERLESS:
        out["spec"]["predictor"].pop("canaryTrafficPercent", None)
    else:
        canary = out["spec"].pop("canary", None)
        if not canary:
            raise RolloutError("nothing to promote: spec.canary is empty")
        promoted = copy.deepcopy(canary[0]["predictor"])
        for key in SCALING_FIELDS:  # the stable's scaling stays
            if key in out["spec"]["predictor"]:
                promoted[key] = out["spec"]["predictor"][key]
        if "minReplicas" in out["spec"]["predictor"]:
            promoted["minReplicas"] = out["spec"]["predictor"]["minReplicas"]
        out["spec"]["predictor"] = promoted
    return out


def rollback_patch(isvc: dict, mode: str, stable_uri: str) -> dict:
    out = copy.deepcopy(isvc)
    if mode == SERVERLESS:
        out["spec"]["predictor"] = _with_storage_uri(out["spec"]["predictor"], stable_uri)
        out["spec"]["predictor"]["canaryTrafficPercent"] = 0
    else:
        out["spec"].pop("canary", None)
    return out


def merge_patch(before: dict, after: dict) -> dict:
    """The JSON merge patch (RFC 7386) of ``spec`` that turns ``before`` into ``after``."""

    def diff(a, b):
        if not isinstance(a, dict) or not isinstance(b, dict):
            return b
        out = {k: None for k in a if k not in b}
        for k, v in b.items():
            if k not in a or a[k] != v:
                out[k] = diff(a.get(k), v)
        return out

    return {"spec": diff(before.get("spec", {}), after.get("spec", {}))}


def route_body(
    isvc_name: str, namespace: str, backends: list[tuple[str, int]], gateway: tuple[str, str] = DEFAULT_GATEWAY
) -> dict:
    """mlcycle's HTTPRoute for an InferenceService: weighted backendRefs over the predictor Services."""
    return {
        "apiVersion": f"{ROUTE_GROUP}/{ROUTE_VERSION}",
        "kind": "HTTPRoute",
        "metadata": {
            "name": f"{isvc_name}-mlcycle",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "mlcycle", "serving.kserve.io/inferenceservice": isvc_name},
        },
        "spec": {
            "parentRefs": [{"group": ROUTE_GROUP, "kind": "Gateway", "namespace": gateway[0], "name": gateway[1]}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [
                        {"group": "", "kind": "Service", "name": name, "port": 80, "weight": weight}
                        for name, weight in backends
                    ],
                }
            ],
        },
    }


def route_backends(isvc: dict) -> list[tuple[str, int]]:
    """What the route must say for the InferenceService as it stands: stable 100 - Σ canary %, each canary its percent."""
    name, spec = isvc["metadata"]["name"], isvc["spec"]
    canaries = spec.get("canary") or []
    total = sum(int(c.get("trafficPercent") or 0) for c in canaries)
    return [(predictor_service(name, spec["predictor"]), 100 - total)] + [
        (predictor_service(name, c["predictor"]), int(c.get("trafficPercent") or 0)) for c in canaries
    ]


class KServeAdapter:
    """Applies rollout actions to one InferenceService (needs the mlcycle-rollout Role).

    Every write is a merge patch; a write KServe's webhook or RBAC refuses raises RolloutError with the
    apiserver's own reason (the InferenceService is left as it was). After a write the adapter waits until
    KServe's status reflects it (canaryStatuses in Standard mode, the latest revision in Knative mode)."""

    def __init__(
        self,
        name: str,
        namespace: str,
        stable_uri: str,
        canary_uri: str,
        registry=None,
        model: str = "",
        api=None,
        timeout_s: float = 300,
        gateway: tuple[str, str] = DEFAULT_GATEWAY,
        poll_s: float = 0.5,
        unreachable_s: float = 60,
    ):
        from kubernetes import client, config

        if api is None:
            config.load_config()
            api = client.CustomObjectsApi()
        self.api, self.name, self.namespace, self.gateway, self.poll_s = api, name, namespace, gateway, poll_s
        self.unreachable_s = unreachable_s
        self.stable_uri, self.canary_uri, self.registry, self.model, self.timeout_s = (
            stable_uri,
            canary_uri,
            registry,
            model,
            timeout_s,
        )
        self.mode = detect_mode(self.get())

    def _call(self, what: str, fn, *args, **kwargs):
        """One API call: refusals become RolloutError with the apiserver's reason; an unreachable apiserver
        (restart, network blip) is retried for ``unreachable_s`` seconds, then reported."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        deadline = time.monotonic() + self.unreachable_s
        while True:
            try:
                return fn(*args, **kwargs)
            except ApiException as e:
                if e.status in (500, 502, 503, 504) and time.monotonic() < deadline:  # apiserver starting up
                    time.sleep(self.poll_s)
                    continue
                raise RolloutError(
                    f"{what} {self.namespace}/{self.name} refused ({e.status} {e.reason}): {_api_message(e)}"
                ) from None
            except (urllib3.exceptions.HTTPError, OSError) as e:
                if time.monotonic() >= deadline:
                    raise RolloutError(
                        f"{what} {self.namespace}/{self.name}: the API server is unreachable ({type(e).__name__}: {e})"
                    ) from None
                time.sleep(self.poll_s)

    def _isvc(self, what: str, fn, *body):
        """``_call`` on this InferenceService (``body``: a patch's, when there is one)."""
        return self._call(what, fn, GROUP, VERSION, self.namespace, PLURAL, self.name, *body)

    def get(self) -> dict:
        return self._isvc("get InferenceService", self.api.get_namespaced_custom_object)

    def write(self, desired: dict) -> dict:
        """Move the InferenceService to ``desired`` (a patched copy of it) and wait until KServe reports it."""
        current = self.get()
        patch = merge_patch(current, desired)
        updated = self._isvc("patch InferenceService", self.api.patch_namespaced_custom_object, patch)
        if self.mode == STANDARD:
            try:
                self.sync_route(updated)
            except RolloutError:  # the route could not follow: put the InferenceService back as it was
                restore = merge_patch(updated, current)
                self._isvc("restore InferenceService", self.api.patch_namespaced_custom_object, restore)
                raise
        self.wait_reconciled(updated, current)
        return updated

    def sync_route(self, isvc: dict) -> dict:
        """Create or update mlcycle's HTTPRoute so its weights equal the InferenceService's split."""
        body = route_body(self.name, self.namespace, route_backends(isvc), self.gateway)
        args = (ROUTE_GROUP, ROUTE_VERSION, self.namespace, ROUTE_PLURAL)
        try:
            self._call("get HTTPRoute for", self._get_raw, *args, body["metadata"]["name"])
        except _NotFound:
            return self._call(
                "create HTTPRoute for", self.api.create_namespaced_custom_object, *args, body, field_validation="Strict"
            )
        # A merge patch replaces the backendRefs list as a whole: the route says exactly the current split.
        return self._call(
            "patch HTTPRoute for",
            self.api.patch_namespaced_custom_object,
            *args,
            body["metadata"]["name"],
            {"spec": body["spec"]},
            field_validation="Strict",
        )

    def _get_raw(self, *args):
        from kubernetes.client.exceptions import ApiException

        try:
            return self.api.get_namespaced_custom_object(*args)
        except ApiException as e:
            if e.status == 404:
                raise _NotFound() from None
            raise

    def route_weights(self) -> dict[str, int]:
        route = self._call(
            "get HTTPRoute for",
            self.api.get_namespaced_custom_object,
            ROUTE_GROUP,
            ROUTE_VERSION,
            self.namespace,
            ROUTE_PLURAL,
            f"{self.name}-mlcycle",
        )
        return {b["name"]: b.get("weight", 1) for b in route["spec"]["rules"][0]["backendRefs"]}

    def wait_reconciled(self, written: dict, before: dict) -> None:
        """Until KServe's status shows the spec just written (not observedGeneration: KServe copies it from a child).

        Standard mode: ``canaryStatuses`` lists exactly the written canaries at their percents. Knative mode: when the
        model changed, a new revision was created (``latestCreatedRevision`` moved); a weight-only change makes none."""
        deadline = time.monotonic() + self.timeout_s
        canaries = {
            c["predictor"]["name"]: int(c.get("trafficPercent") or 0) for c in written["spec"].get("canary") or []
        }
        old_revision = before.get("status", {}).get("components", {}).get("predictor", {}).get("latestCreatedRevision")
        new_model = storage_uri(written["spec"]["predictor"]) != storage_uri(before["spec"]["predictor"])
        while time.monotonic() < deadline:
            status = self.get().get("status", {})
            if self.mode == STANDARD:
                seen = {c.get("name"): int(c.get("trafficPercent") or 0) for c in status.get("canaryStatuses") or []}
                if seen == canaries:
                    return
            else:
                created = status.get("components", {}).get("predictor", {}).get("latestCreatedRevision")
                if not new_model or (created and created != old_revision):
                    return
            time.sleep(self.poll_s)
        raise RolloutError(
            f"{self.namespace}/{self.name}: KServe did not report the written canary state within {self.timeout_s}s"
        )

    def observe_canary(self) -> tuple[str | None, bool]:
        isvc = self.get()
        status = isvc.get("status", {})
        if self.mode == SERVERLESS:
            predictor = status.get("components", {}).get("predictor", {})
            created, ready = predictor.get("latestCreatedRevision"), predictor.get("latestReadyRevision")
            if storage_uri(isvc["spec"]["predictor"]) != self.canary_uri:
                return None, False
            return created, created is not None and created == ready
        if not isvc["spec"].get("canary"):
            return None, False
        name = isvc["spec"]["canary"][0]["predictor"].get("name")
        canary = next((c for c in status.get("canaryStatuses") or [] if c.get("name") == name), None)
        return storage_uri(isvc["spec"]["canary"][0]["predictor"]), bool(canary and canary.get("ready"))

    def start(self, weight: int = 0) -> None:
        self.write(canary_patch(self.get(), self.mode, self.canary_uri, weight))

    def apply(self, action: Action) -> None:
        isvc = self.get()
        if action.kind in ("set_weight", "restart"):
            self.write(canary_patch(isvc, self.mode, self.canary_uri, action.weight))
        elif action.kind == "promote":
            self.write(promote_patch(isvc, self.mode))
            if self.registry is not None:
                self.registry.promote(
                    self.model,
                    version_of(self.canary_uri),
                    actor="rollout-controller",
                    why=action.reason,
                    evidence=action.evidence,
                )
        elif action.kind == "rollback":
            self.write(rollback_patch(isvc, self.mode, self.stable_uri))
            if self.registry is not None:
                self.registry.audit(
                    self.model,
                    "rollback",
                    version=version_of(self.canary_uri),
                    actor="rollout-controller",
                    why=action.reason,
                    evidence=action.evidence,
                )


class _NotFound(Exception):
    pass


def _api_message(e) -> str:
    import json

    try:
        return json.loads(e.body).get("message") or str(e.body)
    except (TypeError, ValueError):
        return str(e.body or e.reason)
