"""The rollout loop: observe → decide → apply → audit, every ``policy.interval_s``.

Adapters (KServe on Kubernetes, or the local loop) implement ``observe_canary()`` →
(canary revision, ready) and ``apply(action)``; the metrics provider supplies the evidence. Each
decision is printed; the adapter records promotions and rollbacks (with their evidence) in the
registry's audit log.
"""

import time
from collections.abc import Callable
from typing import Protocol

from mlcycle.rollout.metrics import MetricsUnavailable
from mlcycle.rollout.policy import Action, Observation, Policy, State, decide


class Adapter(Protocol):
    def observe_canary(self) -> tuple[str | None, bool]: ...
    def apply(self, action: Action) -> None: ...


class Provider(Protocol):
    def observe(self, revision: str) -> tuple[int, dict[str, float]]: ...


def step(state: State, adapter: Adapter, provider: Provider, policy: Policy, now: float) -> Action:
    canary, ready = adapter.observe_canary()
    requests, error = 0, ""
    metrics: dict[str, float] | None = {}
    if canary is not None and ready:
        try:
            requests, metrics = provider.observe(canary)
        except MetricsUnavailable as e:
            metrics, error = None, str(e)
    action = decide(state, Observation(now, canary, ready, requests, metrics, error), policy)
    adapter.apply(action)
    return action


def run(
    adapter: Adapter,
    provider: Provider,
    policy: Policy,
    stable: str,
    on_action: Callable[[Action], None] | None = None,
    max_steps: int = 1000,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Action:
    """Run until the canary is promoted or rolled back (or ``max_steps``); returns the final action."""
    state = State(stable=stable)
    if max_steps < 1:
        raise ValueError("max_steps must be at least 1")
    for _ in range(max_steps):
        action = step(state, adapter, provider, policy, clock())
        state = action.state
        if on_action:
            on_action(action)
        if action.kind in ("promote", "rollback"):
            return action
        sleep(policy.interval_s)
    return action


def describe(action: Action) -> str:
    ev = action.evidence
    metrics = ev.get("metrics")
    shown = "none" if metrics is None else ", ".join(f"{k}={v:.4g}" for k, v in sorted((metrics or {}).items()))
    return f"{action.kind.upper():10s} weight={action.weight:3d}  {action.reason}  [requests={ev.get('requests', 0)} metrics: {shown}]"
