"""Inference payloads the tests send: V1 records and V2 inputs of the demo data (shared by the integration and
container tiers)."""

import math

import numpy as np
from kserve.protocol.infer_type import InferInput

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
