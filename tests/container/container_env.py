"""Names the container tier shares (tests/containers: conftest and tests)."""

import os
from pathlib import Path

from devtools.containers import STORAGE_INITIALIZER_IMAGE

ROOT = Path(__file__).resolve().parents[2]
MODEL = "fraud-detector"
BUCKET = "mlcycle-models"
ROLES = ("pipeline", "drift", "serving", "capture")
STORAGE_INITIALIZER = STORAGE_INITIALIZER_IMAGE
MINIO_HOST = "minio.mlcycle.svc.cluster.local:9000"


def image_refs() -> dict[str, str]:
    from mlcycle import __version__

    registry = os.environ.get("IMAGE_REGISTRY", "ghcr.io/mlcycle")
    refs = {role: f"{registry}/mlcycle-{role}:{os.environ.get('IMAGE_TAG', __version__)}" for role in ROLES}
    return {**refs, "storage-initializer": STORAGE_INITIALIZER}


def s3_env(minio_server, secret) -> dict[str, str]:
    return {**minio_server.env(), **secret.data}
