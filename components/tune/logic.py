"""Tune: seeded random search with k-fold cross-validation on the training split, within a trial
budget. Every trial is logged. The tuned model replaces the default one only if it is also better
on the validation split."""

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from components.train.logic import fit_bundle
from mlcycle.contract import DataContract
from mlcycle.errors import ModelError
from mlcycle.fsutil import atomic_path
from mlcycle.metrics import DEFAULT_PRIMARY, better
from mlcycle.models import ModelBundle, build_pipeline, split_xy

SEARCH_SPACES: dict[str, dict[str, list]] = {
    "baseline": {},
    "logreg": {"C": [0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0]},
    "hgb": {"learning_rate": [0.03, 0.05, 0.08, 0.12, 0.2], "max_leaf_nodes": [15, 31, 63], "min_samples_leaf": [10, 20, 50, 100],
            "l2_regularization": [0.0, 0.1, 1.0]},
    "xgboost": {"learning_rate": [0.03, 0.05, 0.08, 0.12, 0.2], "max_depth": [3, 4, 5, 6, 8], "n_estimators": [150, 300, 500],
                "min_child_weight": [1, 3, 10], "subsample": [0.7, 0.85, 1.0], "colsample_bytree": [0.7, 0.85, 1.0]},
}
SCORERS = {"roc_auc": "roc_auc", "rmse": "neg_root_mean_squared_error"}


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


def tune(train_df: pd.DataFrame, val_df: pd.DataFrame, contract: DataContract, family: str, default_model_dir: Path,
         out_dir: Path, n_trials: int = 8, cv_folds: int = 3, seed: int = 42, max_cv_rows: int = 100_000, log=print) -> TuneResult:
    if n_trials < 0 or cv_folds < 2:
        raise ModelError(f"n_trials must be >= 0 (got {n_trials}) and cv_folds >= 2 (got {cv_folds})")
    primary = DEFAULT_PRIMARY[contract.task]
    result = TuneResult(family, primary)
    space = SEARCH_SPACES.get(family, {})
    if n_trials == 0 or not space:
        log(f"tune: nothing to search for {family} (n_trials={n_trials}); keeping the trained model")
        _copy(default_model_dir, out_dir)
        return result
    from sklearn.model_selection import KFold, ParameterSampler, StratifiedKFold, cross_val_score

    sample = train_df
    if len(sample) > max_cv_rows:
        sample = train_df.sample(n=max_cv_rows, random_state=seed)
    x, y = split_xy(sample, contract)
    folds = (StratifiedKFold if contract.task == "classification" else KFold)(n_splits=cv_folds, shuffle=True, random_state=seed)
    n_grid = math.prod(len(v) for v in space.values())
    for number, params in enumerate(ParameterSampler(space, n_iter=min(n_trials, n_grid), random_state=seed)):
        start = time.perf_counter()
        scores = cross_val_score(build_pipeline(family, contract, seed, params), x, y, cv=folds, scoring=SCORERS[primary], n_jobs=1)
        scores = -scores if primary == "rmse" else scores
        trial = Trial(number, {k: _plain(v) for k, v in params.items()}, round(float(np.mean(scores)), 6), round(float(np.std(scores)), 6),
                      round(time.perf_counter() - start, 3))
        result.trials.append(trial)
        log(f"trial {number:3d} {primary} cv={trial.cv_mean:.4f}±{trial.cv_std:.4f} params={json.dumps(trial.params, sort_keys=True)}")
    best = max(result.trials, key=lambda t: -t.cv_mean if primary == "rmse" else t.cv_mean)
    result.best_params = best.params
    tuned, tuned_metrics = fit_bundle(family, train_df, val_df, contract, seed, best.params)
    default_metrics = _val_metrics(default_model_dir, val_df, contract)
    result.tuned_val, result.default_val = tuned_metrics[primary], default_metrics[primary]
    if better(primary, result.tuned_val, result.default_val) > 0:
        tuned.save(out_dir)
        result.kept = "tuned"
    else:
        _copy(default_model_dir, out_dir)
    log(f"tune: validation {primary} default={result.default_val:.4f} tuned={result.tuned_val:.4f} -> keeping {result.kept}")
    return result


def _val_metrics(model_dir: Path, val_df: pd.DataFrame, contract: DataContract) -> dict:
    from mlcycle.metrics import score_bundle

    return score_bundle(ModelBundle.load(model_dir), val_df, contract.label)


def _copy(src: Path, dst: Path) -> None:
    with atomic_path(Path(dst)) as tmp:
        shutil.copytree(src, tmp)


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
