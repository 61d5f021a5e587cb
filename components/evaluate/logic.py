"""Evaluate: test-set metrics, curves for the KFP UI, per-segment metrics (bias check) and an HTML
report with plots (ROC, PR, confusion matrix, calibration, permutation feature importance)."""

import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlcycle.contract import DataContract
from mlcycle.errors import DataError
from mlcycle.fsutil import write_text_atomic
from mlcycle.metrics import score_bundle
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


def evaluate(bundle: ModelBundle, test: pd.DataFrame, contract: DataContract, segment_column: str = "", seed: int = 42) -> Evaluation:
    from sklearn.metrics import confusion_matrix, roc_curve

    if segment_column and segment_column not in test.columns:
        raise DataError(f"segment column '{segment_column}' not found in the test data")
    ev = Evaluation(score_bundle(bundle, test, contract.label), bundle.task, bundle.family, bundle.classes)
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
    ev.importance = permutation_importance(bundle, test, contract, seed)
    return ev


def permutation_importance(bundle: ModelBundle, test: pd.DataFrame, contract: DataContract, seed: int, rows: int = 3000, repeats: int = 3) -> dict[str, float]:
    """Drop of the primary metric when one raw feature is shuffled (model-agnostic, in input terms)."""
    from mlcycle.metrics import DEFAULT_PRIMARY, better

    primary = DEFAULT_PRIMARY[bundle.task]
    sample = test.sample(n=min(rows, len(test)), random_state=seed).reset_index(drop=True)
    base = score_bundle(bundle, sample, contract.label).get(primary)
    if base is None:
        return {}
    rng = np.random.default_rng(seed)
    out = {}
    for name in bundle.features:
        drops = []
        for _ in range(repeats):
            shuffled = sample.copy()
            shuffled[name] = rng.permutation(shuffled[name].to_numpy())
            drops.append(better(primary, base, score_bundle(bundle, shuffled, contract.label).get(primary, base)))
        out[name] = round(float(np.mean(drops)), 6)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'


def _plots(bundle: ModelBundle, test: pd.DataFrame, contract: DataContract, ev: Evaluation) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve

    plots = []
    y = test[contract.label].to_numpy()
    if ev.roc:
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.plot(ev.roc[0], ev.roc[1], label=f"AUC {ev.metrics.get('roc_auc', float('nan')):.3f}")
        ax.plot([0, 1], [0, 1], "--", color="grey")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
        ax.legend()
        plots.append(("ROC curve", _png(fig)))
        positive = y == bundle.classes[1]
        proba = bundle.score(test)[:, 1]
        prec, rec, _ = precision_recall_curve(positive, proba)
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.plot(rec, prec, label=f"AP {ev.metrics.get('pr_auc', float('nan')):.3f}")
        ax.set(xlabel="recall", ylabel="precision", title="Precision-recall")
        ax.legend()
        plots.append(("Precision-recall curve", _png(fig)))
        frac, mean_pred = calibration_curve(positive, proba, n_bins=10, strategy="quantile")
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.plot(mean_pred, frac, "o-")
        ax.plot([0, max(mean_pred.max(), 0.01)], [0, max(mean_pred.max(), 0.01)], "--", color="grey")
        ax.set(xlabel="mean predicted probability", ylabel="observed positive rate", title="Calibration")
        plots.append(("Calibration", _png(fig)))
    if ev.confusion:
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.imshow(ev.confusion, cmap="Blues")
        for i, row in enumerate(ev.confusion):
            for j, v in enumerate(row):
                ax.text(j, i, str(v), ha="center", va="center")
        ax.set(xticks=range(len(ev.classes)), yticks=range(len(ev.classes)), xticklabels=ev.classes, yticklabels=ev.classes,
               xlabel="predicted", ylabel="actual", title=f"Confusion (threshold {bundle.threshold:.3f})")
        plots.append(("Confusion matrix", _png(fig)))
    if bundle.task == "regression":
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.scatter(y, bundle.score(test), s=3, alpha=0.4)
        ax.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual")
        plots.append(("Predicted vs actual", _png(fig)))
    if ev.importance:
        names = list(ev.importance)[:15][::-1]
        fig, ax = plt.subplots(figsize=(5, 0.3 * len(names) + 1))
        ax.barh(names, [ev.importance[n] for n in names])
        ax.set(xlabel="metric drop when shuffled", title="Permutation importance")
        plots.append(("Feature importance", _png(fig)))
    return plots


def render_html(bundle: ModelBundle, test: pd.DataFrame, contract: DataContract, ev: Evaluation, segment_column: str) -> str:
    esc = html.escape
    rows = "".join(f"<tr><td>{esc(k)}</td><td>{v:.4f}</td></tr>" for k, v in ev.metrics.items())
    seg = ""
    if ev.segments:
        keys = [k for k in next(iter(ev.segments.values())) if k != "rows"]
        head = "".join(f"<th>{esc(k)}</th>" for k in keys)
        body = "".join(
            f"<tr><td>{esc(name)}</td><td>{m['rows']}</td>" + "".join(f"<td>{m.get(k, float('nan')):.4f}</td>" for k in keys) + "</tr>"
            for name, m in ev.segments.items()
        )
        seg = f"<h2>Per-segment metrics: {esc(segment_column)}</h2><table><tr><th>segment</th><th>rows</th>{head}</tr>{body}</table>"
    figs = "".join(f"<figure>{img}<figcaption>{esc(title)}</figcaption></figure>" for title, img in _plots(bundle, test, contract, ev))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>mlcycle evaluation</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}"
        "figure{display:inline-block;margin:8px}</style></head><body>"
        f"<h1>Evaluation: {esc(ev.family)} ({esc(ev.task)})</h1><p>test rows: {len(test)}; params: {esc(json.dumps(bundle.params))}</p>"
        f"<h2>Test metrics</h2><table>{rows}</table>{seg}<h2>Plots</h2>{figs}</body></html>"
    )


def run(model_dir: Path, test_path: Path, contract: DataContract, report_path: Path, segment_column: str = "", seed: int = 42) -> Evaluation:
    bundle = ModelBundle.load(model_dir)
    test = pd.read_parquet(test_path)
    ev = evaluate(bundle, test, contract, segment_column, seed)
    write_text_atomic(Path(report_path), render_html(bundle, test, contract, ev, segment_column))
    return ev
