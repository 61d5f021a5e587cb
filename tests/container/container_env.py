"""Names the container tier shares (tests/container: conftest and tests)."""

from pathlib import Path

from devtools.containers import STORAGE_INITIALIZER_IMAGE

ROOT = Path(__file__).resolve().parents[2]
MODEL = "fraud-detector"
BUCKET = "mlcycle-models"
ROLES = ("pipeline", "drift", "serving", "capture")
STORAGE_INITIALIZER = STORAGE_INITIALIZER_IMAGE
MINIO_HOST = "minio.mlcycle.svc.cluster.local:9000"


def image_refs() -> dict[str, str]:
    """The references the manifests and the compiled pipeline name (`make test` builds the images under them)."""
    from mlcycle import __version__

    refs = {role: f"ghcr.io/mlcycle/mlcycle-{role}:{__version__}" for role in ROLES}
    return {**refs, "storage-initializer": STORAGE_INITIALIZER}


def s3_env(minio_server, secret) -> dict[str, str]:
    return {**minio_server.env(), **secret.data}
