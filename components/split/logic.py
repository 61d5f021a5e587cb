"""Split: stratified train/validation/test, or time-ordered when a timestamp column is named."""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlcycle import defaults
from mlcycle.contract import DataContract
from mlcycle.errors import DataError
from mlcycle.fsutil import atomic_path


@dataclass(frozen=True)
class SplitResult:
    train_rows: int
    validation_rows: int
    test_rows: int
    strategy: str


def split_frame(
    frame: pd.DataFrame,
    contract: DataContract,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = defaults.SEED,
    timestamp: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 0.9):
        raise DataError(
            f"split fractions val={val_fraction}, test={test_fraction} must be in (0, 1) with a sum below 0.9"
        )
    if timestamp:
        if timestamp not in frame.columns:
            raise DataError(f"timestamp column '{timestamp}' not found for a time-based split")
        ordered = frame.sort_values(timestamp, kind="stable").reset_index(drop=True)
        n = len(ordered)
        n_test, n_val = int(round(n * test_fraction)), int(round(n * val_fraction))
        parts = (
            ordered.iloc[: n - n_val - n_test],
            ordered.iloc[n - n_val - n_test : n - n_test],
            ordered.iloc[n - n_test :],
        )
    else:
        from sklearn.model_selection import train_test_split

        stratify = frame[contract.label] if contract.task == "classification" else None
        if stratify is not None and stratify.value_counts().min() < 3:
            raise DataError(
                f"label '{contract.label}' has a class with fewer than 3 rows; cannot stratify a 3-way split"
            )
        rest, test = train_test_split(frame, test_size=test_fraction, random_state=seed, stratify=stratify)
        stratify_rest = rest[contract.label] if stratify is not None else None
        train, val = train_test_split(
            rest, test_size=val_fraction / (1 - test_fraction), random_state=seed, stratify=stratify_rest
        )
        parts = train, val, test
    for name, part in zip(("train", "validation", "test"), parts, strict=False):
        if part.empty:
            raise DataError(f"{name} split is empty ({len(frame)} rows in total)")
        if contract.task == "classification" and part[contract.label].nunique() < 2:
            raise DataError(
                f"{name} split has a single class of '{contract.label}'; use more data or a stratified split"
            )
    return tuple(p.reset_index(drop=True) for p in parts)


def run(
    dataset_path: Path,
    contract: DataContract,
    out_paths: tuple[Path, Path, Path],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    timestamp: str,
) -> SplitResult:
    frame = pd.read_parquet(dataset_path)
    parts = split_frame(frame, contract, val_fraction, test_fraction, seed, timestamp or None)
    for part, path in zip(parts, out_paths, strict=False):
        with atomic_path(Path(path)) as tmp:
            part.to_parquet(tmp, index=False)
    return SplitResult(
        *(len(p) for p in parts),
        strategy="time" if timestamp else "stratified" if contract.task == "classification" else "random",
    )
