"""Inference payloads the tests send: V1 records and V2 inputs of the demo data (shared by the integration and
container tiers)."""

import asyncio
import math

import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, RESTConfig
from kserve.protocol.infer_type import InferInput, InferRequest

NUMERIC_DTYPE = {
    "amount": "FP64",
    "hour": "INT64",
    "card_age_days": "INT64",
    "distance_from_home_km": "FP64",
    "txn_count_24h": "INT64",
    "avg_amount_30d": "FP64",
    "is_foreign": "INT64",
}


def records(frame):
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


def v2_inputs(frame, contract):
    out = []
    for spec in contract.features:
        col = frame[spec.name]
        if spec.kind == "numeric":
            dtype = NUMERIC_DTYPE[spec.name]
            data = col.to_numpy(dtype=np.float64 if dtype == "FP64" else np.int64)
        else:
            dtype, data = "BYTES", col.astype(str).to_numpy(dtype=object)
        out.append(InferInput(spec.name, [len(frame)], dtype, data.tolist()))
    return out


def infer_three_ways(url: str, grpc_target: str, model: str, rows, contract):
    """The same rows over V1 REST, V2 REST and V2 gRPC with KServe's own clients: (v1 dict, v2, grpc responses)."""

    async def call():
        rest_v1 = InferenceRESTClient(RESTConfig(protocol="v1", timeout=30))
        rest_v2 = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
        grpc = InferenceGRPCClient(grpc_target, timeout=30)
        try:
            v1 = await rest_v1.infer(url, {"instances": records(rows)}, model_name=model)
            v2 = await rest_v2.infer(url, InferRequest(model, v2_inputs(rows, contract)), model_name=model)
            g = await grpc.infer(InferRequest(model, v2_inputs(rows, contract)))
        finally:
            await rest_v1.close(), await rest_v2.close(), await grpc.close()
        return v1, v2, g

    return asyncio.run(call())


def assert_agree(v1: dict, v2, g, offline) -> None:
    """V1, V2 REST and gRPC probabilities equal the offline model's (1e-6), and the labels agree."""
    np.testing.assert_allclose(np.asarray(v1["probabilities"]), offline, atol=1e-6)
    for response in (v2, g):
        probs = next(o for o in response.outputs if o.name == "probabilities").as_numpy().reshape(-1, 2)
        np.testing.assert_allclose(probs, offline, atol=1e-6)
        labels = next(o for o in response.outputs if o.name == "label").as_numpy().reshape(-1)
        assert labels.tolist() == v1["predictions"]
