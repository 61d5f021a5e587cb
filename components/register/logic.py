"""Register: assemble the self-describing model version (model files, contract, reference sample,
report, metadata with lineage and sha256 of every file) and write it to the registry."""

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlcycle.drift import reference_sample
from mlcycle.contract import DataContract
from mlcycle.errors import RegistryError, VersionNotFound
from mlcycle import fastpath
from mlcycle.models import BUNDLE_FILE, ModelBundle
from mlcycle.provenance import code_version, library_versions
from mlcycle.registry import Registry
from mlcycle import defaults


@dataclass(frozen=True)
class RegisterResult:
    version: str
    promoted: bool
    uri: str
    unchanged: bool = False  # identical to production (same data, code and model): nothing was written


def identical_to(meta: dict, bundle: dict, dataset_fingerprint: str, code: str) -> bool:
    """Whether a registered version was trained on the same data by the same code into the same model."""
    lineage = meta.get("lineage", {})
    return (lineage.get("dataset_fingerprint") == dataset_fingerprint and lineage.get("code_version") == code
            and meta.get("family") == bundle["family"] and meta.get("params") == bundle.get("params", {})
            and meta.get("threshold") == bundle.get("threshold") and meta.get("training") == bundle.get("training", {}))


def stage_version(stage: Path, model_dir: Path, contract: DataContract, train: pd.DataFrame, report_path: Path | None,
                  evaluation: dict, seed: int = defaults.SEED) -> None:
    """Lay out a version directory: model bundle files at the top, so a model server can load it directly."""
    for item in Path(model_dir).iterdir():
        if item.is_file():
            shutil.copyfile(item, stage / item.name)
    (stage / "contract.json").write_text(contract.model_dump_json(indent=2))
    (stage / "evaluation.json").write_text(json.dumps(evaluation, indent=2))
    reference_sample(train, contract, seed).to_parquet(stage / "reference.parquet", index=False)
    if report_path is not None and Path(report_path).is_file():
        shutil.copyfile(report_path, stage / "report.html")


def register(model_dir: Path, contract: DataContract, train: pd.DataFrame, evaluation: dict, decision: dict, registry: Registry,
             model_name: str, dataset_fingerprint: str, run_id: str, report_path: Path | None = None, auto_promote: bool = False,
             drift_dir: Path | None = None, test: pd.DataFrame | None = None) -> RegisterResult:
    """``test``: the rows the compiled fast path is parity-checked on (mlcycle.fastpath); else the training rows."""
    if not decision.get("passed"):
        raise RegistryError(f"refusing to register {model_name}: the gate did not pass ({'; '.join(decision.get('reasons', []))})")
    bundle = json.loads((Path(model_dir) / BUNDLE_FILE).read_text())
    code = code_version()
    try:
        production = registry.describe(model_name, "production")
    except VersionNotFound:
        production = None
    if production is not None and identical_to(production, bundle, dataset_fingerprint, code):
        return RegisterResult(production["version"], False, f"{registry.uri}/{model_name}/{production['version']}", unchanged=True)
    seed = bundle.get("training", {}).get("seed", defaults.SEED)  # the pipeline's seed: the drift detector drew its reference with it
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp)
        stage_version(stage, Path(model_dir), contract, train, report_path, evaluation, seed)
        if drift_dir is not None:
            shutil.copytree(drift_dir, stage / "drift")
        fast_path = fastpath.build(ModelBundle.load(Path(model_dir), nthread=1), train if test is None else test, stage)
        metadata = {
            "task": contract.task,
            "family": bundle["family"],
            "format": {"preprocessor": "skops", "estimator": "xgboost-ubj" if bundle["estimator_file"].endswith(".ubj") else "skops"},
            "metrics": evaluation.get("metrics", {}),
            "params": bundle.get("params", {}),
            "threshold": bundle.get("threshold"),
            "training": bundle.get("training", {}),
            "gate": decision,
            "contract": contract.model_dump(),
            "lineage": {
                "dataset_fingerprint": dataset_fingerprint,
                "pipeline_run_id": run_id,
                "code_version": code,
                "parent": decision.get("champion_version"),
            },
            "libraries": library_versions(),
            "fast_path": {**fast_path, "checked_on": "train" if test is None else "test"},
        }
        version = registry.register(model_name, stage, metadata)
    registry.set_alias(model_name, "candidate", version, why="passed the gate")
    if auto_promote:
        registry.promote(model_name, version, why="auto_promote (no canary rollout in this run)", evidence={"gate": decision.get("reasons", [])})
    return RegisterResult(version, auto_promote, f"{registry.uri}/{model_name}/{version}")
