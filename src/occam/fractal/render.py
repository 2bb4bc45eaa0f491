"""The chaos-game renderer: Numba kernels that turn IFS codes into uint8 images.

One call renders a *batch* of images (one IFS code, seed and intensity each) into a
preallocated ``uint8`` array ``[B, H, W]`` (grayscale) or ``[B, H, W, 3]`` (colour).

Per image the kernel makes two passes over ``n_points`` points:

1. the chaos game in float32, storing the points. The map of each step is drawn from a
   counter-based hash of ``(seed, step)`` (SplitMix64's finalizer), so no random state is
   carried between steps and the draws do not sit on the chain's critical path; a 4,096-entry
   table turns the top bits into a map index in one load (exact: the few buckets that
   straddle a probability threshold fall back to comparisons);
2. rasterization: the bounding box of the points is scaled onto the canvas less ``pad`` pixels, the
   y axis points up, and each point writes one pixel or a 3×3 patch whose 9-bit
   on/off pattern (1..511, as in FractalDB) is drawn from a second hash stream. The patch
   *replaces* what is under it (off cells write 0), like pasting a patch image.

A point whose coordinates leave ±1e6 (a non-contractive IFS escaping to infinity) ends the
chaos game; the last ``ESCAPE_TAIL`` points, already on their way out, are dropped.
"""

from __future__ import annotations

import colorsys
import threading

import numba
import numpy as np

ESCAPE_LIMIT = np.float32(1e6)
ESCAPE_TAIL = 100
BURN_IN = 16
MAX_MAPS = 8

# FractalDB's colour mode cycles the hue of successive points over 128 steps (S = V = 0.75).
_HUES = 128
COLOUR_LUT = np.array(
    [[round(255 * c) for c in colorsys.hsv_to_rgb(i / _HUES, 0.75, 0.75)] for i in range(_HUES)],
    dtype=np.uint8,
)

TABLE_BITS = 12
# the 511 FractalDB patch patterns (1..511) as 3×3 on/off cells, row-major, top-left = bit 8
PATTERN_BITS = np.array([[(m >> (8 - c)) & 1 for c in range(9)] for m in range(1, 512)], dtype=np.uint8)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MASK_SALT = np.uint64(0xD1B54A32D192ED03)


@numba.njit(inline="always")
def _mix64(z: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """SplitMix64's finalizer: a bijective 64-bit hash with good avalanche."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True)
def hash_stream(seed: np.uint64, n: int) -> np.ndarray:  # pragma: no cover - compiled
    """The 64-bit values the kernel draws for steps ``0..n-1`` of ``seed`` (for tests and tools)."""
    out = np.empty(n, dtype=np.uint64)
    for i in range(n):
        out[i] = _mix64(seed + np.uint64(i) * _GOLDEN)
    return out


_JIT = {"cache": True, "nogil": True, "fastmath": {"contract"}}


@numba.njit(**_JIT)
def _chaos(coefs, n_maps, table, thresholds, seed, n_points, xs, ys):  # pragma: no cover - compiled
    """Pass 1: run the chaos game, store the points after burn-in; returns how many were kept.

    Step ``i`` draws ``v = hash(seed, i) >> 11`` (53 bits) and applies map
    ``k = #{j : thresholds[j] <= v}``. ``table`` resolves that from the top 12 bits of ``v``
    in one load; only the few buckets that straddle a threshold (marked 255) scan.
    """
    x = np.float32(0.0)
    y = np.float32(0.0)
    total = n_points + BURN_IN
    for i in range(total):
        v = np.int64(_mix64(seed + np.uint64(i) * _GOLDEN) >> np.uint64(11))
        k = np.int64(table[v >> 41])
        if k == 255:
            k = 0
            for j in range(n_maps - 1):
                k += v >= thresholds[j]
        nx = coefs[k, 0] * x + coefs[k, 1] * y + coefs[k, 4]
        y = coefs[k, 2] * x + coefs[k, 3] * y + coefs[k, 5]
        x = nx
        if not (abs(x) < ESCAPE_LIMIT and abs(y) < ESCAPE_LIMIT):  # also catches NaN
            return max(0, i - BURN_IN - ESCAPE_TAIL)
        if i >= BURN_IN:
            xs[i - BURN_IN] = x
            ys[i - BURN_IN] = y
    return n_points


@numba.njit(**_JIT)
def _to_pixels(xs, ys, n, h, w, pad, cxs, cys):  # pragma: no cover - compiled
    """Scale the bounding box of the points onto the canvas less ``pad``; y points up."""
    xmin = np.float32(np.inf)
    xmax = np.float32(-np.inf)
    ymin = np.float32(np.inf)
    ymax = np.float32(-np.inf)
    for j in range(n):
        xv = xs[j]
        yv = ys[j]
        xmin = min(xmin, xv)
        xmax = max(xmax, xv)
        ymin = min(ymin, yv)
        ymax = max(ymax, yv)
    span_x = w - 2 * pad - 1
    span_y = h - 2 * pad - 1
    # a degenerate axis (all points on a line) is drawn through the centre
    sx = np.float32(span_x) / (xmax - xmin) if xmax > xmin else np.float32(0.0)
    sy = np.float32(span_y) / (ymax - ymin) if ymax > ymin else np.float32(0.0)
    ox = pad if xmax > xmin else w // 2
    oy = h - 1 - pad if ymax > ymin else h // 2
    for j in range(n):
        cxs[j] = min(np.int32((xs[j] - xmin) * sx), span_x) + ox
        cys[j] = oy - min(np.int32((ys[j] - ymin) * sy), span_y)


@numba.njit(**_JIT)
def _raster_gray(cxs, cys, n, img, val, patch, mseed, patterns):  # pragma: no cover - compiled
    w = img.shape[1]
    f = img.reshape(-1)
    if not patch:
        for j in range(n):
            f[cys[j] * w + cxs[j]] = val
        return
    r = np.uint64(0)
    for j in range(n):
        if (j & 3) == 0:  # one 64-bit hash gives the patterns of four points
            r = _mix64(mseed + np.uint64(j) * _GOLDEN)
        bits = (r >> np.uint64(16 * (j & 3))) & np.uint64(0xFFFF)
        m = (bits * np.uint64(511)) >> np.uint64(16)  # pattern 1 + m, uniform in 1..511
        up = np.uint64(cys[j] * w + cxs[j] - w - 1)
        mid = up + np.uint64(w)
        low = mid + np.uint64(w)
        f[up] = patterns[m, 0]
        f[up + np.uint64(1)] = patterns[m, 1]
        f[up + np.uint64(2)] = patterns[m, 2]
        f[mid] = patterns[m, 3]
        f[mid + np.uint64(1)] = patterns[m, 4]
        f[mid + np.uint64(2)] = patterns[m, 5]
        f[low] = patterns[m, 6]
        f[low + np.uint64(1)] = patterns[m, 7]
        f[low + np.uint64(2)] = patterns[m, 8]


@numba.njit(**_JIT)
def _raster_rgb(cxs, cys, n, img, lut, patch, mseed, bits01):  # pragma: no cover - compiled
    w = img.shape[1]
    row = 3 * w
    f = img.reshape(-1)
    r = np.uint64(0)
    for j in range(n):
        ci = j & (_HUES - 1)
        c0 = lut[ci, 0]
        c1 = lut[ci, 1]
        c2 = lut[ci, 2]
        centre = np.uint64(cys[j] * row + cxs[j] * 3)
        if not patch:
            f[centre] = c0
            f[centre + np.uint64(1)] = c1
            f[centre + np.uint64(2)] = c2
            continue
        if (j & 3) == 0:
            r = _mix64(mseed + np.uint64(j) * _GOLDEN)
        bits = (r >> np.uint64(16 * (j & 3))) & np.uint64(0xFFFF)
        m = (bits * np.uint64(511)) >> np.uint64(16)
        for dy in range(3):
            base = centre + np.uint64((dy - 1) * row - 3)
            for dx in range(3):
                on = bits01[m, dy * 3 + dx]
                p = base + np.uint64(dx * 3)
                f[p] = c0 * on
                f[p + np.uint64(1)] = c1 * on
                f[p + np.uint64(2)] = c2 * on


@numba.njit(**_JIT)
def _render_batch(coefs, n_maps, tables, thresholds, seeds, intensity, n_points, pad, patch,
                  lut, bits01, out, xs, ys, cxs, cys):  # pragma: no cover - compiled
    """Render ``len(seeds)`` images into ``out``; returns the number of points kept per image."""
    n_img = out.shape[0]
    h = out.shape[1]
    w = out.shape[2]
    kept = np.zeros(n_img, dtype=np.int64)
    patterns = np.empty_like(bits01)
    for b in range(n_img):
        n = _chaos(coefs[b], n_maps[b], tables[b], thresholds[b], seeds[b], n_points, xs, ys)
        kept[b] = n
        if n == 0:
            continue
        _to_pixels(xs, ys, n, h, w, pad, cxs, cys)
        mseed = seeds[b] ^ _MASK_SALT
        if out.ndim == 4:
            _raster_rgb(cxs, cys, n, out[b], lut, patch, mseed, bits01)
        else:
            for i in range(bits01.shape[0]):
                for j in range(9):
                    patterns[i, j] = bits01[i, j] * intensity[b]
            _raster_gray(cxs, cys, n, out[b], intensity[b], patch, mseed, patterns)
    return kept


def choice_thresholds(probs: np.ndarray) -> np.ndarray:
    """The ``n - 1`` integer thresholds on a 53-bit draw ``v`` that pick map ``#{j: t[j] <= v}``.

    ``t[j] = round(P(map <= j) * 2**53)``, so map ``k`` is drawn with its normalized weight
    to within 2**-53.
    """
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    if len(p) == 0 or not np.all(np.isfinite(p)) or p.min() < 0 or p.sum() <= 0:
        raise ValueError(f"map weights must be finite, non-negative and not all zero: {p}")
    cum = np.cumsum(p / p.sum())[:-1]
    return np.round(cum * float(1 << 53)).astype(np.int64)


def choice_table(thresholds: np.ndarray) -> np.ndarray:
    """Map index per bucket of the top ``TABLE_BITS`` bits of the draw; 255 where a threshold cuts it."""
    nb = 1 << TABLE_BITS
    shift = 53 - TABLE_BITS
    lo = np.arange(nb, dtype=np.int64) << shift
    hi = lo + (1 << shift) - 1
    k_lo = np.searchsorted(thresholds, lo, side="right")
    k_hi = np.searchsorted(thresholds, hi, side="right")
    return np.where(k_lo == k_hi, k_lo, 255).astype(np.uint8)


def check_geometry(size: int | tuple[int, int], pad: int, patch: bool) -> tuple[int, int]:
    """(height, width) after checking that the canvas can hold the drawing; ValueError otherwise."""
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    need = 1 if patch else 0
    if pad < need:
        raise ValueError(f"patch rendering needs pad >= 1 (got {pad})")
    if min(h, w) < 2 * pad + 2:
        raise ValueError(f"canvas {h}x{w} is too small for pad {pad}")
    return h, w


def render_batch(
    coefs: np.ndarray,
    probs: list[np.ndarray] | np.ndarray,
    seeds: np.ndarray,
    *,
    size: int | tuple[int, int],
    n_points: int,
    patch: bool = True,
    colour: bool = False,
    pad: int | None = None,
    intensity: int | np.ndarray = 127,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one image per IFS code; returns ``(images uint8, points kept per image)``.

    ``coefs`` is a list (or array) of ``[n_maps, 6]`` arrays of ``(a, b, c, d, e, f)`` for
    ``x' = a x + b y + e``, ``y' = c x + d y + f``; ``probs`` the matching map weights;
    ``seeds`` one uint64 per image. ``pad`` defaults to :func:`default_pad`.
    """
    n_img = len(seeds)
    if len(coefs) != n_img or len(probs) != n_img:
        raise ValueError("coefs, probs and seeds must have the same length")
    if n_points < 1:
        raise ValueError("n_points must be >= 1")
    if pad is None:
        pad = default_pad(size if isinstance(size, int) else min(size), patch)
    h, w = check_geometry(size, pad, patch)
    table = np.zeros((n_img, MAX_MAPS, 6), dtype=np.float32)
    n_maps = np.zeros(n_img, dtype=np.int64)
    tables = np.zeros((n_img, 1 << TABLE_BITS), dtype=np.uint8)
    thresh = np.zeros((n_img, MAX_MAPS), dtype=np.int64)
    for b in range(n_img):
        c = np.asarray(coefs[b], dtype=np.float32).reshape(-1, 6)
        if not 1 <= len(c) <= MAX_MAPS:
            raise ValueError(f"an IFS needs 1..{MAX_MAPS} maps, got {len(c)}")
        table[b, : len(c)] = c
        n_maps[b] = len(c)
        p = np.asarray(probs[b], dtype=np.float64).reshape(-1)
        if len(p) != len(c):
            raise ValueError("each IFS needs one probability per map")
        thr = choice_thresholds(p)
        thresh[b, : len(thr)] = thr
        tables[b] = choice_table(thr)
    shape = (n_img, h, w, 3) if colour else (n_img, h, w)
    if out is None:
        out = np.zeros(shape, dtype=np.uint8)
    else:
        if out.shape != shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous uint8 array of shape {shape}")
        out[...] = 0
    inten = np.broadcast_to(np.asarray(intensity, dtype=np.uint8), (n_img,)).copy()
    bufs = _buffers(n_points)
    kept = _render_batch(table, n_maps, tables, thresh, np.asarray(seeds, dtype=np.uint64), inten,
                         int(n_points), int(pad), bool(patch), COLOUR_LUT, PATTERN_BITS, out, *bufs)
    return out, kept


_BUF = threading.local()


def _buffers(n_points: int) -> tuple[np.ndarray, ...]:
    """Point and pixel buffers reused between calls, one set per thread (the kernel releases the GIL)."""
    bufs = getattr(_BUF, "bufs", None)
    if bufs is None or len(bufs[0]) < n_points:
        _BUF.bufs = bufs = (np.empty(n_points, dtype=np.float32), np.empty(n_points, dtype=np.float32),
                            np.empty(n_points, dtype=np.int32), np.empty(n_points, dtype=np.int32))
    return bufs


def default_pad(size: int, patch: bool) -> int:
    """FractalDB pads 6 px at 362-512 px; scale that down, keeping room for a 3×3 patch."""
    return max(2 if patch else 1, round(6 * size / 362))


def filling_rate(image: np.ndarray) -> float:
    """Fraction of canvas pixels that are not background (any channel non-zero)."""
    lit = image if image.ndim == 2 else image.any(axis=-1)
    return float(np.count_nonzero(lit)) / lit.size


def mix_seed(*parts: int) -> np.uint64:
    """A 64-bit seed from integers (stable across processes and platforms)."""
    ss = np.random.SeedSequence([int(p) & 0xFFFFFFFFFFFFFFFF for p in parts])
    return np.uint64(ss.generate_state(1, dtype=np.uint64)[0])
