"""Train: a Dummy baseline and candidate families, each one Pipeline(prep, model) fitted on train only;
the best on validation (by the run's primary metric) is saved as a ModelBundle."""

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mlcycle import defaults
from mlcycle.contract import DataContract
from mlcycle.errors import ModelError
from mlcycle.metrics import better, task_defaults
from mlcycle.models import FAMILIES, ModelBundle, check_families, fit_bundle


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


def train(
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
    contract: DataContract,
    out_dir: Path,
    families: list[str] | None = None,
    seed: int = defaults.SEED,
    primary_metric: str = "",
    log=print,
) -> TrainResult:
    families = check_families(families or list(FAMILIES))
    primary, _ = task_defaults(contract.task, primary_metric)
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
        raise ModelError(f"no candidate produced a {primary} score (families {', '.join(families)})")
    best[0].save(out_dir)
    result.best_family = best[0].family
    return result
