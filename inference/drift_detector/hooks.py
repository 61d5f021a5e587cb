"""Retrain hooks: what the drift detector does on sustained drift.

A hook returns at once; what it started may fail later. It then calls ``on_failure(reason)``, which the
drift service sets to count the failure (``mlcycle_drift_retrain_failures_total``) and show it in its status.
A hook that can tell when its run ends (``CommandHook``) also has ``on_done(run)``: the drift service's trigger
guard then counts the run as in progress until it ends (never two at once); for the others a run started within
the cooldown counts as running.
"""

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


class KfpHook:
    """Submit a run of the compiled training pipeline to Kubeflow Pipelines."""

    def __init__(self, host: str, package: str, experiment: str = "mlcycle-retrain", params: dict | None = None):
        if not Path(package).is_file():
            raise ConfigError(
                f"KFP hook: no compiled pipeline at {package} (the drift image carries "
                "/app/pipelines/mlcycle-training.yaml; --kfp_package names another)"
            )
        self.host, self.package, self.experiment, self.params = host, package, experiment, params or {}
        self.on_failure: Callable[[str], None] | None = None

    def __call__(self, report: dict) -> str:
        import kfp

        def submit():
            try:
                client = kfp.Client(host=self.host)
                run = client.create_run_from_pipeline_package(
                    self.package,
                    arguments=self.params,
                    experiment_name=self.experiment,
                    run_name=f"retrain-{self.params.get('trigger', 'drift')}",
                )
                log.info("submitted KFP retraining run %s", run.run_id)
            except Exception as e:  # the detector keeps running; the failure is logged and reported to on_failure
                log.exception("KFP retraining submission failed")
                if self.on_failure is not None:
                    self.on_failure(f"KFP retraining submission failed: {e}")

        threading.Thread(target=submit, daemon=True).start()
        return f"submitting KFP run of {self.package} to {self.host}"


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
