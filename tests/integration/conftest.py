import pytest

from mlcycle.process import free_port


@pytest.fixture(scope="session")
def predictor(served, tmp_path_factory):
    from inference.devserve import start_predictor

    http, grpc = free_port(), free_port()
    proc = start_predictor(
        served["source"],
        "fraud",
        http,
        grpc,
        tmp_path_factory.mktemp("logs") / "predictor.log",
        "--max_batch_rows",
        "2000",
        "--max_body_bytes",
        "2000000",
        "--grpc_max_receive_message_length",
        "1000000",
    )
    yield {"url": proc.url, "grpc": f"127.0.0.1:{grpc}", "proc": proc}
    proc.stop()
