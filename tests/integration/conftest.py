import pytest

from mlcycle.devminio import free_port


@pytest.fixture(scope="session")
def served(tmp_path_factory, splits, contract, model_dirs):
    """A registry with one production version (XGBoost + alibi-detect drift detector), as the pipeline writes it."""
    from components.build_detector.logic import build_detector
    from components.register.logic import register
    from mlcycle.registry import open_registry

    root = tmp_path_factory.mktemp("served")
    train, _, _ = splits
    build_detector(train, contract, root / "drift", backend="alibi")
    registry = open_registry(root / "registry")
    result = register(model_dirs["xgboost"], contract, train, {"metrics": {}}, {"passed": True, "reasons": []}, registry,
                      "fraud", "f" * 64, "test", auto_promote=True, drift_dir=root / "drift")
    return {"source": f"{root / 'registry'}#fraud@production", "version": result.version, "root": root, "model_dir": model_dirs["xgboost"]}


@pytest.fixture(scope="session")
def predictor(served, tmp_path_factory):
    from inference.devserve import start_predictor

    http, grpc = free_port(), free_port()
    proc = start_predictor(served["source"], "fraud", http, grpc, tmp_path_factory.mktemp("logs") / "predictor.log",
                           "--max_batch_rows", "2000", "--max_body_bytes", "2000000", "--grpc_max_receive_message_length", "1000000")
    yield {"url": proc.url, "grpc": f"127.0.0.1:{grpc}", "proc": proc}
    proc.stop()
