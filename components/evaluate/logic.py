"""Evaluate: test-set metrics, curves for the KFP UI, per-segment metrics (bias check) and an HTML
report with plots (ROC, PR, confusion matrix, calibration, permutation feature importance)."""

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlcycle import defaults
from mlcycle.contract import DataContract
from mlcycle.errors import DataError
from mlcycle.fsutil import write_text_atomic
from mlcycle.htmlpage import figure, page, png, pyplot
from mlcycle.metrics import better, metric_value, score_bundle, task_defaults
from mlcycle.models import ModelBundle

MAX_CURVE_POINTS = 200
MIN_SEGMENT_ROWS = 30


@dataclass
class Evaluation:
    metrics: dict[str, float]
    task: str
    family: str
    classes: list | None = None
    confusion: list[list[int]] | None = None
    roc: tuple[list[float], list[float], list[float]] | None = None  # fpr, tpr, thresholds
    segments: dict[str, dict[str, float]] = field(default_factory=dict)
    importance: dict[str, float] = field(default_factory=dict)
    threshold: dict | None = None  # decision threshold, its policy and its out-of-fold estimate (binary)
    primary_metric: str = ""


def evaluate(
    bundle: ModelBundle,
    test: pd.DataFrame,
    contract: DataContract,
    segment_column: str = "",
    seed: int = defaults.SEED,
    primary_metric: str = "",
) -> Evaluation:
    from sklearn.metrics import confusion_matrix, roc_curve

    if segment_column and segment_column not in test.columns:
        raise DataError(
            f"segment column '{segment_column}' not found in the test data; columns are: {', '.join(map(str, test.columns))}"
        )
    primary, _ = task_defaults(bundle.task, primary_metric)
    ev = Evaluation(
        score_bundle(bundle, test, contract.label),
        bundle.task,
        bundle.family,
        bundle.classes,
        threshold=bundle.training.get("threshold"),
        primary_metric=primary,
    )
    y = test[contract.label].to_numpy()
    if bundle.task == "classification":
        ev.confusion = confusion_matrix(y, bundle.predict(test), labels=bundle.classes).tolist()
        if len(bundle.classes) == 2:
            fpr, tpr, thr = roc_curve(y == bundle.classes[1], bundle.score(test)[:, 1])
            idx = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), MAX_CURVE_POINTS)).astype(int))
            ev.roc = (fpr[idx].tolist(), tpr[idx].tolist(), np.minimum(thr[idx], 1.0).tolist())
    if segment_column:
        for value, part in test.groupby(segment_column, dropna=False):
            if len(part) >= MIN_SEGMENT_ROWS and (bundle.task == "regression" or part[contract.label].nunique() > 1):
                ev.segments[str(value)] = {"rows": len(part), **score_bundle(bundle, part, contract.label)}
    ev.importance = permutation_importance(bundle, test, contract, seed, primary)
    return ev


def permutation_importance(
    bundle: ModelBundle,
    test: pd.DataFrame,
    contract: DataContract,
    seed: int,
    primary: str,
    rows: int = 3000,
    repeats: int = 3,
) -> dict[str, float]:
    """Drop of the primary metric when one raw feature is shuffled (model-agnostic, in input terms)."""
    sample = test.sample(n=min(rows, len(test)), random_state=seed).reset_index(drop=True)
    base = score_bundle(bundle, sample, contract.label).get(primary)
    if base is None:
        return {}
    y = sample[contract.label].to_numpy()  # shuffling a feature leaves the labels: only the primary metric is scored

    def primary_of(frame: pd.DataFrame) -> float:  # score_bundle's rounding; a non-finite value counts as no change
        value = metric_value(primary, bundle.task, y, bundle.score(frame), bundle.classes, bundle.threshold)
        return round(value, 6) if math.isfinite(value) else base

    rng = np.random.default_rng(seed)
    out = {}
    for name in bundle.features:
        drops = []
        for _ in range(repeats):
            shuffled = sample.copy()
            shuffled[name] = rng.permutation(shuffled[name].to_numpy())
            drops.append(better(primary, base, primary_of(shuffled)))
        out[name] = round(float(np.mean(drops)), 6)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _plots(bundle: ModelBundle, test: pd.DataFrame, contract: DataContract, ev: Evaluation) -> list[tuple[str, str]]:
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve

    plt = pyplot()
    plots = []
    y = test[contract.label].to_numpy()
    if ev.roc:
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.plot(ev.roc[0], ev.roc[1], label=f"AUC {ev.metrics.get('roc_auc', float('nan')):.3f}")
        ax.plot([0, 1], [0, 1], "--", color="grey")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
        ax.legend()
        plots.append(("ROC curve", png(fig)))
        positive = y == bundle.classes[1]
        proba = bundle.score(test)[:, 1]
        prec, rec, _ = precision_recall_curve(positive, proba)
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.plot(rec, prec, label=f"AP {ev.metrics.get('pr_auc', float('nan')):.3f}")
        ax.set(xlabel="recall", ylabel="precision", title="Precision-recall")
        ax.legend()
        plots.append(("Precision-recall curve", png(fig)))
        frac, mean_pred = calibration_curve(positive, proba, n_bins=10, strategy="quantile")
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.plot(mean_pred, frac, "o-")
        ax.plot([0, max(mean_pred.max(), 0.01)], [0, max(mean_pred.max(), 0.01)], "--", color="grey")
        ax.set(xlabel="mean predicted probability", ylabel="observed positive rate", title="Calibration")
        plots.append(("Calibration", png(fig)))
    if ev.confusion:
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.imshow(ev.confusion, cmap="Blues")
        for i, row in enumerate(ev.confusion):
            for j, v in enumerate(row):
                ax.text(j, i, str(v), ha="center", va="center")
        ax.set(
            xticks=range(len(ev.classes)),
            yticks=range(len(ev.classes)),
            xticklabels=ev.classes,
            yticklabels=ev.classes,
            xlabel="predicted",
            ylabel="actual",
            title=f"Confusion (threshold {bundle.threshold:.3f})",
        )
        plots.append(("Confusion matrix", png(fig)))
    if bundle.task == "regression":
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.scatter(y, bundle.score(test), s=3, alpha=0.4)
        ax.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual")
        plots.append(("Predicted vs actual", png(fig)))
    if ev.importance:
        names = list(ev.importance)[:15][::-1]
        fig, ax = plt.subplots(figsize=(5, 0.3 * len(names) + 1))
        ax.barh(names, [ev.importance[n] for n in names])
        ax.set(xlabel="metric drop when shuffled", title="Permutation importance")
        plots.append(("Feature importance", png(fig)))
    return plots


def render_html(
    bundle: ModelBundle, test: pd.DataFrame, contract: DataContract, ev: Evaluation, segment_column: str
) -> str:
    esc = html.escape
    rows = "".join(f"<tr><td>{esc(k)}</td><td>{v:.4f}</td></tr>" for k, v in ev.metrics.items())
    seg = ""
    if ev.segments:
        keys = [k for k in next(iter(ev.segments.values())) if k != "rows"]
        head = "".join(f"<th>{esc(k)}</th>" for k in keys)
        body = "".join(
            f"<tr><td>{esc(name)}</td><td>{m['rows']}</td>"
            + "".join(f"<td>{m.get(k, float('nan')):.4f}</td>" for k in keys)
            + "</tr>"
            for name, m in ev.segments.items()
        )
        seg = f"<h2>Per-segment metrics: {esc(segment_column)}</h2><table><tr><th>segment</th><th>rows</th>{head}</tr>{body}</table>"
    figs = "".join(figure(title, img) for title, img in _plots(bundle, test, contract, ev))
    return page(
        "mlcycle evaluation",
        f"<h1>Evaluation: {esc(ev.family)} ({esc(ev.task)})</h1><p>test rows: {len(test)}; primary metric: {esc(ev.primary_metric)}; "
        f"params: {esc(json.dumps(bundle.params, sort_keys=True))}</p>{_threshold_html(ev.threshold)}"
        f"<h2>Test metrics</h2><table>{rows}</table>{seg}<h2>Plots</h2>{figs}",
    )


def _threshold_html(choice: dict | None) -> str:
    if not choice:
        return ""
    met = "" if choice.get("target_met", True) else " <b>(target not reachable: the closest threshold was taken)</b>"
    return (
        f"<h2>Decision threshold</h2><p><b>{choice['threshold']:.4f}</b> chosen by policy <code>{html.escape(choice['policy'])}</code>"
        f" on {choice['rows']} out-of-fold rows (cross-validation over train + validation){met}. Out-of-fold estimate: "
        f"precision {choice['precision']:.3f}, recall {choice['recall']:.3f}, F1 {choice['f1']:.3f}, "
        f"false-positive rate {choice['false_positive_rate']:.4f}.</p>"
    )


def run(
    model_dir: Path,
    test_path: Path,
    contract: DataContract,
    report_path: Path,
    segment_column: str = "",
    seed: int = defaults.SEED,
    primary_metric: str = "",
) -> Evaluation:
    bundle = ModelBundle.load(model_dir)
    test = pd.read_parquet(test_path)
    ev = evaluate(bundle, test, contract, segment_column, seed, primary_metric)
    write_text_atomic(Path(report_path), render_html(bundle, test, contract, ev, segment_column))
    return ev
