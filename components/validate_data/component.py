from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Output

from components.image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def validate_data(
    dataset: Input[Dataset],
    label: str,
    task: str,
    timestamp_column: str,
    registry_uri: str,
    model_name: str,
    max_categories: int,
    contract: Output[Artifact],
    report: Output[Markdown],
    exploration: Output[HTML],
):
    """Infer the data contract and check the data against the production model's contract.

    Args:
        dataset: The ingested table.
        label: Label column.
        task: "classification" or "regression".
        timestamp_column: Timestamp column ("" if none); not used as a feature.
        registry_uri: Model registry (s3://bucket or a local directory).
        model_name: Registered model whose production contract the data must satisfy.
        max_categories: A string column with more distinct values is refused as an identifier.
        contract: The inferred data contract (JSON).
        report: Validation report (Markdown).
        exploration: Data exploration page: distributions, target relationships, correlations, missing values, verdict per column.
    """
    from pathlib import Path

    from components.validate_data.logic import run
    from mlcycle.registry import open_registry

    result = run(
        Path(dataset.path),
        Path(contract.path),
        Path(report.path),
        label,
        task,
        timestamp_column,
        open_registry(registry_uri),
        model_name,
        max_categories,
        Path(exploration.path),
    )
    print(f"data valid: {len(result.contract.columns)} columns; production contract: {result.reference_version}")
