"""Run the training pipeline locally with kfp.local: ``runner="subprocess"`` (no containers) or ``"docker"``.

With the subprocess runner the steps run as subprocesses of this Python environment, exactly the component code a
cluster runs. With the Docker runner (kfp.local's DockerRunner) each step runs in its own image — the images the
compiled pipeline names (``make images``) — through the same executor a KFP backend runs in each pod: as the image's
user (uid 65532) when the caller is root, else as the caller's uid (so the run directories stay theirs). The steps see
only the pipeline root (mounted at the same path) and the host's network, so the registry must be ``s3://`` (its
credentials are passed from this environment, KServe's variable names) and a local source file is copied under the
pipeline root first.
With ``progress`` set, kfp.local's own output (every step's executor input and logs) goes to
``<run dir>/pipeline.log`` instead of the terminal, and ``progress`` gets one line per step; a failed
step raises ``StepFailed`` with the step's own one-line error and the log's path.
"""

import contextlib
import io
import json
import os
import re
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlcycle.errors import ConfigError, PipelineError
from pipelines.training import PIPELINE_NAME, S3_ENV, training_pipeline

RUNNERS = ("subprocess", "docker")

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STARTED = re.compile(r"Executing task '([\w-]+)'")
FINISHED = re.compile(r"Task '([\w-]+)' finished with status (\w+)")
INNER_FAILED = re.compile(r"Inner task failed: '([\w-]+)'")
# The last line of a Python traceback in a step's log: "mlcycle.errors.DataError: label column ...".
ERROR_LINE = re.compile(
    r"^\s*((?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Violation|Exception|NotFound|Unavailable|Conflict|Version)): (.+)$"
)
# Pages a run leaves for people: copied to the run directory under names a browser opens.
PAGES = {
    "report.html": ("evaluate", "report"),
    "data-report.html": ("validate-data", "exploration"),
    "gate-report.html": ("gate", "comparison"),
}


class StepFailed(PipelineError):
    """A pipeline step failed; ``error`` is its own one-line error, ``log`` the full kfp.local log."""

    def __init__(self, step: str, error: str, log: Path):
        self.step, self.error, self.log = step, error, log
        page = log.parent / "data-report.html" if log else None
        extra = f"\n  data report: {page}" if step == "validate-data" and page and page.exists() else ""
        super().__init__(f"step '{step}' failed: {error}\n  full log: {log}{extra}")


@dataclass
class StepTime:
    name: str
    status: str
    seconds: float


@dataclass
class LocalRun:
    run_dir: Path
    decision: dict
    evaluation: dict
    report: Path
    version: str | None
    seconds: float
    log: Path | None = None
    unchanged: bool = False  # identical to ``version``, already registered: the register step wrote nothing
    aliases: tuple[str, ...] = ()  # the aliases that version holds, when unchanged

    def page(self, name: str) -> Path:
        return self.run_dir / name


def identical_to(version: str, aliases) -> str:
    """What a retrain identical to a registered version says (the register step wrote nothing): the version and the
    aliases it holds, production first. The register component prints its own line (its source is compiled into
    the pipeline YAML)."""
    held = " and ".join(sorted(aliases, key=lambda a: a != "production"))
    named = f"{held} {version}" if held else f"{version} (no alias)"
    return f"identical to {named}: same data fingerprint, code and parameters; nothing registered"


class _StepLog(io.TextIOBase):
    """stdout while kfp.local runs: every line to the log file; step starts and ends to ``progress``."""

    def __init__(self, log, progress: Callable[[str], None], terminal):
        self.log, self.progress, self.terminal, self.buffer = log, progress, terminal, ""
        self.started: dict[str, float] = {}

    def write(self, text: str) -> int:
        self.log.write(text)
        self.buffer += text
        *lines, self.buffer = self.buffer.split("\n")
        for line in lines:
            self._line(ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        self.log.flush()

    def _line(self, line: str) -> None:
        if m := STARTED.search(line):
            self.started[m.group(1)] = time.perf_counter()
        elif m := FINISHED.search(line):
            name, status = m.groups()
            step = StepTime(
                name,
                "ok" if status == "SUCCESS" else status.lower(),
                round(time.perf_counter() - self.started.get(name, time.perf_counter()), 1),
            )
            with contextlib.redirect_stdout(self.terminal):
                self.progress(f"  {step.name:<16} {step.status:<8} {step.seconds:6.1f}s")


def _runner(kind: str, registry_uri: str, pipeline_root: Path, params: dict):
    """kfp.local's runner for ``kind``; for Docker, the pipeline root made writable by the images' user and a local
    source file copied where the steps see it (``params['source']`` rewritten)."""
    from kfp import local

    if kind == "subprocess":
        return local.SubprocessRunner(use_venv=False)
    if kind != "docker":
        raise ConfigError(f"unknown runner {kind!r}; known: {', '.join(RUNNERS)}")
    if not registry_uri.startswith("s3://"):
        raise ConfigError(
            f"runner docker: the steps run in containers that see only the pipeline root, so the registry must be "
            f"s3:// (e.g. a MinIO they reach), not {registry_uri!r}"
        )
    source = str(params.get("source", ""))
    if source and "://" not in source and Path(source).is_file():
        inputs = pipeline_root / "inputs"
        inputs.mkdir(exist_ok=True)
        inputs.chmod(0o755)
        params["source"] = str(Path(shutil.copy2(source, inputs / Path(source).name)).resolve())
        Path(params["source"]).chmod(0o644)
    environment = {k: os.environ[k] for k in S3_ENV if k in os.environ}
    # entrypoint reset: a KFP backend sets each step's container `command`, which replaces the image's ENTRYPOINT
    # (the drift image's is the detector service); kfp.local passes the step's command as docker's CMD instead
    run_args: dict = {"network_mode": "host", "environment": environment, "entrypoint": [""]}
    if os.getuid() == 0:
        # as root (CI, the tests): the steps run as the image's user (uid 65532), as on a cluster, and the pipeline
        # root is made theirs to write; root reads what they leave
        pipeline_root.chmod(0o777)
    else:
        # as a user: the steps run with the caller's uid/gid, so the run directories stay the caller's to move and
        # delete (an image's non-root user would own them otherwise)
        run_args["user"] = f"{os.getuid()}:{os.getgid()}"
    return local.DockerRunner(**run_args)


def run_local(
    registry_uri: str,
    pipeline_root: Path,
    progress: Callable[[str], None] | None = None,
    runner: str = "subprocess",
    **params,
) -> LocalRun:
    """One pipeline run on kfp.local; ``runner``: "subprocess" or "docker" (see the module's docstring)."""
    from kfp import local

    pipeline_root = Path(pipeline_root).resolve()
    pipeline_root.mkdir(parents=True, exist_ok=True)
    local.init(
        runner=_runner(runner, registry_uri, pipeline_root, params),
        pipeline_root=str(pipeline_root),
        raise_on_error=True,
    )
    before = set(pipeline_root.glob(f"{PIPELINE_NAME}-*"))
    start = time.perf_counter()
    log_path = pipeline_root / f".pipeline-{time.time_ns()}.log" if progress else None
    failure: RuntimeError | None = None
    with warnings.catch_warnings():
        # Our steps run on mlcycle's own images; kfp.local warns for every image without "python" in its name.
        warnings.filterwarnings("ignore", message=".*custom or non-Python base image.*", category=RuntimeWarning)
        if progress is None:
            training_pipeline(registry_uri=registry_uri, **params)
        else:
            with open(log_path, "w") as log:
                sink = _StepLog(log, progress, sys.stdout)
                try:
                    with contextlib.redirect_stdout(sink):
                        training_pipeline(registry_uri=registry_uri, **params)
                except RuntimeError as e:  # kfp.local: "Task 'x' finished with status FAILURE"
                    failure = e
                except ValueError as e:
                    if "Tried to get output" not in str(e):
                        raise
                    failure = e  # a step reported successful left no outputs for the next one (_without_outputs)
    seconds = time.perf_counter() - start
    new = sorted(set(pipeline_root.glob(f"{PIPELINE_NAME}-*")) - before)
    run_dir = new[-1] if new else None
    if log_path is not None and run_dir is not None:
        log_path = Path(shutil.move(log_path, run_dir / "pipeline.log"))
    for name, (
        step,
        artifact,
    ) in PAGES.items():  # also after a failure: the data page shows a contract breach per column
        if run_dir is not None and (run_dir / step / artifact).is_file():
            shutil.copyfile(run_dir / step / artifact, run_dir / name)
    if failure is not None:
        raise _step_failed(failure, log_path, _without_outputs(run_dir)) from None
    if run_dir is None:
        raise PipelineError(f"kfp.local produced no run directory under {pipeline_root}")
    if died := _without_outputs(run_dir):
        raise StepFailed(
            died[0], "the step was reported successful but wrote no outputs (its container died?)", log_path
        )
    registered = run_dir / "register" / "executor_output.json"
    output = json.loads(registered.read_text()) if registered.exists() else {}
    artifact = (output.get("artifacts", {}).get("registered", {}).get("artifacts") or [{}])[0].get("metadata", {})
    return LocalRun(
        run_dir=run_dir,
        decision=json.loads((run_dir / "gate" / "decision").read_text()),
        evaluation=json.loads((run_dir / "evaluate" / "evaluation").read_text()),
        report=run_dir / "report.html",
        version=output["parameterValues"]["Output"] if output else None,
        seconds=seconds,
        log=log_path,
        unchanged=bool(artifact.get("unchanged")),
        aliases=tuple(artifact.get("aliases") or ()),
    )


def _without_outputs(run_dir: Path | None) -> list[str]:
    """The steps that ran but left no executor output. kfp.local's Docker handler reports a container removed before
    it could be waited on as exit code 0 — a step that failed fast looks successful; its missing output shows it."""
    if run_dir is None:
        return []
    steps = [p for p in run_dir.iterdir() if p.is_dir() and p.name != "inputs"]
    return sorted(p.name for p in steps if not (p / "executor_output.json").is_file())


def _step_failed(error: Exception, log_path: Path, died: list[str] | None = None) -> StepFailed:
    text = ANSI.sub("", str(error))
    m = INNER_FAILED.search(text) or FINISHED.search(text)
    step = m.group(1) if m else (died[0] if died else "?")
    lines = log_path.read_text(errors="replace").splitlines() if log_path and log_path.exists() else []
    found = [ERROR_LINE.match(line) for line in lines]
    messages = [f"{m.group(1).rsplit('.', 1)[-1]}: {m.group(2)}" for m in found if m]
    return StepFailed(step, messages[-1] if messages else text, log_path)
