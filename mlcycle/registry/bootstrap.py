"""Prepare a MinIO deployment for mlcycle: the models bucket, and three least-privilege users.

``python -m mlcycle.registry.bootstrap`` reads everything from the environment (a Kubernetes
Secret in the cluster's bootstrap Job): the admin endpoint/credentials (``AWS_ENDPOINT_URL``,
``MINIO_ROOT_USER``, ``MINIO_ROOT_PASSWORD``) and the users to create
(``PIPELINE_ACCESS_KEY``/``PIPELINE_SECRET_KEY`` get pipeline-writer, ``SERVING_ACCESS_KEY``/
``SERVING_SECRET_KEY`` get serving-reader, ``CAPTURE_ACCESS_KEY``/``CAPTURE_SECRET_KEY`` get
capture-writer for the model ``MLCYCLE_MODEL``, default fraud-detector). Idempotent.

The policy files name the bucket ``mlcycle-models`` and (capture-writer) the model ``fraud-detector``;
both are replaced by the ones asked for, so one file serves any bucket and model.
"""

import json
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

from minio.credentials import StaticProvider
from minio.minioadmin import MinioAdmin

from mlcycle import defaults
from mlcycle.errors import RegistryError
from mlcycle.registry.registry import check_model_name
from mlcycle.registry.s3 import client_from_env

POLICY_DIR = Path(
    os.environ.get("MLCYCLE_POLICY_DIR")
    or Path(__file__).resolve().parents[2] / "manifests" / "base" / "minio" / "policies"
)
POLICIES = ("pipeline-writer", "serving-reader", "capture-writer")
PER_MODEL = ("capture-writer",)  # policies scoped to one model's prefix (the others: the whole bucket)
ENV_PREFIX = {"pipeline-writer": "PIPELINE", "serving-reader": "SERVING", "capture-writer": "CAPTURE"}


def load_policy(name: str, bucket: str, model: str = defaults.MODEL_NAME) -> dict:
    if name not in POLICIES:
        raise RegistryError(f"unknown MinIO policy {name!r}; known: {', '.join(POLICIES)}")
    text = (POLICY_DIR / f"{name}.json").read_text().replace("mlcycle-models", bucket)
    if name in PER_MODEL:
        text = text.replace(defaults.MODEL_NAME, check_model_name(model))
    return json.loads(text)


def policy_name(policy: str, bucket: str, model: str = defaults.MODEL_NAME) -> str:
    return f"mlcycle-{policy}-{bucket}" + (f"-{model}" if policy in PER_MODEL else "")


def bootstrap(
    endpoint: str,
    admin_key: str,
    admin_secret: str,
    bucket: str,
    users: dict[str, tuple[str, str]],
    model: str = defaults.MODEL_NAME,
) -> None:
    """Create ``bucket``, the policies (scoped to it; capture-writer also to ``model``) and one user per
    policy: {policy: (key, secret)}."""
    policies = {policy: load_policy(policy, bucket, model) for policy in users}  # bad names fail before any change
    client = client_from_env(endpoint, admin_key, admin_secret)
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
    parsed = urlparse(endpoint)
    admin = MinioAdmin(
        endpoint=parsed.netloc, credentials=StaticProvider(admin_key, admin_secret), secure=parsed.scheme == "https"
    )
    for policy, (key, secret) in users.items():
        name = policy_name(policy, bucket, model)
        admin.policy_add(name, policy=policies[policy])
        admin.user_add(key, secret)
        admin.policy_set(name, user=key)


def main() -> int:
    env = os.environ
    users = {}
    for policy, prefix in ENV_PREFIX.items():
        if env.get(f"{prefix}_ACCESS_KEY"):
            if not env.get(f"{prefix}_SECRET_KEY"):
                raise RegistryError(f"{prefix}_ACCESS_KEY is set but {prefix}_SECRET_KEY is not")
            users[policy] = (env[f"{prefix}_ACCESS_KEY"], env[f"{prefix}_SECRET_KEY"])
    bootstrap(
        env.get("AWS_ENDPOINT_URL") or f"http://{env['S3_ENDPOINT']}",
        env["MINIO_ROOT_USER"],
        env["MINIO_ROOT_PASSWORD"],
        env.get("MLCYCLE_BUCKET", "mlcycle-models"),
        users,
        env.get("MLCYCLE_MODEL") or defaults.MODEL_NAME,
    )
    print(f"bucket and users ready: {', '.join(users) or 'no users requested'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
