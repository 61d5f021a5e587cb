from kfp import dsl
from kfp.dsl import Dataset, Output

from components.image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def ingest(source: str, demo_rows: int, seed: int, dataset: Output[Dataset]) -> str:
    """Read the training table, or generate the bundled demo dataset.

    Args:
        source: Local path, file:// or s3:// URI of a CSV or Parquet file; "demo" for the bundled synthetic fraud data.
        demo_rows: Rows of demo data to generate (1k to 20M).
        seed: Seed of the demo data.
        dataset: The table as Parquet.

    Returns:
        The content fingerprint (sha256) of the table.
    """
    from pathlib import Path

    from components.ingest.logic import ingest as run

    result = run(source=source, out_path=Path(dataset.path), demo_rows=demo_rows, seed=seed)
    dataset.metadata.update({"rows": result.rows, "sha256": result.fingerprint})
    print(f"ingested {result.rows} rows x {len(result.columns)} columns, sha256 {result.fingerprint}")
    return result.fingerprint
