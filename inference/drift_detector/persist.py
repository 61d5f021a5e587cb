"""The drift detector's state file (``<state_dir>/drift-state.json``): one pydantic model, one writer, one reader.

Written atomically after each tested window (never per event), at each local retrain's end and at a clean stop;
read once, on start. It holds the streak, counters, the recent windows' reports, the last window's bins, the
trigger history and the trigger state: never raw rows, so an unfinished window is lost at a restart (how many rows
is known only after a clean stop).
"""

import json
import math
import os
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, ValidationError

from mlcycle.errors import ConfigError
from mlcycle.fsutil import write_text_atomic
from mlcycle.triggers import TriggerState, state_from_dict

STATE_FILE = "drift-state.json"
# the service's counters carried across a restart (``Metrics`` attributes)
PERSISTED_COUNTERS = (
    "events",
    "processed",
    "dropped",
    "rejected",
    "rows_rejected",
    "rows",
    "windows",
    "retrains",
    "retrain_failures",
    "held_back",
    "discarded",
)
# /status counts read back from the persisted counters (format 1 also stored them as ``counts``)
COUNTED = {
    "received": "events",
    "processed": "processed",
    "dropped": "dropped",
    "rejected": "rejected",
    "windows": "windows",
}


class StateFileError(ConfigError):
    """The state file exists but cannot be read as one."""


class DriftState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal[1, 2] = 2  # 2: the counts once, in ``counters``; 1 (read only): also as counts/rejected_by_reason
    model: str
    version: str
    saved_at: float
    started_at: float
    restarts: int = 0
    clean_shutdown: bool = False
    unsaved_rows: int | None = None  # the unfinished window's rows: known at a clean stop only
    unsaved_events: int | None = None
    streak: int = 0
    counters: dict[str, list[tuple[dict[str, str], float]]]  # name -> [labels, value]
    counts: dict[str, int] | None = None  # format 1: the same numbers as ``counters``; not written, not used
    rejected_by_reason: dict[str, int] | None = None  # format 1, likewise
    history: list[dict[str, Any]]
    last_window: dict[str, Any] | None = None
    hook_results: list[dict[str, Any]]
    triggers: dict[str, Any]  # ``TriggerState`` as a dict, ``last_started`` None for never
    running_run: dict[str, Any] | None = None  # the hook's run in progress (pid, log, ...)

    def trigger_state(self) -> TriggerState:
        raw = dict(self.triggers)
        if raw.get("last_started") is None:
            raw["last_started"] = -math.inf
        return state_from_dict(raw)

    def count(self, name: str) -> int:
        """A counter's total over its labels (``counters[name]``)."""
        return int(sum(value for _, value in self.counters.get(name, [])))

    def by_label(self, name: str, label: str) -> dict[str, int]:
        """A counter's value by one label, e.g. ``by_label("rejected", "reason")``."""
        return {labels[label]: int(value) for labels, value in self.counters.get(name, []) if label in labels}


def trigger_dict(state: TriggerState) -> dict:
    return {**asdict(state), "last_started": None if math.isinf(state.last_started) else state.last_started}


def dumps(state: DriftState) -> str:
    return json.dumps(state.model_dump(exclude={"counts", "rejected_by_reason"}), default=_plain)


def write(path: Path, text: str) -> None:
    """Write a ``dumps`` text atomically (a reader sees the previous file or this one, whole)."""
    write_text_atomic(path, text)


def read(path: Path) -> DriftState | None:
    """The state at ``path``; None when there is none; ``StateFileError`` naming what is wrong otherwise."""
    if not path.exists():
        return None
    try:
        state = DriftState.model_validate_json(path.read_text())
        state.trigger_state()
    except (OSError, ValueError, TypeError, ValidationError) as e:
        raise StateFileError(f"drift state file {path} unreadable: {e}") from e
    return state


def counter_samples(counter: Counter) -> list[tuple[dict[str, str], float]]:
    """A counter's ``(labels, value)`` pairs (its ``_total`` samples)."""
    return [
        (dict(s.labels), s.value) for metric in counter.collect() for s in metric.samples if s.name.endswith("_total")
    ]


def restore_counters(metrics, counters: dict[str, list[tuple[dict[str, str], float]]]) -> None:
    for name, samples in counters.items():
        if name in PERSISTED_COUNTERS:
            counter = getattr(metrics, name)
            for labels, value in samples:
                (counter.labels(**labels) if labels else counter).inc(value)


def iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def alive(pid: int, argv: list[str] | None) -> bool:
    """Is ``pid`` a live process (not a zombie), running ``argv`` when given (a reused pid is not)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    try:
        if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
        if argv is not None and (proc / "cmdline").read_bytes().split(b"\0")[:-1] != [a.encode() for a in argv]:
            return False
    except (OSError, IndexError):
        pass  # no /proc: the signal check alone
    return True


def _plain(value):
    """JSON for NumPy scalars in window reports."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
