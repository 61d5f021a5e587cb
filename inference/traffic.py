"""``python -m inference.traffic``: send a normal stream, then a drifted stream, to the local predictor
(``make serve``) and print what the drift detector reports after each."""

import argparse
import json
import math
import time
import urllib.request
import uuid

from inference.cloudevents import REQUEST_TYPE, ce_headers
from mlcycle import defaults
from mlcycle.data import DEMO_FEATURES, make_demo_dataset

FEATURES = DEMO_FEATURES


def post(url: str, body: dict, timeout: float = 30, headers: dict | None = None) -> dict:
    """POST ``body`` as JSON (``headers`` added); the JSON answer."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", **(headers or {})},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as r:
        return json.loads(r.read())


def send_events(drift_url: str, records: list[dict], source: str = "traffic", timeout: float = 10) -> dict:
    """``records`` as one V1 request in a binary-mode payload-logger CloudEvent to the drift detector's /events."""
    headers = ce_headers(uuid.uuid4().hex, REQUEST_TYPE, source)
    return post(f"{drift_url}/events", {"instances": records}, timeout, headers)


def v2_request(records: list[dict]) -> dict:
    """Rows as one V2 inference request: a column per key of the first row, BYTES where it holds a string, else FP64."""
    return {
        "inputs": [
            {
                "name": k,
                "shape": [len(records)],
                "datatype": "BYTES" if isinstance(records[0][k], str) else "FP64",
                "data": [r[k] for r in records],
            }
            for k in records[0]
        ]
    }


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def stream(predict_url: str, rows: int, batch: int, seed: int, drift: float) -> tuple[int, int]:
    frame = make_demo_dataset(max(rows, 1000), seed=seed, drift=drift).head(rows)[FEATURES]
    records = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in json.loads(frame.to_json(orient="records"))
    ]
    flagged = 0
    for i in range(0, rows, batch):
        out = post(predict_url, {"instances": records[i : i + batch]})
        flagged += sum(1 for p in out["predictions"] if p == 1)
    return rows, flagged


def report(drift_url: str, phase: str) -> dict:
    status = get(f"{drift_url}/status")
    last = status["last_window"] or {}
    worst = sorted((last.get("p_values") or {}).items(), key=lambda kv: kv[1])[:3]
    print(
        f"[{phase}] windows={status['counts']['windows']} events={status['counts']['processed']} dropped={status['counts']['dropped']} "
        f"drift={'YES' if status['drift'] else 'no'} threshold={last.get('threshold', float('nan')):.4g}"
    )
    for name, p in worst:
        print(f"    {name:24s} p={p:.3g}  psi={last['psi'][name]:.3f}")
    return status


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--predictor", default="http://127.0.0.1:8080")
    p.add_argument("--drift", default="http://127.0.0.1:8090")
    p.add_argument("--model", default=defaults.MODEL_NAME)
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--batch", type=int, default=10)
    args = p.parse_args()
    url = f"{args.predictor}/v1/models/{args.model}:predict"
    for phase, seed, drift in (("normal traffic", 101, 0.0), ("drifted traffic", 202, 0.8)):
        start = time.perf_counter()
        n, flagged = stream(url, args.rows, args.batch, seed, drift)
        print(f"{phase}: {n} rows in {time.perf_counter() - start:.1f}s, {flagged} predicted fraud")
        time.sleep(0.5)  # let the payload log drain
        post(f"{args.drift}/flush", {})
        status = report(args.drift, phase)
    if not status["drift"]:
        raise SystemExit("drift was not reported for the drifted stream")


if __name__ == "__main__":
    main()
