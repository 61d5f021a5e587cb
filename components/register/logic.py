"""Register: assemble the self-describing model version (model files, contract, reference sample,
report, metadata with lineage and sha256 of every file) and write it to the registry."""

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlcycle import defaults, fastpath, semver
from mlcycle.contract import DataContract
from mlcycle.drift import reference_sample
from mlcycle.errors import RegistryError, VersionNotFound
from mlcycle.provenance import code_version, library_versions
from mlcycle.registry import Registry
from mlcycle.schema import BundleSpec, Lineage, ModelFormat, VersionInfo, VersionMetadata, read_bundle
from mlcycle.triggers import TRIGGERS


def _semver(
    existing: list[str], production: VersionMetadata | None, contract: DataContract, bundle: BundleSpec
) -> tuple[str, str]:
    """MAJOR.MINOR.PATCH against production (mlcycle.semver), past every number the model already used; and why."""
    if production is None or not production.semver:
        return semver.next_version(
            existing, None, "first"
        ), "first version" if production is None else "production has none"
    part, why = semver.change(
        production.contract, contract, (production.family, production.params), (bundle.family, bundle.params)
    )
    return semver.next_version(existing, production.semver, part), why


def registered_versions(registry: Registry, model: str) -> list[VersionMetadata]:
    """Every registered version's manifest, oldest first: one listing and one small GET (``metadata.json``) per
    version; no model file is read. A version deleted meanwhile is skipped; a damaged manifest raises."""
    out = []
    for version in registry.list_versions(model):
        try:
            out.append(registry.metadata(model, version))
        except VersionNotFound:  # deleted between the listing and the GET
            continue
    return out


@dataclass(frozen=True)
class RegisterResult:
    version: str
    promoted: bool
    uri: str
    unchanged: bool = False  # identical to ``version`` (same data, code and model): nothing was written
    aliases: tuple[str, ...] = ()  # the aliases ``version`` holds, when unchanged (none: e.g. a rejected candidate)


def identical_to(meta: VersionMetadata, bundle: BundleSpec, dataset_fingerprint: str, code: str) -> bool:
    """Whether a registered version was trained on the same data by the same code into the same model."""
    lineage = meta.lineage
    return (
        lineage is not None
        and lineage.dataset_fingerprint == dataset_fingerprint
        and lineage.code_version == code
        and meta.family == bundle.family
        and meta.params == bundle.params
        and meta.threshold == bundle.threshold
        and meta.training == bundle.training
    )


def find_identical(
    versions: list[VersionMetadata], bundle: BundleSpec, dataset_fingerprint: str, code: str
) -> VersionMetadata | None:
    """The newest of ``versions`` that ``bundle`` is identical to (``identical_to``), or None."""
    return next((m for m in reversed(versions) if identical_to(m, bundle, dataset_fingerprint, code)), None)


def stage_version(
    stage: Path,
    model_dir: Path,
    contract: DataContract,
    train: pd.DataFrame,
    report_path: Path | None,
    evaluation: dict,
    seed: int = defaults.SEED,
) -> None:
    """Lay out a version directory: model bundle files at the top, so a model server can load it directly. The data
    contract is recorded in the version's manifest (``VersionInfo.contract``), not as a file of its own."""
    for item in Path(model_dir).iterdir():
        if item.is_file():
            shutil.copyfile(item, stage / item.name)
    (stage / "evaluation.json").write_text(json.dumps(evaluation, indent=2))
    reference_sample(train, contract, seed).to_parquet(stage / "reference.parquet", index=False)
    if report_path is not None and Path(report_path).is_file():
        shutil.copyfile(report_path, stage / "report.html")


def register(
    model_dir: Path,
    contract: DataContract,
    train: pd.DataFrame,
    evaluation: dict,
    decision: dict,
    registry: Registry,
    model_name: str,
    dataset_fingerprint: str,
    run_id: str,
    report_path: Path | None = None,
    auto_promote: bool = False,
    drift_dir: Path | None = None,
    test: pd.DataFrame | None = None,
    trigger: str = "manual",
    trigger_evidence: dict | None = None,
) -> RegisterResult:
    """``test``: the rows the compiled fast path is parity-checked on (mlcycle.fastpath); else the training rows.
    ``trigger``: why the run started (mlcycle.triggers.TRIGGERS), kept in the version's lineage with its evidence."""
    if trigger not in TRIGGERS:
        raise RegistryError(f"unknown trigger {trigger!r}; one of {', '.join(TRIGGERS)}")
    if not decision.get("passed"):
        raise RegistryError(
            f"refusing to register {model_name}: the gate did not pass ({'; '.join(decision.get('reasons', []))})"
        )
    bundle = read_bundle(Path(model_dir))  # its model files hashed against bundle.json, once: nothing re-reads them
    code = code_version()
    # compared with every version, not only production: a retrain identical to a rejected candidate (or to any
    # older version) is not registered again. Cost: one manifest GET per version (also what the semver needs).
    versions = registered_versions(registry, model_name)
    aliases, _ = registry.aliases(model_name)
    by_id = {m.version: m for m in versions}
    production = by_id.get(aliases.get("production", ""))
    same = find_identical(versions, bundle, dataset_fingerprint, code)
    if same is not None:
        held = tuple(sorted(a for a, v in aliases.items() if v == same.version))
        return RegisterResult(
            same.version, False, f"{registry.uri}/{model_name}/{same.version}", unchanged=True, aliases=held
        )
    # the pipeline's seed: the drift detector drew its reference with it
    seed = bundle.training.get("seed", defaults.SEED)
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp)
        stage_version(stage, Path(model_dir), contract, train, report_path, evaluation, seed)
        if drift_dir is not None:
            shutil.copytree(drift_dir, stage / "drift")
        number, why = _semver([m.semver for m in versions if m.semver], production, contract, bundle)
        fast_path = fastpath.build_from_spec(Path(model_dir), bundle, train if test is None else test, stage)
        metadata = VersionInfo(
            task=contract.task,
            family=bundle.family,
            format=ModelFormat(
                preprocessor="skops", estimator="xgboost-ubj" if bundle.estimator_file.endswith(".ubj") else "skops"
            ),
            metrics=evaluation.get("metrics", {}),
            params=bundle.params,
            threshold=bundle.threshold,
            training=bundle.training,
            gate=decision,
            contract=contract,
            lineage=Lineage(
                dataset_fingerprint=dataset_fingerprint,
                pipeline_run_id=run_id,
                code_version=code,
                parent=decision.get("champion_version"),
                trigger=trigger,
                trigger_evidence=trigger_evidence or {},
            ),
            libraries=library_versions(),
            fast_path={**fast_path, "checked_on": "train" if test is None else "test"},
            semver=number,
            semver_reason=why,
        )
        version = registry.register(model_name, stage, metadata)
    registry.set_alias(model_name, "candidate", version, why="passed the gate")
    if auto_promote:
        registry.promote(
            model_name,
            version,
            why="auto_promote (no canary rollout in this run)",
            evidence={"gate": decision.get("reasons", [])},
        )
    return RegisterResult(version, auto_promote, f"{registry.uri}/{model_name}/{version}")
