"""The lean gRPC front decodes exactly what KServe's path decodes, sends the message KServe sends, and leaves
every request it cannot answer exactly (odd, or refused by the contract) to KServe."""

import numpy as np
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.infer_type import InferInput, InferRequest

from inference.predictor.codec import Codec
from mlcycle.data import DEMO_ROW

pytestmark = pytest.mark.unit
INT = {"hour", "card_age_days", "txn_count_24h", "is_foreign"}


def request(rows=1, dtypes=None, raw=False, order=None, **patches) -> pb.ModelInferRequest:
    """A V2 gRPC request of ``rows`` copies of the demo row, built with KServe's own InferRequest.to_grpc."""
    dtypes = dtypes or {}
    inputs = []
    for name in order or DEMO_ROW:
        value = patches.get(name, DEMO_ROW[name])
        if isinstance(DEMO_ROW[name], str):
            dtype, array = "BYTES", np.array([value] * rows, dtype=object)
        else:
            dtype = dtypes.get(name, "INT64" if name in INT else "FP64")
            array = np.array([value] * rows, dtype={"FP64": np.float64, "FP32": np.float32}.get(dtype, dtype.lower()))
        inp = InferInput(name, [rows], dtype)
        if raw:
            inp.set_data_from_numpy(array, binary_data=True)
        else:
            inp.data = array.tolist()
        inputs.append(inp)
    return InferRequest("fraud", inputs, request_id="r-1").to_grpc()


def kserve_batch(codec, req):
    """What KServe's servicer and the model decode from ``req`` (InvalidInput where they refuse it)."""
    InferenceServicer.validate_grpc_request(req)
    return codec.decode(InferRequest.from_grpc(req))


def _param(parameters) -> None:
    parameters["x"].string_param = "y"


PLAIN = {
    "1 row": lambda: request(),
    "100 rows": lambda: request(100),
    "FP32 and INT32": lambda: request(dtypes={"amount": "FP32", "hour": "INT32", "avg_amount_30d": "FP32"}),
    "raw_input_contents": lambda: request(3, raw=True),
    "raw FP32 / INT32": lambda: request(2, raw=True, dtypes={"amount": "FP32", "hour": "INT32"}),
    "inputs in another order": lambda: request(order=list(reversed(DEMO_ROW))),
    "shape [n, 1]": lambda: _patched(request(2), "amount", lambda t: t.shape.append(1)),
    "NaN where training had missing values": lambda: request(distance_from_home_km=float("nan")),
    "huge INT64": lambda: request(card_age_days=2**62 + 1),
}


def _patched(req, name, fn):
    fn(next(t for t in req.inputs if t.name == name))
    return req


@pytest.mark.parametrize("make", PLAIN.values(), ids=PLAIN.keys())
def test_a_plain_request_decodes_to_kserves_batch(contract, make):
    codec = Codec(contract)
    req = make()
    ours, theirs = codec.decode_grpc(req, max_rows=1000), kserve_batch(codec, req)
    assert ours is not None and ours.n == theirs.n and list(ours.columns) == list(theirs.columns)
    for name, column in theirs.columns.items():
        assert ours.columns[name].dtype == column.dtype, name
        np.testing.assert_array_equal(ours.columns[name], column, err_msg=name)


ODD = {  # KServe's path accepts these too, but they are not the plain case
    "request parameters": lambda: _with(request(), lambda r: _param(r.parameters)),
    "requested outputs": lambda: _with(request(), lambda r: r.outputs.add(name="label")),
    "input parameters": lambda: _patched(request(), "amount", lambda t: _param(t.parameters)),
    "INT8": lambda: request(dtypes={"hour": "INT8"}),
    "more rows than max_rows": lambda: request(5),
}
REFUSED = {  # KServe's path refuses these: the lean one must leave them to it
    "unknown category": lambda: request(channel="teleport"),
    "NaN never missing in training": lambda: request(amount=float("nan")),
    "infinity": lambda: request(amount=float("inf")),
    "non-UTF-8 bytes": lambda: _patched(
        request(), "channel", lambda t: t.contents.bytes_contents.__setitem__(0, b"\xff")
    ),
    "BYTES for a number": lambda: _patched(request(), "amount", lambda t: t.__setattr__("datatype", "BYTES")),
    "FP64 for a category": lambda: _patched(request(), "channel", lambda t: t.__setattr__("datatype", "FP64")),
    "shape against data": lambda: _patched(request(), "amount", lambda t: t.shape.__setitem__(0, 3)),
    "rows disagree": lambda: _patched(
        request(), "hour", lambda t: (t.shape.__setitem__(0, 2), t.contents.int64_contents.append(1))
    ),
    "3-d shape": lambda: _patched(request(), "amount", lambda t: t.shape.extend([1, 1])),
    "no shape": lambda: _patched(request(), "amount", lambda t: t.ClearField("shape")),
    "missing feature": lambda: _with(request(), lambda r: r.inputs.pop()),
    "feature twice": lambda: _with(request(), lambda r: r.inputs[1].__setattr__("name", "amount")),
    "unknown feature": lambda: _with(request(), lambda r: r.inputs[1].__setattr__("name", "zip")),
    "zero rows": lambda: request(0),
    "raw and contents": lambda: _with(request(raw=True), lambda r: r.inputs[0].contents.fp64_contents.append(1.0)),
    "raw count": lambda: _with(request(raw=True), lambda r: r.raw_input_contents.pop()),
    "raw bytes too short": lambda: _with(request(raw=True), lambda r: r.raw_input_contents.__setitem__(0, b"\x00" * 4)),
    "values in the wrong field": lambda: _patched(
        request(), "amount", lambda t: (t.contents.ClearField("fp64_contents"), t.contents.int64_contents.append(4))
    ),
}


def _with(req, fn):
    fn(req)
    return req


@pytest.mark.parametrize("make", ODD.values(), ids=ODD.keys())
def test_odd_requests_go_to_kserves_path(contract, make):
    codec = Codec(contract)
    req = make()
    assert codec.decode_grpc(req, max_rows=4) is None
    assert kserve_batch(codec, req).n >= 1  # KServe's path answers them


@pytest.mark.parametrize("make", REFUSED.values(), ids=REFUSED.keys())
def test_requests_kserve_refuses_go_to_kserves_path(contract, make):
    codec = Codec(contract)
    req = make()
    assert codec.decode_grpc(req, max_rows=1000) is None
    with pytest.raises(InvalidInput):
        kserve_batch(codec, req)


def test_raw_fp64_inputs_are_accepted_on_kserves_path_too(contract):
    """The codec's FP64 shortcut read ``data`` (empty for raw_input_contents) and refused every raw FP64 input."""
    batch = kserve_batch(Codec(contract), request(2, raw=True))
    np.testing.assert_array_equal(batch.columns["amount"], [DEMO_ROW["amount"]] * 2)


@pytest.mark.parametrize("request_id", ["", "abc-1"])
@pytest.mark.parametrize("classes", [[0, 1], ["no", "yes"]])
def test_response_is_byte_identical_to_kserves(contract, request_id, classes):
    codec = Codec(contract)
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    labels = [classes[0], classes[1], classes[1]]
    req = InferRequest("fraud", [], request_id=request_id, from_grpc=True)
    theirs = codec.encode_v2(req, "fraud", scores, labels, classes, "v1").to_grpc()
    ours = codec.encode_v2_grpc(request_id, "fraud", scores, labels, classes, "v1")
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(deterministic=True)
    assert ours == theirs


def test_regression_response_is_byte_identical_to_kserves(contract):
    codec = Codec(contract.model_copy(update={"task": "regression"}))
    req = InferRequest("m", [], request_id="r", from_grpc=True)
    scores = np.array([1.5, -2.0])
    theirs = codec.encode_v2(req, "m", scores, [], None, "v7").to_grpc()
    assert codec.encode_v2_grpc("r", "m", scores, [], None, "v7").SerializeToString() == theirs.SerializeToString()
