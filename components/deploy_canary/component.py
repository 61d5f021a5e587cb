from kfp import dsl

from components.image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def deploy_canary(
    registry_uri: str,
    model_name: str,
    version: str,
    inference_service: str,
    namespace: str,
    prometheus_url: str,
    interval_s: float,
    threshold: int,
    step_weight: int,
    max_weight: int,
    max_error_rate: float,
    max_p99_ms: float,
) -> str:
    """Roll the registered version out as a KServe canary; promote or roll back automatically.

    Args:
        registry_uri: s3:// registry holding the version.
        model_name: Registered model name.
        version: Version to roll out.
        inference_service: Name of the InferenceService serving the model.
        namespace: Its namespace (the pipeline's ServiceAccount needs the mlcycle-pipeline-deployer Role there).
        prometheus_url: Prometheus with the predictor's metrics.
        interval_s: Seconds between analyses.
        threshold: Failed checks before rollback.
        step_weight: Canary weight increment (percent).
        max_weight: Weight at which a passing check promotes.
        max_error_rate: Highest tolerated 5xx share.
        max_p99_ms: Highest tolerated p99 latency.

    Returns:
        "promote" or "rollback".
    """
    from components.deploy_canary.logic import default_policy
    from components.deploy_canary.logic import deploy_canary as run
    from mlcycle.registry import open_registry

    return run(
        open_registry(registry_uri),
        model_name,
        version,
        inference_service,
        namespace,
        prometheus_url,
        default_policy(interval_s, threshold, step_weight, max_weight, max_error_rate, max_p99_ms),
    )
