"""Build the drift detector from the version's reference sample (the same rows register stores)."""

from pathlib import Path

import pandas as pd

from mlcycle import defaults
from mlcycle import drift as stats
from mlcycle.contract import DataContract
from mlcycle.drift import reference_sample
from mlcycle.fsutil import atomic_path


def build_detector(
    train: pd.DataFrame,
    contract: DataContract,
    out_dir: Path,
    backend: str = "alibi",
    p_val: float = 0.05,
    seed: int = defaults.SEED,
) -> stats.Backend:
    detector = stats.build(reference_sample(train, contract, seed), contract, backend, p_val, train=train)
    with atomic_path(Path(out_dir)) as tmp:
        stats.save(detector, tmp)
    return detector
