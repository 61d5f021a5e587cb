"""The closed loop, locally: watch the drift detector and the capture service, decide on a retrain
(``mlcycle.triggers``), run the training pipeline on the captured, labelled traffic, and take the new
version through candidate → shadow (``inference.shadow``) → canary (``inference.rollout.local``) →
promote, or stop it and say why. Every decision goes to the registry's audit log with its evidence.

On a cluster the same decisions are made by the drift detector's KFP hook (a pipeline run with the
captured-traffic source and ``deploy=true``), and the rollout changes the InferenceService instead.
"""

import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from mlcycle import capture
from mlcycle.errors import MlcycleError
from mlcycle.fsutil import write_text_atomic
from mlcycle.registry import Registry, local_registry_path
from mlcycle.shadow import ShadowDecision, ShadowPolicy, record
from mlcycle.triggers import (
    Decision,
    Observation,
    TriggerController,
    TriggerPolicy,
    cooldown_left,
    evidence_param,
    read_state,
)

TRIGGER_STATE, LOOP_STATE = "triggers.json", "loop.json"  # in the loop's state directory


def _request(url: str, body: dict | None = None, timeout: float = 30) -> bytes:
    """GET ``url`` (POST ``body`` as JSON when given); the answer's bytes, or LoopError with the server's reason."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, headers={"content-type": "application/json"}, method="POST" if data else "GET"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.read()
    except urllib.error.HTTPError as e:  # the server's reason, not just the status
        raise LoopError(f"{req.get_method()} {url}: HTTP {e.code}: {e.read().decode(errors='replace')[:500]}") from None


def get_json(url: str, body: dict | None = None, timeout: float = 30) -> dict:
    return json.loads(_request(url, body, timeout))


class LoopError(MlcycleError):
    """A server of the loop answered with an error (its message included)."""


class NoLoop(MlcycleError):
    """No loop has written its state where ``mlcycle loop status`` looked."""


def get_text(url: str, timeout: float = 30) -> str:
    return _request(url, timeout=timeout).decode()


def record_retrain(registry: Registry, model: str, d: Decision, drift_url: str | None) -> str:
    """The audit record of a retrain that starts, with the drift detector's report page of that moment attached
    (``attachments.drift_report``: ``<model>/_audit/reports/<ts>-<id>-drift_report.html``); when the page cannot be
    fetched the retrain still starts and ``evidence.drift_report_error`` says why. Returns the record's key."""
    evidence, attachments = dict(d.evidence), {}
    if drift_url:
        try:
            attachments["drift_report.html"] = (get_text(f"{drift_url}/report").encode(), "text/html; charset=utf-8")
        except (OSError, LoopError) as e:  # the detector is down: the retrain is recorded all the same
            evidence["drift_report_error"] = f"{type(e).__name__}: {e}"
    return registry.audit(model, "retrain", why=f"{d.trigger}: {d.reason}", evidence=evidence, attachments=attachments)


@dataclass
class Retrain:
    trigger: str
    reason: str
    version: str | None = None
    outcome: str = "running"  # running | candidate | unchanged | gate_failed | failed
    detail: str = ""
    log: Path | None = None
    seconds: float = 0.0
    started_at: float = 0.0
    finished_at: float | None = None
    shadow: ShadowDecision | None = None
    rollout: str | None = None  # promote | rollback


@dataclass
class Loop:
    registry: Registry
    registry_uri: str
    model: str
    drift_url: str
    capture_url: str
    state_dir: Path
    policy: TriggerPolicy
    shadow_policy: ShadowPolicy
    train_params: dict = field(default_factory=dict)  # training_pipeline parameters of a retrain (label, task, ...)
    traffic_days: float = 1.0
    log: Callable[[str], None] = print
    retrains: list[Retrain] = field(default_factory=list)

    def __post_init__(self):
        self.state_dir = Path(self.state_dir)
        self.triggers = TriggerController(self.state_dir / TRIGGER_STATE, self.policy, self._launch, self._record)
        previous = self.state_dir / LOOP_STATE
        saved = json.loads(previous.read_text()) if previous.exists() else {}
        self.last_retrain: dict | None = saved.get("last_retrain")
        # the capture's labelled-row count when the last retrain started: ``new_rows`` counts from there
        self.labelled_at_retrain = int(saved.get("labelled_at_retrain") or 0)
        self._labelled_seen: int | None = None  # the count of the observation being decided on
        self._record_key: str | None = None  # the audit record of the retrain being started
        if self.triggers.restarted:
            self.log("loop: restarted while a retrain was running; that run's outcome is unknown and was not repeated")
            if self.last_retrain and self.last_retrain.get("outcome") == "running":
                self.last_retrain = {
                    **self.last_retrain,
                    "outcome": "lost",
                    "detail": "the loop stopped during the run",
                }
        self._save()

    def _save(self) -> None:
        """``loop.json``: which registry and model this loop serves, its process, and the last retrain's outcome
        (the trigger state is the controller's own file beside it)."""
        body = {
            "registry_uri": self.registry_uri,
            "model": self.model,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "saved_at": time.time(),
            "last_retrain": self.last_retrain,
            "labelled_at_retrain": self.labelled_at_retrain,
        }
        write_text_atomic(self.state_dir / LOOP_STATE, json.dumps(body, default=str))

    def _retrain_done(self, run: Retrain) -> None:
        fields = ("trigger", "reason", "version", "outcome", "detail", "seconds", "started_at", "finished_at")
        self.last_retrain = {**{k: getattr(run, k) for k in fields}, "log": str(run.log) if run.log else None}
        self._save()

    # observation ------------------------------------------------------------------------------------
    def observe(self, manual: str | None = None) -> Decision:
        drift = get_json(f"{self.drift_url}/status")
        cap = get_json(f"{self.capture_url}/status")
        production = self.registry.resolve(self.model, "production")
        online = cap["online"].get(production, {})
        labelled = int(cap["counts"].get("labelled_rows", 0))
        self._labelled_seen = labelled
        obs = Observation(
            now=time.time(),
            drifted_windows=int(drift.get("streak", 0)),
            online={k: v for k, v in online.items() if isinstance(v, (int, float)) and k != "labelled"},
            labelled=int(online.get("labelled", 0)),
            new_rows=new_rows(labelled, self.labelled_at_retrain),
            fingerprint=self.data_fingerprint(),
            manual=manual,
        )
        return self.triggers.observe(obs)

    def data_fingerprint(self) -> str:
        """Of the labelled traffic a retrain now would train on: the label parts of the window (names and sizes,
        one listing; ``CaptureStore.fingerprint``)."""
        since = capture.utcnow() - timedelta(days=self.traffic_days)
        return capture.CaptureStore(self.registry_uri, self.model).fingerprint(since)

    def _record(self, d: Decision) -> None:
        self._record_key = record_retrain(self.registry, self.model, d, self.drift_url)

    # retrain ----------------------------------------------------------------------------------------
    def _launch(self, d: Decision) -> None:
        from pipelines.local import StepFailed, identical_to, run_local

        run = Retrain(d.trigger, d.reason, started_at=time.time())
        self.retrains.append(run)
        if self._labelled_seen is not None:  # new_rows counts from here, whatever this run's outcome
            self.labelled_at_retrain, self._labelled_seen = self._labelled_seen, None
        evidence = {**d.evidence, **({"audit_record": self._record_key} if self._record_key else {})}
        self._record_key = None
        # numbered by the persisted count, so a restarted loop does not overwrite the log of an earlier retrain
        run.log = self.state_dir / f"retrain-{self.triggers.state.retrains}.log"
        self._retrain_done(run)  # outcome "running" until it ends
        start = time.perf_counter()
        with open(run.log, "w") as out:
            try:
                get_json(f"{self.capture_url}/flush", {})  # the captured rows reach the store before the run reads them
                # a fixed snapshot: what was captured and labelled by now, so the shadow can replay later requests only
                until = capture.utcnow()
                source = str(capture.TrafficSource(self.registry_uri, self.model, self.traffic_days, until))
                evidence["data_until"] = until.isoformat()
                params = {
                    "label": "is_fraud",
                    **self.train_params,
                    "source": source,
                    "model_name": self.model,
                    "auto_promote": False,
                    "trigger": d.trigger,
                    "trigger_evidence": evidence_param(evidence),  # into the lineage of the version it makes
                }
                result = run_local(
                    self.registry_uri,
                    self.state_dir / "runs",
                    progress=lambda line: print(line, file=out, flush=True),
                    **params,
                )
                if not result.decision.get("passed"):
                    run.outcome, run.detail = (
                        "gate_failed",
                        "; ".join(r for r in result.decision.get("reasons", []) if "FAIL" in r),
                    )
                elif result.unchanged:
                    run.outcome, run.version = "unchanged", result.version
                    run.detail = identical_to(result.version, result.aliases)
                elif result.version is None:
                    run.outcome, run.detail = "failed", "the gate passed but the register step left no version"
                else:
                    run.outcome, run.version = "candidate", result.version
            except StepFailed as e:
                run.outcome, run.detail = "failed", str(e)
            except Exception as e:  # a retrain never takes the loop down; the reason is recorded
                run.outcome, run.detail = "failed", f"{type(e).__name__}: {e}"
        run.seconds, run.finished_at = round(time.perf_counter() - start, 1), time.time()
        self._retrain_done(run)
        self.registry.audit(
            self.model,
            f"retrain_{run.outcome}",
            version=run.version,
            why=run.detail or d.reason,
            evidence={
                "trigger": d.trigger,
                "log": str(run.log),
                "seconds": run.seconds,
                "fingerprint": d.evidence.get("fingerprint"),
            },
        )
        self.triggers.done()

    # shadow -----------------------------------------------------------------------------------------
    def shadow_rows(self, version: str, last: int = 600) -> tuple:
        """What the shadow of ``version`` replays (``capture.shadow_sample``): the newest ``last`` requests production
        answered in the traffic window, and their labels. For a version the loop trained on captured traffic only
        requests received after that data ends: the rows it was trained on would favour it."""
        get_json(f"{self.capture_url}/flush", {})
        production = self.registry.resolve(self.model, "production")
        since = capture.utcnow() - timedelta(days=self.traffic_days)
        trained_until = data_until(self.registry, self.model, version)
        if trained_until is not None:
            since = max(since, trained_until)
        return capture.shadow_sample(self.registry_uri, self.model, production, since, last)

    def shadow(self, candidate_url: str, version: str, last: int = 600) -> ShadowDecision:
        """Replay the latest captured production requests against the candidate (served at ``candidate_url``)."""
        from inference.shadow import shadow

        traffic, truth = self.shadow_rows(version, last)
        features = [c for c in traffic.columns if c not in capture.RESERVED]
        rows = traffic[features].to_dict(orient="records")
        decision, _ = shadow(
            rows,
            traffic["prediction"].to_numpy(),
            traffic["score"].to_numpy(float),
            candidate_url,
            self.model,
            self.shadow_policy,
            truth=truth,
        )
        record(self.registry, self.model, version, decision)
        return decision

    def shadow_candidate(
        self, version: str, log_dir: Path, wait_s: float = 0.0, poll_s: float = 5.0, stopping: Callable = lambda: False
    ) -> ShadowDecision:
        """The shadow phase of ``version``: wait up to ``wait_s`` for ``shadow_policy.min_requests`` production
        requests to replay (received after its training data), serve it with the real predictor on this machine,
        replay and decide. A failed shadow clears the candidate alias (an audit record ``rollback`` says why);
        a passed one leaves ``version`` the candidate, ready for a canary."""
        from inference.devserve import start_predictor
        from mlcycle.process import free_port
        from mlcycle.shadow import stop

        deadline = time.monotonic() + wait_s  # no wait: the shadow reads the rows once, below
        while (
            time.monotonic() < deadline
            and not stopping()
            and len(self.shadow_rows(version)[0]) < self.shadow_policy.min_requests
        ):
            time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
        candidate = start_predictor(
            f"{self.registry_uri}#{self.model}@{version}",
            self.model,
            free_port(),
            free_port(),
            Path(log_dir) / f"shadow-{version}.log",
        )
        try:
            decision = self.shadow(candidate.url, version)
        finally:
            candidate.stop()
        if not decision.passed:
            stop(self.registry, self.model, version, decision)
            self.registry.audit(
                self.model,
                "rollback",
                version=version,
                why="shadow gate failed",
                evidence={"reasons": decision.reasons},
            )
        if self.last_retrain and self.last_retrain.get("version") == version:
            self.last_retrain = {**self.last_retrain, "shadow": "passed" if decision.passed else "failed"}
            self._save()
        return decision

    def run(
        self,
        interval_s: float = 10.0,
        once: bool = False,
        manual: str | None = None,
        shadow_wait_s: float = 900.0,
        stopping: Callable[[], bool] = lambda: False,
    ) -> int:
        """``mlcycle loop run``: observe every ``interval_s``; a retrain the triggers start runs here, and the
        candidate it makes is shadowed (``shadow_candidate``). A passed shadow leaves it the ``candidate``, for a
        canary (``mlcycle rollout`` on a cluster) or ``mlcycle models promote``; the loop never promotes. Each
        decision is logged once. Returns after one observation with ``once``, or when ``stopping()`` is true."""
        said: set = set()
        while True:
            try:
                self._step(manual, said, shadow_wait_s, stopping)
            except (OSError, LoopError) as e:  # a server down for a while: said, and asked again next time
                self.log(f"loop: cannot observe ({type(e).__name__}: {e}); trying again in {interval_s:g} s")
                if once:
                    return 1
            manual = None
            if once or stopping():
                return 0
            deadline = time.monotonic() + interval_s
            while time.monotonic() < deadline and not stopping():
                time.sleep(min(0.5, interval_s))

    def _step(self, manual: str | None, said: set, shadow_wait_s: float, stopping: Callable[[], bool]) -> None:
        """One observation of ``run``: the decision (each kind once until the next retrain), and what it starts."""
        d = self.observe(manual)
        if first_time(d, said):
            self.log(f"loop: {d.trigger}: {d.reason}")
        if not (d.start and self.retrains):
            return
        said.clear()
        run = self.retrains[-1]
        self.log(f"loop: retrain ({run.trigger}): {run.outcome} {run.version or run.detail} (log {run.log})")
        if run.outcome != "candidate" or not run.version:
            return
        self.log(f"loop: shadow of {run.version} (waiting up to {shadow_wait_s:g} s for requests to replay)")
        run.shadow = self.shadow_candidate(run.version, self.state_dir / "logs", shadow_wait_s, stopping=stopping)
        for line in run.shadow.reasons:
            self.log(f"loop:   {line}")
        self.log(
            f"loop: {run.version} passed the shadow: the candidate, ready for a canary"
            if run.shadow.passed
            else f"loop: {run.version} stopped at the shadow; production unchanged"
        )


def first_time(d: Decision, said: set) -> bool:
    """Whether a decision with a trigger is of a kind not said yet (its trigger, waiting or not, started or not):
    what a log shows once, with its evidence, instead of at every observation. Records it in ``said``."""
    key = (d.trigger, "waiting" in d.reason, d.start)
    if not d.trigger or key in said:
        return False
    said.add(key)
    return True


def data_until(registry: Registry, model: str, version: str) -> datetime | None:
    """When the captured traffic that ``version`` was trained on ends (``data_until`` in its lineage's trigger
    evidence, set by the loop's retrains); None for a version trained on anything else."""
    try:
        lineage = registry.metadata(model, version).lineage
    except MlcycleError:  # no such version
        return None
    value = (lineage.trigger_evidence if lineage else {}).get("data_until")
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def new_rows(labelled: int, at_last_retrain: int) -> int:
    """Labelled rows since the last retrain; never negative (the capture's count falls when labels age out of its
    window or it restarts with less: then every row it counts now is taken as new)."""
    return labelled - at_last_retrain if labelled >= at_last_retrain else labelled


def _local_path(uri: str) -> Path | None:
    """The directory of a local registry URI (a path or file://), resolved; None for s3://."""
    local = local_registry_path(uri)
    return None if local is None else local.resolve()


def _same_registry(a: str, b: str) -> bool:
    """One registry, however written: a path, a relative path or file:// (s3:// URIs compared as written)."""
    local_a, local_b = _local_path(a), _local_path(b)
    if local_a is None or local_b is None:
        return a.rstrip("/") == b.rstrip("/")
    return local_a == local_b


def _alive(pid: int | None, host: str | None) -> bool | None:
    """Whether the loop's process still runs (None: it ran on another host, unknown from here)."""
    if not pid or host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def loop_status(
    state_dir: Path, registry_uri: str | None = None, model: str | None = None, now: float | None = None
) -> dict:
    """What the loop persisted in ``state_dir`` (its ``loop.json`` and the trigger controller's ``triggers.json``),
    with the model's aliases from the registry. NoLoop when no loop has run there against ``registry_uri#model``
    (either defaults to what the loop recorded)."""
    from mlcycle.registry import open_registry

    state_dir = Path(state_dir)
    loop_file, trigger_file = state_dir / LOOP_STATE, state_dir / TRIGGER_STATE
    loop = json.loads(loop_file.read_text()) if loop_file.exists() else None
    known = loop or {}
    registry_named, model_named = registry_uri or known.get("registry_uri"), model or known.get("model")
    where = f"{registry_named or 'any registry'}#{model_named or 'any model'}"
    if loop is None:
        raise NoLoop(f"no loop has run against {where}: no {LOOP_STATE} in {state_dir} (--state-dir names another)")
    if (registry_uri and not _same_registry(registry_uri, loop["registry_uri"])) or (model and model != loop["model"]):
        raise NoLoop(
            f"no loop has run against {where} in {state_dir}: the loop there ran against "
            f"{loop['registry_uri']}#{loop['model']}"
        )
    now = time.time() if now is None else now
    read = read_state(trigger_file)
    report: dict = {
        "registry": loop["registry_uri"],
        "model": loop["model"],
        "state_dir": str(state_dir),
        "loop_pid": loop.get("pid"),
        "loop_running": _alive(loop.get("pid"), loop.get("host")),
        "saved_at": loop.get("saved_at"),
    }
    if read is None:
        report.update(last_trigger=None, cooldown_left_s=0.0, retrain_in_progress=None, retrains=0, last_decision=None)
    else:
        state, policy, last_decision = read
        started = state.last_started if state.retrains else None
        report.update(
            last_trigger=(
                {
                    "kind": state.last_trigger,
                    "reason": state.last_reason,
                    "evidence": state.last_evidence,
                    "at": started,
                }
                if state.retrains
                else None
            ),
            cooldown_s=policy.cooldown_s if policy else None,
            cooldown_left_s=round(cooldown_left(state, policy, now), 1) if policy else None,
            retrain_in_progress=state.running,
            retrains=state.retrains,
            last_decision=last_decision or None,
        )
    last = loop.get("last_retrain")
    if last and last.get("outcome") == "running" and report["loop_running"] is False:
        last = {
            **last,
            "outcome": "lost",
            "detail": f"the loop (pid {loop.get('pid')}) is gone; the run's outcome is unknown",
        }
        report["retrain_in_progress"] = None
    report["last_retrain"] = last
    report["log"] = last.get("log") if last else None
    local = _local_path(loop["registry_uri"])
    gone = local is not None and not local.is_dir()  # opening a local registry would create it: not for a reader
    report["aliases"] = (
        {"production": None, "candidate": None}
        if gone
        else _aliases(open_registry(loop["registry_uri"]), loop["model"])
    )
    return report


def _aliases(registry: Registry, model: str) -> dict:
    try:
        aliases, _ = registry.aliases(model)
    except MlcycleError:
        aliases = {}
    out: dict = {"production": None, "candidate": None}
    for alias in sorted(aliases):
        try:
            semver = registry.metadata(model, aliases[alias]).semver
        except MlcycleError:
            semver = None
        out[alias] = {"version": aliases[alias], "semver": semver}
    return out
