"""One exception root: every error mlcycle raises on purpose is a specific MlcycleError subclass."""

import ast
from pathlib import Path

import pytest

from mlcycle.errors import MlcycleError, ObjectNotFound, RegistryError, VersionNotFound
from mlcycle.registry import open_registry

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ("mlcycle", "components", "inference", "pipelines", "cli")


def _sources(packages=RUNTIME):
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text())


def test_no_bare_root_is_raised():
    bare = [
        f"{rel}:{node.lineno}"
        for rel, tree in _sources(RUNTIME + ("devtools",))
        for node in ast.walk(tree)
        if isinstance(node, ast.Raise)
        and isinstance(node.exc, ast.Call)
        and getattr(node.exc.func, "id", None) == "MlcycleError"
    ]
    assert bare == []


def test_every_exception_class_is_under_the_root():
    import inference.drift_detector.events as events
    import inference.predictor.limits as limits

    assert issubclass(events.BadEvent, MlcycleError) and issubclass(events.BadEvent, ValueError)
    assert issubclass(limits.BodyTooLarge, MlcycleError)
    # runtime classes on a builtin base alone; a module-private sentinel (``_Name``) never leaves its module
    outside = []
    builtin = {"Exception", "ValueError", "RuntimeError", "KeyError", "OSError", "TypeError"}
    for rel, tree in _sources():
        for node in ast.walk(tree):
            bases = {getattr(b, "id", None) for b in getattr(node, "bases", [])}
            if isinstance(node, ast.ClassDef) and bases and bases <= builtin and not node.name.startswith("_"):
                outside.append(f"{rel}:{node.name}")
    assert outside == ["mlcycle/errors.py:MlcycleError"]


def test_the_store_says_object_the_registry_says_version(tmp_path):
    registry = open_registry(tmp_path / "reg")
    with pytest.raises(ObjectNotFound) as err:
        registry.store.get_bytes("fraud/v1/metadata.json")
    assert not isinstance(err.value, VersionNotFound) and isinstance(err.value, RegistryError)
    with pytest.raises(VersionNotFound, match="no version 'v1' of model 'fraud'"):
        registry.metadata("fraud", "v1")


def test_the_s3_store_uses_only_the_sdks_public_api():
    tree = ast.parse((ROOT / "mlcycle" / "registry" / "s3.py").read_text())
    private = [
        f"{node.lineno}: {ast.unparse(node)}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "client"
    ]
    assert private == []
