"""The layers import downward only: core library <- steps / servers <- pipelines <- CLI; tooling outside.

Every import in every module is read (including those inside functions), so a lazy upward import fails too.
"""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ("mlcycle", "components", "inference", "pipelines", "cli")
# package -> the first-party packages it may import (besides itself)
ALLOWED = {
    "mlcycle": set(),
    "components": {"mlcycle"},
    "inference": {"mlcycle"},
    "pipelines": {"mlcycle", "components", "inference"},
    "cli": {"mlcycle", "components", "inference", "pipelines"},
}
FIRST_PARTY = set(RUNTIME) | {"devtools", "bench", "tests"}


def imported_modules(source: str) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def violations(module: str, source: str) -> list[str]:
    """Upward or sideways imports of ``module`` (dotted name) in ``source``."""
    parts = module.split(".")
    top = parts[0]
    found = []
    for name in imported_modules(source):
        target = name.split(".")
        if target[0] not in FIRST_PARTY or target[0] == top and top != "components":
            continue
        if top == "components" and target[0] == "components":
            # a step imports only itself and the shared image names, never another step
            if len(target) > 1 and target[1] not in (parts[1] if len(parts) > 1 else "", "image"):
                found.append(f"{module} imports {name} (another step)")
            continue
        if target[0] not in ALLOWED[top]:
            found.append(f"{module} imports {name}")
    return found


def runtime_modules():
    for package in RUNTIME:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            yield ".".join(p for p in rel.parts if p != "__init__"), path


def test_every_runtime_module_imports_downward_only():
    found = [v for module, path in runtime_modules() for v in violations(module, path.read_text())]
    assert found == []


def test_the_checker_sees_upward_sideways_and_lazy_imports():
    assert violations("mlcycle.cli", "from pipelines.local import run_local") == ["mlcycle.cli imports pipelines.local"]
    lazy = "def f():\n    from inference.rollout.kserve import KServeAdapter\n"
    assert violations("components.deploy_canary.logic", lazy) == [
        "components.deploy_canary.logic imports inference.rollout.kserve"
    ]
    assert violations("components.tune.logic", "from components.train.logic import fit_bundle") == [
        "components.tune.logic imports components.train.logic (another step)"
    ]
    assert violations("mlcycle.registry.s3", "import devtools.minio") == ["mlcycle.registry.s3 imports devtools.minio"]
    assert violations("inference.predictor.model", "from components.register.logic import register") != []
    assert (
        violations(
            "components.gate.component",
            "from components.image import PIPELINE_IMAGE\nfrom components.gate.logic import gate",
        )
        == []
    )
    assert (
        violations("pipelines.training", "from components.train.component import train\nfrom mlcycle import defaults")
        == []
    )


def test_the_walk_covers_every_layer():
    modules = {m for m, _ in runtime_modules()}
    assert {
        "mlcycle.models",
        "components.train.logic",
        "inference.predictor.model",
        "pipelines.training",
        "cli.main",
    } <= modules
