"""Metrics for classification and regression, and which direction is better."""

import math

import numpy as np

# Metrics where lower is better; everything else is higher-is-better.
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "brier"})
DEFAULT_PRIMARY = {"classification": "roc_auc", "regression": "rmse"}


def better(metric: str, a: float, b: float) -> float:
    """Signed improvement of ``a`` over ``b`` (positive = a is better)."""
    return (b - a) if metric in LOWER_IS_BETTER else (a - b)


def best_f1_threshold(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Decision threshold that maximises F1 on held-out data (binary only)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y_true, proba)
    if len(thresholds) == 0:
        return 0.5
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(thresholds[int(np.nanargmax(f1))])


def classification_metrics(y_true: np.ndarray, scores: np.ndarray, classes: list, threshold: float = 0.5) -> dict[str, float]:
    from sklearn import metrics as m

    binary = len(classes) == 2
    if binary:
        y_pred = np.where(scores[:, 1] >= threshold, classes[1], classes[0])
    else:
        y_pred = np.asarray(classes)[scores.argmax(axis=1)]
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


def score_bundle(bundle, frame, label: str) -> dict[str, float]:
    """Metrics of a ModelBundle on a labelled frame."""
    y = frame[label].to_numpy()
    scores = bundle.score(frame)
    if bundle.task == "classification":
        return classification_metrics(y, scores, bundle.classes, bundle.threshold)
    return regression_metrics(y, scores)
