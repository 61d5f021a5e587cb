"""Retrain hooks: what the drift detector does on sustained drift.

A hook returns at once; what it started may fail later. It then calls ``on_failure(reason)``, which the
drift service sets to count the failure (``mlcycle_drift_retrain_failures_total``) and show it in its status.
"""

import logging
import shlex
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from mlcycle.contract import DataContract
from mlcycle.errors import ConfigError

log = logging.getLogger("mlcycle.drift")


class CommandHook:
    """Run a local command (embedded setup: a local pipeline run); one at a time, never blocking."""

    def __init__(self, command: str):
        self.argv = shlex.split(command)
        self._running: subprocess.Popen | None = None
        self.on_failure: Callable[[str], None] | None = None

    def __call__(self, report: dict) -> str:
        if self._running is not None and self._running.poll() is None:
            return "skipped: a retraining run is still in progress"
        self._running = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        threading.Thread(target=self._wait, args=(self._running,), daemon=True).start()
        return f"started local retraining (pid {self._running.pid}): {' '.join(self.argv)}"

    def _wait(self, proc: subprocess.Popen) -> None:
        if proc.wait() != 0:
            reason = f"local retraining (pid {proc.pid}) exited with status {proc.returncode}"
            log.error("%s", reason)
            if self.on_failure is not None:
                self.on_failure(reason)


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
