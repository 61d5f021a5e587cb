"""Where one request's time goes inside the predictor, stage by stage, in-process (µs per call).

    python bench/request_breakdown.py VERSION_DIR [ROWS]   (a registered version directory, e.g. from bench/serving.py;
                                                           ROWS per request, default 1)

The HTTP part (uvicorn's parse and write, the event loop) is what the served latency adds on top; README
"Benchmarks" sets the two side by side.
"""

import asyncio
import json
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(fn, reps=3000) -> float:
    for _ in range(200):
        fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return round((time.perf_counter() - t0) / reps * 1e6, 1)


def main() -> None:
    import pandas as pd

    from inference.predictor.fastrest import _parse
    from inference.predictor.model import MlcycleModel

    version = Path(sys.argv[1])
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    model = MlcycleModel("fraud", str(version))
    model.load()
    ref = pd.read_parquet(version / "reference.parquet")[model.bundle.features].dropna().head(rows)
    inputs = [
        {
            "name": c.name,
            "shape": [rows],
            "datatype": "FP64" if c.kind == "numeric" else "BYTES",
            "data": [float(v) for v in ref[c.name]] if c.kind == "numeric" else [str(v) for v in ref[c.name]],
        }
        for c in model.codec.contract.features
    ]
    body = json.dumps({"inputs": inputs}).encode()
    req = _parse(body, True, "fraud")
    batch = model.codec.decode(req)
    x = model.fast.transform(batch.columns, rows)
    scores, labels = model.score_batch(batch)
    loop = asyncio.new_event_loop()

    def whole():
        r = _parse(body, True, "fraud")
        s, lab = loop.run_until_complete(model.score(r))
        return orjson.dumps(model.codec.encode_v2_rest(r.id, "fraud", s, lab, model.bundle.classes, model.version))

    out = {
        "rows": rows,
        "scoring_path": model.scoring_path,
        "json_parse_and_request": timed(lambda: _parse(body, True, "fraud")),
        "contract_validation_decode": timed(lambda: model.codec.decode(req)),
        "preprocessing_replay": timed(lambda: model.fast.transform(batch.columns, rows)),
        "model_call": timed(lambda: model.scorer.score_matrix(x)),
        "native_model_call": timed(lambda: model.bundle.score_matrix(x)),
        "prometheus_updates": timed(
            lambda: (model._metrics.ok.inc(), model._metrics.latency.observe(0.001), model._record(scores, labels))
        ),
        "encode_v2_json": timed(
            lambda: orjson.dumps(
                model.codec.encode_v2_rest(req.id, "fraud", scores, labels, model.bundle.classes, model.version)
            )
        ),
        "kserve_encode_v2_to_rest": timed(
            lambda: model.codec.encode_v2(req, "fraud", scores, labels, model.bundle.classes, model.version).to_rest()
        ),
        "whole_request_in_process": timed(lambda: whole(), 2000),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
