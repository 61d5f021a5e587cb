from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components.image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def evaluate(
    model: Input[Model],
    test: Input[Dataset],
    contract: Input[Artifact],
    segment_column: str,
    seed: int,
    primary_metric: str,
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    report: Output[HTML],
    evaluation: Output[Artifact],
):
    """Score the model on the held-out test split.

    Args:
        model: Model bundle to evaluate.
        test: Test rows.
        contract: Data contract.
        segment_column: Column for per-segment metrics (bias check); "" for none.
        seed: Seed of the permutation importance.
        primary_metric: Metric of the permutation importance ("" = the task's default).
        metrics: Scalar test metrics.
        classification_metrics: Confusion matrix and ROC curve (classification).
        report: HTML report with plots.
        evaluation: Everything above as JSON, for the gate and the registry.
    """
    import json
    from dataclasses import asdict
    from pathlib import Path

    from components.evaluate.logic import run
    from mlcycle.contract import DataContract

    ev = run(
        Path(model.path),
        Path(test.path),
        DataContract.model_validate_json(Path(contract.path).read_text()),
        Path(report.path),
        segment_column,
        seed,
        primary_metric,
    )
    for name, value in ev.metrics.items():
        metrics.log_metric(name, value)
    if ev.confusion:
        classification_metrics.log_confusion_matrix([str(c) for c in ev.classes], ev.confusion)
    if ev.roc:
        classification_metrics.log_roc_curve(*ev.roc)
    Path(evaluation.path).write_text(json.dumps(asdict(ev), indent=2))
    print("test metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in ev.metrics.items()))
