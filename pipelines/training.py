"""The training pipeline: ingest → validate → split → train → tune → evaluate → gate → [passed] register
→ [deploy] shadow → [passed] deploy_canary."""

from kfp import dsl, kubernetes

from components.build_detector.component import build_detector
from components.deploy_canary.component import deploy_canary
from components.evaluate.component import evaluate
from components.gate.component import gate
from components.ingest.component import ingest
from components.register.component import register
from components.shadow.component import shadow
from components.split.component import split
from components.train.component import train
from components.tune.component import tune
from components.validate_data.component import validate_data
from mlcycle import defaults
from mlcycle import shadow as shadowing
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
    shadow_hours: float = shadowing.WINDOW_HOURS,
    shadow_min_requests: int = shadowing.ShadowPolicy.min_requests,
    shadow_min_agreement: float = shadowing.ShadowPolicy.min_agreement,
    shadow_max_accuracy_drop: float = shadowing.ShadowPolicy.max_accuracy_drop,
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
        shadow_hours: Before the canary, the candidate replays production's traffic captured in this many hours.
        shadow_min_requests: Fewer replayed requests stop the candidate before the canary.
        shadow_min_agreement: Share of replayed requests both models decide alike (while labels are too few).
        shadow_max_accuracy_drop: Largest tolerated drop of online balanced accuracy against production.
        canary_interval_s: Seconds between canary analyses.
        canary_threshold: Failed checks before rollback.
        canary_step_weight: Canary weight step (percent).
        canary_max_weight: Weight at which a passing check promotes.
        canary_max_error_rate: Highest tolerated error rate.
        canary_max_p99_ms: Highest tolerated p99 latency (ms).
    """  # noqa: E501 (KFP shows each parameter's line as its description)
    # Arguments that several steps take, named once: where the model lives, the data's columns, how models are scored.
    registry = {"registry_uri": registry_uri, "model_name": model_name}
    columns = {"label": label, "task": task, "timestamp_column": timestamp_column}
    scoring = {"seed": seed, "primary_metric": primary_metric}
    data = ingest(source=source, demo_rows=demo_rows, seed=seed)
    dataset = data.outputs["dataset"]
    checked = validate_data(dataset=dataset, max_categories=max_categories, **columns, **registry)
    contract = checked.outputs["contract"]
    shares = {"val_fraction": val_fraction, "test_fraction": test_fraction}
    parts = split(dataset=dataset, contract=contract, **shares, seed=seed, timestamp_column=timestamp_column)
    train_set, test_set = parts.outputs["train"], parts.outputs["test"]
    fit_on = {"train": train_set, "validation": parts.outputs["validation"], "contract": contract}
    trained = train(**fit_on, families=families, **scoring)
    search = {"n_trials": n_trials, "cv_folds": cv_folds, "threshold_policy": threshold_policy}
    tuned = tune(
        **fit_on, trained_model=trained.outputs["model"], family=trained.outputs["Output"], **search, **scoring
    )
    model = tuned.outputs["model"]
    evaluated = evaluate(model=model, test=test_set, contract=contract, segment_column=segment_column, **scoring)
    scored = {"model": model, "test": test_set, "evaluation": evaluated.outputs["evaluation"]}
    bar = {"thresholds": thresholds, "min_improvement": min_improvement, "confidence": min_improvement_confidence}
    gated = gate(**scored, label=label, primary_metric=primary_metric, **bar, **registry)
    gated.set_caching_options(False)  # the champion lives outside the pipeline's inputs
    checked.set_caching_options(False)  # so does the production contract
    with dsl.If(gated.outputs["Output"] == True, name="gate-passed"):  # noqa: E712 (KFP condition syntax)
        reference = {"train": train_set, "contract": contract, "seed": seed}
        detector = build_detector(**reference, backend=drift_backend, p_val=drift_p_val)
        registered = register(
            **scored,
            contract=contract,
            train=train_set,
            decision=gated.outputs["decision"],
            report=evaluated.outputs["report"],
            drift_detector=detector.outputs["detector"],
            dataset_fingerprint=data.outputs["Output"],
            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            auto_promote=auto_promote,
            trigger=trigger,
            trigger_evidence=trigger_evidence,
            **registry,
        )
        registered.set_caching_options(False)
        with_s3_credentials(registered)
        with dsl.If(deploy == True, name="deploy"):  # noqa: E712
            version = registered.outputs["Output"]
            shadowed = shadow(
                version=version,
                hours=shadow_hours,
                trigger=trigger,
                min_requests=shadow_min_requests,
                min_agreement=shadow_min_agreement,
                max_accuracy_drop=shadow_max_accuracy_drop,
                **registry,
            )
            shadowed.set_caching_options(False)  # the captured traffic lives outside the pipeline's inputs
            with_s3_credentials(shadowed)
            with dsl.If(shadowed.outputs["Output"] == True, name="shadow-passed"):  # noqa: E712
                where = {
                    "inference_service": inference_service,
                    "namespace": namespace,
                    "prometheus_url": prometheus_url,
                }
                steps = {
                    "threshold": canary_threshold,
                    "step_weight": canary_step_weight,
                    "max_weight": canary_max_weight,
                }
                bounds = {"max_error_rate": canary_max_error_rate, "max_p99_ms": canary_max_p99_ms}
                rollout = deploy_canary(
                    version=version, interval_s=canary_interval_s, **registry, **where, **steps, **bounds
                )
                rollout.set_caching_options(False)
                with_s3_credentials(rollout)
    for task in (data, checked, gated):
        with_s3_credentials(task)
