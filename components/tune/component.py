from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components.image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def tune(
    train: Input[Dataset],
    validation: Input[Dataset],
    contract: Input[Artifact],
    trained_model: Input[Model],
    family: str,
    n_trials: int,
    cv_folds: int,
    seed: int,
    primary_metric: str,
    threshold_policy: str,
    model: Output[Model],
    trials: Output[Metrics],
    trial_log: Output[Artifact],
):
    """Random search with cross-validation over the chosen family's hyperparameters.

    Args:
        train: Training rows (cross-validated, subsampled above 100k rows).
        validation: Validation rows (tuned vs default model).
        contract: Data contract.
        trained_model: The default-parameter model from train.
        family: Model family to tune.
        n_trials: Trial budget (0 keeps the trained model).
        cv_folds: Cross-validation folds.
        seed: Seed of the search and the folds.
        primary_metric: Metric the search optimises ("" = the task's default).
        threshold_policy: Decision threshold policy (binary): f1, precision:P, recall:R or cost:C (false positive / false negative cost).
        model: The better of the tuned and the default model.
        trials: Best CV score and the kept model's validation score.
        trial_log: Every trial as JSON lines.
    """
    import json
    from dataclasses import asdict
    from pathlib import Path

    import pandas as pd

    from components.tune.logic import tune as run
    from mlcycle.contract import DataContract

    result = run(
        pd.read_parquet(train.path),
        pd.read_parquet(validation.path),
        DataContract.model_validate_json(Path(contract.path).read_text()),
        family,
        Path(trained_model.path),
        Path(model.path),
        n_trials,
        cv_folds,
        seed,
        primary_metric=primary_metric,
        threshold_policy=threshold_policy,
    )
    Path(trial_log.path).write_text("".join(json.dumps(asdict(t)) + "\n" for t in result.trials))
    trials.log_metric("trials", len(result.trials))
    if result.tuned_val is not None:
        trials.log_metric(f"tuned_validation_{result.primary_metric}", result.tuned_val)
        trials.log_metric(f"default_validation_{result.primary_metric}", result.default_val)
    if result.threshold is not None:
        trials.log_metric("decision_threshold", round(result.threshold.threshold, 6))
    model.metadata.update({"family": family, "kept": result.kept, "params": result.best_params})
