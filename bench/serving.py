"""Benchmark: the predictor on the demo model (XGBoost), compared in the same run with
(a) the floor — the in-process call of the same model: NumPy preprocessing replay + the compiled fast path
    (ONNX) and + single-threaded ``inplace_predict`` (native), and each part alone;
(b) peers serving the same booster on the already preprocessed FP32 matrix (so they do less work per request
    than mlcycle, which validates named features against the contract): a minimal kserve.Model doing what
    KServe's xgbserver does (DMatrix + booster.predict, nthread=1; bench/xgbpeer.py) and MLServer 1.7.1 +
    mlserver-xgboost in its own venv (scripts/ensure-mlserver.sh).
Each server is pinned to one CPU (--server-cpu, default 0) and the load generators to another (--load-cpu,
default 1): wrk (C, closed loop: c=1 and c=8 connections, one thread), vegeta (Go, open loop at a constant
rate: 500/1000/2000 req/s, latency from each request's scheduled send time) and ghz (Go, gRPC, c=1 and c=8).
1-row and 100-row requests, V1/V2 REST and V2 gRPC; the drift detector's events/second. Ratios over the better
peer go into the JSON. Writes bench/results/serving.json (or --out PATH).

    python bench/serving.py [--seconds 5] [--server-cpu 0 --load-cpu 1] [--mlserver PATH] [--no-peers] [--out PATH]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import write  # noqa: E402
from mlcycle.contract import DataContract  # noqa: E402
from mlcycle.process import free_port, wait_http_ok  # noqa: E402


def build_model(root: Path):
    """One XGBoost version of the demo model, registered as production by the pipeline's steps."""
    import pandas as pd

    from mlcycle.registry import open_registry
    from pipelines.direct import run_direct

    run = run_direct(
        open_registry(root / "registry"),
        root / "run",
        families=["xgboost"],
        n_trials=0,
        model_name="fraud",
        auto_promote=True,
        drift_backend="scipy",
    )
    (root / "model").symlink_to(run.model_dir)
    contract = DataContract.model_validate_json((root / "run" / "contract.json").read_text())
    test = pd.read_parquet(root / "run" / "test.parquet")
    return contract, test[contract.feature_names].dropna().reset_index(drop=True)


def floor(model_dir: Path, version_dir: Path, rows) -> dict:
    """In-process costs per call: preprocessing replay + model, native booster vs the compiled fast path."""
    import json as _json

    from mlcycle import fastpath
    from mlcycle.fastprep import compile_preprocessor
    from mlcycle.models import ModelBundle

    bundle = ModelBundle.load(model_dir, nthread=1)
    fast = compile_preprocessor(bundle.preprocessor)
    meta = _json.loads((version_dir / "metadata.json").read_text())
    onnx, why = fastpath.load(version_dir, meta.get("fast_path"), bundle.task)
    out = {"fast_path": meta.get("fast_path", {}).get("status"), "fast_path_reason": why}
    for n in (1, 100):
        cols = fastpath.columns_of(rows.head(n), bundle)
        x = fast.transform(cols, n).astype(np.float32)
        calls = {
            "native": lambda: bundle.score_matrix(fast.transform(cols, n)),
            "booster_only": lambda: bundle.estimator.inplace_predict(x),
            "replay_only": lambda: fast.transform(cols, n),
        }
        if onnx is not None:
            calls.update(
                fast=lambda: onnx.score_matrix(fast.transform(cols, n)), onnx_only=lambda: onnx.score_matrix(x)
            )
        for name, fn in calls.items():
            for _ in range(200):
                fn()
            reps = 3000 if n == 1 else 500
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            out[f"{name}_{n}row_us"] = round((time.perf_counter() - t0) / reps * 1e6, 2)
        best = min(out[f"native_{n}row_us"], out.get(f"fast_{n}row_us", float("inf")))  # the server picks per size
        out[f"model_{n}row_us"] = best
        out[f"model_{n}row_per_row_us"] = round(best / n, 3)
    return out


def start(argv, url, env=None, cwd=None, log=None):
    proc = subprocess.Popen(
        argv,
        stdout=open(log, "wb") if log else subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    wait_http_ok(url, 120, argv[0], proc)
    return proc


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        proc.wait(20)


# ----------------------------------------------------------------------------------- load generation
# Closed loop: wrk (C), one thread, c connections. Open loop: vegeta (Go) at a constant rate; its latency counts
# from each request's scheduled send time. gRPC: ghz (Go) at c concurrent streams. Each pinned to LOAD_CPU.
WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("WRK_BODY"), "rb"); wrk.body = f:read("*a"); f:close()
for k, v in string.gmatch(os.getenv("WRK_HEADERS") or "", "([^:;]+):([^;]*)") do wrk.headers[k] = v end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"socket_errors":%d,"non2xx":%d,'
    .. '"p50_us":%d,"p99_us":%d,"max_us":%d}\\n', summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def drift_argv(source: str, port: int, backend: str) -> list[str]:
    """The drift detector as the benchmarks run it: 500-row windows, a queue deep enough to shed no event."""
    serve = ["--storage_uri", source, "--port", str(port), "--backend", backend]
    return [sys.executable, "-m", "inference.drift_detector", *serve, "--window_size", "500", "--queue_size", "100000"]


def pinned(cpu: str | None, argv: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *argv] if cpu is not None and shutil.which("taskset") else argv


def wrk(tools, url: str, body_file: Path, concurrency: int, seconds: float, headers: str = "") -> dict:
    out = subprocess.run(
        pinned(
            tools["cpu"],
            [
                tools["wrk"],
                "-t1",
                f"-c{concurrency}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                str(tools["lua"]),
                url,
            ],
        ),
        capture_output=True,
        text=True,
        env={**os.environ, "WRK_BODY": str(body_file), "WRK_HEADERS": headers},
        timeout=seconds + 60,
    )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.stdout[-500:]} {out.stderr[-500:]}")
    r = json.loads(line[len("WRKJSON ") :])
    return {
        "mode": "closed",
        "tool": "wrk",
        "concurrency": concurrency,
        "requests": r["requests"],
        "errors": r["socket_errors"] + r["non2xx"],
        "rps": round(r["requests"] / (r["duration_us"] / 1e6), 1),
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "max_ms": r["max_us"] / 1000,
    }


def vegeta(tools, url: str, body_file: Path, rate: int, seconds: float) -> dict:
    targets = body_file.with_suffix(".targets")
    targets.write_text(f"POST {url}\nContent-Type: application/json\n@{body_file}\n")
    attack = subprocess.Popen(
        pinned(
            tools["cpu"],
            [
                tools["vegeta"],
                "attack",
                "-format=http",
                f"-targets={targets}",
                f"-rate={rate}/1s",
                f"-duration={max(1, round(seconds))}s",
                "-timeout=10s",
                "-workers=16",
                "-max-workers=1024",
                "-keepalive=true",
            ],
        ),
        stdout=subprocess.PIPE,
    )
    report = subprocess.run(  # the report reads while the attack runs: on the load generator's CPU too
        pinned(tools["cpu"], [tools["vegeta"], "report", "-type=json"]),
        stdin=attack.stdout,
        capture_output=True,
        timeout=seconds + 60,
    )
    attack.wait(30)
    r = json.loads(report.stdout)
    lat = r["latencies"]
    ok = r["status_codes"].get("200", 0)
    return {
        "mode": "open",
        "tool": "vegeta",
        "target_rps": rate,
        "requests": r["requests"],
        "errors": r["requests"] - ok,
        "rps": round(r["throughput"], 1),
        "p50_ms": lat["50th"] / 1e6,
        "p99_ms": lat["99th"] / 1e6,
        "max_ms": lat["max"] / 1e6,
    }


def ghz(tools, target: str, request, concurrency: int, seconds: float) -> dict:
    """gRPC ModelInfer with ghz, from a protoset built from KServe's own descriptors and the binary request."""
    work = Path(tools["dir"])
    binary = work / f"grpc-{id(request)}.bin"
    binary.write_bytes(request.SerializeToString())
    out = subprocess.run(
        pinned(
            tools["cpu"],
            [
                tools["ghz"],
                "--insecure",
                f"--protoset={tools['protoset']}",
                "--call=inference.GRPCInferenceService.ModelInfer",
                f"--binary-file={binary}",
                f"--concurrency={concurrency}",
                f"--duration={max(1, round(seconds))}s",
                "--connections=1",
                "--format=json",
                target,
            ],
        ),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    if out.returncode != 0 or not out.stdout.strip().startswith("{"):
        raise RuntimeError(f"ghz failed: {out.stdout[-500:]} {out.stderr[-500:]}")
    r = json.loads(out.stdout)
    lat = {d["percentage"]: d["latency"] for d in r.get("latencyDistribution") or []}
    codes = r.get("statusCodeDistribution", {})
    # When --duration is up ghz closes its connection under the calls in flight: "Canceled" or "Unavailable ... use of
    # closed network connection" (at most one per concurrent stream). Those are not the server's errors.
    ended = sum(n for msg, n in (r.get("errorDistribution") or {}).items() if "use of closed network connection" in msg)
    ok, canceled = codes.get("OK", 0), codes.get("Canceled", 0) + ended
    return {
        "mode": "closed",
        "tool": "ghz",
        "concurrency": concurrency,
        "requests": r["count"],
        "errors": r["count"] - ok - canceled,
        "canceled_at_end": canceled,
        "rps": round(r["rps"], 1),
        "p50_ms": lat.get(50, 0) / 1e6,
        "p99_ms": lat.get(99, 0) / 1e6,
    }


def protoset(path: Path) -> Path:
    from google.protobuf import descriptor_pb2
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    fds = descriptor_pb2.FileDescriptorSet()
    pb.DESCRIPTOR.CopyToProto(fds.file.add())
    path.write_bytes(fds.SerializeToString())
    return path


def tool(script: str, env: str) -> str | None:
    """A load generator's binary: $ENV when it names an executable ('' or a missing path: none), else its script."""
    if env in os.environ:
        return os.environ[env] if os.access(os.environ[env], os.X_OK) else None
    out = subprocess.run([str(ROOT / "scripts" / script)], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def v1_body(rows):
    return {"instances": json.loads(rows.to_json(orient="records"))}


def v2_body(rows, contract):
    inputs = []
    for spec in contract.features:
        col = rows[spec.name]
        if spec.kind == "numeric":
            inputs.append(
                {"name": spec.name, "shape": [len(rows)], "datatype": "FP64", "data": col.astype(float).tolist()}
            )
        else:
            inputs.append(
                {"name": spec.name, "shape": [len(rows)], "datatype": "BYTES", "data": col.astype(str).tolist()}
            )
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


def measure(targets: dict, tools: dict, seconds: float, rates: list[int], repeat: int = 1) -> dict:
    """Every target's runs, ``repeat`` rounds interleaved (each round visits every server once, so a noisy minute
    hits all of them); each run reported is the round with the median req/s, the others' req/s in ``rounds_rps``."""
    rounds: dict[str, list[list[dict]]] = {name: [] for name in targets}
    for r in range(repeat):
        for name, target in targets.items():
            if target["kind"] == "rest":
                body = Path(tools["dir"]) / f"{name}.json"
                body.write_bytes(json.dumps(target["body"]).encode())
                wrk(tools, target["url"], body, 4, 1)  # warm-up
                runs = [wrk(tools, target["url"], body, c, seconds) for c in (1, 8)]
                if target.get("open_loop"):
                    runs += [vegeta(tools, target["url"], body, rate, seconds) for rate in rates]
            elif tools.get("ghz"):
                ghz(tools, target["url"], target["body"], 4, 1)
                runs = [ghz(tools, target["url"], target["body"], c, seconds) for c in (1, 8)]
            else:
                runs = [{"skipped": "no ghz binary (scripts/ensure-ghz.sh)"}]
            rounds[name].append(runs)
            print(f"round {r + 1}/{repeat}", name, json.dumps(runs), flush=True)
    return {name: [_median_run([rs[i] for rs in got]) for i in range(len(got[0]))] for name, got in rounds.items()}


def _median_run(runs: list[dict]) -> dict:
    if len(runs) == 1 or "rps" not in runs[0]:
        return runs[0]
    ordered = sorted(runs, key=lambda r: r["rps"])
    return {**ordered[len(ordered) // 2], "rounds_rps": [r["rps"] for r in runs]}


def drift_events(tools, url: str, body: dict, seconds: float) -> dict:
    import requests

    path = Path(tools["dir"]) / "drift-events.json"
    path.write_bytes(json.dumps(body).encode())
    headers = "ce-specversion:1.0;ce-id:b;ce-source:bench;ce-type:org.kubeflow.serving.inference.request"
    run = wrk(tools, url + "/events", path, 8, seconds, headers)
    status = requests.post(url + "/flush", timeout=60).json()
    run["events_per_second"] = run["rps"]
    run["rows_per_event"] = len(body["instances"])
    run["processed"] = status["counts"]["processed"]
    run["dropped"] = status["counts"]["dropped"]
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--repeat", type=int, default=3, help="interleaved rounds; each figure is the median round")
    p.add_argument("--rates", type=int, nargs="+", default=[500, 1000, 2000])
    p.add_argument("--server-cpu", default="0", help="CPU the servers are pinned to (taskset); 'none' to not pin")
    p.add_argument("--load-cpu", default="1", help="CPU the load generators are pinned to")
    p.add_argument("--mlserver", default=None, help="mlserver binary (default: scripts/ensure-mlserver.sh)")
    p.add_argument("--no-peers", action="store_true", help="measure mlcycle only")
    p.add_argument("--out", type=Path, default=None, help="write the JSON here (default bench/results/serving.json)")
    p.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1],
        help="mlcycle REST worker processes (KServe's --workers) to measure; give --server-cpu as many CPUs",
    )
    args = p.parse_args()
    server_cpu = None if args.server_cpu == "none" else args.server_cpu
    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    tools = {
        "wrk": tool("ensure-wrk.sh", "WRK_BIN"),
        "vegeta": tool("ensure-vegeta.sh", "VEGETA_BIN"),
        "ghz": tool("ensure-ghz.sh", "GHZ_BIN"),
        "cpu": None if args.load_cpu == "none" else args.load_cpu,
        "dir": str(tmp),
        "lua": tmp / "post.lua",
        "protoset": protoset(tmp / "grpc_predict_v2.protoset"),
    }
    if not tools["wrk"] or not tools["vegeta"]:
        raise SystemExit("bench/serving.py needs wrk and vegeta: scripts/ensure-wrk.sh, scripts/ensure-vegeta.sh")
    tools["lua"].write_text(WRK_LUA)
    contract, rows = build_model(tmp)
    registry_root = tmp / "registry" / "fraud"
    aliases = json.loads((registry_root / "_aliases.json").read_text())
    version_dir = registry_root / aliases["aliases"]["production"]
    result = {"floor": floor(tmp / "model", version_dir, rows)}
    print("floor", result["floor"], flush=True)
    source = f"{tmp / 'registry'}#fraud@production"
    env = {"OMP_NUM_THREADS": "1"}
    procs, targets = [], {}
    one, hundred = rows.head(1), rows.head(100)

    def serve(name, argv, ready_url, grpc=None):
        procs.append(start(pinned(server_cpu, argv), ready_url, env, log=tmp / f"{name}.log"))

    def add(prefix, base, grpc_target, model, v2_1, v2_100, v1_1=None, grpc_1=None, grpc_100=None):
        targets[f"{prefix}_v2_rest_1row"] = {
            "kind": "rest",
            "url": f"{base}/v2/models/{model}/infer",
            "body": v2_1,
            "open_loop": True,
        }
        if v1_1 is not None:
            targets[f"{prefix}_v1_rest_1row"] = {
                "kind": "rest",
                "url": f"{base}/v1/models/{model}:predict",
                "body": v1_1,
            }
        if grpc_1 is not None:
            targets[f"{prefix}_v2_grpc_1row"] = {"kind": "grpc", "url": grpc_target, "body": grpc_1}
        targets[f"{prefix}_v2_rest_100row"] = {"kind": "rest", "url": f"{base}/v2/models/{model}/infer", "body": v2_100}
        if grpc_100 is not None:
            targets[f"{prefix}_v2_grpc_100row"] = {"kind": "grpc", "url": grpc_target, "body": grpc_100}

    for workers in args.workers:  # workers=1 is "mlcycle"; more REST worker processes are "mlcycle_w<N>"
        prefix = "mlcycle" if workers == 1 else f"mlcycle_w{workers}"
        http, grpc_port = free_port(), free_port()
        argv = [
            sys.executable,
            "-m",
            "inference.predictor",
            "--model_name",
            "fraud",
            "--storage_uri",
            source,
            "--http_port",
            str(http),
            "--grpc_port",
            str(grpc_port),
            "--enable_latency_logging",
            "false",
            "--workers",
            str(workers),
        ]
        serve(prefix, argv, f"http://127.0.0.1:{http}/v2/models/fraud/ready")
        add(
            prefix,
            f"http://127.0.0.1:{http}",
            f"127.0.0.1:{grpc_port}",
            "fraud",
            v2_body(one, contract),
            v2_body(hundred, contract),
            v1_body(one),
            grpc_request("fraud", one, contract),
            grpc_request("fraud", hundred, contract),
        )
    floor_port = free_port()  # the HTTP stack alone: uvicorn with KServe's settings and a fixed answer
    serve(
        "httpfloor",
        [sys.executable, str(ROOT / "bench" / "httpfloor.py"), "--http_port", str(floor_port)],
        f"http://127.0.0.1:{floor_port}/ready",
    )
    targets["httpfloor_v2_rest_1row"] = {
        "kind": "rest",
        "url": f"http://127.0.0.1:{floor_port}/v2/models/fraud/infer",
        "body": v2_body(one, contract),
        "open_loop": True,
    }
    peers = {}
    if not args.no_peers:
        from mlcycle.fastprep import compile_preprocessor
        from mlcycle.models import ModelBundle

        bundle = ModelBundle.load(tmp / "model")
        fast = compile_preprocessor(bundle.preprocessor)
        from mlcycle.fastpath import columns_of

        def matrix(part):
            return fast.transform(columns_of(part, bundle), len(part)).astype(np.float32)

        m1, m100 = matrix(one), matrix(hundred)
        ph, pg = free_port(), free_port()
        serve(
            "xgbpeer",
            [
                sys.executable,
                str(ROOT / "bench" / "xgbpeer.py"),
                "--model_name",
                "xgb",
                "--model_file",
                str(tmp / "model" / "estimator.ubj"),
                "--http_port",
                str(ph),
                "--grpc_port",
                str(pg),
                "--enable_latency_logging",
                "false",
            ],
            f"http://127.0.0.1:{ph}/v2/models/xgb/ready",
        )
        add(
            "xgbserver",
            f"http://127.0.0.1:{ph}",
            f"127.0.0.1:{pg}",
            "xgb",
            matrix_v2("xgb", m1),
            matrix_v2("xgb", m100),
            {"instances": m1.tolist()},
        )
        peers["xgbserver"] = (
            "a minimal kserve.Model doing what KServe's xgbserver does (DMatrix + booster.predict, nthread=1)"
        )
        mlserver = args.mlserver or tool("ensure-mlserver.sh", "MLSERVER_BIN")
        if mlserver and Path(mlserver).exists():
            ms_dir = tmp / "mlserver" / "fraud-xgb"
            ms_dir.mkdir(parents=True)
            shutil.copyfile(tmp / "model" / "estimator.ubj", ms_dir / "model.ubj")
            (ms_dir / "model-settings.json").write_text(
                json.dumps(
                    {
                        "name": "fraud-xgb",
                        "implementation": "mlserver_xgboost.XGBoostModel",
                        "parameters": {"uri": "./model.ubj"},
                    }
                )
            )
            ms_http, ms_grpc = free_port(), free_port()
            (tmp / "mlserver" / "settings.json").write_text(
                json.dumps(
                    {
                        "http_port": ms_http,
                        "grpc_port": ms_grpc,
                        "metrics_port": free_port(),
                        "parallel_workers": 0,
                        "host": "127.0.0.1",
                    }
                )
            )
            serve(
                "mlserver",
                [mlserver, "start", str(tmp / "mlserver")],
                f"http://127.0.0.1:{ms_http}/v2/models/fraud-xgb/ready",
            )
            add(
                "mlserver",
                f"http://127.0.0.1:{ms_http}",
                f"127.0.0.1:{ms_grpc}",
                "fraud-xgb",
                matrix_v2("fraud-xgb", m1),
                matrix_v2("fraud-xgb", m100),
            )
            peers["mlserver"] = (
                "MLServer 1.7.1 + mlserver-xgboost, same booster, preprocessed FP32 matrix (parallel_workers=0)"
            )
        else:
            peers["mlserver"] = "not run: no mlserver binary (scripts/ensure-mlserver.sh failed)"
    try:
        result["servers"] = measure(targets, tools, args.seconds, args.rates, args.repeat)
    finally:
        for proc in procs:
            stop(proc)
    drift_port = free_port()
    drift = start(
        pinned(server_cpu, drift_argv(source, drift_port, "scipy")),
        f"http://127.0.0.1:{drift_port}/healthz",
        env,
        log=tmp / "drift.log",
    )
    try:
        result["drift_detector"] = drift_events(
            tools, f"http://127.0.0.1:{drift_port}", v1_body(rows.head(10)), args.seconds
        )
    finally:
        stop(drift)
    result["ratios"] = ratios(result["servers"], result["floor"])
    result["peers"] = peers
    result["pinning"] = {"server_cpu": server_cpu, "load_cpu": tools["cpu"]}
    write(
        "serving",
        {
            "description": __doc__.strip().splitlines()[0],
            "seconds_per_run": args.seconds,
            "rounds": args.repeat,
            **result,
        },
        path=args.out,
    )


def ratios(servers: dict, floor_: dict) -> dict:
    """mlcycle over the better peer per case (c=8 throughput, p99 beside it), and c=1 p50 over the in-process floor."""
    out = {}
    for name, runs in servers.items():
        if not name.startswith("mlcycle_") or "skipped" in runs[0]:
            continue
        case = name[len("mlcycle_") :]
        mine = {r["concurrency"]: r for r in runs if r.get("mode") == "closed"}
        peer_runs = {p: servers[f"{p}_{case}"] for p in ("xgbserver", "mlserver") if f"{p}_{case}" in servers}
        c8 = {p: next(r for r in runs_ if r.get("concurrency") == 8) for p, runs_ in peer_runs.items()}
        best = max(c8, key=lambda p: c8[p]["rps"]) if c8 else None
        n = 100 if "100row" in case else 1
        entry = {
            "c8_rps": mine[8]["rps"],
            "c8_p99_ms": mine[8]["p99_ms"],
            "c1_p50_over_floor": round(mine[1]["p50_ms"] * 1000 / floor_[f"model_{n}row_us"], 1),
        }
        if best:
            entry.update(
                better_peer=best,
                peer_c8_rps=c8[best]["rps"],
                peer_c8_p99_ms=c8[best]["p99_ms"],
                c8_rps_over_better_peer=round(mine[8]["rps"] / c8[best]["rps"], 2),
            )
        if "mlserver" in c8:
            entry["c8_rps_over_mlserver"] = round(mine[8]["rps"] / c8["mlserver"]["rps"], 2)
        out[case] = entry
    floor_runs, rest = servers.get("httpfloor_v2_rest_1row"), servers.get("mlcycle_v2_rest_1row")
    if floor_runs and rest:  # the HTTP stack's own ceiling and tail, for the same 1-row V2 request
        closed = {r["concurrency"]: r for r in floor_runs if r.get("mode") == "closed"}
        out["http_floor_v2_rest_1row"] = {
            "c8_rps": closed[8]["rps"],
            "c8_p99_ms": closed[8]["p99_ms"],
            "c1_p99_ms": closed[1]["p99_ms"],
            "open_loop_p99_ms": {r["target_rps"]: r["p99_ms"] for r in floor_runs if r.get("mode") == "open"},
            "mlcycle_c8_rps_over_http_floor": round(rest[1]["rps"] / closed[8]["rps"], 2),
        }
    grpc = servers.get("mlcycle_v2_grpc_1row")
    if rest and grpc and "skipped" not in grpc[0]:
        out["grpc_over_rest_1row_c8"] = round(grpc[1]["rps"] / rest[1]["rps"], 2)
    return out


if __name__ == "__main__":
    main()
