"""The drift detector's HTML report (``GET /report``; the loop stores it with a retrain's audit record).

One self-contained page, no JavaScript, no external assets: per feature the reference's distribution beside the
last tested window's (inline SVG bars: value bins for numeric features, one bar per category for categorical
ones, with the encoder's missing and unseen buckets), the p-values and PSI of the recent windows (newest first),
and the retrain triggers. Every string that comes from data or configuration (feature names, category values,
versions, hook output) is HTML-escaped.

``Profile`` holds one detector's bins and the reference's counts in them; ``Profile.counts`` summarises a window in
the detection thread, so the page never needs the window's rows (the buffer is reused for the next window).
"""

import html
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from mlcycle.drift import Backend
from mlcycle.htmlpage import page

NUMERIC_BINS = 20
REF_COLOUR, CUR_COLOUR = "#5b8def", "#e8743b"


def esc(value) -> str:
    return html.escape(str(value), quote=True)


@dataclass
class FeatureBins:
    name: str
    categorical: bool
    labels: list[str]  # one per bin
    edges: np.ndarray | None  # numeric: bin edges (values outside go to the end bins)
    reference: np.ndarray  # counts of the reference sample


class Profile:
    """Bins per feature fixed by the reference: quantile 0.5 %–99.5 % in ``bins`` equal steps for a numeric feature
    (outliers counted in the end bins), one per training category plus missing and unseen for a categorical one."""

    def __init__(self, detector: Backend, bins: int = NUMERIC_BINS):
        encoder, x_ref = detector.encoder, detector.x_ref
        self.reference_rows = len(x_ref)
        self.features: list[FeatureBins] = []
        for j, spec in enumerate(encoder.features):
            col = x_ref[:, j]
            if j in encoder.categorical:
                labels = [*(spec.categories or []), "(missing)", "(unseen)"]
                counts = np.bincount(np.clip(col.astype(int), 0, len(labels) - 1), minlength=len(labels))
                self.features.append(FeatureBins(spec.name, True, labels, None, counts))
                continue
            lo, hi = (float(v) for v in np.quantile(col, [0.005, 0.995])) if len(col) else (0.0, 1.0)
            if not hi > lo:
                lo, hi = lo - 0.5, lo + 0.5
            edges = np.linspace(lo, hi, bins + 1)
            labels = [f"{a:.4g} – {b:.4g}" for a, b in zip(edges[:-1], edges[1:], strict=True)]
            self.features.append(FeatureBins(spec.name, False, labels, edges, self._numeric(col, edges)))

    @staticmethod
    def _numeric(col: np.ndarray, edges: np.ndarray) -> np.ndarray:
        return np.histogram(np.clip(col, edges[0], edges[-1]), edges)[0]

    def counts(self, x: np.ndarray) -> dict[str, list[int]]:
        """The bin counts of an encoded window (``Encoder.encode_columns`` rows), per feature."""
        out = {}
        for j, f in enumerate(self.features):
            col = x[:, j]
            if f.categorical:
                counts = np.bincount(np.clip(col.astype(int), 0, len(f.labels) - 1), minlength=len(f.labels))
            else:
                assert f.edges is not None
                counts = self._numeric(col, f.edges)
            out[f.name] = [int(c) for c in counts]
        return out


def bars_svg(labels: list[str], reference, current, categorical: bool, width: int = 520, height: int = 150) -> str:
    """Paired bars (reference, window) of each bin's share of rows; the exact shares in each bar's <title>."""
    ref = np.asarray(reference, dtype=float)
    ref = ref / ref.sum() if ref.sum() else ref
    cur = None
    if current is not None:
        cur = np.asarray(current, dtype=float)
        cur = cur / cur.sum() if cur.sum() else cur
    top = max(float(ref.max(initial=0)), float(cur.max(initial=0)) if cur is not None else 0.0) or 1.0
    k = len(labels)
    label_h = 70 if categorical else 18
    plot_h = height - label_h
    slot = width / max(k, 1)
    bar = slot / (2.6 if cur is not None else 1.6)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
        f'<line x1="0" y1="{plot_h}" x2="{width}" y2="{plot_h}" stroke="#999"/>',
    ]
    for i, label in enumerate(labels):
        x0 = i * slot + (slot - bar * (2 if cur is not None else 1)) / 2
        series = [("reference", ref[i], REF_COLOUR)] + ([("window", cur[i], CUR_COLOUR)] if cur is not None else [])
        for s, (what, share, colour) in enumerate(series):
            h = share / top * (plot_h - 4)
            parts.append(
                f'<rect x="{x0 + s * bar:.1f}" y="{plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{esc(label)}: {what} {share:.1%}</title></rect>'
            )
        if categorical:
            cx = i * slot + slot / 2
            parts.append(
                f'<text x="{cx:.1f}" y="{plot_h + 10}" font-size="10" text-anchor="end" '
                f'transform="rotate(-40 {cx:.1f} {plot_h + 10})">{esc(label[:24])}</text>'
            )
    if not categorical and labels:
        parts.append(f'<text x="0" y="{height - 4}" font-size="10">{esc(labels[0].split(" – ")[0])}</text>')
        parts.append(
            f'<text x="{width}" y="{height - 4}" font-size="10" text-anchor="end">'
            f"{esc(labels[-1].split(' – ')[-1])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _when(ts: float | None) -> str:
    return "—" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _num(v) -> str:
    return "—" if v is None else f"{v:.3g}"


def render(
    model: str,
    version: str,
    backend: str,
    profile: Profile,
    window: dict | None,
    history: list[dict],
    triggers: list[dict],
    settings: dict | None = None,
    follow: dict | None = None,
    switches: list[dict] | None = None,
    now: float | None = None,
) -> str:
    """The page. ``window``: the last tested window (``at``, ``n``, ``version``, ``counts`` per feature) or None;
    ``history``: window reports (``at``, ``n``, ``is_drift``, ``threshold``, ``p_values``, ``psi``, ``version``),
    oldest first; ``triggers``: the retrain hook's calls and held-back triggers (``at``, ``result``, optional ``why``, ``evidence``,
    ``times``/``last_at`` for a held-back stretch, ``run`` with the log file and exit code of a local run)."""
    names = [f.name for f in profile.features]
    body = [f"<h1>Drift report: {esc(model)} {esc(version)}</h1>"]
    facts = {
        "model": model,
        "version": version,
        "backend": backend,
        "reference rows": profile.reference_rows,
        "generated": _when(now if now is not None else time.time()),
        **(settings or {}),
    }
    if follow:
        facts["follows alias"] = f"{follow.get('alias')} of {follow.get('registry')}"
        if follow.get("error"):
            facts["follow refused"] = follow["error"]
    body.append("<table>" + "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts.items()))
    body.append("</table>")

    body.append("<h2>Distributions: reference vs. last window</h2>")
    if window is None:
        body.append(f"<p><b>no window yet</b>: the first window is tested after {esc(facts.get('window', 'its'))} rows")
        body.append(" (or when it ages out); only the reference is shown.</p>")
    else:
        body.append(
            f"<p>window of {int(window['n'])} rows tested {esc(_when(window.get('at')))} "
            f"(version {esc(window.get('version', version))})</p>"
        )
    body.append(
        f'<p><span style="color:{REF_COLOUR}">■</span> reference &nbsp; '
        f'<span style="color:{CUR_COLOUR}">■</span> window &nbsp; (share of rows per bin)</p>'
    )
    last = history[-1] if history else None
    for f in profile.features:
        current = window["counts"].get(f.name) if window else None
        caption = f"{f.name} ({'categorical' if f.categorical else 'numeric'})"
        if last is not None and f.name in last.get("p_values", {}):
            caption += f" — p = {_num(last['p_values'][f.name])}, PSI = {_num(last['psi'].get(f.name))}"
        body.append(
            f'<figure data-feature="{esc(f.name)}">{bars_svg(f.labels, f.reference, current, f.categorical)}'
            f"<figcaption>{esc(caption)}</figcaption></figure>"
        )

    body.append("<h2>Recent windows (newest first)</h2>")
    if not history:
        body.append("<p>no window yet</p>")
    else:
        head = "".join(f'<th colspan="2">{esc(n)}</th>' for n in names)
        sub = "<th>p</th><th>PSI</th>" * len(names)
        rows = []
        for h in reversed(history):
            cells = []
            for n in names:
                p, threshold = h["p_values"].get(n), h.get("threshold")
                bad = p is not None and threshold is not None and p < threshold
                cells.append(f'<td class="{"bad" if bad else "ok"}">{_num(p)}</td><td>{_num(h["psi"].get(n))}</td>')
            drift = '<td class="bad">drift</td>' if h["is_drift"] else '<td class="ok">no drift</td>'
            rows.append(
                f"<tr><td>{esc(_when(h.get('at')))}</td><td>{esc(h.get('version', version))}</td>"
                f"<td>{int(h['n'])}</td>{drift}<td>{_num(h.get('threshold'))}</td>{''.join(cells)}</tr>"
            )
        body.append(
            f'<table><tr><th rowspan="2">tested</th><th rowspan="2">version</th><th rowspan="2">rows</th>'
            f'<th rowspan="2">result</th><th rowspan="2">p threshold</th>{head}</tr><tr>{sub}</tr>{"".join(rows)}</table>'
        )

    body.append("<h2>Retrain triggers by this detector's hook (newest first)</h2>")
    if not triggers:
        body.append("<p>none yet</p>")
    else:
        rows = []
        for t in reversed(triggers):
            evidence = t.get("evidence") or {}
            ev = "; ".join(f"{k}: {v}" for k, v in evidence.items())
            result = str(t.get("result", ""))
            if t.get("times", 1) > 1:  # a held-back stretch is one entry
                result += f" ({int(t['times'])} times, last {_when(t.get('last_at'))})"
            run = t.get("run") or {}
            if run:
                result += f"; log {run.get('log')}, exit code {run.get('exit_code', 'running')}"
            rows.append(
                f"<tr><td>{esc(_when(t.get('at')))}</td><td>{esc(t.get('why', ''))}</td><td>{esc(ev)}</td>"
                f"<td>{esc(result)}</td></tr>"
            )
        body.append(f"<table><tr><th>when</th><th>why</th><th>evidence</th><th>result</th></tr>{''.join(rows)}</table>")

    if switches:
        body.append("<h2>Version switches (alias moves)</h2><table><tr><th>when</th><th>from</th><th>to</th>")
        body.append("<th>rows of the old version's unfinished window discarded</th></tr>")
        for s in reversed(switches):
            body.append(
                f"<tr><td>{esc(_when(s.get('at')))}</td><td>{esc(s.get('from'))}</td><td>{esc(s.get('to'))}</td>"
                f"<td>{int(s.get('discarded_rows', 0))}</td></tr>"
            )
        body.append("</table>")
    return page(f"Drift report: {model} {version}", "".join(body))


def render_service(service) -> str:
    """The page of a running ``DriftService``."""
    follow = service.follower.status() if getattr(service, "follower", None) is not None else None
    return render(
        service.model,
        service.version,
        service.detector.name,
        service.profile,
        service.last_window,
        list(service.history),
        list(service.hook_results),
        settings={
            "window": service.window_size,
            "max age (s)": service.max_age_s,
            "drifted windows for a retrain": service.consecutive,
            "retrain hook": type(service.hook).__name__ if service.hook is not None else "none (a controller decides)",
        },
        follow=follow,
        switches=list(getattr(service, "switches", [])),
    )
