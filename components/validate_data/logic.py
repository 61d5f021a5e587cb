"""Validate data: infer the data contract, and check the data against production's contract (skew)."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mlcycle.contract import MAX_CATEGORIES, DataContract, check, enforce, infer_contract
from mlcycle.errors import Breach, ContractViolation, ModelError, VersionNotFound
from mlcycle.fsutil import write_text_atomic
from mlcycle.registry import Registry


@dataclass
class ValidationResult:
    contract: DataContract
    reference_version: str | None
    skew_breaches: list[Breach] = field(default_factory=list)
    report: str = ""

    def refuse_skew(self) -> "ValidationResult":
        """Raise ContractViolation when the data breaches production's contract; else this result."""
        if self.skew_breaches:
            raise ContractViolation(self.skew_breaches)
        return self


def production_contract(registry: Registry | None, model_name: str) -> tuple[DataContract | None, str | None]:
    """The data contract stored with the model in production, if there is one."""
    if registry is None:
        return None, None
    try:
        meta = registry.metadata(model_name, "production")
    except VersionNotFound:
        return None, None
    if meta.contract is None:
        raise ModelError(f"production version {meta.version} of {model_name!r} has no data contract to check against")
    return meta.contract, meta.version


def assess(
    frame: pd.DataFrame,
    label: str,
    task: str = "classification",
    timestamp: str | None = None,
    reference: DataContract | None = None,
    reference_version: str | None = None,
    max_categories: int = MAX_CATEGORIES,
    min_rows: int = 100,
) -> ValidationResult:
    """Raise DataError naming column, rule and observed value for unusable data; else the new contract and every
    breach of the production contract (``run`` refuses the data when there is any)."""
    contract = infer_contract(
        frame, label, task=task, timestamp=timestamp or None, max_categories=max_categories, min_rows=min_rows
    )
    enforce(frame, contract)  # min rows, duplicates
    skew = check(frame, reference) if reference is not None else []
    return ValidationResult(contract, reference_version, skew, render_report(frame, contract, reference_version))


def validate(*args: Any, **kwargs: Any) -> ValidationResult:
    """``assess``, raising DataError / ContractViolation naming column, rule and observed value; else the new contract."""
    return assess(*args, **kwargs).refuse_skew()


def render_report(frame: pd.DataFrame, contract: DataContract, reference_version: str | None) -> str:
    lines = [
        "# Data validation",
        "",
        f"- rows: **{len(frame)}**, label `{contract.label}` ({contract.task})",
        f"- checked against production contract: **{reference_version or 'none (first model)'}** — passed",
        f"- duplicate ratio: {frame.duplicated().mean():.4f} (max {contract.max_duplicate_ratio})",
    ]
    if contract.classes is not None:
        dist = frame[contract.label].value_counts(normalize=True).sort_index()
        lines.append("- class balance: " + ", ".join(f"`{k}` {v:.2%}" for k, v in dist.items()))
    lines += ["", "| column | kind | dtype | nulls | range / categories |", "|---|---|---|---|---|"]
    for spec in contract.columns:
        nulls = f"{frame[spec.name].isna().mean():.2%} (max {spec.max_null_ratio:.0%})"
        if spec.kind == "numeric":
            detail = f"[{spec.min:g}, {spec.max:g}]"
        elif spec.kind == "categorical":
            cats = spec.categories or []
            detail = ", ".join(cats[:8]) + (f" … ({len(cats)})" if len(cats) > 8 else "")
        else:
            detail = ""
        lines.append(f"| {spec.name} | {spec.kind} | {spec.dtype} | {nulls} | {detail} |")
    return "\n".join(lines) + "\n"


def run(
    dataset_path: Path,
    contract_path: Path,
    report_path: Path,
    label: str,
    task: str,
    timestamp: str,
    registry: Registry | None,
    model_name: str,
    max_categories: int = MAX_CATEGORIES,
    exploration_path: Path | None = None,
) -> ValidationResult:
    """Validate; the exploration page is written even when the data breaches production's contract (it shows
    the breaches per column), the contract only when the data is valid."""
    from components.validate_data.explore import render

    frame = pd.read_parquet(dataset_path)
    reference, ref_version = production_contract(registry, model_name)
    result = assess(frame, label, task, timestamp, reference, ref_version, max_categories)
    if exploration_path is not None:
        write_text_atomic(Path(exploration_path), render(frame, result.contract, ref_version, result.skew_breaches))
    result.refuse_skew()
    write_text_atomic(Path(contract_path), result.contract.model_dump_json(indent=2))
    write_text_atomic(Path(report_path), result.report)
    return result
