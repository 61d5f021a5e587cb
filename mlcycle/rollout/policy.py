"""The rollout policy: ``decide(state, observation, policy) -> Action``, pure and table-tested.

Flagger's vocabulary: every ``interval`` the controller observes the canary and calls ``decide``.
A check passes when every metric is within its min/max; each failed check counts, and at
``threshold`` failed checks the canary is rolled back. Passing checks step the canary weight by
``step_weight`` up to ``max_weight``; a passing check at ``max_weight`` (``>=``) promotes.
No decision is made on too little traffic (``min_requests``), on missing metrics (after
``max_metric_errors`` consecutive provider errors the rollout aborts), or while the canary is not
ready (after ``ready_timeout_s`` it is rolled back). A new canary revision restarts the analysis
at weight 0, so no traffic goes to a revision that is neither stable nor the current canary.
"""

from dataclasses import asdict, dataclass, field, replace

PROGRESSING, PROMOTED, ROLLED_BACK, IDLE = "progressing", "promoted", "rolled_back", "idle"


@dataclass(frozen=True)
class MetricCheck:
    name: str
    min: float | None = None
    max: float | None = None

    def verdict(self, value: float | None) -> str | None:
        """None if within bounds, else the reason."""
        if value is None:
            return f"{self.name}: no value"
        if self.min is not None and value < self.min:
            return f"{self.name}={value:.4g} < min {self.min:g}"
        if self.max is not None and value > self.max:
            return f"{self.name}={value:.4g} > max {self.max:g}"
        return None


MAX_ERROR_RATE = 0.01  # the default checks: at most 1 % errors and a p99 of 100 ms
MAX_P99_MS = 100.0
CLUSTER_INTERVAL_S = 60.0  # on a cluster: Prometheus scrapes every 15-30 s, so a 60 s window holds enough points


@dataclass(frozen=True)
class Policy:
    interval_s: float = 30.0
    threshold: int = 3
    step_weight: int = 10
    max_weight: int = 50
    min_requests: int = 100
    max_metric_errors: int = 3
    ready_timeout_s: float = 600.0
    metrics: tuple[MetricCheck, ...] = (
        MetricCheck("error_rate", max=MAX_ERROR_RATE),
        MetricCheck("p99_latency_ms", max=MAX_P99_MS),
    )

    def __post_init__(self):
        if not (
            0 < self.step_weight <= 100 and 0 < self.max_weight <= 100 and self.threshold >= 1 and self.interval_s > 0
        ):
            raise ValueError(f"invalid rollout policy {self}")


@dataclass(frozen=True)
class State:
    stable: str
    canary: str | None = None
    phase: str = IDLE
    weight: int = 0
    failed_checks: int = 0
    metric_errors: int = 0
    started_at: float = 0.0


@dataclass(frozen=True)
class Observation:
    now: float
    canary: str | None
    canary_ready: bool
    requests: int = 0
    metrics: dict[str, float] | None = field(default_factory=dict)  # None: the metrics source failed
    error: str = ""


@dataclass(frozen=True)
class Action:
    kind: str  # wait | set_weight | promote | rollback | restart | idle
    weight: int
    reason: str
    state: State
    evidence: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "weight": self.weight,
            "reason": self.reason,
            "evidence": self.evidence,
            "state": asdict(self.state),
        }


def decide(state: State, obs: Observation, policy: Policy) -> Action:
    if obs.canary is None:
        return Action("idle", 0, "no canary", replace(state, canary=None, phase=IDLE, weight=0))
    if obs.canary != state.canary:
        fresh = State(stable=state.stable, canary=obs.canary, phase=PROGRESSING, weight=0, started_at=obs.now)
        return Action(
            "restart",
            0,
            f"canary revision changed ({state.canary} -> {obs.canary}): analysis restarts at weight 0",
            fresh,
        )
    if state.phase in (PROMOTED, ROLLED_BACK):
        return Action("wait", state.weight, f"rollout of {state.canary} already {state.phase}", state)
    evidence = {
        "requests": obs.requests,
        "metrics": obs.metrics,
        "weight": state.weight,
        "failed_checks": state.failed_checks,
    }
    if not obs.canary_ready:
        if state.weight == 0 and obs.now - state.started_at < policy.ready_timeout_s:
            return Action("wait", 0, "canary not ready yet: no traffic", state, evidence)
        reason = "canary not ready" + (
            f" within {policy.ready_timeout_s:g}s" if state.weight == 0 else " during analysis"
        )
        return _rollback(state, reason, evidence)
    if obs.metrics is None:
        errors = state.metric_errors + 1
        give_up = (
            f"metrics unavailable {errors} times in a row ({obs.error}): aborting, never promoting on missing evidence"
        )
        wait = f"metrics unavailable ({obs.error}); {errors}/{policy.max_metric_errors}"
        return _strike(replace(state, metric_errors=errors), errors, policy.max_metric_errors, give_up, wait, evidence)
    state = replace(state, metric_errors=0)
    if state.weight > 0 and obs.requests < policy.min_requests:
        return Action(
            "wait",
            state.weight,
            f"insufficient sample: {obs.requests} canary requests < {policy.min_requests}",
            state,
            evidence,
        )
    if state.weight == 0:  # ready and nothing to judge yet: start sending traffic
        new = min(policy.step_weight, policy.max_weight)
        return Action("set_weight", new, f"canary ready: weight 0 -> {new}", replace(state, weight=new), evidence)
    failures = [r for check in policy.metrics if (r := check.verdict(obs.metrics.get(check.name))) is not None]
    if failures:
        failed = state.failed_checks + 1
        give_up = f"{failed} failed checks (threshold {policy.threshold}): {'; '.join(failures)}"
        wait = f"failed check {failed}/{policy.threshold}: {'; '.join(failures)}"
        return _strike(replace(state, failed_checks=failed), failed, policy.threshold, give_up, wait, evidence)
    if state.weight >= policy.max_weight:
        return Action(
            "promote",
            100,
            f"all checks passed at weight {state.weight} >= max_weight {policy.max_weight}",
            replace(state, phase=PROMOTED, weight=100),
            evidence,
        )
    new = min(state.weight + policy.step_weight, policy.max_weight)
    return Action(
        "set_weight", new, f"checks passed: weight {state.weight} -> {new}", replace(state, weight=new), evidence
    )


def _rollback(state: State, reason: str, evidence: dict) -> Action:
    return Action("rollback", 0, reason, replace(state, phase=ROLLED_BACK, weight=0), evidence)


def _strike(state: State, count: int, limit: int, give_up: str, wait: str, evidence: dict) -> Action:
    """The ``count``-th strike in a row (already in ``state``): a rollback at ``limit``, else a wait at this weight."""
    if count >= limit:
        return _rollback(state, give_up, evidence)
    return Action("wait", state.weight, wait, state, evidence)


def with_checks(
    policy: "Policy | None" = None,
    max_error_rate: float = MAX_ERROR_RATE,
    max_p99_ms: float = MAX_P99_MS,
    drift: bool = True,
    **overrides,
) -> "Policy":
    """``policy`` (default: ``Policy()``) with the standard checks at these bounds, plus "no drift" when ``drift``."""
    checks = [MetricCheck("error_rate", max=max_error_rate), MetricCheck("p99_latency_ms", max=max_p99_ms)]
    if drift:
        checks.append(MetricCheck("drift", max=0.0))
    return replace(policy or Policy(), metrics=tuple(checks), **overrides)
