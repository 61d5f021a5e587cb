"""Prepare a MinIO deployment for mlcycle: the models bucket, and two least-privilege users.

``python -m mlcycle.registry.bootstrap`` reads everything from the environment (a Kubernetes
Secret in the cluster's bootstrap Job): the admin endpoint/credentials (``AWS_ENDPOINT_URL``,
``MINIO_ROOT_USER``, ``MINIO_ROOT_PASSWORD``) and the two users to create
(``PIPELINE_ACCESS_KEY``/``PIPELINE_SECRET_KEY`` get pipeline-writer, ``SERVING_ACCESS_KEY``/
``SERVING_SECRET_KEY`` get serving-reader). Idempotent.
"""

import json
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

from minio.credentials import StaticProvider
from minio.minioadmin import MinioAdmin

from mlcycle.registry.s3 import client_from_env

POLICY_DIR = Path(
    os.environ.get("MLCYCLE_POLICY_DIR")
    or Path(__file__).resolve().parents[2] / "manifests" / "base" / "minio" / "policies"
)
POLICIES = ("pipeline-writer", "serving-reader")


def load_policy(name: str, bucket: str) -> dict:
    text = (POLICY_DIR / f"{name}.json").read_text().replace("mlcycle-models", bucket)
    return json.loads(text)


def bootstrap(endpoint: str, admin_key: str, admin_secret: str, bucket: str, users: dict[str, tuple[str, str]]) -> None:
    """Create ``bucket``, the policies (scoped to it) and one user per policy: {policy: (key, secret)}."""
    client = client_from_env(endpoint, admin_key, admin_secret)
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
    parsed = urlparse(endpoint)
    admin = MinioAdmin(
        endpoint=parsed.netloc, credentials=StaticProvider(admin_key, admin_secret), secure=parsed.scheme == "https"
    )
    for policy, (key, secret) in users.items():
        name = f"mlcycle-{policy}-{bucket}"
        admin.policy_add(name, policy=load_policy(policy, bucket))
        admin.user_add(key, secret)
        admin.policy_set(name, user=key)


def main() -> int:
    env = os.environ
    users = {}
    for policy, prefix in (("pipeline-writer", "PIPELINE"), ("serving-reader", "SERVING")):
        if env.get(f"{prefix}_ACCESS_KEY"):
            users[policy] = (env[f"{prefix}_ACCESS_KEY"], env[f"{prefix}_SECRET_KEY"])
    bootstrap(
        env.get("AWS_ENDPOINT_URL") or f"http://{env['S3_ENDPOINT']}",
        env["MINIO_ROOT_USER"],
        env["MINIO_ROOT_PASSWORD"],
        env.get("MLCYCLE_BUCKET", "mlcycle-models"),
        users,
    )
    print(f"bucket and users ready: {', '.join(users) or 'no users requested'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
