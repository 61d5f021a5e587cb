"""The lean REST front answers exactly what KServe's FastAPI path answers, and leaves every odd body to KServe."""

import numpy as np
import orjson
import pytest
from fastapi.encoders import jsonable_encoder
from kserve.protocol.infer_type import InferRequest
from kserve.protocol.rest.v2_datamodels import InferenceRequest, InferenceResponse

from inference.predictor.codec import Codec
from inference.predictor.fastrest import _parse

pytestmark = pytest.mark.unit


def kserve_json(response) -> bytes:
    """What kserve's v2 infer endpoint writes: InferenceResponse.model_validate(to_rest()) through ORJSONResponse."""
    rest, _ = response.to_rest()
    return orjson.dumps(jsonable_encoder(InferenceResponse.model_validate(rest)))


@pytest.mark.parametrize("request_id", ["", "abc-1"])
def test_v2_response_json_is_byte_identical_to_kserves(contract, request_id):
    codec = Codec(contract)
    request = InferRequest("fraud", [], request_id=request_id)
    scores = np.array([[0.9, 0.1], [0.2, 0.8]])
    for labels, classes in (([0, 1], [0, 1]), (["no", "yes"], ["no", "yes"])):
        response = codec.encode_v2(request, "fraud", scores, labels, classes, "v1")
        ours = codec.encode_v2_rest(request.id, "fraud", scores, labels, classes, "v1")
        assert orjson.dumps(ours) == kserve_json(response)


def test_regression_response_json_is_byte_identical_to_kserves(contract):
    codec = Codec(contract.model_copy(update={"task": "regression"}))
    response = codec.encode_v2(InferRequest("m", []), "m", np.array([1.5, -2.0]), [], None, "v7")
    assert orjson.dumps(codec.encode_v2_rest(None, "m", np.array([1.5, -2.0]), [], None, "v7")) == kserve_json(response)


def test_a_plain_v2_body_becomes_the_request_kserve_would_build():
    body = {
        "id": "r1",
        "inputs": [
            {"name": "amount", "shape": [2], "datatype": "FP64", "data": [1.5, 2]},
            {"name": "channel", "shape": [2, 1], "datatype": "BYTES", "data": ["pos", None]},
        ],
    }
    ours = _parse(orjson.dumps(body), True, "fraud")
    theirs = InferRequest.from_inference_request(InferenceRequest.model_validate(body), "fraud")
    assert ours.id == theirs.id and ours.model_name == theirs.model_name
    for a, b in zip(ours.inputs, theirs.inputs, strict=False):
        assert (a.name, a.shape, a.datatype, a.data) == (b.name, b.shape, b.datatype, b.data)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"inputs": "x"}',
        b'{"inputs": [], "outputs": [{"name": "label"}]}',
        b'{"inputs": [], "parameters": {"a": 1}}',
        b'{"id": 5, "inputs": []}',
        b'{"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [true]}]}',
        b'{"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": ["1.5"], "parameters": {}}]}',
        b'{"inputs": [{"name": "a", "shape": ["1"], "datatype": "FP64", "data": [1.5]}]}',
        b'{"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [[1.5]]}]}',
        b'{"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1, "x"]}]}',
        b'{"inputs": [{"name": "a", "shape": [1], "datatype": "FP16", "data": [1.0]}]}',
    ],
)
def test_anything_but_the_plain_case_goes_to_kserves_own_path(body):
    assert _parse(body, True, "fraud") is None


V1_FOR_KSERVE = [
    b"[]",
    b'{"instances": {"a": 1}}',
    b'{"rows": []}',
    b'{"instances": [], "inputs": []}',
    b'{"specversion": "1.0", "instances": [], "data": {}}',
]


@pytest.mark.parametrize("body", V1_FOR_KSERVE)
def test_v1_bodies_kserve_checks_itself_go_to_kserve(body):
    assert _parse(body, False, "fraud") is None


def test_the_event_loop_kserve_asks_for_is_the_one_asyncio_run_starts():
    """kserve 0.20 starts its servers under asyncio.run, where uvicorn's loop choice never applies: "auto" and
    "uvloop" must still run on uvloop, "asyncio" on asyncio's own loop."""
    import subprocess
    import sys

    probe = (
        "import asyncio, sys\n"
        "from inference.predictor.__main__ import use_event_loop\n"
        "name = use_event_loop(sys.argv[1])\n"
        "async def running(): return type(asyncio.get_running_loop()).__module__\n"
        "print(name, asyncio.run(running()))\n"
    )
    for choice, expected in (
        ("auto", "uvloop uvloop"),
        ("uvloop", "uvloop uvloop"),
        ("asyncio", "asyncio asyncio.unix_events"),
    ):
        out = subprocess.run([sys.executable, "-c", probe, choice], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == expected.split(), (choice, out.stdout)
