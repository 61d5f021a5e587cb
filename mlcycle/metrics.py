"""Metrics for classification and regression, which direction is better, and each task's defaults."""

import difflib
import math

import numpy as np

from mlcycle.errors import ConfigError

# Metrics where lower is better; everything else is higher-is-better.
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "brier"})
# What each task computes (binary-only ones marked): thresholds and the primary metric must come from here.
TASK_METRICS = {
    "classification": ("roc_auc", "pr_auc", "accuracy", "precision", "recall", "f1", "log_loss", "brier"),
    "regression": ("rmse", "mae", "r2"),
}
BINARY_ONLY = frozenset({"pr_auc", "brier"})
DEFAULT_PRIMARY = {"classification": "roc_auc", "regression": "rmse"}
# Gate thresholds when the user gives none: clearly better than a constant prediction.
DEFAULT_THRESHOLDS = {"classification": {"roc_auc": 0.7}, "regression": {"r2": 0.1}}
# scikit-learn scorer names for the search (negated ones for lower-is-better metrics).
SCORERS = {
    "roc_auc": "roc_auc",
    "pr_auc": "average_precision",
    "accuracy": "accuracy",
    "f1": "f1",
    "precision": "precision",
    "recall": "recall",
    "log_loss": "neg_log_loss",
    "brier": "neg_brier_score",
    "rmse": "neg_root_mean_squared_error",
    "mae": "neg_mean_absolute_error",
    "r2": "r2",
}


def check_metric(task: str, metric: str, what: str = "metric") -> str:
    """``metric`` exists for ``task``; a ConfigError naming close matches otherwise."""
    if task not in TASK_METRICS:
        raise ConfigError(f"unknown task '{task}'; choose classification or regression")
    known = TASK_METRICS[task]
    if metric not in known:
        other = next((t for t, names in TASK_METRICS.items() if metric in names), None)
        hint = f"'{metric}' is a {other} metric" if other else f"unknown metric '{metric}'"
        close = difflib.get_close_matches(metric, known, n=2)
        raise ConfigError(
            f"{what} {hint}; {task} has: {', '.join(known)}"
            + (f" (did you mean {' or '.join(close)}?)" if close else "")
        )
    return metric


def task_defaults(
    task: str, primary: str = "", thresholds: dict[str, float] | None = None
) -> tuple[str, dict[str, float]]:
    """The primary metric and gate thresholds for ``task``: the user's, checked, or the task's defaults."""
    primary = check_metric(task, primary or DEFAULT_PRIMARY[task], "primary metric")
    thresholds = dict(DEFAULT_THRESHOLDS[task] if thresholds is None or not thresholds else thresholds)
    for name, bound in thresholds.items():
        check_metric(task, name, "threshold on")
        if not isinstance(bound, (int, float)) or isinstance(bound, bool) or not math.isfinite(bound):
            raise ConfigError(f"threshold on {name} must be a finite number, got {bound!r}")
    return primary, thresholds


def better(metric: str, a: float, b: float) -> float:
    """Signed improvement of ``a`` over ``b`` (positive = a is better)."""
    return (b - a) if metric in LOWER_IS_BETTER else (a - b)


def apply_threshold(scores: np.ndarray, classes: list, threshold: float) -> np.ndarray:
    """Class labels from class scores: binary by the decision threshold on the positive class, else argmax."""
    if len(classes) == 2:
        return np.where(scores[:, 1] >= threshold, classes[1], classes[0])
    return np.asarray(classes)[scores.argmax(axis=1)]


def classification_metrics(
    y_true: np.ndarray, scores: np.ndarray, classes: list, threshold: float = 0.5
) -> dict[str, float]:
    from sklearn import metrics as m

    binary = len(classes) == 2
    y_pred = apply_threshold(scores, classes, threshold)
    avg = "binary" if binary else "macro"
    pos = classes[1] if binary else 1
    out = {
        "accuracy": m.accuracy_score(y_true, y_pred),
        "precision": m.precision_score(y_true, y_pred, average=avg, pos_label=pos, zero_division=0),
        "recall": m.recall_score(y_true, y_pred, average=avg, pos_label=pos, zero_division=0),
        "f1": m.f1_score(y_true, y_pred, average=avg, pos_label=pos, zero_division=0),
        "log_loss": m.log_loss(y_true, np.clip(scores, 1e-15, 1 - 1e-15), labels=classes),
    }
    if len(np.unique(y_true)) > 1:
        if binary:
            out["roc_auc"] = m.roc_auc_score(y_true == classes[1], scores[:, 1])
            out["pr_auc"] = m.average_precision_score(y_true == classes[1], scores[:, 1])
            out["brier"] = m.brier_score_loss(y_true == classes[1], scores[:, 1])
        else:
            out["roc_auc"] = m.roc_auc_score(y_true, scores, multi_class="ovr", labels=classes)
    out["threshold"] = threshold
    return {k: round(float(v), 6) for k, v in out.items() if v is not None and math.isfinite(float(v))}


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    from sklearn import metrics as m

    return {
        "rmse": round(float(np.sqrt(m.mean_squared_error(y_true, y_pred))), 6),
        "mae": round(float(m.mean_absolute_error(y_true, y_pred)), 6),
        "r2": round(float(m.r2_score(y_true, y_pred)), 6),
    }


def score_bundle(bundle, frame, label: str, scores: np.ndarray | None = None) -> dict[str, float]:
    """Metrics of a ModelBundle on a labelled frame (``scores``: its scores on ``frame``, when already computed)."""
    y = frame[label].to_numpy()
    scores = bundle.score(frame) if scores is None else scores
    if bundle.task == "classification":
        return classification_metrics(y, scores, bundle.classes, bundle.threshold)
    return regression_metrics(y, scores)


def metric_value(
    metric: str, task: str, y: np.ndarray, scores: np.ndarray, classes: list | None = None, threshold: float = 0.5
) -> float:
    """One metric of one model's scores (class scores for classification, predictions for regression)."""
    from sklearn import metrics as m

    if task == "regression":
        fn = {
            "rmse": lambda: np.sqrt(m.mean_squared_error(y, scores)),
            "mae": lambda: m.mean_absolute_error(y, scores),
            "r2": lambda: m.r2_score(y, scores),
        }
        return float(fn[metric]())
    classes = list(classes or [])
    binary = len(classes) == 2
    if metric in ("roc_auc", "pr_auc", "brier") and binary:
        positive = y == classes[1]
        fn = {"roc_auc": m.roc_auc_score, "pr_auc": m.average_precision_score, "brier": m.brier_score_loss}[metric]
        return float(fn(positive, scores[:, 1]))
    if metric == "roc_auc":
        return float(m.roc_auc_score(y, scores, multi_class="ovr", labels=classes))
    if metric == "log_loss":
        return float(m.log_loss(y, np.clip(scores, 1e-15, 1 - 1e-15), labels=classes))
    return classification_metrics(y, scores, classes, threshold)[metric]


def _binary_auc(
    metric: str, task: str, y: np.ndarray, scores: np.ndarray, classes: list | None = None, threshold: float = 0.5
) -> float:
    """Binary ROC AUC as the Mann-Whitney statistic on average ranks (ties count a half): equal to sklearn's
    ``roc_auc_score`` (tests hold them to 1e-12)."""
    from scipy.stats import rankdata

    positive = y == list(classes or [None, None])[1]
    n_pos = int(positive.sum())
    n_neg = len(y) - n_pos
    ranks = rankdata(scores[:, 1])
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def paired_bootstrap(
    metric: str,
    task: str,
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    classes: list | None = None,
    thresholds: tuple[float, float] = (0.5, 0.5),
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """Confidence interval of the challenger's gain over the champion in ``metric`` (positive = challenger better),
    both models scored on the same resampled rows (a paired percentile bootstrap)."""
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be between 0 and 1, got {confidence}")
    rng = np.random.default_rng(seed)
    n, gains = len(y), []
    value = metric_value
    if metric == "roc_auc" and task == "classification" and len(classes or []) == 2:
        value = _binary_auc  # the same number as roc_auc_score, without its per-call checks (x1000 resamples)
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        if task == "classification" and len(np.unique(y[idx])) < 2:
            continue  # a resample with one class has no AUC; drawn again by the next iteration
        a = value(metric, task, y[idx], challenger[idx], classes, thresholds[0])
        b = value(metric, task, y[idx], champion[idx], classes, thresholds[1])
        gains.append(better(metric, a, b))
    if len(gains) < resamples // 2:
        raise ConfigError(f"bootstrap of {metric}: only {len(gains)} of {resamples} resamples had both classes")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(gains, [tail, 100 - tail])
    point = better(
        metric,
        metric_value(metric, task, y, challenger, classes, thresholds[0]),
        metric_value(metric, task, y, champion, classes, thresholds[1]),
    )
    return {
        "metric": metric,
        "gain": round(float(point), 6),
        "low": round(float(low), 6),
        "high": round(float(high), 6),
        "confidence": confidence,
        "resamples": len(gains),
    }
