"""A real MinIO server process for development and tests (127.0.0.1, free port, own data dir).

``python -m devtools.minio -- CMD...`` starts MinIO with data in ``.mlcycle/minio``, creates the
``mlcycle-models`` bucket, runs CMD with the S3 environment set (KServe's variable names), then
stops the server. Credentials are generated once per data dir and kept beside it (mode 600).
"""

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from mlcycle.errors import ProcessError, ToolMissing
from mlcycle.process import free_port, wait_http_ok


def minio_binary() -> str:
    binary = os.environ.get("MINIO_BIN") or shutil.which("minio")
    if not binary or not os.access(binary, os.X_OK):
        raise ToolMissing("no MinIO server binary: run scripts/ensure-minio.sh (builds it with Go) and set MINIO_BIN")
    return binary


class MinioServer:
    def __init__(
        self,
        data_dir: Path,
        access_key: str | None = None,
        secret_key: str | None = None,
        binary: str | None = None,
        port: int | None = None,
    ):
        self.data_dir = Path(data_dir)
        self.binary = binary or minio_binary()
        self.access_key = access_key or "mlc" + secrets.token_hex(6)
        self.secret_key = secret_key or secrets.token_urlsafe(24)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The variables KServe's storage initializer and mlcycle's S3 client read."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "S3_ENDPOINT": f"127.0.0.1:{self.port}",
            "S3_USE_HTTPS": "0",
            "S3_VERIFY_SSL": "0",
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def start(self, timeout: float = 30.0) -> "MinioServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "MINIO_ROOT_USER": self.access_key,
            "MINIO_ROOT_PASSWORD": self.secret_key,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
            "MINIO_CI_CD": "1",
        }
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                "server",
                str(self.data_dir),
                "--address",
                f"127.0.0.1:{self.port}",
                "--console-address",
                f"127.0.0.1:{free_port()}",
                "--quiet",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            wait_http_ok(f"{self.endpoint}/minio/health/live", timeout, "MinIO", self.proc, f"; see {self.log_path}")
        except ProcessError:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def client(self, access_key: str | None = None, secret_key: str | None = None):
        from mlcycle.registry.s3 import client_from_env

        return client_from_env(self.endpoint, access_key or self.access_key, secret_key or self.secret_key)

    def __enter__(self) -> "MinioServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1 :]
    if not argv:
        print("usage: python -m devtools.minio -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    root = Path(".mlcycle")
    cred_file = root / "minio.credentials.json"
    if cred_file.exists():
        creds = json.loads(cred_file.read_text())
    else:
        root.mkdir(parents=True, exist_ok=True)
        creds = {"access_key": "mlc" + secrets.token_hex(6), "secret_key": secrets.token_urlsafe(24)}
        cred_file.write_text(json.dumps(creds))
        cred_file.chmod(0o600)
    with MinioServer(root / "minio", creds["access_key"], creds["secret_key"]) as server:
        client = server.client()
        if not client.bucket_exists("mlcycle-models"):
            client.make_bucket("mlcycle-models")
        print(f"MinIO at {server.endpoint} (data {server.data_dir})", flush=True)
        return subprocess.call(argv, env={**os.environ, **server.env()})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
