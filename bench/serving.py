"""Benchmark: the predictor on the demo model (XGBoost), compared in the same run with
(a) the floor — the fastest in-process call of the same model (NumPy preprocessing replay +
    single-threaded ``inplace_predict``), and the booster alone;
(b) a peer — MLServer with mlserver-xgboost serving the same booster (it takes the already
    preprocessed matrix, so it does less work per request than mlcycle's predictor).
Single-row and 100-row requests, V1/V2 REST and V2 gRPC: closed-loop throughput at fixed
concurrency, and open-loop (constant arrival rate) latency measured from each request's scheduled
send time, so coordinated omission cannot flatter p99. Also the drift detector's events/second.
The load generator shares the 2 cores with the servers. Writes bench/results/serving.json.

    python bench/serving.py [--mlserver /path/to/venv/bin/mlserver] [--seconds 5]
"""

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import write  # noqa: E402
from mlcycle.process import free_port  # noqa: E402
from mlcycle.process import wait_http_ok  # noqa: E402
from mlcycle.contract import DataContract  # noqa: E402


def build_model(root: Path):
    """One XGBoost version of the demo model, registered as production by the pipeline's steps."""
    import pandas as pd

    from mlcycle.registry import open_registry
    from pipelines.direct import run_direct

    run = run_direct(open_registry(root / "registry"), root / "run", families=["xgboost"], n_trials=0, model_name="fraud",
                     auto_promote=True, drift_backend="scipy")
    (root / "model").symlink_to(run.model_dir)
    contract = DataContract.model_validate_json((root / "run" / "contract.json").read_text())
    test = pd.read_parquet(root / "run" / "test.parquet")
    return contract, test[contract.feature_names].dropna().reset_index(drop=True)


def floor(model_dir: Path, rows) -> dict:
    from mlcycle.fastprep import compile_preprocessor
    from mlcycle.models import ModelBundle

    bundle = ModelBundle.load(model_dir, nthread=1)
    fast = compile_preprocessor(bundle.preprocessor)
    out = {}
    for n in (1, 100):
        part = rows.head(n)
        cols = {c: (part[c].to_numpy(dtype=float) if c in fast.numeric else part[c].to_numpy(dtype=object)) for c in bundle.features}
        x = fast.transform(cols, n).astype(np.float32)

        def full():
            bundle.score_matrix(fast.transform(cols, n))

        def booster():
            bundle.estimator.inplace_predict(x)

        for name, fn in (("model", full), ("booster_only", booster)):
            for _ in range(200):
                fn()
            reps = 3000 if n == 1 else 500
            start = time.perf_counter()
            for _ in range(reps):
                fn()
            out[f"{name}_{n}row_us"] = round((time.perf_counter() - start) / reps * 1e6, 2)
        out[f"model_{n}row_per_row_us"] = round(out[f"model_{n}row_us"] / n, 3)
    return out


def start(argv, url, env=None, cwd=None, log=None):
    proc = subprocess.Popen(argv, stdout=open(log, "wb") if log else subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, **(env or {})}, cwd=cwd)
    wait_http_ok(url, 120, argv[0], proc)
    return proc


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        proc.wait(20)


# ----------------------------------------------------------------------------------- load generation
async def closed_loop(send, concurrency: int, seconds: float) -> dict:
    latencies, errors, stop_at = [], 0, time.perf_counter() + seconds

    async def worker():
        nonlocal errors
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            ok = await send()
            latencies.append(time.perf_counter() - t0)
            errors += not ok

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return summary(latencies, errors, elapsed, {"mode": "closed", "concurrency": concurrency})


async def open_loop(send, rate: float, seconds: float) -> dict:
    """Requests start at fixed times; latency counts from the scheduled time (no coordinated omission)."""
    latencies, errors, tasks = [], 0, []
    start = time.perf_counter()
    n = int(rate * seconds)

    async def one(at):
        nonlocal errors
        ok = await send()
        latencies.append(time.perf_counter() - at)
        errors += not ok

    for i in range(n):
        at = start + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(at)))
    await asyncio.gather(*tasks)
    return summary(latencies, errors, time.perf_counter() - start, {"mode": "open", "target_rps": rate})


def summary(latencies, errors, elapsed, extra) -> dict:
    lat = np.asarray(latencies) * 1000
    return {**extra, "requests": len(lat), "errors": errors, "rps": round(len(lat) / elapsed, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 3) if len(lat) else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 3) if len(lat) else None}


def rest_sender(session, url, body):
    payload = json.dumps(body).encode()

    async def send():
        async with session.post(url, data=payload, headers={"content-type": "application/json"}) as r:
            await r.read()
            return r.status == 200

    return send


def grpc_sender(stub, request):
    async def send():
        try:
            await stub.ModelInfer(request, timeout=10)
            return True
        except Exception:
            return False

    return send


def v1_body(rows):
    return {"instances": json.loads(rows.to_json(orient="records"))}


def v2_body(rows, contract):
    inputs = []
    for spec in contract.features:
        col = rows[spec.name]
        if spec.kind == "numeric":
            inputs.append({"name": spec.name, "shape": [len(rows)], "datatype": "FP64", "data": col.astype(float).tolist()})
        else:
            inputs.append({"name": spec.name, "shape": [len(rows)], "datatype": "BYTES", "data": col.astype(str).tolist()})
    return {"inputs": inputs}


def grpc_request(model, rows, contract):
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    req = pb.ModelInferRequest(model_name=model)
    for spec in contract.features:
        t = req.inputs.add(name=spec.name, shape=[len(rows)])
        if spec.kind == "numeric":
            t.datatype = "FP64"
            t.contents.fp64_contents.extend(rows[spec.name].astype(float).tolist())
        else:
            t.datatype = "BYTES"
            t.contents.bytes_contents.extend(v.encode() for v in rows[spec.name].astype(str))
    return req


def matrix_v2(model, x):
    return {"inputs": [{"name": "input-0", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}]}


async def measure(targets: dict, seconds: float, rates: list[float]) -> dict:
    import aiohttp
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    results = {}
    conn = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=conn) as session:
        for name, target in targets.items():
            if target["kind"] == "rest":
                send = rest_sender(session, target["url"], target["body"])
            else:
                channel = grpc.aio.insecure_channel(target["url"])
                send = grpc_sender(pb_grpc.GRPCInferenceServiceStub(channel), target["body"])
            await closed_loop(send, 4, 1.0)  # warm-up
            runs = [await closed_loop(send, c, seconds) for c in (1, 8)]
            if target.get("open_loop"):
                runs += [await open_loop(send, r, seconds) for r in rates]
            results[name] = runs
            print(name, json.dumps(runs), flush=True)
    return results


async def drift_events(url: str, body: dict, seconds: float) -> dict:
    """The drift detector's events/s (bench/drift.py's load: binary CloudEvents, closed loop at concurrency 8)."""
    from bench.drift import drift_events as run

    result = await run(url, body, seconds, 8)
    result["rps"] = result["events_per_second"]
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--rates", type=float, nargs="+", default=[500, 1000, 2000])
    p.add_argument("--mlserver", default=os.environ.get("MLSERVER_BIN", "/tmp/mlserver-venv/bin/mlserver"))
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    contract, rows = build_model(tmp)
    result = {"floor": floor(tmp / "model", rows)}
    print("floor", result["floor"], flush=True)
    source = f"{tmp / 'registry'}#fraud@production"
    http, grpc_port, drift_port = free_port(), free_port(), free_port()
    env = {"OMP_NUM_THREADS": "1"}
    procs = [start([sys.executable, "-m", "inference.predictor", "--model_name", "fraud", "--storage_uri", source, "--http_port", str(http),
                    "--grpc_port", str(grpc_port), "--enable_latency_logging", "false", "--configure_logging", "false"],
                   f"http://127.0.0.1:{http}/v2/models/fraud/ready", env, log=tmp / "predictor.log")]
    base = f"http://127.0.0.1:{http}"
    one, hundred = rows.head(1), rows.head(100)
    targets = {
        "mlcycle_v2_rest_1row": {"kind": "rest", "url": f"{base}/v2/models/fraud/infer", "body": v2_body(one, contract), "open_loop": True},
        "mlcycle_v1_rest_1row": {"kind": "rest", "url": f"{base}/v1/models/fraud:predict", "body": v1_body(one)},
        "mlcycle_v2_grpc_1row": {"kind": "grpc", "url": f"127.0.0.1:{grpc_port}", "body": grpc_request("fraud", one, contract)},
        "mlcycle_v2_rest_100row": {"kind": "rest", "url": f"{base}/v2/models/fraud/infer", "body": v2_body(hundred, contract)},
        "mlcycle_v2_grpc_100row": {"kind": "grpc", "url": f"127.0.0.1:{grpc_port}", "body": grpc_request("fraud", hundred, contract)},
    }
    mlserver_note = "not run: no mlserver binary (pip install mlserver==1.7.1 mlserver-xgboost==1.7.1 into its own venv; it conflicts with kserve)"
    if args.mlserver and Path(args.mlserver).exists():
        from mlcycle.fastprep import compile_preprocessor
        from mlcycle.models import ModelBundle

        bundle = ModelBundle.load(tmp / "model")
        fast = compile_preprocessor(bundle.preprocessor)
        ms_dir = tmp / "mlserver" / "fraud-xgb"
        ms_dir.mkdir(parents=True)
        shutil.copyfile(tmp / "model" / "estimator.ubj", ms_dir / "model.ubj")
        (ms_dir / "model-settings.json").write_text(json.dumps({"name": "fraud-xgb", "implementation": "mlserver_xgboost.XGBoostModel",
                                                               "parameters": {"uri": "./model.ubj"}}))
        ms_http, ms_grpc = free_port(), free_port()
        (tmp / "mlserver" / "settings.json").write_text(json.dumps({"http_port": ms_http, "grpc_port": ms_grpc, "metrics_port": free_port(),
                                                                    "parallel_workers": 0, "host": "127.0.0.1"}))
        procs.append(start([args.mlserver, "start", str(tmp / "mlserver")], f"http://127.0.0.1:{ms_http}/v2/models/fraud-xgb/ready", env,
                           log=tmp / "mlserver.log"))

        def matrix(part):
            cols = {c: (part[c].to_numpy(dtype=float) if c in fast.numeric else part[c].to_numpy(dtype=object)) for c in bundle.features}
            return fast.transform(cols, len(part)).astype(np.float32)

        targets["mlserver_v2_rest_1row"] = {"kind": "rest", "url": f"http://127.0.0.1:{ms_http}/v2/models/fraud-xgb/infer",
                                            "body": matrix_v2("fraud-xgb", matrix(one)), "open_loop": True}
        targets["mlserver_v2_rest_100row"] = {"kind": "rest", "url": f"http://127.0.0.1:{ms_http}/v2/models/fraud-xgb/infer",
                                              "body": matrix_v2("fraud-xgb", matrix(hundred))}
        mlserver_note = "MLServer 1.7.1 + mlserver-xgboost serving the same booster on the preprocessed FP32 matrix (parallel_workers=0)"
    try:
        result["servers"] = asyncio.run(measure(targets, args.seconds, args.rates))
    finally:
        for proc in procs:
            stop(proc)
    drift = start([sys.executable, "-m", "inference.drift_detector", "--storage_uri", source, "--port", str(drift_port), "--backend", "scipy",
                   "--window_size", "500", "--queue_size", "100000"], f"http://127.0.0.1:{drift_port}/healthz", env, log=tmp / "drift.log")
    try:
        result["drift_detector"] = asyncio.run(drift_events(f"http://127.0.0.1:{drift_port}", v1_body(rows.head(10)), args.seconds))
    finally:
        stop(drift)
    f = result["floor"]
    ratios = {}
    for name, runs in result["servers"].items():
        single = runs[0]  # closed loop, concurrency 1
        rows_per_request = 100 if "100row" in name else 1
        ratios[name] = {
            "p50_over_floor": round(single["p50_ms"] * 1000 / f[f"model_{rows_per_request}row_us"], 1),
            "per_row_us": round(single["p50_ms"] * 1000 / rows_per_request, 2),
            "per_row_over_floor_per_row": round(single["p50_ms"] * 1000 / rows_per_request / f[f"model_{rows_per_request}row_per_row_us"], 1),
            "throughput_c8_rps": runs[1]["rps"],
        }
    result["ratios"] = ratios
    result["peer"] = mlserver_note
    write("serving", {"description": __doc__.strip().splitlines()[0], "seconds_per_run": args.seconds, **result})


if __name__ == "__main__":
    main()
