from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Model, Output

from components.image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def register(
    model: Input[Model],
    contract: Input[Artifact],
    train: Input[Dataset],
    test: Input[Dataset],
    evaluation: Input[Artifact],
    decision: Input[Artifact],
    report: Input[HTML],
    drift_detector: Input[Artifact],
    registry_uri: str,
    model_name: str,
    dataset_fingerprint: str,
    run_id: str,
    auto_promote: bool,
    trigger: str,
    trigger_evidence: str,
    registered: Output[Model],
) -> str:
    """Write the model version (files, contract, reference sample, metadata, checksums) to the registry.

    Args:
        model: Model bundle that passed the gate.
        contract: Its data contract.
        train: Training rows (reference sample for drift detection).
        test: Test rows: the compiled fast path is parity-checked on every one before it is stored.
        evaluation: Test evaluation.
        decision: The gate decision.
        report: Evaluation report, stored with the version.
        drift_detector: The saved drift detector, stored under drift/.
        registry_uri: s3://bucket (endpoint and credentials from the environment) or a local directory.
        model_name: Registered model name.
        dataset_fingerprint: sha256 of the training table.
        run_id: Pipeline run id (lineage).
        auto_promote: Move the production alias right away (no canary rollout).
        trigger: Why this run started (drift, accuracy, schedule, new_data or manual), kept in the version's lineage.
        trigger_evidence: The trigger's evidence as a JSON object ("" = none), kept in the lineage beside it.
        registered: Metadata of the registered version (version id, URI, promoted).

    Returns:
        The new version id (that of the registered version the model is identical to, when nothing was written).
    """
    import json
    from pathlib import Path

    import pandas as pd

    from components.register.logic import register as run
    from mlcycle.contract import DataContract
    from mlcycle.registry import open_registry
    from mlcycle.triggers import parse_evidence

    result = run(
        Path(model.path),
        DataContract.model_validate_json(Path(contract.path).read_text()),
        pd.read_parquet(train.path),
        json.loads(Path(evaluation.path).read_text()),
        json.loads(Path(decision.path).read_text()),
        open_registry(registry_uri),
        model_name,
        dataset_fingerprint,
        run_id,
        Path(report.path),
        auto_promote,
        Path(drift_detector.path),
        test=pd.read_parquet(test.path),
        trigger=trigger,
        trigger_evidence=parse_evidence(trigger_evidence),
    )
    registered.metadata.update(
        {
            "version": result.version,
            "uri": result.uri,
            "promoted": result.promoted,
            "unchanged": result.unchanged,
            "aliases": list(result.aliases),
        }
    )
    if result.unchanged:
        held = " and ".join(sorted(result.aliases, key=lambda a: a != "production")) or "version"
        print(
            f"unchanged: identical to {held} {result.uri} (same data fingerprint, code version and model); "
            "no new version"
        )
    else:
        print(f"registered {result.uri} (production: {'yes' if result.promoted else 'no, candidate'})")
    return result.version
