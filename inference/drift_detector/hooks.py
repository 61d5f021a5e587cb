"""Retrain hooks: what the drift detector does on sustained drift.

A hook returns at once; what it started may fail later. It then calls ``on_failure(reason)``, which the
drift service sets to count the failure (``mlcycle_drift_retrain_failures_total``) and show it in its status.
A hook that can tell when its run ends (``CommandHook``: a local process; ``KfpHook``: a KFP run whose state it
polls) also has ``busy()``, ``runs`` and ``on_done(run)``: the drift service's trigger guard then counts the run as
in progress until it ends (never two at once); for any other hook a run started within the cooldown counts as
running.
"""

import json
import logging
import shlex
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from mlcycle.contract import DataContract
from mlcycle.errors import ConfigError

log = logging.getLogger("mlcycle.drift")


class CommandHook:
    """Run a local command (embedded setup: a local pipeline run); one at a time, never blocking.

    Each run's stdout and stderr go to a log file of its own in ``log_dir`` (``retrain-<UTC time>.log``; without
    one, a temporary directory made at the first run); ``runs`` lists the recent ones with pid, log, exit code."""

    def __init__(self, command: str, log_dir: Path | None = None):
        self.argv = shlex.split(command)
        if not self.argv:
            raise ConfigError("retrain command is empty")
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self._running: subprocess.Popen | None = None
        self.runs: deque = deque(maxlen=20)
        self.on_failure: Callable[[str], None] | None = None
        self.on_done: Callable[[dict], None] | None = None

    def busy(self) -> bool:
        return self._running is not None and self._running.poll() is None

    def _log_path(self) -> Path:
        if self.log_dir is None:
            self.log_dir = Path(tempfile.mkdtemp(prefix="mlcycle-retrain-logs-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        return self.log_dir / f"retrain-{stamp}.log"

    def __call__(self, report: dict) -> str:
        if self.busy():
            return "skipped: a retraining run is still in progress"
        path = self._log_path()
        try:
            with open(path, "wb") as out:
                proc = subprocess.Popen(
                    self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
        except OSError:
            path.unlink(missing_ok=True)
            raise
        self._running = proc
        run = {"pid": proc.pid, "log": str(path), "started_at": time.time(), "exit_code": None, "finished_at": None}
        self.runs.append(run)
        threading.Thread(target=self._wait, args=(proc, run), daemon=True).start()
        return f"started local retraining (pid {proc.pid}, log {path}): {' '.join(self.argv)}"

    def _wait(self, proc: subprocess.Popen, run: dict) -> None:
        code = proc.wait()
        run["exit_code"], run["finished_at"] = code, time.time()
        if code != 0:
            reason = f"local retraining (pid {proc.pid}, log {run['log']}) exited with status {code}"
            log.error("%s", reason)
            if self.on_failure is not None:
                self.on_failure(reason)
        if self.on_done is not None:
            self.on_done(dict(run))


# KFP v2beta1 run states (kfp_server_api V2beta1RuntimeState) at which a run is over; the others (PENDING, RUNNING,
# CANCELING, PAUSED, RUNTIME_STATE_UNSPECIFIED) keep it in progress.
KFP_DONE_STATES = ("SUCCEEDED", "SKIPPED", "FAILED", "CANCELED")
KFP_FAILED_STATES = ("FAILED", "CANCELED")


class KfpHook:
    """Submit a run of the compiled training pipeline to Kubeflow Pipelines, then follow it to its end.

    A background thread submits the run and reads its state (``Client.get_run``) every ``poll_s`` seconds until
    it is one of ``KFP_DONE_STATES``: ``busy()`` from the call until then; ``runs`` lists the recent ones (run
    id, state, start and end); ``on_submitted()`` once the run id is known, ``on_done(run)`` at the end and
    ``on_failure(reason)`` for a refused submission or a FAILED or CANCELED run. A failing poll is logged and
    retried; after ``poll_give_up_s`` seconds without one answer the run's state is ``UNKNOWN``: reported as a
    failure and no longer in progress (the cooldown still holds the next start back)."""

    def __init__(
        self,
        host: str,
        package: str,
        experiment: str = "mlcycle-retrain",
        params: dict | None = None,
        poll_s: float = 30.0,
        poll_give_up_s: float = 600.0,
    ):
        if not Path(package).is_file():
            raise ConfigError(
                f"KFP hook: no compiled pipeline at {package} (the drift image carries "
                "/app/pipelines/mlcycle-training.yaml; --kfp_package names another)"
            )
        if not poll_s > 0 or poll_give_up_s < poll_s:
            raise ConfigError(
                f"KFP hook: poll_s must be > 0 and poll_give_up_s >= poll_s (got {poll_s:g}, {poll_give_up_s:g})"
            )
        self.host, self.package, self.experiment, self.params = host, package, experiment, params or {}
        self.poll_s, self.poll_give_up_s = poll_s, poll_give_up_s
        self.runs: deque = deque(maxlen=20)
        self._active: dict | None = None  # the run being submitted or followed
        self._stop = threading.Event()
        self.on_failure: Callable[[str], None] | None = None
        self.on_done: Callable[[dict], None] | None = None
        self.on_submitted: Callable[[], None] | None = None  # the run id is known (e.g. save it)

    def busy(self) -> bool:
        return self._active is not None

    def close(self) -> None:
        """Stop following (the KFP run itself goes on)."""
        self._stop.set()

    def __call__(self, report: dict) -> str:
        if self.busy():
            return "skipped: a retraining run is still in progress"
        run = {"run_id": None, "host": self.host, "state": "SUBMITTING", "started_at": time.time(), "finished_at": None}
        self._start(run, submit=True)
        return f"submitting KFP run of {self.package} to {self.host}"

    def resume(self, run: dict) -> dict:
        """Follow a run submitted before a restart (``run_id`` known) until it ends; returns the run followed."""
        run = {**run, "finished_at": None}
        self._start(run, submit=False)
        return run

    def _start(self, run: dict, submit: bool) -> None:
        self._active = run
        self.runs.append(run)
        threading.Thread(target=self._follow, args=(run, submit), daemon=True).start()

    def _follow(self, run: dict, submit: bool) -> None:
        import kfp

        client = None
        try:
            if submit:
                client = kfp.Client(host=self.host)
                submitted = client.create_run_from_pipeline_package(
                    self.package,
                    arguments=self.params,
                    experiment_name=self.experiment,
                    run_name=f"retrain-{self.params.get('trigger', 'drift')}",
                )
                run["run_id"], run["state"] = submitted.run_id, "PENDING"
                log.info("submitted KFP retraining run %s", submitted.run_id)
        except Exception as e:  # the detector keeps running; the failure is logged and reported to on_failure
            log.exception("KFP retraining submission failed")
            run["state"] = "NOT_SUBMITTED"
            failure = f"KFP retraining submission failed: {_brief(e)}"
        else:
            if submit and self.on_submitted is not None:
                self.on_submitted()
            failure = self._poll(client, run)
            if self._stop.is_set():  # closed (the detector stops): the run goes on and is not over here
                self._active = None
                return
        run["finished_at"] = time.time()
        if failure is not None:
            log.error("%s", failure)
            if self.on_failure is not None:
                self.on_failure(failure)
        self._active = None
        if self.on_done is not None:
            self.on_done(dict(run))

    def _poll(self, client, run: dict) -> str | None:
        """Read the run's state until it is over; the failure to report, if any."""
        import kfp

        run_id, last_answer = run["run_id"], time.monotonic()
        while not self._stop.wait(self.poll_s):
            try:
                client = client or kfp.Client(host=self.host)  # after a restart: made here, retried like a poll
                got = client.get_run(run_id)
            except Exception as e:  # a transient error: retried until poll_give_up_s without an answer
                waited = time.monotonic() - last_answer
                if waited >= self.poll_give_up_s:
                    run["state"] = "UNKNOWN"
                    return (
                        f"KFP run {run_id}: state unknown, no answer from {self.host} for {waited:.0f} s "
                        f"(poll_give_up_s {self.poll_give_up_s:g}): {_brief(e)}"
                    )
                log.warning(
                    "KFP run %s: reading its state failed (retried in %g s): %s", run_id, self.poll_s, _brief(e)
                )
                continue
            last_answer = time.monotonic()
            run["state"] = str(got.state or "RUNTIME_STATE_UNSPECIFIED")
            if run["state"] in KFP_FAILED_STATES:
                message = getattr(got.error, "message", None) if got.error is not None else None
                return f"KFP run {run_id} ended {run['state']}" + (f": {message}" if message else "")
            if run["state"] in KFP_DONE_STATES:
                log.info("KFP retraining run %s ended %s", run_id, run["state"])
                return None
        return None  # closed


def _brief(e: Exception) -> str:
    """A kfp_server_api ``ApiException`` as its status, reason and the server's message (not its headers)."""
    status, body = getattr(e, "status", None), getattr(e, "body", None)
    if status is None:
        return str(e)
    try:
        message = json.loads(body).get("message") if body else None
    except (ValueError, AttributeError):
        message = None
    return f"({status}) {getattr(e, 'reason', '')}" + (f": {message}" if message else "")


def retrain_params(
    contract: DataContract, model: str, registry_uri: str, days: float = 7.0, overrides: dict | None = None
) -> dict:
    """The training pipeline's arguments for a drift-triggered retrain: the captured, labelled traffic of the last
    ``days`` as the source, the served version's label/task/timestamp, a canary rollout (``deploy``), the trigger."""
    if not registry_uri.startswith("s3://"):
        raise ConfigError(
            f"KFP hook: the cluster's pipeline reads the captured traffic from an s3:// registry, not {registry_uri!r}"
        )
    params = {
        "source": f"traffic://{registry_uri}#{model}?days={days:g}",
        "label": contract.label,
        "task": contract.task,
        "timestamp_column": contract.timestamp or "",
        "registry_uri": registry_uri,
        "model_name": model,
        "deploy": True,
        "auto_promote": False,
        "trigger": "drift",
    }
    return {**params, **(overrides or {})}
