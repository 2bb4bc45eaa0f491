"""Plots people would rather look at than read: the accuracy/score-vs-nnz Pareto view.

PNG through matplotlib (Agg, no display), interactive HTML through Plotly with its JavaScript
inlined (works offline).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def pareto_front(nnz: list[float], loss: list[float]) -> list[int]:
    """Indices of the frontier points (fewer non-zeros, lower ``loss``), sorted by nnz."""
    from occam.scoring.frontier import frontier

    return [int(i) for i in frontier(list(zip(nnz, loss, strict=True)))] if nnz else []


def _iso_lines(lam: float, scores: list[float], lo: float, hi: float) -> list[tuple[float, np.ndarray, np.ndarray]]:
    from occam.scoring.frontier import iso_score_ce

    xs = np.logspace(math.log10(max(1.0, lo)), math.log10(max(hi, lo * 1.01 + 1)), 50)
    return [(s, xs, iso_score_ce(s, xs, lam)) for s in scores]


def pareto_png(rows: list[dict], path: Path, *, lam: float, title: str) -> Path:
    """Two panels: accuracy vs nnz, and CE vs nnz with iso-score lines; frontier points joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nnz = [r["nnz"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for series in sorted({r["series"] for r in rows}):
        idx = [i for i, r in enumerate(rows) if r["series"] == series]
        ax1.plot([nnz[i] for i in idx], [rows[i]["accuracy"] for i in idx], "o", label=series)
        ax2.plot([nnz[i] for i in idx], [rows[i]["ce"] for i in idx], "o", label=series)
    front = pareto_front(nnz, [r["score"] for r in rows])
    ce_front = pareto_front(nnz, [r["ce"] for r in rows])
    ax1.plot([nnz[i] for i in ce_front], [rows[i]["accuracy"] for i in ce_front], "-", color="gray", alpha=0.6)
    ax2.plot([nnz[i] for i in ce_front], [rows[i]["ce"] for i in ce_front], "-", color="gray", alpha=0.6, label="frontier")
    if front:
        best = front[int(np.argmin([rows[i]["score"] for i in front]))]
        ax2.plot([nnz[best]], [rows[best]["ce"]], "*", ms=14, color="gold", mec="k",
                 label=f"best score {rows[best]['score']:.3f}")
    lo, hi = min(nnz) / 2, max(nnz) * 2
    base = min(r["score"] for r in rows)
    for s, xs, ys in _iso_lines(lam, [base + d for d in (0.0, 0.05, 0.1, 0.2)], lo, hi):
        ax2.plot(xs, ys, ":", color="tab:red", alpha=0.5)
        ax2.annotate(f"score {s:.2f}", (xs[-1], ys[-1]), fontsize=7, color="tab:red", alpha=0.7)
    for ax, label in ((ax1, "accuracy"), (ax2, "cross-entropy")):
        ax.set_xscale("log")
        ax.set_xlabel("non-zero stored numbers (nnz)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    ax2.legend(fontsize=8)
    fig.suptitle(f"{title} (λ = {lam:g}; dotted: iso-score lines)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def pareto_html(rows: list[dict], path: Path, *, lam: float, title: str) -> Path:
    """The same view as an interactive, self-contained Plotly page."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("accuracy vs nnz", "cross-entropy vs nnz (iso-score lines)"))
    for series in sorted({r["series"] for r in rows}):
        sel = [r for r in rows if r["series"] == series]
        text = [f"{r['series']}<br>nnz {r['nnz']}<br>score {r['score']:.4f}" for r in sel]
        fig.add_trace(go.Scatter(x=[r["nnz"] for r in sel], y=[r["accuracy"] for r in sel], mode="markers",
                                 name=series, text=text, hoverinfo="text"), row=1, col=1)
        fig.add_trace(go.Scatter(x=[r["nnz"] for r in sel], y=[r["ce"] for r in sel], mode="markers",
                                 name=series, text=text, hoverinfo="text", showlegend=False), row=1, col=2)
    nnz = [r["nnz"] for r in rows]
    front = pareto_front(nnz, [r["ce"] for r in rows])
    fig.add_trace(go.Scatter(x=[nnz[i] for i in front], y=[rows[i]["ce"] for i in front], mode="lines",
                             name="frontier", line={"color": "gray"}), row=1, col=2)
    base = min(r["score"] for r in rows)
    for s, xs, ys in _iso_lines(lam, [base + d for d in (0.0, 0.05, 0.1, 0.2)], min(nnz) / 2, max(nnz) * 2):
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"dash": "dot", "color": "red"}, opacity=0.5,
                                 name=f"score {s:.2f}", showlegend=False, hoverinfo="name"), row=1, col=2)
    fig.update_xaxes(type="log", title_text="nnz")
    fig.update_layout(title=f"{title} (λ = {lam:g})", height=450)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(path, include_plotlyjs=True, full_html=True)
    return path
