"""Self-contained HTML pages (inline PNG plots, no external assets) for reports the KFP UI and a browser both show."""

import base64
import html
import io

STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:0.5em 0}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}figure{display:inline-block;margin:8px;vertical-align:top}"
    ".bad{color:#b00020;font-weight:bold}.ok{color:#1b5e20}"
)


def page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def png(fig) -> str:
    """An <img> with the figure inlined as PNG, laid out tight (labels inside the canvas); the figure is closed.
    ``tight_layout`` then one draw: ``savefig(bbox_inches="tight")`` would draw every figure twice."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'


def pyplot():
    """matplotlib.pyplot on the non-interactive backend (steps and servers have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure(title: str, img: str) -> str:
    return f"<figure>{img}<figcaption>{html.escape(title)}</figcaption></figure>"
