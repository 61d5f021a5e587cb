"""Ingest: read CSV/Parquet (local or s3://) or generate the demo dataset; write Parquet + sha256."""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlcycle import defaults
from mlcycle.capture import SCHEME as TRAFFIC_SCHEME
from mlcycle.capture import read_traffic_source
from mlcycle.data import DEMO_SOURCES, fingerprint, make_demo_dataset, read_table
from mlcycle.fsutil import atomic_path


@dataclass(frozen=True)
class IngestResult:
    rows: int
    columns: list[str]
    fingerprint: str


def load(
    source: str, demo_rows: int = defaults.DEMO_ROWS, seed: int = defaults.SEED, demo_drift: float = 0.0
) -> pd.DataFrame:
    if source in DEMO_SOURCES:
        return make_demo_dataset(n_rows=demo_rows, seed=seed, drift=demo_drift)
    if source.startswith(TRAFFIC_SCHEME):  # captured, labelled traffic: traffic://<registry>#<model>?days=N
        return read_traffic_source(source)
    return read_table(source)


def ingest(
    source: str, out_path: Path, demo_rows: int = defaults.DEMO_ROWS, seed: int = defaults.SEED, demo_drift: float = 0.0
) -> IngestResult:
    """Read ``source`` (or make the demo data) and write it to ``out_path`` as Parquet.

    Args:
        source: local path, file:// or s3:// URI of a .csv/.parquet file; "" or "demo" for the
            bundled synthetic fraud dataset; ``traffic://<registry>#<model>?days=N`` for the captured
            traffic of the last N days that received late labels (mlcycle.capture.labelled_traffic).
        out_path: where the Parquet file goes; written atomically (nothing on failure).
        demo_rows: demo dataset size.
        seed: demo dataset seed.
        demo_drift: demo distribution shift (0 = reference distribution).
    """
    frame = load(source, demo_rows, seed, demo_drift)
    frame.columns = [str(c) for c in frame.columns]
    digest = fingerprint(frame)
    with atomic_path(Path(out_path)) as tmp:
        frame.to_parquet(tmp, index=False)
    return IngestResult(rows=len(frame), columns=list(frame.columns), fingerprint=digest)
