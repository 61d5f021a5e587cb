"""Gate: absolute thresholds and champion/challenger. ``decide`` is pure and table-tested; ``gate``
fetches the production model (checksum-verified) and scores it on the same test set."""

import html
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlcycle.errors import ConfigError, MlcycleError, VersionNotFound
from mlcycle.htmlpage import page
from mlcycle.metrics import LOWER_IS_BETTER, better, paired_bootstrap, score_bundle, task_defaults
from mlcycle.models import ModelBundle
from mlcycle.registry import Registry


@dataclass(frozen=True)
class GatePolicy:
    """``thresholds``: metric -> bound (a minimum, or a maximum for lower-is-better metrics).
    ``min_improvement``: required gain of the primary metric over the champion (negative = the
    tolerated regression). Equality passes: promote with >=.
    ``confidence``: 0 = the gain's paired-bootstrap interval is reported only; e.g. 0.95 = the interval's lower
    bound must reach ``min_improvement`` (a challenger must be better beyond the test set's noise)."""

    primary_metric: str
    thresholds: dict[str, float] = field(default_factory=dict)
    min_improvement: float = 0.0
    confidence: float = 0.0


@dataclass
class GateDecision:
    passed: bool
    reasons: list[str]
    challenger: dict[str, float]
    champion: dict[str, float] | None = None
    champion_version: str | None = None
    primary_metric: str = ""
    bootstrap: dict | None = None  # the gain's paired-bootstrap confidence interval (when there is a champion)

    def as_dict(self) -> dict:
        return asdict(self)


def decide(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    policy: GatePolicy,
    champion_version: str | None = None,
    champion_error: str | None = None,
    bootstrap: dict | None = None,
) -> GateDecision:
    reasons, passed = [], True
    for metric, bound in sorted(policy.thresholds.items()):
        value = challenger.get(metric)
        lower = metric in LOWER_IS_BETTER
        if value is None:
            passed = False
            reasons.append(f"FAIL {metric}: not computed for this model, threshold {bound}")
        elif (value <= bound) if lower else (value >= bound):
            reasons.append(f"ok   {metric}={value:.4f} {'<=' if lower else '>='} {bound}")
        else:
            passed = False
            reasons.append(
                f"FAIL {metric}={value:.4f} {'>' if lower else '<'} {'maximum' if lower else 'minimum'} {bound}"
            )
    metric = policy.primary_metric
    if champion_error:
        passed = False
        reasons.append(f"FAIL champion {champion_version} could not be scored on this test set: {champion_error}")
    elif champion is None:
        reasons.append("ok   no production model yet: first version, thresholds only")
    elif metric not in challenger or metric not in champion:
        passed = False
        reasons.append(
            f"FAIL primary metric {metric} missing (challenger {metric in challenger}, champion {metric in champion})"
        )
    else:
        gain = better(metric, challenger[metric], champion[metric])
        verdict = gain >= policy.min_improvement
        passed &= verdict
        reasons.append(
            f"{'ok  ' if verdict else 'FAIL'} {metric}: challenger {challenger[metric]:.4f} vs champion {champion_version} "
            f"{champion[metric]:.4f} (gain {gain:+.4f}, required >= {policy.min_improvement:+.4f})"
        )
        if bootstrap is not None:
            ci = f"{bootstrap['confidence']:.0%} interval of the gain [{bootstrap['low']:+.4f}, {bootstrap['high']:+.4f}]"
            if policy.confidence > 0:
                sure = bootstrap["low"] >= policy.min_improvement
                passed &= sure
                reasons.append(
                    f"{'ok  ' if sure else 'FAIL'} {metric}: {ci}, lower bound required >= "
                    f"{policy.min_improvement:+.4f} ({bootstrap['resamples']} paired resamples)"
                )
            else:
                reasons.append(f"info {metric}: {ci} ({bootstrap['resamples']} paired resamples; not required)")
        elif policy.confidence > 0:
            passed = False
            reasons.append(
                f"FAIL {metric}: a {policy.confidence:.0%} interval of the gain is required but was not computed"
            )
    return GateDecision(passed, reasons, challenger, champion, champion_version, metric, bootstrap)


def resolve_policy(
    task: str,
    primary_metric: str = "",
    thresholds: dict[str, float] | None = None,
    min_improvement: float = 0.0,
    confidence: float = 0.0,
) -> GatePolicy:
    """The gate policy of a run: the user's primary metric and thresholds (checked against the task), else the task's defaults."""
    primary, bounds = task_defaults(task, primary_metric, thresholds)
    if not 0 <= confidence < 1:
        raise ConfigError(f"confidence must be 0 (report only) or between 0 and 1, got {confidence}")
    return GatePolicy(primary, bounds, min_improvement, confidence)


def gate(
    model_dir: Path,
    test: pd.DataFrame,
    label: str,
    challenger: dict[str, float],
    policy: GatePolicy,
    registry: Registry | None,
    model_name: str,
) -> GateDecision:
    champion_version = champion = error = interval = None
    if registry is not None:
        try:
            champion_version = registry.resolve(model_name, "production")
        except VersionNotFound:
            champion_version = None
    if champion_version:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = registry.fetch_version(model_name, champion_version, Path(tmp) / "champion")
                champion_bundle = ModelBundle.from_version(local)
                champion_scores = champion_bundle.score(test)  # once: for its metrics and for the interval
                champion = score_bundle(champion_bundle, test, label, champion_scores)
                interval = _bootstrap(
                    ModelBundle.load(model_dir), champion_bundle, champion_scores, test, label, policy
                )
            except (MlcycleError, KeyError, ValueError) as e:
                error = f"{type(e).__name__}: {e}"
    decision = decide(challenger, champion, policy, champion_version, error, interval)
    if registry is not None:
        registry.audit(
            model_name,
            "gate",
            version=champion_version,
            why="passed" if decision.passed else "failed",
            evidence={"reasons": decision.reasons, "challenger": challenger, "champion": champion},
        )
    return decision


def _bootstrap(
    challenger: ModelBundle,
    champion: ModelBundle,
    champion_scores: np.ndarray,
    test: pd.DataFrame,
    label: str,
    policy: GatePolicy,
) -> dict | None:
    """The paired bootstrap interval of the primary metric's gain, or None when the two cannot be compared row by row."""
    if challenger.task != champion.task or (
        challenger.task == "classification" and challenger.classes != champion.classes
    ):
        return None
    y = test[label].to_numpy()
    return paired_bootstrap(
        policy.primary_metric,
        challenger.task,
        y,
        challenger.score(test),
        champion_scores,
        challenger.classes,
        (challenger.threshold, champion.threshold),
        confidence=policy.confidence or 0.95,
    )


def render_comparison(decision: GateDecision) -> str:
    """Challenger and champion side by side on the same test set (an HTML page for the KFP UI and the run directory)."""
    esc = html.escape
    champion = decision.champion or {}
    names = [k for k in decision.challenger if k != "threshold"] + [
        k for k in champion if k not in decision.challenger and k != "threshold"
    ]
    rows = []
    for name in names:
        a, b = decision.challenger.get(name), champion.get(name)
        gain = better(name, a, b) if a is not None and b is not None else None
        mark = " style='font-weight:bold'" if name == decision.primary_metric else ""
        rows.append(
            f"<tr{mark}><td>{esc(name)}</td><td>{_num(a)}</td><td>{_num(b)}</td><td>{'' if gain is None else f'{gain:+.4f}'}</td></tr>"
        )
    who = f"champion {esc(decision.champion_version)}" if decision.champion_version else "no champion (first version)"
    reasons = "".join(f"<li><code>{esc(r)}</code></li>" for r in decision.reasons)
    if decision.bootstrap:
        b = decision.bootstrap
        reasons += (
            f"<li>gain in {esc(b['metric'])}: {b['gain']:+.4f}, {b['confidence']:.0%} paired-bootstrap interval "
            f"[{b['low']:+.4f}, {b['high']:+.4f}] over {b['resamples']} resamples of the test set</li>"
        )
    return page(
        "mlcycle gate",
        f"<h1>Gate: {'PASSED' if decision.passed else 'FAILED'}</h1><p>challenger vs {who}, both scored on the same test set; "
        f"primary metric <b>{esc(decision.primary_metric)}</b> (gain: positive = challenger better)</p>"
        f"<table><tr><th>metric</th><th>challenger</th><th>champion</th><th>gain</th></tr>{''.join(rows)}</table>"
        f"<h2>Checks</h2><ul>{reasons}</ul>",
    )


def _num(value) -> str:
    return "-" if value is None else f"{value:.4f}"
