"""What a step's process imports: each kfp.local step (and each cluster step) is a fresh interpreter, so every
library it imports is paid on every run. Guards the per-step start-up without a timed test: a step imports the
libraries of its own work only (alibi-detect in build-detector alone, no kubernetes client, no skops or
scikit-learn where no model is deserialized)."""

import ast
import inspect
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlcycle.errors import IntegrityError

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]

# Loaded by no step's own imports (the component module, then the imports at the top of its function body);
# what a step needs beyond pandas and pydantic it imports where it uses it.
NEVER_AT_START = (
    "kfp.client",
    "kubernetes",
    "minio",
    "alibi_detect",
    "transformers",
    "tensorflow",
    "torch",
    "sklearn",
    "skops",
    "xgboost",
    "scipy",
    "matplotlib",
    "onnxruntime",
    "onnxmltools",
)


def _run(code: str, timeout: int = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "_KFP_RUNTIME": "true"}  # as the compiled step command sets it
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def body_imports(func) -> str:
    """The import statements of a component function's body, in order (what its step runs first)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    return "\n".join(ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom))


def test_no_step_imports_a_heavy_library_before_its_work():
    from pipelines import training

    comps = [v for v in vars(training).values() if hasattr(v, "component_spec") and hasattr(v, "python_func")]
    assert len(comps) == 11  # every step of the pipeline, the shadow included
    lines = ["import sys", "import kfp.dsl.executor_main", f"never = {NEVER_AT_START!r}"]
    for c in comps:
        lines += [
            body_imports(c.python_func),
            "loaded = sorted(m for m in never if m in sys.modules)",
            f"assert not loaded, ({c.python_func.__name__!r}, loaded)",
        ]
    result = _run("\n".join(lines))
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_import_probe_sees_a_heavy_import():
    """The probe above can fail: a body importing scikit-learn is caught."""

    def step():
        import sklearn.compose  # noqa: F401

    code = f"import sys\n{body_imports(step)}\nassert 'sklearn' not in sys.modules, 'sklearn loaded'"
    result = _run(code)
    assert result.returncode != 0 and "sklearn loaded" in result.stderr


def _register_probe(model_dir, contract, train, tmp_path) -> subprocess.CompletedProcess:
    train_path, contract_path = tmp_path / "train.parquet", tmp_path / "contract.json"
    train.to_parquet(train_path)
    contract_path.write_text(contract.model_dump_json())
    code = f"""
import json, sys
from pathlib import Path
import pandas as pd
from components.register.logic import register
from mlcycle.contract import DataContract
from mlcycle.registry import open_registry
reg = open_registry({str(tmp_path / "reg")!r})
result = register(Path({str(model_dir)!r}), DataContract.model_validate_json(Path({str(contract_path)!r}).read_text()),
    pd.read_parquet({str(train_path)!r}), {{"metrics": {{}}}}, {{"passed": True, "reasons": []}}, reg, "fraud", "f" * 64, "r")
heavy = sorted(m for m in ("skops", "sklearn", "scipy", "xgboost", "onnxruntime", "alibi_detect") if m in sys.modules)
print(json.dumps({{"heavy": heavy, "fast_path": reg.describe("fraud", result.version)["fast_path"]}}))
"""
    return _run(code)


def test_register_of_a_model_without_converter_deserializes_nothing(splits, contract, model_dirs, tmp_path):
    """No fast-path converter for the family (the baseline): the bundle's spec says so, the model files are hashed,
    not loaded."""
    result = _register_probe(model_dirs["baseline"], contract, splits[0], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["heavy"] == []
    assert out["fast_path"] == {
        "status": "absent",
        "reason": "no fast-path converter for family 'baseline' (compiled: xgboost, logreg, hgb)",
        "checked_on": "train",
    }


def test_register_still_verifies_the_model_files_it_does_not_load(splits, contract, model_dirs, tmp_path):
    from components.register.logic import register
    from mlcycle.registry import open_registry

    model = tmp_path / "model"
    shutil.copytree(model_dirs["logreg"], model)
    with open(model / "estimator.skops", "ab") as f:
        f.write(b"tampered")
    reg = open_registry(tmp_path / "reg")
    with pytest.raises(IntegrityError, match="estimator.skops"):
        register(model, contract, splits[0], {}, {"passed": True, "reasons": []}, reg, "fraud", "f" * 64, "r")
    assert reg.list_versions("fraud") == []


def test_a_server_freezes_its_start_up_heap_for_the_collector():
    """``freeze_heap`` (called by the predictor, drift and capture mains before serving) leaves the start-up objects
    in the permanent generation: a full collection then has only what came after to scan."""
    code = (
        "import gc, json; import pandas; from mlcycle.process import freeze_heap\n"
        "before = gc.get_freeze_count(); n = freeze_heap()\n"
        "print(json.dumps({'before': before, 'frozen': n, 'young': sum(gc.get_count())}))"
    )
    out = json.loads(_run(code).stdout.strip().splitlines()[-1])
    assert out["before"] == 0 and out["frozen"] > 10_000 and out["young"] < 1_000, out
