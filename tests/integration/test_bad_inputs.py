"""A corpus of bad requests: every one a 4xx (or gRPC INVALID_ARGUMENT / RESOURCE_EXHAUSTED) with a
message naming the problem, never a 5xx, and the server healthy afterwards."""

import copy

import grpc
import pytest
import requests
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from mlcycle.data import DEMO_ROW

pytestmark = pytest.mark.integration

ROW = dict(DEMO_ROW)
ORDER = list(ROW)


def v2(**overrides):
    inputs = []
    for name, value in ROW.items():
        dtype = "BYTES" if isinstance(value, str) else "FP64" if isinstance(value, float) else "INT64"
        inputs.append({"name": name, "shape": [1], "datatype": dtype, "data": [value]})
    body = {"inputs": inputs}
    for name, patch in overrides.items():
        for inp in body["inputs"]:
            if inp["name"] == name:
                inp.update(patch)
    return body


def with_row(**changes):
    row = {**ROW, **changes}
    return {"instances": [{k: v for k, v in row.items() if v != "__drop__"}]}


V1 = "/v1/models/fraud:predict"
V2 = "/v2/models/fraud/infer"
J = {"content-type": "application/json"}
CASES = [
    # (id, path, body (dict -> JSON, bytes -> raw), headers, expected status, message fragment)
    ("v1-wrong-type-amount", V1, with_row(amount="12"), J, 400, "feature 'amount' row 0: expected a number, got str"),
    ("v1-bool-for-number", V1, with_row(hour=True), J, 400, "feature 'hour' row 0: expected a number, got bool"),
    ("v1-list-for-number", V1, with_row(amount=[1]), J, 400, "feature 'amount' row 0: expected a number, got list"),
    ("v1-null-not-allowed", V1, with_row(amount=None), J, 400, "feature 'amount' row 0: null/NaN not allowed"),
    ("v1-huge-number", V1, b'{"instances": [{"amount": 1e400}]}', J, 400, ""),
    (
        "v1-infinity-literal",
        V1,
        b'{"instances": [[Infinity, 1, 1, 1.0, 1, 1.0, 0, "grocery", "pos", "KR"]]}',
        J,
        400,
        "",
    ),
    ("v1-missing-feature", V1, with_row(country="__drop__"), J, 400, "missing feature(s) country"),
    ("v1-extra-feature", V1, with_row(zip_code="12345"), J, 400, "unknown feature(s) zip_code"),
    (
        "v1-unknown-category",
        V1,
        with_row(channel="teleport"),
        J,
        400,
        "feature 'channel' row 0: unknown category 'teleport'",
    ),
    (
        "v1-number-for-category",
        V1,
        with_row(channel=3),
        J,
        400,
        "feature 'channel' row 0: expected a string category, got int",
    ),
    ("v1-null-category", V1, with_row(channel=None), J, 400, "feature 'channel' row 0: null not allowed"),
    ("v1-empty-instances", V1, {"instances": []}, J, 400, "empty batch"),
    ("v1-instances-not-list", V1, {"instances": {"a": 1}}, J, 400, "to be a list"),
    ("v1-no-instances", V1, {"rows": [ROW]}, J, 400, 'exactly one of "instances" or "inputs"'),
    ("v1-both-keys", V1, {"instances": [ROW], "inputs": [ROW]}, J, 400, 'exactly one of "instances" or "inputs"'),
    ("v1-mixed-records", V1, {"instances": [ROW, list(ROW.values())]}, J, 400, "all be records"),
    ("v1-short-row", V1, {"instances": [list(ROW.values())[:5]]}, J, 400, "instance 0: 5 values, expected 10"),
    ("v1-scalar-rows", V1, {"instances": [1, 2]}, J, 400, "all be records"),
    ("v1-over-batch", V1, {"instances": [ROW] * 2001}, J, 400, "batch of 2001 rows exceeds max_batch_rows=2000"),
    ("v1-second-row-bad", V1, {"instances": [ROW, {**ROW, "hour": "noon"}]}, J, 400, "feature 'hour' row 1"),
    ("v1-invalid-json", V1, b'{"instances": [', J, 400, ""),
    ("v1-truncated-json", V1, b'{"instances": [{"amount": 1.0, "hour"', J, 400, ""),
    ("v1-empty-body", V1, b"", J, 400, ""),
    (
        "v1-wrong-content-type",
        V1,
        b"amount=1&hour=2",
        {"content-type": "application/x-www-form-urlencoded"},
        400,
        "Content-Type: application/json",
    ),
    ("v1-non-utf8", V1, b'{"instances": ["\xff\xfe"]}', J, 400, ""),
    ("v1-json-array-body", V1, b"[1, 2, 3]", J, 400, ""),
    ("v1-unknown-model", "/v1/models/nope:predict", with_row(), J, 404, "nope"),
    ("v1-over-size", V1, b'{"instances": [' + b" " * 2_100_000 + b"]}", J, 413, "exceeds the limit"),
    ("v2-string-for-fp64", V2, v2(amount={"data": ["abc"]}), J, 400, ""),
    (
        "v2-bytes-for-numeric",
        V2,
        v2(amount={"datatype": "BYTES", "data": ["1.0"]}),
        J,
        400,
        "input 'amount': datatype BYTES not allowed",
    ),
    (
        "v2-fp64-for-category",
        V2,
        v2(channel={"datatype": "FP64", "data": [1.0]}),
        J,
        400,
        "input 'channel': datatype FP64 not allowed",
    ),
    ("v2-unknown-datatype", V2, v2(amount={"datatype": "FP128"}), J, 400, ""),
    ("v2-shape-mismatch", V2, v2(amount={"shape": [2]}), J, 400, ""),
    ("v2-shape-3d", V2, v2(amount={"shape": [1, 1, 1]}), J, 400, ""),
    ("v2-negative-dim", V2, v2(amount={"shape": [-1]}), J, 400, ""),
    (
        "v2-rows-disagree",
        V2,
        v2(hour={"shape": [2], "data": [1, 2]}),
        J,
        400,
        "input 'hour': 2 rows, but other inputs have 1",
    ),
    ("v2-missing-input", V2, {"inputs": v2()["inputs"][:-1]}, J, 400, "missing feature(s) country"),
    (
        "v2-extra-input",
        V2,
        {"inputs": v2()["inputs"] + [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
        J,
        400,
        "unknown feature(s) x",
    ),
    ("v2-duplicate-input", V2, {"inputs": v2()["inputs"] + v2()["inputs"][:1]}, J, 400, "input 'amount' given twice"),
    ("v2-empty-inputs", V2, {"inputs": []}, J, 400, ""),
    ("v2-no-inputs-key", V2, {"instances": [ROW]}, J, 400, ""),
    ("v2-unknown-category", V2, v2(country={"data": ["XX"]}), J, 400, "feature 'country' row 0: unknown category 'XX'"),
    ("v2-zero-rows", V2, {"inputs": [{**i, "shape": [0], "data": []} for i in v2()["inputs"]]}, J, 400, "empty batch"),
    (
        "v2-over-batch",
        V2,
        {"inputs": [{**i, "shape": [2001], "data": i["data"] * 2001} for i in v2()["inputs"]]},
        J,
        400,
        "exceeds max_batch_rows",
    ),
    ("v2-unknown-model", "/v2/models/nope/infer", v2(), J, 404, "nope"),
    (
        "v2-int8-out-of-range",
        V2,
        v2(hour={"datatype": "INT8", "data": [300]}),
        J,
        400,
        "input 'hour': value 300 out of range for INT8",
    ),
    ("v2-fraction-for-int", V2, v2(hour={"data": [1.5]}), J, 400, "input 'hour': value 1.5 is not an integer (INT64)"),
    ("v2-invalid-json", V2, b'{"inputs": [{"name": "amount", ', J, 400, ""),
    # V2 follows V1's rule: a numeric feature takes JSON numbers, never numeric strings or booleans.
    (
        "v2-numeric-string-for-fp64",
        V2,
        v2(amount={"data": ["17.99"]}),
        J,
        400,
        "input 'amount' value 0: expected a number for datatype FP64, got str '17.99'",
    ),
    (
        "v2-numeric-string-for-int",
        V2,
        v2(hour={"data": ["13"]}),
        J,
        400,
        "input 'hour' value 0: expected a number for datatype INT64, got str",
    ),
    (
        "v2-bool-for-fp64",
        V2,
        v2(amount={"data": [True]}),
        J,
        400,
        "input 'amount' value 0: expected a number for datatype FP64, got bool",
    ),
    (
        "v2-nested-string",
        V2,
        v2(amount={"shape": [1, 1], "data": [["17.99"]]}),
        J,
        400,
        "expected a number for datatype FP64, got str",
    ),
    (
        "v2-bool-datatype-for-number",
        V2,
        v2(is_foreign={"datatype": "BOOL", "data": [False]}),
        J,
        400,
        "datatype BOOL not allowed",
    ),
]


@pytest.mark.parametrize("case_id, path, body, headers, status, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_rest_request(predictor, case_id, path, body, headers, status, fragment):
    kwargs = {"data": body} if isinstance(body, bytes) else {"json": copy.deepcopy(body)}
    r = requests.post(predictor["url"] + path, headers=headers, timeout=30, **kwargs)
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert "Traceback" not in r.text
    message = r.json().get("error") or r.json().get("detail")
    assert message, r.text
    if fragment:
        assert fragment in str(message), message


def test_each_case_breaks_a_good_request(predictor):
    """The requests the cases are made from are valid, so each case fails for its own change alone."""
    assert len({c[0] for c in CASES}) == len(CASES) and len({c[0] for c in GRPC_CASES}) == len(GRPC_CASES)
    r1 = requests.post(predictor["url"] + V1, json=with_row(), headers=J, timeout=30)
    assert r1.status_code == 200 and len(r1.json()["predictions"]) == 1, r1.text
    r2 = requests.post(predictor["url"] + V2, json=v2(), headers=J, timeout=30)
    assert r2.status_code == 200 and r2.json()["outputs"][0]["shape"][0] == 1, r2.text
    with grpc.insecure_channel(predictor["grpc"]) as channel:
        reply = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(_grpc_request(), timeout=10)
    assert reply.model_name == "fraud" and reply.outputs[0].shape[0] == 1


def _grpc_request(**overrides) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name=overrides.pop("model", "fraud"))
    for name, value in ROW.items():
        tensor = req.inputs.add(name=name, shape=[1])
        if isinstance(value, str):
            tensor.datatype = "BYTES"
            tensor.contents.bytes_contents.append(value.encode())
        elif isinstance(value, float):
            tensor.datatype = "FP64"
            tensor.contents.fp64_contents.append(value)
        else:
            tensor.datatype = "INT64"
            tensor.contents.int64_contents.append(value)
    for name, fn in overrides.items():
        fn(next(t for t in req.inputs if t.name == name))
    return req


GRPC_CASES = [
    (
        "unknown-category",
        lambda: _grpc_request(channel=lambda t: t.contents.bytes_contents.__setitem__(0, b"teleport")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "unknown category",
    ),
    (
        "non-utf8",
        lambda: _grpc_request(channel=lambda t: t.contents.bytes_contents.__setitem__(0, b"\xff\xfe")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "not valid UTF-8",
    ),
    (
        "wrong-datatype",
        lambda: _grpc_request(channel=lambda t: t.__setattr__("datatype", "FP32")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "datatype FP32 not allowed",
    ),
    (
        "shape-vs-data",
        lambda: _grpc_request(amount=lambda t: t.shape.__setitem__(0, 3)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "",
    ),
    ("unknown-model", lambda: _grpc_request(model="nope"), grpc.StatusCode.NOT_FOUND, "nope"),
    (
        "int8-out-of-range",
        lambda: _grpc_request(
            hour=lambda t: (
                t.__setattr__("datatype", "INT8"),
                t.contents.ClearField("int64_contents"),
                t.contents.int_contents.append(300),
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'hour': value 300 out of range for INT8",
    ),
    (
        "bool-for-number",
        lambda: _grpc_request(
            is_foreign=lambda t: (
                t.__setattr__("datatype", "BOOL"),
                t.contents.ClearField("int64_contents"),
                t.contents.bool_contents.append(True),
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "datatype BOOL not allowed",
    ),
]


@pytest.mark.parametrize("case_id, make, code, fragment", GRPC_CASES, ids=[c[0] for c in GRPC_CASES])
def test_bad_grpc_request(predictor, case_id, make, code, fragment):
    with grpc.insecure_channel(predictor["grpc"]) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.ModelInfer(make(), timeout=10)
    assert err.value.code() == code, (err.value.code(), err.value.details())
    assert fragment in (err.value.details() or "")


def test_grpc_over_size_limit_is_resource_exhausted(predictor):
    req = _grpc_request(amount=lambda t: t.contents.fp64_contents.extend([1.0] * 200_000))
    with grpc.insecure_channel(predictor["grpc"]) as channel:
        with pytest.raises(grpc.RpcError) as err:
            pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(req, timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_server_is_healthy_after_the_corpus(predictor):
    assert requests.get(predictor["url"] + "/v2/health/ready", timeout=5).json()["ready"] is True
    r = requests.post(predictor["url"] + V1, json=with_row(), timeout=10)
    assert r.status_code == 200 and len(r.json()["predictions"]) == 1
    metrics = requests.get(predictor["url"] + "/metrics", timeout=5).text
    assert 'mlcycle_invalid_requests_total{model="fraud"}' in metrics


def test_fuzzed_v2_bodies_never_get_a_5xx(predictor):
    """Property: any JSON body shaped loosely like a V2 request gets 200 or a 4xx with a message."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
    )
    datatypes = st.sampled_from(["FP64", "FP32", "INT64", "INT8", "UINT8", "BYTES", "BOOL", "FP128", "", "int"])
    names = st.one_of(st.sampled_from(ORDER), st.text(max_size=6))
    shapes = st.lists(st.integers(-2, 3), max_size=3)
    tensor = st.fixed_dictionaries(
        {"name": names, "shape": shapes, "datatype": datatypes, "data": st.lists(scalars, max_size=4)}
    )
    body = st.one_of(
        st.fixed_dictionaries({"inputs": st.lists(tensor, max_size=12)}),
        st.dictionaries(st.text(max_size=6), scalars, max_size=3),
        st.builds(
            lambda n: v2(**n),
            st.dictionaries(
                st.sampled_from(ORDER),
                st.fixed_dictionaries({"data": st.lists(scalars, min_size=1, max_size=2)}),
                max_size=3,
            ),
        ),
    )

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(body)
    def check(b):
        r = requests.post(predictor["url"] + V2, json=b, timeout=30)
        assert r.status_code < 500, (b, r.status_code, r.text[:300])
        if r.status_code != 200:
            assert r.json().get("error") or r.json().get("detail"), r.text

    check()
    assert requests.get(predictor["url"] + "/v2/health/ready", timeout=5).json()["ready"] is True
