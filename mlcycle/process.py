"""Local server processes: a free port, waiting for one to answer."""

import gc
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


def freeze_heap() -> int:
    """Move every object alive now — the imported libraries, the loaded model — out of the cyclic collector's reach
    (``gc.freeze``), so a full collection scans only what a server allocates after start-up. Measured on the
    predictor under 1000 req/s: full collections over the ~235k start-up objects paused the event loop 110-210 ms
    every few seconds. Frozen objects are still freed when their last reference goes; only cycles among them are
    never collected. Call once, after loading, before serving. Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
