"""Build the drift detector from the version's reference sample (the same rows register stores)."""

from pathlib import Path

import pandas as pd

from inference.drift_detector import stats
from mlcycle.contract import DataContract
from mlcycle.fsutil import atomic_path

REFERENCE_ROWS = 5_000


def reference_sample(train: pd.DataFrame, contract: DataContract, seed: int = 42) -> pd.DataFrame:
    sample = train.sample(n=min(REFERENCE_ROWS, len(train)), random_state=seed)
    return sample[contract.feature_names + [contract.label]]


def build_detector(train: pd.DataFrame, contract: DataContract, out_dir: Path, backend: str = "alibi", p_val: float = 0.05, seed: int = 42) -> stats.Backend:
    detector = stats.build(reference_sample(train, contract, seed), contract, backend, p_val)
    with atomic_path(Path(out_dir)) as tmp:
        stats.save(detector, tmp)
    return detector
