"""The training pipeline: ingest → validate → split → train → tune → evaluate → gate → [passed] register."""

from kfp import dsl, kubernetes

from components.build_detector.component import build_detector
from components.deploy_canary.component import deploy_canary
from components.evaluate.component import evaluate
from components.gate.component import gate
from components.ingest.component import ingest
from components.register.component import register
from components.split.component import split
from components.train.component import train
from components.tune.component import tune
from components.validate_data.component import validate_data
from mlcycle import defaults
from mlcycle.rollout import policy as rollout

PIPELINE_NAME = "mlcycle-training"
DEFAULT_FAMILIES = ["baseline", "logreg", "hgb", "xgboost"]
# Thresholds of the bundled fraud demo (about 3 % positives); a user's run defaults to the task's own
# (mlcycle.metrics.DEFAULT_THRESHOLDS) when ``thresholds`` is empty.
DEMO_THRESHOLDS = {"pr_auc": 0.15, "roc_auc": 0.75}
# The Kubernetes Secret with the pipeline's (write) S3 credentials, under KServe's variable names.
# Never pipeline parameters: parameters are stored in plain text with every run.
S3_SECRET = "mlcycle-s3-pipeline"
S3_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "S3_VERIFY_SSL")


def with_s3_credentials(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Expose the S3 Secret to a step as environment variables (optional, so local and file:// runs need none)."""
    return kubernetes.use_secret_as_env(
        task, secret_name=S3_SECRET, secret_key_to_env={k: k for k in S3_ENV}, optional=True
    )


@dsl.pipeline(name=PIPELINE_NAME, description="Train, validate, gate and register a tabular model (mlcycle).")
def training_pipeline(
    source: str = "demo",
    demo_rows: int = defaults.DEMO_ROWS,
    seed: int = defaults.SEED,
    label: str = "is_fraud",
    task: str = "classification",
    timestamp_column: str = "",
    segment_column: str = "",
    max_categories: int = 1000,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    families: list[str] = DEFAULT_FAMILIES,
    n_trials: int = 6,
    cv_folds: int = 3,
    primary_metric: str = "",
    thresholds: dict[str, float] = {},  # noqa: B006 (KFP reads the literal default)
    threshold_policy: str = "f1",
    min_improvement: float = 0.0,
    min_improvement_confidence: float = 0.0,
    registry_uri: str = defaults.CLUSTER_REGISTRY,
    model_name: str = defaults.MODEL_NAME,
    auto_promote: bool = False,
    trigger: str = "manual",
    trigger_evidence: str = "",
    drift_backend: str = "alibi",
    drift_p_val: float = 0.05,
    deploy: bool = False,
    inference_service: str = defaults.MODEL_NAME,
    namespace: str = "mlcycle",
    prometheus_url: str = "http://prometheus.mlcycle.svc.cluster.local:9090",
    canary_interval_s: float = rollout.CLUSTER_INTERVAL_S,
    canary_threshold: int = rollout.Policy.threshold,
    canary_step_weight: int = rollout.Policy.step_weight,
    canary_max_weight: int = rollout.Policy.max_weight,
    canary_max_error_rate: float = rollout.MAX_ERROR_RATE,
    canary_max_p99_ms: float = rollout.MAX_P99_MS,
):
    """Train and validate a tabular model; register it only if it passes the quality gate.

    Args:
        source: CSV/Parquet path or s3:// URI of the training table; "demo" for the bundled synthetic fraud data.
        demo_rows: Rows of demo data.
        seed: Seed for data generation, splits, estimators and the search.
        label: Label column.
        task: "classification" or "regression".
        timestamp_column: Split by time on this column ("" = stratified random split).
        segment_column: Column for per-segment metrics ("" = none).
        max_categories: Refuse string columns with more distinct values (identifiers).
        val_fraction: Validation share.
        test_fraction: Test share.
        families: Candidate model families.
        n_trials: Hyperparameter search budget (0 = no search).
        cv_folds: Cross-validation folds during the search.
        primary_metric: Metric for model selection, the search and champion/challenger ("" = roc_auc for classification, rmse for regression).
        thresholds: Absolute metric bounds of the gate ({} = the task's defaults: roc_auc >= 0.7, or r2 >= 0.1).
        threshold_policy: Binary decision threshold, chosen on out-of-fold predictions: f1, precision:P, recall:R or cost:C (C = cost of a false positive / a false negative).
        min_improvement: Required gain over the production model (negative = tolerated regression).
        min_improvement_confidence: 0 = report the gain's paired-bootstrap interval only; e.g. 0.95 = its lower bound must reach min_improvement.
        registry_uri: Model registry: s3://bucket (credentials from a Kubernetes Secret) or a local directory.
        model_name: Registered model name.
        auto_promote: Move the production alias on registration (the local demo); on a cluster the canary rollout promotes.
        trigger: Why this run started: manual, drift, accuracy, schedule or new_data (recorded in the version's lineage).
        trigger_evidence: The trigger's evidence, a JSON object of at most 4 KiB ("" = none), recorded beside it.
        drift_backend: Drift statistics: "alibi" (alibi-detect) or "scipy".
        drift_p_val: Drift significance level (before the Bonferroni correction).
        deploy: Roll the registered version out as a KServe canary (cluster runs only).
        inference_service: InferenceService to roll out to.
        namespace: Its namespace.
        prometheus_url: Prometheus holding the predictor's metrics.
        canary_interval_s: Seconds between canary analyses.
        canary_threshold: Failed checks before rollback.
        canary_step_weight: Canary weight step (percent).
        canary_max_weight: Weight at which a passing check promotes.
        canary_max_error_rate: Highest tolerated error rate.
        canary_max_p99_ms: Highest tolerated p99 latency (ms).
    """  # noqa: E501 (KFP shows each parameter's line as its description)
    data = ingest(source=source, demo_rows=demo_rows, seed=seed)
    checked = validate_data(
        dataset=data.outputs["dataset"],
        label=label,
        task=task,
        timestamp_column=timestamp_column,
        registry_uri=registry_uri,
        model_name=model_name,
        max_categories=max_categories,
    )
    parts = split(
        dataset=data.outputs["dataset"],
        contract=checked.outputs["contract"],
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        timestamp_column=timestamp_column,
    )
    trained = train(
        train=parts.outputs["train"],
        validation=parts.outputs["validation"],
        contract=checked.outputs["contract"],
        families=families,
        seed=seed,
        primary_metric=primary_metric,
    )
    tuned = tune(
        train=parts.outputs["train"],
        validation=parts.outputs["validation"],
        contract=checked.outputs["contract"],
        trained_model=trained.outputs["model"],
        family=trained.outputs["Output"],
        n_trials=n_trials,
        cv_folds=cv_folds,
        seed=seed,
        primary_metric=primary_metric,
        threshold_policy=threshold_policy,
    )
    evaluated = evaluate(
        model=tuned.outputs["model"],
        test=parts.outputs["test"],
        contract=checked.outputs["contract"],
        segment_column=segment_column,
        seed=seed,
        primary_metric=primary_metric,
    )
    gated = gate(
        model=tuned.outputs["model"],
        test=parts.outputs["test"],
        evaluation=evaluated.outputs["evaluation"],
        label=label,
        registry_uri=registry_uri,
        model_name=model_name,
        primary_metric=primary_metric,
        thresholds=thresholds,
        min_improvement=min_improvement,
        confidence=min_improvement_confidence,
    )
    gated.set_caching_options(False)  # the champion lives outside the pipeline's inputs
    checked.set_caching_options(False)  # so does the production contract
    with dsl.If(gated.outputs["Output"] == True, name="gate-passed"):  # noqa: E712 (KFP condition syntax)
        detector = build_detector(
            train=parts.outputs["train"],
            contract=checked.outputs["contract"],
            backend=drift_backend,
            p_val=drift_p_val,
            seed=seed,
        )
        registered = register(
            model=tuned.outputs["model"],
            contract=checked.outputs["contract"],
            train=parts.outputs["train"],
            test=parts.outputs["test"],
            evaluation=evaluated.outputs["evaluation"],
            decision=gated.outputs["decision"],
            report=evaluated.outputs["report"],
            drift_detector=detector.outputs["detector"],
            registry_uri=registry_uri,
            model_name=model_name,
            dataset_fingerprint=data.outputs["Output"],
            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            auto_promote=auto_promote,
            trigger=trigger,
            trigger_evidence=trigger_evidence,
        )
        registered.set_caching_options(False)
        with_s3_credentials(registered)
        with dsl.If(deploy == True, name="deploy"):  # noqa: E712
            rollout = deploy_canary(
                registry_uri=registry_uri,
                model_name=model_name,
                version=registered.outputs["Output"],
                inference_service=inference_service,
                namespace=namespace,
                prometheus_url=prometheus_url,
                interval_s=canary_interval_s,
                threshold=canary_threshold,
                step_weight=canary_step_weight,
                max_weight=canary_max_weight,
                max_error_rate=canary_max_error_rate,
                max_p99_ms=canary_max_p99_ms,
            )
            rollout.set_caching_options(False)
            with_s3_credentials(rollout)
    for task in (data, checked, gated):
        with_s3_credentials(task)
