"""IFS codes: the category search of FractalDB, the contractive sampler, and instances.

An IFS code is ``coefs`` ``[n_maps, 6]`` (``a, b, c, d, e, f`` for
``x' = a x + b y + e``, ``y' = c x + d y + f``) plus map weights ``probs``.

- :func:`random_ifs` draws FractalDB's candidates: 2 to 7 maps, all six parameters from
  U(-1, 1), each map chosen with probability proportional to ``|ad - bc|``.
- :func:`search_category` repeats that until the rendered attractor fills at least
  ``threshold`` (20 %) of the canvas (Kataoka et al. 2020).
- :func:`contractive_ifs` is Anderson & Farrell's (2022) sampler: each linear part is
  ``R(θ) diag(σ1, σ2) D R(φ)`` with singular values ``σ ≤ 1`` whose σ-factor
  ``Σ σ1 + 2 σ2`` is drawn from ``U((5 + N)/2, (6 + N)/2)``, so every code is contractive
  and no acceptance search is needed.

Instances of a category (FractalDB-1k's 1,000 = 25 weight variants × 10 patch renders ×
4 flips): instance ``i`` has flip ``i % 4``, weight variant ``(i // 4) % 25`` and render
``i // 100``. Variant 0 is the code itself; variant ``1 + 4 p + j`` multiplies parameter
``p`` (a..f) of every map by ``WEIGHTS[j]`` (0.2, 0.6, 1.4, 1.8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from occam.fractal.config import SAMPLERS
from occam.fractal.render import filling_rate, mix_seed, render_batch

PARAM_NAMES = ("a", "b", "c", "d", "e", "f")
WEIGHTS = (0.2, 0.6, 1.4, 1.8)
N_VARIANTS = 1 + len(PARAM_NAMES) * len(WEIGHTS)  # 25
N_FLIPS = 4
FLIP_NAMES = ("none", "up-down", "left-right", "both")


@dataclass(frozen=True)
class IFS:
    coefs: np.ndarray  # [n_maps, 6] float64
    probs: np.ndarray  # [n_maps] float64, sums to 1

    @property
    def n_maps(self) -> int:
        return len(self.coefs)

    def to_json(self) -> dict:
        return {"coefs": self.coefs.tolist(), "probs": self.probs.tolist()}

    @classmethod
    def from_json(cls, d: dict) -> IFS:
        return cls(np.asarray(d["coefs"], dtype=np.float64), np.asarray(d["probs"], dtype=np.float64))


def det_probs(coefs: np.ndarray) -> np.ndarray | None:
    """Weights proportional to ``|det|`` of each linear part; None if they are all zero."""
    det = np.abs(coefs[:, 0] * coefs[:, 3] - coefs[:, 1] * coefs[:, 2])
    total = det.sum()
    if not np.isfinite(total) or total <= 0:
        return None
    return det / total


def random_ifs(rng: np.random.Generator, min_maps: int = 2, max_maps: int = 7) -> IFS:
    """One FractalDB candidate: ``n ~ U{min_maps..max_maps}`` maps with parameters from U(-1, 1)."""
    while True:
        n = int(rng.integers(min_maps, max_maps + 1))
        coefs = rng.uniform(-1.0, 1.0, size=(n, 6))
        probs = det_probs(coefs)
        if probs is not None:
            return IFS(coefs, probs)


def contractive_ifs(rng: np.random.Generator, min_maps: int = 2, max_maps: int = 4) -> IFS:
    """Anderson & Farrell's sampler: contractive maps from sampled singular values."""
    n = int(rng.integers(min_maps, max_maps + 1))
    alpha = rng.uniform(0.5 * (5 + n), 0.5 * (6 + n))
    # split alpha into per-map budgets s_k = σ1 + 2 σ2 with 0 <= s_k <= 3 (σ2 <= σ1 <= 1)
    budgets = np.empty(n)
    rest = alpha
    for k in range(n - 1):
        left = n - k - 1
        lo, hi = max(0.0, rest - 3.0 * left), min(3.0, rest)
        budgets[k] = rng.uniform(lo, hi)
        rest -= budgets[k]
    budgets[-1] = rest
    coefs = np.empty((n, 6))
    for k, s in enumerate(budgets):
        s1 = rng.uniform(s / 3.0, min(s, 1.0))
        s2 = (s - s1) / 2.0
        theta, phi = rng.uniform(0, 2 * np.pi, size=2)
        signs = np.diag(rng.choice([-1.0, 1.0], size=2))
        lin = _rot(theta) @ np.diag([s1, s2]) @ signs @ _rot(phi)
        coefs[k, :4] = lin.reshape(-1)
        coefs[k, 4:] = rng.uniform(-1.0, 1.0, size=2)
    probs = det_probs(coefs)
    if probs is None:  # every σ2 = 0: degenerate but valid; choose maps uniformly
        probs = np.full(n, 1.0 / n)
    return IFS(coefs, probs)


def _rot(t: float) -> np.ndarray:
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, -s], [s, c]])


@dataclass(frozen=True)
class SearchResult:
    ifs: IFS
    fill: float
    tries: int


def search_category(
    seed: int,
    category: int,
    *,
    sampler: str = "search",
    threshold: float = 0.2,
    size: int = 256,
    n_points: int = 100_000,
    max_tries: int = 100_000,
    batch: int = 16,
) -> SearchResult:
    """The IFS code of ``category``: draws candidates until one fills >= ``threshold`` of the canvas.

    Depends only on ``(seed, category)``, so categories can be searched in any order and
    on any worker. The filling rate is measured on a ``size``×``size`` point rendering
    (no patch) of ``n_points`` points. With ``sampler="contractive"`` the first code is
    accepted (its filling rate is still measured and reported).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; use one of {SAMPLERS}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(category), 0x1F5]))
    tries = 0
    while tries < max_tries:
        cands = [contractive_ifs(rng) if sampler == "contractive" else random_ifs(rng)
                 for _ in range(1 if sampler == "contractive" else batch)]
        seeds = np.array([mix_seed(seed, category, tries + j, 0x5EA) for j in range(len(cands))],
                         dtype=np.uint64)
        imgs, _ = render_batch([c.coefs for c in cands], [c.probs for c in cands], seeds,
                               size=size, n_points=n_points, patch=False, pad=1)
        for j, cand in enumerate(cands):
            tries += 1
            fill = filling_rate(imgs[j])
            if sampler == "contractive" or accept(fill, threshold):
                return SearchResult(cand, fill, tries)
    raise RuntimeError(f"no IFS code for category {category} reached filling rate {threshold} "
                       f"in {max_tries} tries")


def accept(fill: float, threshold: float = 0.2) -> bool:
    """FractalDB's rule: a category is kept when its attractor fills at least ``threshold``."""
    return fill >= threshold


def weight_variant(ifs: IFS, variant: int) -> IFS:
    """Variant 0: the code itself; variant ``1 + 4 p + j``: parameter ``p`` of every map × ``WEIGHTS[j]``.

    The map probabilities stay those of the category (as in FractalDB).
    """
    if not 0 <= variant < N_VARIANTS:
        raise ValueError(f"variant must be in 0..{N_VARIANTS - 1}")
    if variant == 0:
        return ifs
    param, j = divmod(variant - 1, len(WEIGHTS))
    coefs = ifs.coefs.copy()
    coefs[:, param] *= WEIGHTS[j]
    return IFS(coefs, ifs.probs)



def instance_spec(instance: int) -> tuple[int, int, int]:
    """(flip, weight variant, render index) of instance ``instance`` of a category."""
    if instance < 0:
        raise ValueError("instance must be >= 0")
    return instance % N_FLIPS, (instance // N_FLIPS) % N_VARIANTS, instance // (N_FLIPS * N_VARIANTS)


def flip(image: np.ndarray, kind: int) -> np.ndarray:
    """Flip ``[..., H, W(, 3)]``-shaped images: 0 none, 1 up-down, 2 left-right, 3 both (a copy)."""
    hw = (-3, -2) if image.ndim >= 3 and image.shape[-1] == 3 else (-2, -1)
    if kind == 0:
        return image.copy()
    if kind == 1:
        return np.flip(image, axis=hw[0]).copy()
    if kind == 2:
        return np.flip(image, axis=hw[1]).copy()
    if kind == 3:
        return np.flip(image, axis=hw).copy()
    raise ValueError("flip kind must be 0..3")


def render_instances(
    ifs: IFS,
    instances: list[int] | np.ndarray,
    *,
    seed: int,
    category: int,
    size: int,
    n_points: int,
    patch: bool = True,
    colour: bool = False,
    pad: int | None = None,
    intensity: int = 127,
) -> np.ndarray:
    """Images of the given instance numbers of one category, uint8 ``[len, H, W(, 3)]``.

    The four flips of a (variant, render) pair share one rendering.
    """
    instances = [int(i) for i in instances]
    specs = [instance_spec(i) for i in instances]
    keys = sorted({(v, r) for _, v, r in specs})
    index = {k: j for j, k in enumerate(keys)}
    codes = [weight_variant(ifs, v) for v, _ in keys]
    seeds = np.array([mix_seed(seed, category, v, r, 0x1A6) for v, r in keys], dtype=np.uint64)
    base, _ = render_batch([c.coefs for c in codes], [c.probs for c in codes], seeds, size=size,
                           n_points=n_points, patch=patch, colour=colour, pad=pad, intensity=intensity)
    out = np.empty((len(instances), *base.shape[1:]), dtype=np.uint8)
    for j, (f, v, r) in enumerate(specs):
        out[j] = flip(base[index[(v, r)]], f)
    return out
