"""Train: a Dummy baseline and candidate families, each one Pipeline(prep, model) fitted on train only;
the best on validation (by the task's primary metric) is saved as a ModelBundle."""

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mlcycle.contract import DataContract
from mlcycle.errors import ModelError
from mlcycle.metrics import DEFAULT_PRIMARY, best_f1_threshold, better, classification_metrics, regression_metrics
from mlcycle.models import FAMILIES, ModelBundle, build_pipeline, split_xy


@dataclass
class Candidate:
    family: str
    metrics: dict[str, float]
    fit_seconds: float


@dataclass
class TrainResult:
    best_family: str
    primary_metric: str
    leaderboard: list[Candidate] = field(default_factory=list)


def fit_bundle(family: str, train: pd.DataFrame, val: pd.DataFrame, contract: DataContract, seed: int,
               params: dict | None = None) -> tuple[ModelBundle, dict[str, float]]:
    """Fit one family on ``train``; pick the decision threshold and score on ``val``."""
    x_train, y_train = split_xy(train, contract)
    x_val, y_val = split_xy(val, contract)
    pipeline = build_pipeline(family, contract, seed, params).fit(x_train, y_train)
    bundle = ModelBundle.from_pipeline(family, pipeline, contract, params=params)
    scores = bundle.score(val)
    if contract.task == "classification":
        if len(bundle.classes) == 2 and family != "baseline":
            bundle.threshold = best_f1_threshold(y_val == bundle.classes[1], scores[:, 1])
        return bundle, classification_metrics(y_val, scores, bundle.classes, bundle.threshold)
    return bundle, regression_metrics(y_val, scores)


def train(train_df: pd.DataFrame, val_df: pd.DataFrame, contract: DataContract, out_dir: Path,
          families: list[str] = list(FAMILIES), seed: int = 42, log=print) -> TrainResult:
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        raise ModelError(f"unknown or no model families {unknown or families}; choose from {', '.join(FAMILIES)}")
    primary = DEFAULT_PRIMARY[contract.task]
    result = TrainResult(best_family="", primary_metric=primary)
    best: tuple[ModelBundle, float] | None = None
    for family in families:
        start = time.perf_counter()
        bundle, metrics = fit_bundle(family, train_df, val_df, contract, seed)
        elapsed = time.perf_counter() - start
        result.leaderboard.append(Candidate(family, metrics, round(elapsed, 3)))
        log(f"candidate {family:9s} validation {primary}={metrics.get(primary, float('nan')):.4f} ({elapsed:.1f}s)")
        eligible = family != "baseline" or families == ["baseline"]
        if eligible and primary in metrics and (best is None or better(primary, metrics[primary], best[1]) > 0):
            best = (bundle, metrics[primary])
    if best is None:
        raise ModelError(f"no candidate produced a {primary} score")
    best[0].save(out_dir)
    result.best_family = best[0].family
    return result
