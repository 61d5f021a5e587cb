"""Tune: seeded random search with k-fold cross-validation on the training split, within a trial
budget, every trial logged; the tuned model replaces the default one only if it is also better on the
validation split. Then the decision threshold (binary classification) is chosen by the run's policy on
out-of-fold predictions over train + validation (mlcycle.thresholds)."""

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlcycle import defaults
from mlcycle.contract import DataContract
from mlcycle.errors import ModelError
from mlcycle.fsutil import atomic_path
from mlcycle.metrics import LOWER_IS_BETTER, SCORERS, better, score_bundle, task_defaults
from mlcycle.models import ModelBundle, build_pipeline, encode_labels, fit_bundle, set_decision, split_xy
from mlcycle.thresholds import ThresholdChoice, ThresholdPolicy, choose_threshold

_LINEAR_C = [0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0]
_HGB = {
    "learning_rate": [0.03, 0.05, 0.08, 0.12, 0.2],
    "max_leaf_nodes": [15, 31, 63],
    "min_samples_leaf": [10, 20, 50, 100],
    "l2_regularization": [0.0, 0.1, 1.0],
}
_XGB = {
    "learning_rate": [0.03, 0.05, 0.08, 0.12, 0.2],
    "max_depth": [3, 4, 5, 6, 8],
    "n_estimators": [150, 300, 500],
    "min_child_weight": [1, 3, 10],
    "subsample": [0.7, 0.85, 1.0],
    "colsample_bytree": [0.7, 0.85, 1.0],
}
# Search spaces by (family, task); the names are the estimator's own (see mlcycle.models.FAMILY_DEFAULTS).
SEARCH_SPACES: dict[tuple[str, str], dict[str, list]] = {
    ("logreg", "classification"): {"C": _LINEAR_C},
    ("logreg", "regression"): {"alpha": [1.0 / c for c in _LINEAR_C]},
    ("hgb", "classification"): _HGB,
    ("hgb", "regression"): _HGB,
    ("xgboost", "classification"): _XGB,
    ("xgboost", "regression"): _XGB,
}


@dataclass
class Trial:
    number: int
    params: dict
    cv_mean: float
    cv_std: float
    seconds: float


@dataclass
class TuneResult:
    family: str
    primary_metric: str
    trials: list[Trial] = field(default_factory=list)
    best_params: dict = field(default_factory=dict)
    default_val: float | None = None
    tuned_val: float | None = None
    kept: str = "default"
    threshold: ThresholdChoice | None = None


def tune(
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
    contract: DataContract,
    family: str,
    default_model_dir: Path,
    out_dir: Path,
    n_trials: int = 8,
    cv_folds: int = 3,
    seed: int = defaults.SEED,
    max_cv_rows: int = 100_000,
    primary_metric: str = "",
    threshold_policy: str = "f1",
    log=print,
) -> TuneResult:
    if n_trials < 0 or cv_folds < 2:
        raise ModelError(f"n_trials must be >= 0 (got {n_trials}) and cv_folds >= 2 (got {cv_folds})")
    policy = ThresholdPolicy.parse(threshold_policy)
    primary, _ = task_defaults(contract.task, primary_metric)
    result = TuneResult(family, primary)
    space = SEARCH_SPACES.get((family, contract.task), {})
    chosen = ModelBundle.load(default_model_dir)
    if n_trials == 0 or not space:
        log(f"tune: nothing to search for {family} (n_trials={n_trials}); keeping the trained model")
    else:
        from sklearn.model_selection import ParameterSampler, cross_val_score

        sample = train_df.sample(n=max_cv_rows, random_state=seed) if len(train_df) > max_cv_rows else train_df
        x, y = split_xy(sample, contract)
        y = encode_labels(y, contract)
        folds = _folds(contract, cv_folds, seed)
        sign = -1.0 if primary in LOWER_IS_BETTER else 1.0
        n_grid = math.prod(len(v) for v in space.values())
        for number, params in enumerate(ParameterSampler(space, n_iter=min(n_trials, n_grid), random_state=seed)):
            start = time.perf_counter()
            scores = sign * cross_val_score(
                build_pipeline(family, contract, seed, params),
                x,
                y,
                cv=folds,
                scoring=_scorer(primary, contract),
                n_jobs=1,
            )
            trial = Trial(
                number,
                {k: _plain(v) for k, v in params.items()},
                round(float(np.mean(scores)), 6),
                round(float(np.std(scores)), 6),
                round(time.perf_counter() - start, 3),
            )
            result.trials.append(trial)
            log(
                f"trial {number:3d} {primary} cv={trial.cv_mean:.4f}±{trial.cv_std:.4f} params={json.dumps(trial.params, sort_keys=True)}"
            )
        best = max(result.trials, key=lambda t: sign * t.cv_mean)
        result.best_params = best.params
        tuned, tuned_metrics = fit_bundle(family, train_df, val_df, contract, seed, best.params)
        default_metrics = score_bundle(chosen, val_df, contract.label)
        result.tuned_val, result.default_val = tuned_metrics.get(primary), default_metrics.get(primary)
        if (
            result.tuned_val is not None
            and result.default_val is not None
            and better(primary, result.tuned_val, result.default_val) > 0
        ):
            chosen, result.kept = tuned, "tuned"
        log(
            f"tune: validation {primary} default={result.default_val} tuned={result.tuned_val} -> keeping {result.kept}"
        )
    if contract.task == "classification" and len(contract.classes) == 2 and family != "baseline":
        result.threshold = out_of_fold_threshold(
            chosen, pd.concat([train_df, val_df], ignore_index=True), contract, policy, cv_folds, seed, max_cv_rows
        )
        chosen.threshold = result.threshold.threshold
        chosen.training = {**chosen.training, "threshold": result.threshold.as_dict()}
        log(
            f"tune: decision threshold {chosen.threshold:.4f} by policy {policy} on {result.threshold.rows} out-of-fold rows "
            f"(precision {result.threshold.precision:.3f}, recall {result.threshold.recall:.3f}"
            + ("" if result.threshold.target_met else "; target not reachable, closest taken")
            + ")"
        )
    if result.kept == "tuned":
        chosen.save(out_dir)
    else:  # the trained model's files stay byte-identical; only its decision threshold is recorded
        with atomic_path(Path(out_dir)) as tmp:
            shutil.copytree(default_model_dir, tmp)
            set_decision(tmp, chosen.threshold, chosen.training)
    return result


def out_of_fold_threshold(
    bundle: ModelBundle,
    frame: pd.DataFrame,
    contract: DataContract,
    policy: ThresholdPolicy,
    cv_folds: int,
    seed: int,
    max_rows: int,
) -> ThresholdChoice:
    """Positive-class scores of ``bundle``'s family and params from k-fold cross-validation, then ``policy``'s threshold."""
    from sklearn.model_selection import cross_val_predict

    if len(frame) > max_rows:
        frame = frame.sample(n=max_rows, random_state=seed)
    x, y = split_xy(frame, contract)
    y = encode_labels(y, contract)
    proba = cross_val_predict(
        build_pipeline(bundle.family, contract, seed, bundle.params),
        x,
        y,
        cv=_folds(contract, cv_folds, seed),
        method="predict_proba",
        n_jobs=1,
    )[:, 1]
    return choose_threshold(y == 1, proba, policy)


def _folds(contract: DataContract, k: int, seed: int):
    from sklearn.model_selection import KFold, StratifiedKFold

    return (StratifiedKFold if contract.task == "classification" else KFold)(
        n_splits=k, shuffle=True, random_state=seed
    )


def _scorer(primary: str, contract: DataContract):
    """The search's scorer; binary metrics on encoded labels (positive class = index 1)."""
    name = SCORERS[primary]
    if contract.task == "classification" and len(contract.classes) > 2 and primary in ("f1", "precision", "recall"):
        return f"{name}_macro"
    if contract.task == "classification" and len(contract.classes) > 2 and primary == "roc_auc":
        return "roc_auc_ovr"
    return name


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
