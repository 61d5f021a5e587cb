"""The drift detector's retrain hook behind the core's trigger guard (``mlcycle.triggers.decide``).

At most one start per ``policy.cooldown_s``; never while the hook's previous run is still going when the hook can
tell (``CommandHook``, ``KfpHook``: ``busy()``, ``runs``, ``on_done``); for any other hook a run started within the
cooldown counts as running. A local run is known by its pid, a KFP run by its start time (its run id comes back
from the submission later); after a restart a local run is in progress while its process lives, a KFP run whose
id was saved is followed again (``hook.resume``). A hook that raises started nothing and sets no cooldown. A
held-back trigger is counted (``mlcycle_drift_retrain_held_back_total{reason}``) and kept in ``results`` (one entry
per held-back stretch). Called from the event loop (``trigger``) and from the hook's threads (``done``, ``failed``):
one lock.
"""

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from inference.drift_detector import persist
from mlcycle.triggers import Observation, TriggerPolicy, TriggerState, cooldown_left, decide, finished, started

log = logging.getLogger("mlcycle.drift")
HELD_REASONS = ("cooldown", "running")
RUN_KEYS = ("pid", "log", "run_id", "started_at")  # what a started entry in ``results`` names of its run
END_KEYS = ("exit_code", "run_id", "state", "finished_at")  # what ``done`` adds to it


def _same_run(a: dict, b: dict) -> bool:
    """A local run is known by its pid, a KFP run by its start time (its id is not known when it starts)."""
    key = "pid" if "pid" in a else "started_at"
    return key in a and key in b and a[key] == b[key]


class RetrainGuard:
    def __init__(self, hook, policy: TriggerPolicy, metrics):
        self.hook, self.policy, self.metrics = hook, policy, metrics
        self.state = TriggerState()
        self.running_run: dict | None = None  # the hook's run in progress (pid, log), when the hook tells
        self.results: deque = deque(maxlen=20)  # starts, hook failures, held-back stretches: /status, /report
        self.lock = threading.RLock()
        self.on_change: Callable[[], None] | None = None  # e.g. write the state file
        if hasattr(hook, "on_failure"):  # what a hook started may fail after it returned
            hook.on_failure = self.failed
        if hasattr(hook, "on_done"):  # the hook tells when its run ends: in progress until then
            hook.on_done = self.done
        if hasattr(hook, "on_submitted"):  # a KFP run's id came back: saved, so a restart follows that run
            hook.on_submitted = self._changed

    def trigger(self, report: dict, streak: int, consecutive: int) -> None:
        """Sustained drift (``streak`` drifted windows): start the hook if the guard lets it."""
        m, now = self.metrics, time.time()
        threshold = report.get("threshold", 0.0)
        below = {n: p for n, p in report["p_values"].items() if p < threshold}
        why = f"{streak} consecutive drifted windows (>= {consecutive})"
        evidence = {"version": report.get("version"), "threshold": threshold, "p_below": below}
        with self.lock:
            busy = getattr(self.hook, "busy", None)
            if self.state.running is None and busy is not None and busy():
                self.state = replace(self.state, running="drift")
            decision = decide(self.state, Observation(now=now, drifted_windows=streak), self.policy)
            if not decision.start:
                reason = "running" if self.state.running else "cooldown"
                m.held_back.labels(reason).inc()
                last = self.results[-1] if self.results else None
                if last is not None and last.get("held") == reason:  # one entry per held-back stretch
                    last.update(times=last["times"] + 1, last_at=now, result=f"held back: {decision.reason}")
                else:
                    self.results.append(
                        {
                            "at": now,
                            "result": f"held back: {decision.reason}",
                            "held": reason,
                            "times": 1,
                            "last_at": now,
                            "why": why,
                            "evidence": evidence,
                        }
                    )
                log.warning("sustained drift (%d windows), retrain held back: %s", streak, decision.reason)
                return
            m.retrains.inc()
            try:
                result = self.hook(report)
            except Exception as e:  # a failing hook must not stop detection; it started nothing: no cooldown
                result = f"retrain hook failed: {e}"
                m.retrain_failures.inc()
            else:
                self.state = started(self.state, decision, now)
                runs = getattr(self.hook, "runs", None)
                if getattr(self.hook, "on_done", None) is not None and runs and runs[-1]["started_at"] >= now:
                    # in progress until done(); the hook's own record, so a KFP run's id and state show as they come
                    self.running_run = runs[-1]
                else:  # the hook cannot tell when its run ends: the cooldown alone holds the next one back
                    self.state = finished(self.state)
            entry = {"at": now, "result": result, "why": why, "evidence": evidence}
            if self.running_run is not None and self.state.running:
                entry["run"] = {k: self.running_run[k] for k in RUN_KEYS if k in self.running_run}
            self.results.append(entry)
        log.warning("sustained drift (%d windows): %s", streak, result)

    def done(self, run: dict) -> None:
        """The hook's run ended (called from its thread): no longer in progress; its exit code or state is shown."""
        with self.lock:
            for entry in self.results:
                if _same_run(entry.get("run") or {}, run):
                    entry["run"].update({k: run[k] for k in END_KEYS if k in run})
            if self.running_run is not None and _same_run(self.running_run, run):
                self.running_run = None
                self.state = finished(self.state)
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def failed(self, reason: str) -> None:
        """What a hook started failed later (called from any thread): counted and shown."""
        self.metrics.retrain_failures.inc()
        with self.lock:
            self.results.append({"at": time.time(), "result": f"retrain failed: {reason}"})

    def resume(self, state: TriggerState, running_run: dict | None, results: list[dict]) -> dict | None:
        """Take the state saved before a restart; returns what became of the run then in progress (or None)."""
        with self.lock:  # a followed run's done() waits until it is the running one
            return self._resume(state, running_run, results)

    def _resume(self, state: TriggerState, running_run: dict | None, results: list[dict]) -> dict | None:
        self.results.extend(results)
        in_flight = None
        if state.running:  # a local run still goes only if its process does (a session of its own survives us)
            run = running_run or {}
            follow = getattr(self.hook, "resume", None)
            if run.get("pid"):
                live = persist.alive(int(run["pid"]), getattr(self.hook, "argv", None))
            else:  # a KFP run: followed again when its id was saved (the hook finds out whether it is over)
                live = bool(run.get("run_id")) and follow is not None
            in_flight = {**run, "trigger": state.running, "still_running": live}
            if live and run.get("pid"):
                self.running_run = run
                threading.Thread(target=self._watch, args=(int(run["pid"]),), daemon=True).start()
            elif live:
                self.running_run = follow(run)
            else:
                state = finished(state)
        self.state = state
        return in_flight

    def _watch(self, pid: int) -> None:
        """A run started before a restart (not our child): in progress until its process is gone."""
        while persist.alive(pid, None):
            time.sleep(1.0)
        self.done({"pid": pid, "exit_code": "unknown (started before a restart)", "finished_at": time.time()})

    def status(self) -> dict:
        t = self.state
        held = {labels["reason"]: value for labels, value in persist.counter_samples(self.metrics.held_back)}
        return {
            "cooldown_s": self.policy.cooldown_s,
            "cooldown_left_s": round(cooldown_left(t, self.policy, time.time()), 3),
            "running": None if not t.running else dict(self.running_run or {"trigger": t.running}),
            "last_started": None if math.isinf(t.last_started) else t.last_started,
            "retrains_started": t.retrains,
            "held_back": {k: int(v) for k, v in held.items()},
            "runs": [dict(r) for r in getattr(self.hook, "runs", ())],
        }
