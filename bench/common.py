"""Shared helpers for the benchmarks: machine facts and JSON results."""

import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    import numpy
    import threadpoolctl

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": numpy.__version__,
        "blas": [p.get("internal_api") for p in threadpoolctl.threadpool_info()],
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
    }


def write(name: str, payload: dict, path: Path | None = None) -> Path:
    """The results as JSON: bench/results/NAME.json unless ``path`` says where."""
    path = path or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **payload,
    }
    path.write_text(json.dumps(payload, indent=2))
    print(f"wrote {path}")
    return path
