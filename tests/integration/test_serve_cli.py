"""`mlcycle serve` (what `make serve` runs): ports as options, and SIGINT or SIGTERM stops everything it started."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from mlcycle.process import free_port

pytestmark = pytest.mark.integration


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_every_process_it_started(served, tmp_path, sig):
    http, grpc, drift = free_port(), free_port(), free_port()
    registry = str(served["root"] / "registry")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli",
            "serve",
            "--registry",
            registry,
            "--model",
            "fraud",
            "--http-port",
            str(http),
            "--grpc-port",
            str(grpc),
            "--drift-port",
            str(drift),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if requests.get(f"http://127.0.0.1:{http}/v2/models/fraud/ready", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        assert proc.poll() is None, proc.stdout.read()
        assert _listening(http) and _listening(grpc) and _listening(drift)
        children = subprocess.run(["pgrep", "-f", f"http_port {http}"], capture_output=True, text=True).stdout.split()
        assert children, "the predictor runs as a child process"
        proc.send_signal(sig)
        assert proc.wait(60) == 0
        assert not any(_listening(p) for p in (http, grpc, drift)), "a server is still listening after serve stopped"
        for pid in children:
            with pytest.raises(ProcessLookupError):
                os.kill(int(pid), 0)
    finally:
        if proc.poll() is None:  # a failed assertion above: let serve stop its children, SIGKILL only as a last resort
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
