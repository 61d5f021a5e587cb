"""The lean gRPC front over real gRPC: the same bytes as KServe's own path (a second server started with
--no-fast_grpc), the same error answers, KServe's client parses it, and the lean path really answers."""

import asyncio

import grpc
import numpy as np
import pytest
import requests
from kserve import InferenceGRPCClient
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from kserve.protocol.infer_type import InferInput, InferRequest
from prometheus_client.parser import text_string_to_metric_families

from mlcycle.data import DEMO_ROW
from mlcycle.process import free_port

pytestmark = pytest.mark.integration
INT = {"hour", "card_age_days", "txn_count_24h", "is_foreign"}


@pytest.fixture(scope="module")
def kserve_path(served, tmp_path_factory):
    """The same version served with KServe's own gRPC path."""
    from inference.devserve import start_predictor

    grpc_port = free_port()
    proc = start_predictor(
        served["source"],
        "fraud",
        free_port(),
        grpc_port,
        tmp_path_factory.mktemp("logs") / "kserve-grpc.log",
        "--max_batch_rows",
        "2000",
        "--no-fast_grpc",
    )
    yield {"url": proc.url, "grpc": f"127.0.0.1:{grpc_port}"}
    proc.stop()


def inputs(frame, raw=False) -> list[InferInput]:
    out = []
    for name in DEMO_ROW:
        col = frame[name]
        if isinstance(DEMO_ROW[name], str):
            dtype, array = "BYTES", col.astype(str).to_numpy(dtype=object)
        elif name in INT:
            dtype, array = "INT64", col.to_numpy(dtype=np.int64)
        else:
            dtype, array = "FP64", col.to_numpy(dtype=np.float64)
        inp = InferInput(name, [len(frame)], dtype)
        if raw:
            inp.set_data_from_numpy(array, binary_data=True)
        else:
            inp.data = array.tolist()
        out.append(inp)
    return out


def call(target: str, req: pb.ModelInferRequest, metadata=()):
    with grpc.insecure_channel(target) as channel:
        try:
            return pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(req, timeout=30, metadata=metadata)
        except grpc.RpcError as e:
            return e.code(), e.details()


def infer_calls(url: str) -> dict[str, float]:
    text = requests.get(f"{url}/metrics", timeout=5).text
    out = {"lean": 0.0, "kserve": 0.0}
    for family in text_string_to_metric_families(text):
        if family.name == "mlcycle_grpc_infer":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels.get("model") == "fraud":
                    out[sample.labels["path"]] = sample.value
    return out


def rows(splits, contract, n, nan=False):
    frame = splits[2][contract.feature_names].dropna().head(n).reset_index(drop=True)
    if nan:
        frame.loc[0, "distance_from_home_km"] = np.nan  # missing in training: the imputer fills it
    return frame


def test_lean_answers_are_byte_identical_to_kserves(predictor, kserve_path, splits, contract):
    cases = {
        "1 row": InferRequest("fraud", inputs(rows(splits, contract, 1))).to_grpc(),
        "60 rows with an id": InferRequest("fraud", inputs(rows(splits, contract, 60)), request_id="q-7").to_grpc(),
        "raw_input_contents": InferRequest("fraud", inputs(rows(splits, contract, 5), raw=True)).to_grpc(),
        "NaN where allowed": InferRequest("fraud", inputs(rows(splits, contract, 3, nan=True))).to_grpc(),
    }
    reversed_order = pb.ModelInferRequest()
    reversed_order.CopyFrom(cases["1 row"])
    reversed_order.inputs.reverse()
    cases["inputs reversed"] = reversed_order
    before = infer_calls(predictor["url"])
    for case, req in cases.items():
        ours = call(predictor["grpc"], req, metadata=(("x-request-id", "abc"),))
        theirs = call(kserve_path["grpc"], req, metadata=(("x-request-id", "abc"),))
        assert isinstance(ours, pb.ModelInferResponse), (case, ours)
        assert ours.SerializeToString() == theirs.SerializeToString(), case
    after = infer_calls(predictor["url"])
    assert after["lean"] - before["lean"] == len(cases) and after["kserve"] == before["kserve"]


def _set(req: pb.ModelInferRequest, name: str, fn) -> pb.ModelInferRequest:
    fn(next(t for t in req.inputs if t.name == name))
    return req


def test_what_the_lean_path_leaves_to_kserve_gets_kserves_answer(predictor, kserve_path, splits, contract):
    def one():
        return InferRequest("fraud", inputs(rows(splits, contract, 1))).to_grpc()

    with_parameter = one()
    with_parameter.parameters["note"].string_param = "x"
    with_output = one()
    with_output.outputs.add(name="label")
    cases = {
        "request parameters (answered)": with_parameter,
        "requested outputs (answered)": with_output,
        "INT8 (answered)": _set(one(), "is_foreign", lambda t: t.__setattr__("datatype", "INT8")),
        "unknown category": _set(one(), "channel", lambda t: t.contents.bytes_contents.__setitem__(0, b"teleport")),
        "infinity": _set(one(), "amount", lambda t: t.contents.fp64_contents.__setitem__(0, float("inf"))),
        "shape against data": _set(one(), "amount", lambda t: t.shape.__setitem__(0, 2)),
        "unknown model": _set(one(), "amount", lambda t: None),
    }
    cases["unknown model"].model_name = "nope"
    before = infer_calls(predictor["url"])
    for case, req in cases.items():
        ours, theirs = call(predictor["grpc"], req), call(kserve_path["grpc"], req)
        if isinstance(theirs, pb.ModelInferResponse):
            assert isinstance(ours, pb.ModelInferResponse), (case, ours)
            assert ours.SerializeToString() == theirs.SerializeToString(), case
        else:
            assert ours == theirs, case  # (status code, details)
            assert theirs[0] != grpc.StatusCode.OK, case
    after = infer_calls(predictor["url"])
    assert after["kserve"] - before["kserve"] == len(cases) and after["lean"] == before["lean"]
    assert "mlcycle_grpc_infer_total" not in requests.get(f"{kserve_path['url']}/metrics", timeout=5).text


def test_kserves_grpc_client_parses_the_lean_answer(predictor, served, splits, contract):
    frame = rows(splits, contract, 20)

    async def infer(raw):
        client = InferenceGRPCClient(predictor["grpc"], timeout=30)
        try:
            return await client.infer(InferRequest("fraud", inputs(frame, raw=raw), request_id="c-1"))
        finally:
            await client.close()

    before = infer_calls(predictor["url"])
    for raw in (False, True):
        response = asyncio.run(infer(raw))
        assert response.model_name == "fraud" and response.model_version == served["version"] and response.id == "c-1"
        probs = next(o for o in response.outputs if o.name == "probabilities")
        assert probs.shape == [20, 2] and probs.parameters["classes"].string_param == "0,1"
        np.testing.assert_allclose(probs.as_numpy().sum(axis=1), 1.0, atol=1e-9)
        labels = next(o for o in response.outputs if o.name == "label").as_numpy()
        assert labels.shape == (20,) and set(labels.tolist()) <= {0, 1}
    assert infer_calls(predictor["url"])["lean"] - before["lean"] == 2


def test_the_other_rpcs_are_kserves_through_the_front(predictor, kserve_path):
    calls = [
        ("ServerLive", pb.ServerLiveRequest()),
        ("ServerReady", pb.ServerReadyRequest()),
        ("ModelReady", pb.ModelReadyRequest(name="fraud")),
        ("ModelMetadata", pb.ModelMetadataRequest(name="fraud")),
        ("ModelMetadata", pb.ModelMetadataRequest(name="nope")),
        ("ServerMetadata", pb.ServerMetadataRequest()),
    ]
    for method, req in calls:
        answers = []
        for target in (predictor["grpc"], kserve_path["grpc"]):
            with grpc.insecure_channel(target) as channel:
                try:
                    answers.append(getattr(pb_grpc.GRPCInferenceServiceStub(channel), method)(req, timeout=10))
                except grpc.RpcError as e:
                    answers.append((e.code(), e.details()))
        assert answers[0] == answers[1], (method, answers)
        if method == "ModelReady":
            assert answers[0].ready is True
        if isinstance(req, pb.ModelMetadataRequest) and req.name == "nope":
            assert answers[0][0] == grpc.StatusCode.NOT_FOUND
