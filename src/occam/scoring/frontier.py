"""Pareto helpers (pure NumPy) for the CLI sweep and the server's Pareto view.

Points are ``(nnz, metric)`` pairs. By default the metric is a loss (CE or score: lower is
better); pass ``maximize=True`` for accuracy.
"""

from __future__ import annotations

import numpy as np

__all__ = ["frontier", "frontier_mask", "iso_score_ce", "frontier_slope", "suggest_lam"]


def _as_points(points) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.size == 0:
        return p.reshape(0, 2)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"points must be [K, 2] (nnz, metric), got shape {p.shape}")
    return p


def frontier_mask(points, *, maximize: bool = False) -> np.ndarray:
    """Boolean mask of the non-dominated points: no other point has nnz ≤ and metric better-or-equal
    with at least one strictly better. Exact duplicates are all kept."""
    p = _as_points(points)
    if len(p) == 0:
        return np.zeros(0, dtype=bool)
    nnz, m = p[:, 0], (-p[:, 1] if maximize else p[:, 1])
    order = np.lexsort((m, nnz))  # by nnz, then metric (best first)
    mask = np.zeros(len(p), dtype=bool)
    best = np.inf
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and nnz[order[j + 1]] == nnz[order[i]]:
            j += 1
        group = order[i:j + 1]
        gbest = m[group[0]]
        if gbest < best:
            mask[group[m[group] == gbest]] = True
            best = gbest
        i = j + 1
    return mask


def frontier(points, *, maximize: bool = False) -> np.ndarray:
    """Indices of the non-dominated points (fewer non-zeros, better metric), sorted by nnz."""
    p = _as_points(points)
    idx = np.flatnonzero(frontier_mask(p, maximize=maximize))
    return idx[np.argsort(p[idx, 0], kind="stable")]


def iso_score_ce(score: float, nnz, lam: float):
    """CE on the iso-score line ``score`` at ``nnz``: ``score − log10(max(1, nnz)) / λ``."""
    n = np.maximum(1.0, np.asarray(nnz, dtype=np.float64))
    out = float(score) - np.log10(n) / float(lam)
    return float(out) if np.ndim(out) == 0 else out


def frontier_slope(points) -> float:
    """Least-squares slope dCE/dlog10(nnz) over the CE frontier of ``points`` ((nnz, ce) pairs)."""
    p = _as_points(points)
    f = p[frontier(p)]
    f = f[f[:, 0] >= 1]
    if len(f) < 2:
        raise ValueError("need at least two frontier points with nnz ≥ 1")
    x = np.log10(f[:, 0])
    return float(np.polyfit(x, f[:, 1], 1)[0])


def suggest_lam(points) -> float:
    """λ ≈ 1 / |dCE/dlog10(nnz)| on the frontier: one decade of parameters worth what it buys in CE."""
    slope = frontier_slope(points)
    if slope == 0:
        raise ValueError("the frontier is flat; λ is unbounded")
    return 1.0 / abs(slope)
