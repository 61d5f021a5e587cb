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
def model_dirs(tmp_path_factory, splits, contract):
    """One trained bundle per family: {family: directory}."""
    from components.train.logic import fit_bundle

    train, val, _ = splits
    out = {}
    for family in ("baseline", "logreg", "hgb", "xgboost"):
        bundle, _ = fit_bundle(family, train, val, contract, seed=7, params={"n_estimators": 60} if family == "xgboost" else None)
        out[family] = tmp_path_factory.mktemp(family) / "model"
        bundle.save(out[family])
    return out


@pytest.fixture(scope="session")
def minio_server(tmp_path_factory):
    """A real MinIO server process (built from source by scripts/ensure-minio.sh when absent)."""
    from mlcycle.devminio import MinioServer

    if not (os.environ.get("MINIO_BIN") or __import__("shutil").which("minio")):
        pytest.fail("MinIO binary not found: run the tests through `make test` (it builds MinIO) or set MINIO_BIN")
    server = MinioServer(tmp_path_factory.mktemp("minio") / "data").start()
    yield server
    server.stop()
