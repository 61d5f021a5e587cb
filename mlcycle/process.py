"""Local server processes: a free port, waiting for one to answer."""

import socket
import subprocess
import time
import urllib.request

from mlcycle.errors import ProcessError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http_ok(url: str, timeout: float, what: str, proc: subprocess.Popen | None = None, log_hint: str = "") -> None:
    """Poll ``url`` until it answers 200; fail fast if ``proc`` exits, and after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ProcessError(f"{what} exited with code {proc.returncode}{log_hint}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise ProcessError(f"{what} did not answer {url} within {timeout}s{log_hint}")


def wait_until(condition, timeout: float, interval: float = 0.1):
    """Call ``condition`` until it returns something truthy (returned) or ``timeout`` seconds pass (its last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
