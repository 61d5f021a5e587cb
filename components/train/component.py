from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components.image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def train(
    train: Input[Dataset],
    validation: Input[Dataset],
    contract: Input[Artifact],
    families: list[str],
    seed: int,
    primary_metric: str,
    model: Output[Model],
    leaderboard: Output[Metrics],
) -> str:
    """Train the baseline and candidate families; keep the best on validation.

    Args:
        train: Training rows.
        validation: Validation rows (model selection).
        contract: Data contract (feature kinds for preprocessing).
        families: Candidate families: baseline, logreg, hgb, xgboost.
        seed: Seed of every estimator.
        primary_metric: Metric that picks the best candidate ("" = the task's default).
        model: The best candidate as a model bundle directory.
        leaderboard: Validation metric of every candidate.

    Returns:
        The best family's name.
    """
    from pathlib import Path

    import pandas as pd

    from components.train.logic import train as run
    from mlcycle.contract import DataContract

    result = run(
        pd.read_parquet(train.path),
        pd.read_parquet(validation.path),
        DataContract.model_validate_json(Path(contract.path).read_text()),
        Path(model.path),
        families,
        seed,
        primary_metric,
    )
    for cand in result.leaderboard:
        if result.primary_metric in cand.metrics:
            leaderboard.log_metric(f"{cand.family}_{result.primary_metric}", cand.metrics[result.primary_metric])
    model.metadata.update(
        {"family": result.best_family, "framework": "xgboost" if result.best_family == "xgboost" else "sklearn"}
    )
    return result.best_family
