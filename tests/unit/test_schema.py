"""The version files' schema (mlcycle.schema): strict models, format versions, one reader that hashes each file once."""

import ast
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from mlcycle import schema
from mlcycle.errors import FormatError, IntegrityError
from mlcycle.fsutil import sha256_file
from mlcycle.models import ModelBundle
from mlcycle.registry import open_registry

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ("mlcycle", "components", "inference", "pipelines", "cli")
VERSION_FILES = (schema.METADATA_FILE, schema.BUNDLE_FILE, "contract.json")
NAMES = {"METADATA_FILE", "BUNDLE_FILE", "CONTRACT_FILE", "MANIFEST"}
# The reader (and writer) of the version files, and the registry, which keys the manifest in the object store.
OWNERS = {"mlcycle/schema.py", "mlcycle/registry/registry.py"}
# Same name, another file: the validate step's output in a run directory (a DataContract), not a version's file.
NOT_VERSION_FILES = {("pipelines/direct.py", "contract.json")}


@pytest.fixture(scope="module")
def version(tmp_path_factory, model_dirs, register_passed):
    root = tmp_path_factory.mktemp("schema")
    registry = open_registry(root / "registry")
    result = register_passed(model_dirs["logreg"], registry, "f" * 64, "run-1", {"roc_auc": 0.8})
    return registry, result.version, registry.fetch("fraud", result.version, root / "local")


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def readers_by_name(rel: str, source: str) -> list[str]:
    """Where ``source`` names a version file: a string literal (docstrings aside) or a constant that holds one."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            found += [
                f"{rel}:{node.lineno} {name!r}"
                for name in VERSION_FILES
                if name in node.value and (rel, name) not in NOT_VERSION_FILES
            ]
        elif isinstance(node, ast.Name) and node.id in NAMES or isinstance(node, ast.Attribute) and node.attr in NAMES:
            found.append(f"{rel}:{node.lineno} {getattr(node, 'id', None) or node.attr}")
        elif isinstance(node, ast.ImportFrom):
            found += [f"{rel}:{node.lineno} imports {a.name}" for a in node.names if a.name in NAMES]
    return found


def test_only_the_schema_module_reads_version_files_by_name():
    found = []
    for package in RUNTIME:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel not in OWNERS:
                found += readers_by_name(rel, path.read_text())
    assert found == []


def test_the_name_scan_sees_literals_paths_and_constants():
    assert readers_by_name("x.py", 'json.loads((d / "metadata.json").read_text())') == ["x.py:1 'metadata.json'"]
    assert readers_by_name("x.py", 'key = f"{model}/{v}/bundle.json"') == ["x.py:1 'bundle.json'"]
    assert readers_by_name("x.py", "from mlcycle.schema import BUNDLE_FILE") == ["x.py:1 imports BUNDLE_FILE"]
    assert readers_by_name("x.py", "p = d / schema.METADATA_FILE") == ["x.py:1 METADATA_FILE"]
    assert readers_by_name("x.py", '"""Reads metadata.json."""\n') == []  # a docstring only describes


def test_unknown_keys_are_refused(version):
    _, v, local = version
    meta = json.loads((local / schema.METADATA_FILE).read_text())
    with pytest.raises(FormatError, match=r"metadata.json of x does not match its schema \(VersionMetadata\): surpr"):
        schema.parse_metadata(json.dumps({**meta, "surprise": 1}).encode(), "x")
    lineage = {**meta["lineage"], "extra": "y"}
    with pytest.raises(FormatError, match=r"lineage.extra: Extra inputs are not permitted"):
        schema.parse_metadata(json.dumps({**meta, "lineage": lineage}).encode(), "x")
    bundle = json.loads((local / schema.BUNDLE_FILE).read_text())
    with pytest.raises(FormatError, match=r"BundleSpec.*surprise"):
        schema.parse(schema.BundleSpec, json.dumps({**bundle, "surprise": 1}), "bundle.json")
    with pytest.raises(FormatError, match="surprise"):  # and on the way in: nothing is uploaded
        version[0].register("fraud", local, {"surprise": 1})


def test_a_newer_format_version_is_refused_with_a_clear_message(version):
    _, _, local = version
    for name, cls in ((schema.METADATA_FILE, schema.VersionMetadata), (schema.BUNDLE_FILE, schema.BundleSpec)):
        data = json.loads((local / name).read_text())
        assert data["format_version"] == schema.FORMAT_VERSION == 1
        newer = json.dumps({**data, "format_version": 2})
        with pytest.raises(FormatError, match=rf"{name} has format_version 2, newer than the 1 this mlcycle reads"):
            schema.parse(cls, newer, name)
        for bad in ("2", 0, True):
            with pytest.raises(FormatError, match="format_version"):
                schema.parse(cls, json.dumps({**data, "format_version": bad}), name)


def test_files_written_before_format_versions_read_as_version_1(version, tmp_path):
    _, _, local = version
    old = tmp_path / "old"
    shutil.copytree(local, old)
    for name in (schema.METADATA_FILE, schema.BUNDLE_FILE):
        data = json.loads((old / name).read_text())
        del data["format_version"]
        (old / name).write_text(json.dumps(data))
    meta = json.loads((old / schema.METADATA_FILE).read_text())
    meta.pop("fast_path", None)  # old files predate fast paths too
    meta["files"][schema.BUNDLE_FILE]["sha256"] = sha256_file(old / schema.BUNDLE_FILE)
    (old / schema.METADATA_FILE).write_text(json.dumps(meta))
    read = schema.read_version(old)
    assert read.metadata.format_version == read.bundle.format_version == 1
    assert read.metadata.fast_path is None and read.contract.label == "is_fraud"
    fast = {"status": "off", "reason": "r"}
    with_fast_path = schema.parse_metadata(json.dumps({**meta, "fast_path": fast}).encode(), "x")
    assert with_fast_path.fast_path == fast


def test_the_manifest_round_trips_and_carries_the_contract(version, contract):
    registry, v, local = version
    meta = registry.metadata("fraud", v)
    assert meta.contract == contract and meta.lineage.dataset_fingerprint == "f" * 64 and meta.lineage.parent is None
    assert schema.parse_metadata((local / schema.METADATA_FILE).read_bytes(), "x") == meta
    assert registry.describe("fraud", v) == json.loads((local / schema.METADATA_FILE).read_text())
    assert "contract.json" not in meta.files  # the contract lives in the manifest only


def _count_hashes(monkeypatch) -> Counter:
    """Count, per file name, every sha256 taken of a file (the reader's and the store's)."""
    import mlcycle.fsutil
    import mlcycle.models
    import mlcycle.registry.store

    counts: Counter = Counter()
    real_file, real_copy = mlcycle.fsutil.sha256_file, mlcycle.registry.store.copy_hashing

    def sha256_file(path):
        counts[Path(path).name] += 1
        return real_file(path)

    def copy_hashing(chunks, path):
        counts[Path(path).name] += 1
        return real_copy(chunks, path)

    monkeypatch.setattr(mlcycle.fsutil, "sha256_file", sha256_file)
    monkeypatch.setattr(mlcycle.models, "sha256_file", sha256_file)
    monkeypatch.setattr(mlcycle.registry.store, "copy_hashing", copy_hashing)
    return counts


def test_a_local_version_is_hashed_once_per_file(version, monkeypatch):
    from inference.loader import materialize

    _, _, local = version
    counts = _count_hashes(monkeypatch)
    loaded = materialize(str(local))
    bundle = ModelBundle.from_version(loaded)
    # the compiled fast path (optional) is hashed by fastpath.load when a server loads it, not here
    listed = {Path(rel).name for rel in loaded.metadata.files} - loaded.metadata.optional_files
    assert bundle.family == "logreg" and loaded.metadata.model == "fraud"
    assert loaded.metadata.optional_files == {"fastpath.onnx"}  # a logistic regression is compiled
    assert set(counts) == listed and set(counts.values()) == {1}, counts


def test_a_registry_version_is_hashed_once_per_file_while_it_downloads(version, tmp_path, monkeypatch):
    from inference.loader import materialize

    registry, v, _ = version
    counts = _count_hashes(monkeypatch)
    loaded = materialize(f"{registry.store.root}#fraud@{v}", tmp_path)
    ModelBundle.from_version(loaded)
    assert set(counts) == {Path(rel).name for rel in loaded.metadata.files} and set(counts.values()) == {1}, counts


def test_the_bundle_must_agree_with_the_manifest(version, tmp_path):
    _, _, local = version
    copy = tmp_path / "v"
    shutil.copytree(local, copy)
    meta = schema.read_version(copy).metadata
    files = {**meta.files, "preprocessor.skops": schema.FileEntry(sha256="0" * 64, size=1)}
    with pytest.raises(IntegrityError, match="sha256 mismatch for preprocessor.skops: bundle.json records"):
        schema.VersionFiles.verified(copy, meta.model_copy(update={"files": files}))
    (copy / "estimator.skops").write_bytes(b"evil")
    with pytest.raises(IntegrityError, match="sha256 mismatch for estimator.skops"):
        schema.read_version(copy)
