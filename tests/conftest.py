import os
from pathlib import Path

import pytest

from mlcycle.contract import infer_contract
from mlcycle.data import DEMO_LABEL, DEMO_TIMESTAMP, make_demo_dataset

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def demo_frame():
    return make_demo_dataset(n_rows=6000, seed=7)


@pytest.fixture(scope="session")
def contract(demo_frame):
    return infer_contract(demo_frame, DEMO_LABEL, timestamp=DEMO_TIMESTAMP)


@pytest.fixture(scope="session")
def splits(demo_frame, contract):
    from components.split.logic import split_frame

    return split_frame(demo_frame, contract, seed=7)


@pytest.fixture(scope="session")
def fitted_bundles(splits, contract):
    """One trained bundle per family, in memory: {family: ModelBundle}."""
    from mlcycle.models import fit_bundle

    train, val, _ = splits
    params = {"xgboost": {"n_estimators": 60}}
    return {
        family: fit_bundle(family, train, val, contract, seed=7, params=params.get(family))[0]
        for family in ("baseline", "logreg", "hgb", "xgboost")
    }


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory, fitted_bundles):
    """The same bundles saved: {family: directory}."""
    out = {}
    for family, bundle in fitted_bundles.items():
        out[family] = tmp_path_factory.mktemp(family) / "model"
        bundle.save(out[family])
    return out


@pytest.fixture(scope="session")
def minio_server(tmp_path_factory):
    """A real MinIO server process (built from source by scripts/ensure-minio.sh when absent)."""
    from devtools.minio import MinioServer

    if not (os.environ.get("MINIO_BIN") or __import__("shutil").which("minio")):
        pytest.fail("MinIO binary not found: run the tests through `make test` (it builds MinIO) or set MINIO_BIN")
    server = MinioServer(tmp_path_factory.mktemp("minio") / "data").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def register_passed(splits, contract):
    """``register`` as the pipeline calls it after a passed gate, on the shared training split and contract:
    ``register_passed(model_dir, registry, fingerprint, run_id, metrics=None, reasons=(), model_name="fraud", **kw)``
    (``kw``: register's keyword options, e.g. auto_promote, drift_dir)."""
    from components.register.logic import register

    def call(model_dir, registry, fingerprint, run_id, metrics=None, reasons=(), model_name="fraud", **kw):
        evaluation, decision = {"metrics": metrics or {}}, {"passed": True, "reasons": list(reasons)}
        train = splits[0]
        return register(
            model_dir, contract, train, evaluation, decision, registry, model_name, fingerprint, run_id, **kw
        )

    return call


@pytest.fixture(scope="session")
def served(tmp_path_factory, splits, contract, model_dirs, register_passed):
    """A registry with one production version (XGBoost + alibi-detect drift detector), as the pipeline writes it."""
    from components.build_detector.logic import build_detector
    from mlcycle.registry import open_registry

    root = tmp_path_factory.mktemp("served")
    train, _, _ = splits
    build_detector(train, contract, root / "drift", backend="alibi")
    registry = open_registry(root / "registry")
    result = register_passed(
        model_dirs["xgboost"], registry, "f" * 64, "test", auto_promote=True, drift_dir=root / "drift"
    )
    return {
        "source": f"{root / 'registry'}#fraud@production",
        "version": result.version,
        "root": root,
        "model_dir": model_dirs["xgboost"],
    }
