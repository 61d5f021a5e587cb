"""Semantic versions of a model, beside its immutable version id (the seed documents' MAJOR.MINOR.PATCH):

- MAJOR when the input contract changes incompatibly — a feature removed, added as required, or of another
  kind, a category set that no longer holds, other classes or another task: clients must change;
- MINOR when the model changes but its inputs do not — another family or other hyperparameters;
- PATCH for a retrain of the same model on new data.
"""

import re

from mlcycle.contract import DataContract
from mlcycle.errors import ConfigError

FIRST = "1.0.0"
_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def parse(text: str) -> tuple[int, int, int]:
    m = _SEMVER.match(text or "")
    if not m:
        raise ConfigError(f"not a semantic version: {text!r} (expected MAJOR.MINOR.PATCH)")
    return int(m[1]), int(m[2]), int(m[3])


def contract_breaks(old: DataContract, new: DataContract) -> list[str]:
    """Why a client of ``old`` cannot call a model of ``new`` unchanged (empty: compatible)."""
    why = []
    if old.task != new.task:
        why.append(f"task {old.task} -> {new.task}")
    if (old.classes or []) != (new.classes or []):
        why.append(f"classes {old.classes} -> {new.classes}")
    before = {c.name: c for c in old.features}
    after = {c.name: c for c in new.features}
    for name in sorted(set(before) - set(after)):
        why.append(f"feature {name} removed")
    for name in sorted(set(after) - set(before)):
        why.append(f"feature {name} added")
    for name in sorted(set(before) & set(after)):
        if before[name].kind != after[name].kind:
            why.append(f"feature {name}: {before[name].kind} -> {after[name].kind}")
    return why


def change(
    old_contract: DataContract | None,
    new_contract: DataContract,
    old_model: tuple[str | None, dict],
    new_model: tuple[str | None, dict],
) -> tuple[str, str]:
    """Which part moves (major, minor, patch; "first" without a previous version) and why; ``*_model``: (family, params)."""
    if old_contract is None:
        return "first", "first version"
    breaks = contract_breaks(old_contract, new_contract)
    if breaks:
        return "major", "input contract changed: " + "; ".join(breaks)
    if old_model[0] != new_model[0]:
        return "minor", f"family {old_model[0]} -> {new_model[0]}"
    if old_model[1] != new_model[1]:
        changed = sorted(k for k in set(old_model[1]) | set(new_model[1]) if old_model[1].get(k) != new_model[1].get(k))
        return "minor", "hyperparameters changed: " + ", ".join(changed[:6])
    return "patch", "retrained on new data"


def next_version(existing: list[str], base: str | None, part: str) -> str:
    """Bump ``part`` of ``base`` (the version compared against), past every ``existing`` semver of that line, so two
    retrains of one production never share a number."""
    if part == "first" or base is None:
        taken = [parse(v) for v in existing]
        return f"{max(taken)[0] + 1}.0.0" if taken else FIRST
    major, minor, patch = parse(base)
    used = {parse(v) for v in existing}
    if part == "major":
        return f"{max([t[0] for t in used] + [major]) + 1}.0.0"
    if part == "minor":
        return f"{major}.{max([t[1] for t in used if t[0] == major] + [minor]) + 1}.0"
    return f"{major}.{minor}.{max([t[2] for t in used if t[:2] == (major, minor)] + [patch]) + 1}"
