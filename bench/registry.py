"""Benchmark: registry upload/download of a 10 MB and a 200 MB model version against a bare
``minio`` SDK ``fput_object``/``fget_object`` of the same files, same local MinIO server, same run.
The ratio is the cost of the registry's integrity work (sha256 of every file, manifest, verify on
download). Writes bench/results/registry.json.
"""

import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import write  # noqa: E402
from devtools.minio import MinioServer  # noqa: E402
from mlcycle.registry import Registry  # noqa: E402
from mlcycle.registry.s3 import S3Store  # noqa: E402

REPEATS = 3


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    results = []
    with tempfile.TemporaryDirectory() as tmp, MinioServer(Path(tmp) / "minio") as server:
        client = server.client()
        store = S3Store(client, "bench")
        store.ensure_bucket()
        registry = Registry(store)
        for size_mb in (10, 200):
            version_dir = Path(tmp) / f"v{size_mb}"
            version_dir.mkdir()
            (version_dir / "estimator.ubj").write_bytes(os.urandom(size_mb * 1024 * 1024 - 4096))
            (version_dir / "bundle.json").write_bytes(os.urandom(4096))
            files = sorted(version_dir.iterdir())
            bare_up, bare_down, reg_up, reg_down = [], [], [], []
            for i in range(REPEATS):
                prefix = f"bare/{secrets.token_hex(4)}"
                bare_up.append(
                    timed(lambda: [client.fput_object("bench", f"{prefix}/{f.name}", str(f)) for f in files])
                )
                out = Path(tmp) / f"bare-{size_mb}-{i}"
                bare_down.append(
                    timed(lambda: [client.fget_object("bench", f"{prefix}/{f.name}", str(out / f.name)) for f in files])
                )
                holder = {}
                reg_up.append(timed(lambda: holder.setdefault("v", registry.register(f"m{size_mb}", version_dir, {}))))
                reg_down.append(
                    timed(lambda: registry.fetch(f"m{size_mb}", holder["v"], Path(tmp) / f"reg-{size_mb}-{i}"))
                )
            entry = {
                "size_mb": size_mb,
                "repeats": REPEATS,
                "bare_upload_s": round(statistics.median(bare_up), 4),
                "registry_upload_s": round(statistics.median(reg_up), 4),
                "bare_download_s": round(statistics.median(bare_down), 4),
                "registry_download_s": round(statistics.median(reg_down), 4),
            }
            entry["upload_ratio"] = round(entry["registry_upload_s"] / entry["bare_upload_s"], 3)
            entry["download_ratio"] = round(entry["registry_download_s"] / entry["bare_download_s"], 3)
            print(entry, flush=True)
            results.append(entry)
    write(
        "registry",
        {
            "description": "registry register/fetch vs bare minio fput/fget of the same files; ratio = registry / bare (goal <= 1.10)",
            "runs": results,
        },
    )


if __name__ == "__main__":
    main()
