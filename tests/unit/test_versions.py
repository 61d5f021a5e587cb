"""Versions of one model as the register step writes them: an identical retrain is recognised against every
registered version (not only production), semantic versions (mlcycle.semver) and how `mlcycle models list/show`
shows them with the trigger — on a real registry in a local directory, versions written by the real register
step (components.register.logic.register) from real trained bundles."""

import contextlib
import io
import json
from pathlib import Path

import pytest

from cli.main import main as cli
from components.register.logic import identical_to, register
from mlcycle import semver
from mlcycle.errors import ConfigError
from mlcycle.provenance import code_version
from mlcycle.registry import open_registry
from mlcycle.schema import read_bundle

pytestmark = pytest.mark.unit
MODEL = "fraud"
PASSED = {"passed": True, "reasons": ["ok  roc_auc"]}


def _register(registry, model_dir, contract, train, fingerprint, **kw):
    return register(
        Path(model_dir), contract, train, {"metrics": {"roc_auc": 0.9}}, PASSED, registry, MODEL, fingerprint, "r", **kw
    )


# identical_to ---------------------------------------------------------------------------------------------------
def test_identical_to_needs_same_data_code_and_model(splits, contract, model_dirs, tmp_path):
    registry = open_registry(tmp_path / "registry")
    train = splits[0]
    version = _register(registry, model_dirs["logreg"], contract, train, "a" * 64).version
    meta, bundle, code = registry.metadata(MODEL, version), read_bundle(model_dirs["logreg"]), code_version()

    assert identical_to(meta, bundle, "a" * 64, code)
    assert not identical_to(meta, bundle, "b" * 64, code)  # other data
    assert not identical_to(meta, bundle, "a" * 64, code + "-other")  # other code
    changed = bundle.model_copy(update={"params": {**bundle.params, "C": 123.0}})
    assert not identical_to(meta, changed, "a" * 64, code)  # another hyperparameter
    assert not identical_to(meta, bundle.model_copy(update={"family": "hgb"}), "a" * 64, code)
    assert not identical_to(meta, bundle.model_copy(update={"threshold": bundle.threshold + 0.1}), "a" * 64, code)
    assert not identical_to(meta.model_copy(update={"lineage": None}), bundle, "a" * 64, code)


def test_an_identical_retrain_is_recognised_against_any_version(splits, contract, model_dirs, tmp_path):
    """Production v1 (data A); candidate v2 (data B), then stopped (its alias cleared). Retraining on B again is
    v2 — not a new version — and says it holds no alias; on A it is production; on C it is new."""
    registry = open_registry(tmp_path / "registry")
    train, model_dir = splits[0], model_dirs["logreg"]
    v1 = _register(registry, model_dir, contract, train, "a" * 64, auto_promote=True).version
    v2 = _register(registry, model_dir, contract, train, "b" * 64).version
    assert registry.resolve(MODEL, "candidate") == v2 != v1
    registry.clear_alias(MODEL, "candidate", why="stopped at shadow")

    again = _register(registry, model_dir, contract, train, "b" * 64)
    assert again.unchanged and again.version == v2 and again.aliases == () and not again.promoted
    assert registry.list_versions(MODEL) == [v1, v2]
    assert "candidate" not in registry.aliases(MODEL)[0]  # nothing moved

    same_as_production = _register(registry, model_dir, contract, train, "a" * 64, auto_promote=True)
    assert same_as_production.unchanged and same_as_production.version == v1
    assert same_as_production.aliases == ("production",)

    other = _register(registry, model_dirs["hgb"], contract, train, "b" * 64)  # same data, another model
    new = _register(registry, model_dir, contract, train, "c" * 64)
    assert not other.unchanged and not new.unchanged
    assert registry.list_versions(MODEL) == [v1, v2, other.version, new.version]


# semantic versions ----------------------------------------------------------------------------------------------
def test_change_major_minor_patch(contract):
    model = ("xgboost", {"max_depth": 4})
    assert semver.change(None, contract, (None, {}), model) == ("first", "first version")
    assert semver.change(contract, contract, model, model) == ("patch", "retrained on new data")
    assert semver.change(contract, contract, model, ("xgboost", {"max_depth": 6})) == (
        "minor",
        "hyperparameters changed: max_depth",
    )
    assert semver.change(contract, contract, model, ("logreg", {"C": 1.0})) == ("minor", "family xgboost -> logreg")

    first = contract.features[0]
    rest = [c for c in contract.columns if c.name != first.name]
    dropped = contract.model_copy(update={"columns": rest})
    part, why = semver.change(contract, dropped, model, model)
    assert part == "major" and f"feature {first.name} removed" in why
    part, why = semver.change(dropped, contract, model, model)
    assert part == "major" and f"feature {first.name} added" in why
    other_kind = "categorical" if first.kind == "numeric" else "numeric"
    retyped = contract.model_copy(update={"columns": [first.model_copy(update={"kind": other_kind}), *rest]})
    part, why = semver.change(contract, retyped, model, ("logreg", {}))  # the contract wins over the family
    assert part == "major" and f"feature {first.name}: {first.kind} -> {other_kind}" in why
    part, why = semver.change(contract, contract.model_copy(update={"classes": [0, 1, 2]}), model, model)
    assert part == "major" and "classes" in why


def test_next_version_moves_past_every_number_used():
    assert semver.next_version([], None, "first") == "1.0.0"
    assert semver.next_version(["1.0.0", "1.2.0"], None, "first") == "2.0.0"
    used = ["1.0.0", "1.0.1", "1.0.2", "1.1.0"]
    assert semver.next_version(used, "1.0.0", "patch") == "1.0.3"  # two retrains of one production: two numbers
    assert semver.next_version(used, "1.1.0", "patch") == "1.1.1"
    assert semver.next_version(used, "1.0.0", "minor") == "1.2.0"
    assert semver.next_version(used + ["2.0.0"], "1.1.0", "major") == "3.0.0"
    with pytest.raises(ConfigError, match="not a semantic version: '1.0'"):
        semver.parse("1.0")


def _cli(*argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli(list(argv))
    return code, out.getvalue()


def test_models_list_and_show_semver_and_trigger(splits, contract, model_dirs, tmp_path):
    """Versions the register step wrote: first (manual), a retrain on new data (drift, with its evidence), another
    family (accuracy); `models list` shows each one's semver and trigger, `models show` the reason and evidence."""
    registry = open_registry(tmp_path / "registry")
    train = splits[0]
    v1 = _register(registry, model_dirs["logreg"], contract, train, "a" * 64, auto_promote=True).version
    evidence = {"drifted_windows": 3, "fingerprint": "d" * 64}
    v2 = _register(
        registry, model_dirs["logreg"], contract, train, "b" * 64, trigger="drift", trigger_evidence=evidence
    ).version
    v3 = _register(registry, model_dirs["hgb"], contract, train, "c" * 64, trigger="accuracy").version

    code, out = _cli("models", "list", MODEL, "--registry", registry.uri)
    assert code == 0, out
    lines = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert lines[v1][1:4] == ["1.0.0", "logreg", "manual"] and lines[v1][-1] == "production"
    assert lines[v2][1:4] == ["1.0.1", "logreg", "drift"]  # patch: the same model on new data
    assert lines[v3][1:4] == ["1.1.0", "hgb", "accuracy"] and lines[v3][-1] == "candidate"  # minor: another family

    code, out = _cli("models", "show", MODEL, v2, "--registry", registry.uri)
    head, body = out.split("\n", 1)
    assert code == 0 and head == f"{MODEL} {v2}  semver 1.0.1 (retrained on new data)  trigger drift"
    lineage = json.loads(body)["lineage"]
    assert lineage["trigger"] == "drift" and lineage["trigger_evidence"] == evidence
    code, out = _cli("models", "show", MODEL, "candidate", "--registry", registry.uri)
    assert out.startswith(f"{MODEL} {v3}  semver 1.1.0 (family logreg -> hgb)  trigger accuracy")


def test_the_cli_and_the_loop_name_an_identical_retrain_alike():
    from pipelines.local import identical_to

    assert identical_to("v2", ("candidate", "production")).startswith("identical to production and candidate v2: ")
    assert identical_to("v2", ()).startswith("identical to v2 (no alias): same data fingerprint")
