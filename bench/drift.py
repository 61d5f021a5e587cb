"""Benchmark: drift-detector ingestion, binary CloudEvents (KServe payload-logger format) per second.

The detector runs alone on one core (``taskset -c 0``) and the load generator (aiohttp, closed loop)
on the other, so events/s is per server core and comparable with the predictor's 1-row req/s at
concurrency 8 (bench/serving.py). Each event carries a V1 request of ``--rows`` rows. After the run
the detector is flushed and its counts read back: every accepted event must have reached a window.
Writes bench/results/drift.json.

    python bench/drift.py [--source REGISTRY#MODEL@ALIAS] [--seconds 10] [--concurrency 8] [--rows 10]
                          [--label TEXT] [--append]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import write  # noqa: E402
from inference.cloudevents import ce_headers  # noqa: E402
from mlcycle.process import free_port, wait_http_ok  # noqa: E402

EVENT_HEADERS = ce_headers("bench", "org.kubeflow.serving.inference.request", "bench")


async def drift_events(url: str, body: dict, seconds: float, concurrency: int = 8) -> dict:
    """Closed-loop load of binary CloudEvents on ``url``/events; then flush and read the detector's counts."""
    import aiohttp
    import numpy as np

    payload = json.dumps(body).encode()
    latencies, codes = [], {}
    stop_at = time.perf_counter() + seconds
    async with aiohttp.ClientSession() as session:

        async def worker():
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                async with session.post(url + "/events", data=payload, headers=EVENT_HEADERS) as r:
                    await r.read()
                latencies.append(time.perf_counter() - t0)
                codes[r.status] = codes.get(r.status, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        async with session.post(url + "/flush", timeout=aiohttp.ClientTimeout(total=120)) as r:
            status = await r.json()
    lat = np.asarray(latencies) * 1000
    rows = len(body.get("instances") or body.get("inputs", [{}])[0].get("data", []))
    counts = status["counts"]
    return {
        "mode": "closed",
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "requests": len(lat),
        "status_codes": {str(k): v for k, v in sorted(codes.items())},
        "events_per_second": round(codes.get(200, 0) / elapsed, 1),
        "rows_per_event": rows,
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3),
        "received": counts["received"],
        "processed": counts["processed"],
        "dropped": counts["dropped"],
        "lost": counts["received"] - counts["processed"],
        "windows": counts["windows"],
    }


def event_body(source: str, rows: int) -> dict:
    """A V1 request of ``rows`` demo rows with the version's feature names (no missing values)."""
    from mlcycle.data import make_demo_dataset
    from mlcycle.registry import open_registry

    registry_uri, ref = source.split("#", 1)
    model, _, alias = ref.partition("@")
    contract = open_registry(registry_uri).describe(model, alias or "production")["contract"]
    features = [c["name"] for c in contract["columns"] if c["kind"] != "datetime"]
    frame = make_demo_dataset(1000, seed=3).dropna()
    frame = frame[features]
    return {"instances": json.loads(frame.head(rows).to_json(orient="records"))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--source", help="registry#model@alias to serve (default: train the demo model into a temp dir)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--rows", type=int, default=10)
    p.add_argument("--backend", default="scipy")
    p.add_argument("--label", default="", help="free text stored with the result (e.g. the commit measured)")
    p.add_argument("--no-write", action="store_true", help="print the result only")
    p.add_argument("--append", action="store_true", help="keep the runs already in bench/results/drift.json")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-drift-"))
    source = args.source
    from bench.serving import drift_argv

    if not source:
        from bench.serving import build_model

        build_model(tmp)
        source = f"{tmp / 'registry'}#fraud@production"
    port = free_port()
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []
    argv = pin + drift_argv(source, port, args.backend)
    log = tmp / "drift.log"
    proc = subprocess.Popen(
        argv,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/healthz", 120, "drift detector", proc)
        if pin:
            os.sched_setaffinity(0, {1})
        body = event_body(source, args.rows)
        run = asyncio.run(drift_events(f"http://127.0.0.1:{port}", body, args.seconds, args.concurrency))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            proc.wait(20)
    run["pinned"] = bool(pin)
    run["label"] = args.label
    print(json.dumps(run), flush=True)
    if not args.no_write:  # runs accumulate (e.g. --label before / after on the same machine, back to back)
        from bench.common import RESULTS

        previous = RESULTS / "drift.json"
        runs = json.loads(previous.read_text()).get("runs", []) if previous.exists() and args.append else []
        write("drift", {"description": __doc__.strip().splitlines()[0], "drift_detector": run, "runs": runs + [run]})


if __name__ == "__main__":
    main()
