"""Retrain triggers: ``decide(state, observation, policy) -> Decision``, pure and table-tested, and a small
controller that persists its state, so a restart neither forgets a cooldown nor retrains twice.

Triggers (``Decision.trigger``): ``accuracy`` — online accuracy (or the false-positive rate) past its bound on
at least ``min_samples`` labelled requests; ``drift`` — ``drift_windows`` consecutive drifted windows;
``new_data`` — at least ``new_rows`` labelled rows since the last retrain; ``schedule`` — ``schedule_s``
since the last retrain; ``manual`` — asked for. Never two retrains of one model at once, none within
``cooldown_s`` of the last start (except ``manual``), never twice on the same data fingerprint, and not
before ``min_rows`` labelled rows are there to train on.
"""

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from mlcycle.errors import ConfigError
from mlcycle.fsutil import write_text_atomic

TRIGGERS = ("accuracy", "drift", "new_data", "schedule", "manual")
# A trigger's evidence travels to the version's lineage as one JSON pipeline parameter (stored in plain text with
# every run): kept small. Larger evidence is cut to its scalar entries, and says so.
MAX_EVIDENCE_BYTES = 4096


def evidence_param(evidence: dict) -> str:
    """``evidence`` as the training pipeline's ``trigger_evidence`` parameter: compact JSON, at most
    MAX_EVIDENCE_BYTES; past that only its numbers, booleans and short strings stay, with ``truncated`` true."""
    text = json.dumps(evidence, sort_keys=True, separators=(",", ":"), default=str)
    if len(text.encode()) <= MAX_EVIDENCE_BYTES:
        return text
    small = {
        k: v
        for k, v in evidence.items()
        if isinstance(v, (bool, int, float)) or (isinstance(v, str) and len(v) <= 200) or v is None
    }
    text = json.dumps({**small, "truncated": True}, sort_keys=True, separators=(",", ":"), default=str)
    if len(text.encode()) > MAX_EVIDENCE_BYTES:  # 40 names of at most 60 characters: well under the bound
        names = sorted(str(k).encode("ascii", "replace").decode()[:60] for k in evidence)[:40]
        text = json.dumps({"truncated": True, "keys": names}, separators=(",", ":"))
    return text


def parse_evidence(text: str) -> dict:
    """The ``trigger_evidence`` parameter back as a dict ("" = none); ConfigError naming what is wrong."""
    if not text or not text.strip():
        return {}
    if len(text.encode()) > MAX_EVIDENCE_BYTES:
        raise ConfigError(f"trigger_evidence is {len(text.encode())} bytes; at most {MAX_EVIDENCE_BYTES}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"trigger_evidence is not JSON: {e.msg} at position {e.pos}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"trigger_evidence must be a JSON object, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class TriggerPolicy:
    drift_windows: int = 3
    min_accuracy: float | None = None
    max_false_positive_rate: float | None = None
    min_samples: int = 200
    new_rows: int | None = None
    schedule_s: float | None = None
    cooldown_s: float = 3600.0
    min_rows: int = 0  # labelled rows a retrain needs (manual ones excepted): fewer, and the trigger waits

    def __post_init__(self):
        if self.drift_windows < 1 or self.min_samples < 1 or self.cooldown_s < 0:
            raise ConfigError(f"invalid trigger policy {self}")
        if self.schedule_s is not None and self.schedule_s <= 0:
            raise ConfigError(f"schedule_s must be positive, got {self.schedule_s}")


@dataclass(frozen=True)
class Observation:
    now: float
    drifted_windows: int = 0  # consecutive drifted windows, most recent last
    online: dict[str, float] = field(default_factory=dict)  # accuracy, false_positive_rate, ... of production
    labelled: int = 0  # labelled requests behind ``online``
    new_rows: int = 0  # labelled rows since the last retrain
    fingerprint: str | None = None  # of the data a retrain would train on now
    manual: str | None = None  # a person asked, with this reason


@dataclass(frozen=True)
class TriggerState:
    running: str | None = None  # the trigger of the retrain in progress
    last_started: float = -math.inf
    fingerprints: tuple[str, ...] = ()  # data already retrained on
    retrains: int = 0
    # the decision behind the last start: what ``mlcycle loop status`` shows
    last_trigger: str | None = None
    last_reason: str = ""
    last_evidence: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    start: bool
    trigger: str | None
    reason: str
    evidence: dict = field(default_factory=dict)


def _wanted(obs: Observation, state: TriggerState, policy: TriggerPolicy) -> tuple[str, str, dict] | None:
    if obs.manual:
        return "manual", f"requested: {obs.manual}", {}
    if obs.labelled >= policy.min_samples:
        acc, fpr = obs.online.get("accuracy"), obs.online.get("false_positive_rate")
        if policy.min_accuracy is not None and acc is not None and acc < policy.min_accuracy:
            return (
                "accuracy",
                f"online accuracy {acc:.4f} < {policy.min_accuracy} on {obs.labelled} labelled requests",
                {"online": dict(obs.online), "labelled": obs.labelled},
            )
        if policy.max_false_positive_rate is not None and fpr is not None and fpr > policy.max_false_positive_rate:
            return (
                "accuracy",
                (
                    f"online false-positive rate {fpr:.4f} > {policy.max_false_positive_rate} on "
                    f"{obs.labelled} labelled requests"
                ),
                {"online": dict(obs.online), "labelled": obs.labelled},
            )
    if obs.drifted_windows >= policy.drift_windows:
        return (
            "drift",
            f"{obs.drifted_windows} consecutive drifted windows (>= {policy.drift_windows})",
            {"drifted_windows": obs.drifted_windows},
        )
    if policy.new_rows is not None and obs.new_rows >= policy.new_rows:
        return "new_data", f"{obs.new_rows} new labelled rows (>= {policy.new_rows})", {"new_rows": obs.new_rows}
    if policy.schedule_s is not None and obs.now - state.last_started >= policy.schedule_s:
        return "schedule", f"{policy.schedule_s:g} s since the last retrain", {}
    return None


def decide(state: TriggerState, obs: Observation, policy: TriggerPolicy) -> Decision:
    wanted = _wanted(obs, state, policy)
    if wanted is None:
        return Decision(False, None, "no trigger")
    trigger, reason, evidence = wanted
    evidence = {**evidence, "fingerprint": obs.fingerprint}
    if trigger != "manual" and obs.new_rows < policy.min_rows:
        return Decision(
            False, trigger, f"{reason}; waiting: {obs.new_rows} labelled rows < {policy.min_rows}", evidence
        )
    if state.running:
        return Decision(False, trigger, f"{reason}; not started: a retrain ({state.running}) is in progress", evidence)
    if trigger != "manual" and obs.now - state.last_started < policy.cooldown_s:
        left = policy.cooldown_s - (obs.now - state.last_started)
        return Decision(False, trigger, f"{reason}; not started: cooldown ({left:.0f} s left)", evidence)
    if obs.fingerprint and obs.fingerprint in state.fingerprints:
        return Decision(
            False, trigger, f"{reason}; not started: already retrained on data {obs.fingerprint[:12]}", evidence
        )
    return Decision(True, trigger, reason, evidence)


def started(state: TriggerState, decision: Decision, now: float) -> TriggerState:
    prints = state.fingerprints + ((decision.evidence["fingerprint"],) if decision.evidence.get("fingerprint") else ())
    return replace(
        state,
        running=decision.trigger,
        last_started=now,
        fingerprints=prints[-100:],
        retrains=state.retrains + 1,
        last_trigger=decision.trigger,
        last_reason=decision.reason,
        last_evidence=dict(decision.evidence),
    )


def finished(state: TriggerState) -> TriggerState:
    return replace(state, running=None)


def cooldown_left(state: TriggerState, policy: TriggerPolicy, now: float) -> float:
    """Seconds until a trigger other than ``manual`` may start a retrain again (0 when it may now)."""
    return max(0.0, policy.cooldown_s - (now - state.last_started))


def read_state(path: Path) -> tuple[TriggerState, TriggerPolicy | None, dict] | None:
    """A controller's file as it is, for a reader such as ``mlcycle loop status`` (a retrain in flight stays
    ``running``; only the controller itself, on start, clears it): (state, policy, the last decision seen).
    None when no controller has written there."""
    path = Path(path)
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    policy = TriggerPolicy(**raw["policy"]) if raw.get("policy") else None
    return state_from_dict(raw), policy, raw.get("last_decision") or {}


def state_from_dict(raw: dict) -> TriggerState:
    """A ``TriggerState`` from its ``asdict`` form (other keys, e.g. a file's policy, are ignored)."""
    known = {f.name for f in fields(TriggerState)}  # the file also holds the policy and the last decision
    state = {k: v for k, v in raw.items() if k in known}
    return TriggerState(**{**state, "fingerprints": tuple(state.get("fingerprints", ()))})


class TriggerController:
    """``decide`` with its state in a JSON file (written atomically); ``launch(decision)`` starts the retrain and
    must call ``done()`` when it ends. ``record(decision)`` (e.g. the registry's audit log) sees every start."""

    def __init__(
        self,
        state_path: Path,
        policy: TriggerPolicy,
        launch: Callable[[Decision], None],
        record: Callable[[Decision], None] | None = None,
    ):
        self.path, self.policy, self.launch, self.record = Path(state_path), policy, launch, record
        self.restarted = False
        self.last_decision: dict = {}
        self.state = self._load()
        if self.restarted:  # written now, so a reader no longer sees the lost run as in progress
            self._save()

    def _load(self) -> TriggerState:
        saved = read_state(self.path)
        if saved is None:
            return TriggerState()
        state, _, self.last_decision = saved
        if state.running:  # the process that ran it is gone: say so, and let the next trigger start
            self.restarted = True
            state = finished(state)
        return state

    def _save(self) -> None:
        body = {**asdict(self.state), "policy": asdict(self.policy), "last_decision": self.last_decision}
        write_text_atomic(self.path, json.dumps(body))

    def observe(self, obs: Observation) -> Decision:
        decision = decide(self.state, obs, self.policy)
        seen = {"trigger": decision.trigger, "reason": decision.reason, "start": decision.start, "at": obs.now}
        if decision.start:
            self.state, self.last_decision = started(self.state, decision, obs.now), seen
            self._save()
            if self.record:
                self.record(decision)
            self.launch(decision)
        elif decision.trigger and (decision.trigger, decision.reason) != (
            self.last_decision.get("trigger"),
            self.last_decision.get("reason"),
        ):  # a trigger that waits or is held back: kept for a reader, written when it changes
            self.last_decision = seen
            self._save()
        return decision

    def done(self) -> None:
        self.state = finished(self.state)
        self._save()
