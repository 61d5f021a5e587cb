"""Retrain hooks: what the drift detector does on sustained drift."""

import logging
import shlex
import subprocess
import threading

log = logging.getLogger("mlcycle.drift")


class CommandHook:
    """Run a local command (embedded setup: a local pipeline run); one at a time, never blocking."""

    def __init__(self, command: str):
        self.argv = shlex.split(command)
        self._running: subprocess.Popen | None = None
        self.started = 0

    def __call__(self, report: dict) -> str:
        if self._running is not None and self._running.poll() is None:
            return "skipped: a retraining run is still in progress"
        self._running = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.started += 1
        return f"started local retraining (pid {self._running.pid}): {' '.join(self.argv)}"


class KfpHook:
    """Submit a run of the compiled training pipeline to Kubeflow Pipelines."""

    def __init__(self, host: str, package: str, experiment: str = "mlcycle-retrain", params: dict | None = None):
        self.host, self.package, self.experiment, self.params = host, package, experiment, params or {}

    def __call__(self, report: dict) -> str:
        import kfp

        def submit():
            try:
                client = kfp.Client(host=self.host)
                run = client.create_run_from_pipeline_package(self.package, arguments=self.params, experiment_name=self.experiment,
                                                              run_name="drift-retrain")
                log.info("submitted KFP retraining run %s", run.run_id)
            except Exception:  # the detector keeps running; the failure is logged and counted by the caller
                log.exception("KFP retraining submission failed")

        threading.Thread(target=submit, daemon=True).start()
        return f"submitting KFP run of {self.package} to {self.host}"
