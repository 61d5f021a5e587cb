from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from components.image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def split(
    dataset: Input[Dataset],
    contract: Input[Artifact],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    timestamp_column: str,
    train: Output[Dataset],
    validation: Output[Dataset],
    test: Output[Dataset],
):
    """Split into train / validation / test: stratified by label, or by time when a timestamp column is named.

    Args:
        dataset: The validated table.
        contract: Its data contract.
        val_fraction: Share of rows for validation.
        test_fraction: Share of rows for test.
        seed: Seed of the stratified split.
        timestamp_column: If set, the newest rows become test and validation.
        train: Training rows.
        validation: Validation rows.
        test: Test rows.
    """
    from pathlib import Path

    from components.split.logic import run
    from mlcycle.contract import DataContract

    result = run(
        Path(dataset.path),
        DataContract.model_validate_json(Path(contract.path).read_text()),
        (Path(train.path), Path(validation.path), Path(test.path)),
        val_fraction,
        test_fraction,
        seed,
        timestamp_column,
    )
    print(
        f"split ({result.strategy}): train {result.train_rows}, validation {result.validation_rows}, test {result.test_rows}"
    )
