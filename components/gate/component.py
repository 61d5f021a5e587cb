from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Model, Output

from components.image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def gate(
    model: Input[Model],
    test: Input[Dataset],
    evaluation: Input[Artifact],
    label: str,
    registry_uri: str,
    model_name: str,
    primary_metric: str,
    thresholds: dict[str, float],
    min_improvement: float,
    confidence: float,
    decision: Output[Artifact],
    comparison: Output[HTML],
) -> bool:
    """Quality gate: absolute thresholds, then champion/challenger against the production model.

    Args:
        model: The challenger model bundle.
        test: Test rows; the champion is scored on exactly these.
        evaluation: The challenger's evaluation (metrics).
        label: Label column.
        registry_uri: Model registry holding the champion (alias production).
        model_name: Registered model name.
        primary_metric: Metric compared with the champion (e.g. roc_auc, rmse; "" = the task's default).
        thresholds: Metric bounds: minimum, or maximum for log_loss/rmse/mae/brier ({} = the task's defaults).
        min_improvement: Required gain over the champion (negative = tolerated regression).
        confidence: 0 = report the gain's paired-bootstrap interval; e.g. 0.95 = its lower bound must reach min_improvement.
        decision: The decision with every check and reason (JSON).
        comparison: Challenger and champion side by side on the same test set (HTML).

    Returns:
        Whether the challenger may be registered and rolled out.
    """
    import json
    from pathlib import Path

    import pandas as pd

    from components.gate.logic import gate as run
    from components.gate.logic import render_comparison, resolve_policy
    from mlcycle.registry import open_registry

    ev = json.loads(Path(evaluation.path).read_text())
    result = run(
        Path(model.path),
        pd.read_parquet(test.path),
        label,
        ev["metrics"],
        resolve_policy(ev["task"], primary_metric, dict(thresholds), min_improvement, confidence),
        open_registry(registry_uri),
        model_name,
    )
    Path(decision.path).write_text(json.dumps(result.as_dict(), indent=2))
    Path(comparison.path).write_text(render_comparison(result))
    decision.metadata["passed"] = result.passed
    print(("GATE PASSED" if result.passed else "GATE FAILED") + "\n  " + "\n  ".join(result.reasons))
    return result.passed
