"""Deploy a registered version as the canary of an InferenceService and run the rollout loop:
weight steps, Prometheus analysis, automatic promotion (registry ``production`` moves) or rollback."""

from mlcycle.registry import Registry
from mlcycle.rollout import controller
from mlcycle.rollout.kserve import STANDARD, KServeAdapter, RolloutError, storage_uri
from mlcycle.rollout.metrics import KSERVE_QUERIES, STANDARD_QUERIES, PrometheusProvider
from mlcycle.rollout.policy import Policy, with_checks


def version_uri(registry: Registry, model: str, version: str) -> str:
    if not registry.uri.startswith("s3://"):
        raise RolloutError(f"a cluster rollout needs an s3:// registry, not {registry.uri}")
    return f"{registry.uri}/{model}/{version}/"


def deploy_canary(
    registry: Registry,
    model: str,
    version: str,
    isvc: str,
    namespace: str,
    prometheus_url: str,
    policy: Policy,
    adapter: KServeAdapter | None = None,
    log=print,
) -> str:
    canary = version_uri(registry, model, version)
    aliases, _ = registry.aliases(model)
    if aliases.get("production") == version:
        log(f"deploy_canary: {model} {version} is already production (identical retrain); nothing to roll out")
        return "unchanged"
    registry.set_alias(model, "candidate", version, why="deploy_canary")
    if adapter is None:
        from kubernetes import client, config

        config.load_config()
        api = client.CustomObjectsApi()
        current = api.get_namespaced_custom_object("serving.kserve.io", "v1beta1", namespace, "inferenceservices", isvc)
        stable = storage_uri(current["spec"]["predictor"])
        adapter = KServeAdapter(isvc, namespace, stable, canary, registry, model, api=api)
    registry.audit(
        model,
        "deploy",
        version=version,
        why=f"canary of {namespace}/{isvc} ({adapter.mode} mode)",
        evidence={"stable": adapter.stable_uri},
    )
    adapter.start(weight=0)
    queries = STANDARD_QUERIES if adapter.mode == STANDARD else KSERVE_QUERIES  # Standard mode has no Knative metrics
    final = controller.run(
        adapter,
        PrometheusProvider(prometheus_url, queries, window=f"{int(policy.interval_s)}s"),
        policy,
        adapter.stable_uri,
        on_action=lambda a: log(controller.describe(a)),
    )
    return final.kind


def default_policy(
    interval_s: float, threshold: int, step_weight: int, max_weight: int, max_error_rate: float, max_p99_ms: float
) -> Policy:
    pace = {"interval_s": interval_s, "threshold": threshold, "step_weight": step_weight, "max_weight": max_weight}
    return with_checks(max_error_rate=max_error_rate, max_p99_ms=max_p99_ms, drift=True, **pace)
