from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from components.image import DRIFT_IMAGE


@dsl.component(base_image=DRIFT_IMAGE, install_kfp_package=False)
def build_detector(
    train: Input[Dataset],
    contract: Input[Artifact],
    backend: str,
    p_val: float,
    seed: int,
    detector: Output[Artifact],
):
    """Fit the drift detector (KS for numeric, chi-squared for categorical, Bonferroni) on the reference sample.

    Args:
        train: Training rows; the reference sample is drawn from them.
        contract: Data contract (feature kinds and categories).
        backend: "alibi" (alibi-detect TabularDrift) or "scipy".
        p_val: Significance level before the multiple-testing correction.
        seed: Seed of the reference sample.
        detector: The saved detector directory (stored in the model version under drift/).
    """
    from pathlib import Path

    import pandas as pd

    from components.build_detector.logic import build_detector as run
    from mlcycle.contract import DataContract

    built = run(
        pd.read_parquet(train.path),
        DataContract.model_validate_json(Path(contract.path).read_text()),
        Path(detector.path),
        backend,
        p_val,
        seed,
    )
    detector.metadata.update({"backend": built.name, "reference_rows": int(built.x_ref.shape[0])})
