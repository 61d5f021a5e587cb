"""The data exploration page of validate_data: missing values, the target distribution, every feature's
distribution and its relationship to the target, a correlation heatmap, and the contract's verdict per
column — one self-contained HTML page (a KFP ``HTML`` artifact; ``data-report.html`` in a local run)."""

import html

import numpy as np
import pandas as pd

from mlcycle.contract import DataContract
from mlcycle.errors import Breach
from mlcycle.htmlpage import figure, page, png, pyplot

MAX_PLOTTED = 24  # features with a distribution plot each (the table lists all)
MAX_BARS = 15  # categories per bar chart


def render(frame: pd.DataFrame, contract: DataContract, reference_version: str | None, breaches: list[Breach]) -> str:
    esc = html.escape
    plt = pyplot()
    label = contract.label
    y = frame[label]
    figs = [
        figure("Missing values per column", _missing(plt, frame)),
        figure(f"Target: {label}", _target(plt, y, contract)),
    ]
    for spec in contract.features[:MAX_PLOTTED]:
        figs.append(figure(f"{spec.name} ({spec.kind})", _feature(plt, frame[spec.name], spec.kind, y, contract)))
    corr = _correlation(plt, frame, contract)
    if corr:
        figs.append(figure("Correlation (numeric features and label)", corr))
    by_column: dict[str, list[Breach]] = {}
    for b in breaches:
        by_column.setdefault(b.column, []).append(b)
    rows = []
    for spec in contract.columns:
        bad = by_column.get(spec.name, [])
        if bad:
            verdict = (
                "<span class='bad'>"
                + "; ".join(esc(f"{b.rule}: observed {b.observed}, allowed {b.allowed}") for b in bad)
                + "</span>"
            )
        else:
            verdict = "<span class='ok'>ok</span>" if reference_version else "new (first contract)"
        nulls = float(frame[spec.name].isna().mean())
        if spec.kind == "numeric":
            detail = f"[{spec.min:g}, {spec.max:g}]"
        elif spec.kind == "categorical":
            cats = spec.categories or []
            detail = esc(", ".join(cats[:8]) + (f" … ({len(cats)})" if len(cats) > 8 else ""))
        else:
            detail = ""
        rows.append(
            f"<tr><td>{esc(spec.name)}</td><td>{spec.kind}</td><td>{esc(spec.dtype)}</td><td>{nulls:.2%}</td>"
            f"<td>{detail}</td><td>{verdict}</td></tr>"
        )
    table_wide = [b for b in breaches if b.column not in {c.name for c in contract.columns}]
    extra = "".join(f"<li class='bad'>{esc(str(b))}</li>" for b in table_wide)
    against = (
        f"production contract <b>{esc(reference_version)}</b>"
        if reference_version
        else "no production contract (first model)"
    )
    verdict = (
        f"<p class='bad'>{len(breaches)} breach(es): the run stops here.</p>"
        if breaches
        else "<p class='ok'>passed</p>"
    )
    return page(
        "mlcycle data exploration",
        (
            f"<h1>Data exploration and validation</h1><p>{len(frame)} rows, {len(frame.columns)} columns, label <code>{esc(label)}</code> "
            f"({contract.task}); checked against {against}; duplicate rows {frame.duplicated().mean():.2%}</p>{verdict}"
            + (f"<ul>{extra}</ul>" if extra else "")
            + "<h2>Columns and contract verdict</h2><table><tr><th>column</th><th>kind</th><th>dtype</th><th>missing</th>"
            f"<th>range / categories</th><th>verdict</th></tr>{''.join(rows)}</table><h2>Plots</h2>{''.join(figs)}"
        ),
    )


def _missing(plt, frame: pd.DataFrame) -> str:
    share = frame.isna().mean().sort_values(ascending=False)
    fig, ax = plt.subplots(figsize=(5, 0.25 * len(share) + 1))
    ax.barh(share.index.astype(str)[::-1], share.to_numpy()[::-1] * 100)
    ax.set(xlabel="% missing", title="Missing values")
    return png(fig)


def _target(plt, y: pd.Series, contract: DataContract) -> str:
    fig, ax = plt.subplots(figsize=(4, 3))
    if contract.task == "classification":
        counts = y.astype(str).value_counts().sort_index()
        ax.bar(counts.index, counts.to_numpy())
        ax.set(ylabel="rows", title="class balance")
    else:
        ax.hist(y.to_numpy(dtype=float), bins=40)
        ax.set(xlabel=contract.label, ylabel="rows", title="target distribution")
    return png(fig)


def _feature(plt, x: pd.Series, kind: str, y: pd.Series, contract: DataContract) -> str:
    """The feature's distribution (left) and its relationship to the target (right)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(7, 2.6))
    binary = contract.task == "classification" and len(contract.classes or []) == 2
    target = (
        (y == contract.classes[1]).astype(float)
        if binary
        else (y.astype(float) if contract.task == "regression" else None)
    )
    if kind == "numeric":
        values = x.to_numpy(dtype=float, na_value=np.nan)
        finite = np.isfinite(values)
        left.hist(values[finite], bins=30)
        if target is not None and finite.sum() > 10:
            bins = pd.qcut(pd.Series(values[finite]), q=min(10, len(np.unique(values[finite]))), duplicates="drop")
            means = pd.Series(target.to_numpy()[finite]).groupby(bins, observed=True).mean()
            right.plot(range(len(means)), means.to_numpy(), "o-")
            right.set(xlabel=f"{x.name} decile", ylabel="positive rate" if binary else f"mean {contract.label}")
    elif kind == "categorical":
        counts = x.fillna("(missing)").astype(str).value_counts().head(MAX_BARS)
        left.barh(counts.index[::-1], counts.to_numpy()[::-1])
        if target is not None:
            means = target.groupby(x.fillna("(missing)").astype(str)).mean().reindex(counts.index)
            right.barh(means.index[::-1], means.to_numpy()[::-1], color="tab:orange")
            right.set(xlabel="positive rate" if binary else f"mean {contract.label}")
    left.set(title="distribution")
    right.set(title="vs target")
    return png(fig)


def _correlation(plt, frame: pd.DataFrame, contract: DataContract) -> str:
    numeric = [c.name for c in contract.features if c.kind == "numeric"][:MAX_PLOTTED]
    cols = numeric + ([contract.label] if pd.api.types.is_numeric_dtype(frame[contract.label]) else [])
    if len(cols) < 2:
        return ""
    corr = frame[cols].astype(float).corr().to_numpy()
    fig, ax = plt.subplots(figsize=(0.45 * len(cols) + 2, 0.45 * len(cols) + 1.5))
    im = ax.imshow(corr, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(cols)), cols, rotation=90)
    ax.set_yticks(range(len(cols)), cols)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return png(fig)
