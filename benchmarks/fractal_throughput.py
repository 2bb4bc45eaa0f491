"""FractalDB rendering throughput at the paper's settings (362 px, 200,000 points, 3×3 patches).

Prints ``BENCH <metric> <value> <unit>`` lines:

- ``fractal_renders_per_s_1core``: distinct renderings (each its own 200k-point chaos game)
  per second in one process, into uint8 arrays; the headline figure.
- ``fractal_images_per_s_1core``: images per second counting FractalDB's four flips of each
  rendering as images (how FractalDB-1k's 1,000 instances per category are made).
- ``..._2core``: the same with two worker processes (occam.executor, one category per job).
- ``fractal_naive_renders_per_s``: a straightforward per-point NumPy/Python renderer, in
  this process, and the speed-up over it.
- ``fractalDB1k_projected_minutes_2core``: FractalDB-1k (1,000 × 1,000 images).

Usage: ``python benchmarks/fractal_throughput.py [--quick]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

SIZE, POINTS = 362, 200_000


def naive_render(coefs: np.ndarray, probs: np.ndarray, seed: int, n_points: int, size: int) -> np.ndarray:
    """The original renderer's algorithm, written plainly: one Python step per point."""
    rng = np.random.default_rng(seed)
    choice = rng.choice(len(coefs), size=n_points, p=probs)
    xs, ys = np.empty(n_points), np.empty(n_points)
    x = y = 0.0
    for i in range(n_points):
        a, b, c, d, e, f = coefs[choice[i]]
        x, y = a * x + b * y + e, c * x + d * y + f
        xs[i], ys[i] = x, y
    pad = 6
    px = ((xs - xs.min()) / (xs.max() - xs.min()) * (size - 2 * pad - 1) + pad).astype(int)
    py = ((ys - ys.min()) / (ys.max() - ys.min()) * (size - 2 * pad - 1) + pad).astype(int)
    img = np.zeros((size, size), dtype=np.uint8)
    masks = rng.integers(1, 512, size=n_points)
    for i in range(n_points):
        patch = ((masks[i] >> np.arange(8, -1, -1)) & 1).reshape(3, 3) * 127
        img[py[i] - 1:py[i] + 2, px[i] - 1:px[i] + 2] = patch
    return img


def render_job(seed: int, category: int, renders: int) -> tuple[int, float, float, float]:
    """Render ``renders`` distinct images (variants × renders) of one category.

    Returns (count, seconds, start, end) with wall-clock start/end stamps of the rendering.
    """
    from occam.fractal.fractaldb import FractalConfig, category_ifs
    from occam.fractal.ifs import render_instances

    cfg = FractalConfig(categories=category + 1, instances=4 * renders, size=SIZE, points=POINTS, seed=seed)
    ifs, _, _ = category_ifs(cfg, category)
    render_instances(ifs, [0], seed=seed, category=category, size=64, n_points=100)  # compile / load cache
    start = time.time()
    t0 = time.perf_counter()
    # instances 0, 4, 8, ...: one per (variant, render), no flips
    imgs = render_instances(ifs, list(range(0, 4 * renders, 4)), seed=seed, category=category, size=SIZE,
                            n_points=POINTS)
    dt = time.perf_counter() - t0
    assert imgs.shape == (renders, SIZE, SIZE)
    return renders, dt, start, time.time()


def flips_job(seed: int, category: int) -> tuple[int, float]:
    """All 100 instances of 25 renderings (4 flips each) of one category; (images, seconds)."""
    from occam.fractal.fractaldb import FractalConfig, render_category

    cfg = FractalConfig(categories=category + 1, instances=100, size=SIZE, points=POINTS, seed=seed)
    from occam.fractal.fractaldb import category_ifs

    ifs, _, _ = category_ifs(cfg, category)
    t0 = time.perf_counter()
    imgs = render_category(cfg, category, ifs)
    return len(imgs), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer categories and repeats")
    args = ap.parse_args()
    from occam.executor import run_jobs

    cats = 4 if args.quick else 12
    renders = 25 if args.quick else 50

    # 1 core: best of the per-category rates is noise-prone; report total work / total time
    results = [render_job(0, c, renders) for c in range(cats)]  # (count, seconds, start, end)
    n1 = sum(r[0] for r in results)
    t1 = sum(r[1] for r in results)
    r1 = n1 / t1
    print(f"BENCH fractal_renders_per_s_1core {r1:.1f} img/s", flush=True)
    fl = [flips_job(0, c) for c in range(min(cats, 4))]
    i1 = sum(f[0] for f in fl) / sum(f[1] for f in fl)
    print(f"BENCH fractal_images_per_s_1core {i1:.1f} img/s", flush=True)

    # 2 cores: two worker processes rendering at once. Throughput = renderings / the wall-clock
    # window from the first rendering's start to the last one's end (process start-up and the
    # per-category search excluded, as in the 1-core figure).
    res2 = run_jobs(render_job, [(0, c, renders) for c in range(cats)], workers=2, star=True, progress=False)
    n2 = sum(r[0] for r in res2)
    r2 = n2 / (max(r[3] for r in res2) - min(r[2] for r in res2))
    print(f"BENCH fractal_renders_per_s_2core {r2:.1f} img/s", flush=True)
    fl2 = run_jobs(flips_job, [(0, c) for c in range(4)], workers=2, star=True, progress=False)
    i2 = sum(f[0] for f in fl2) / (sum(f[1] for f in fl2) / 2)
    print(f"BENCH fractal_images_per_s_2core {i2:.1f} img/s", flush=True)

    # naive baseline in this process
    from occam.fractal.fractaldb import FractalConfig, category_ifs

    ifs, _, _ = category_ifs(FractalConfig(), 0)
    n_naive = 1 if args.quick else 2
    t0 = time.perf_counter()
    for s in range(n_naive):
        naive_render(ifs.coefs, ifs.probs, s, POINTS, SIZE)
    naive = n_naive / (time.perf_counter() - t0)
    print(f"BENCH fractal_naive_renders_per_s {naive:.2f} img/s", flush=True)
    print(f"BENCH fractal_speedup_vs_naive_1core {r1 / naive:.0f} x", flush=True)
    print(f"BENCH fractal_speedup_vs_original_1core {r1 / 0.55:.0f} x", flush=True)
    print(f"BENCH fractal_speedup_vs_numba_reimpl_1core {r1 / 40:.1f} x", flush=True)
    # FractalDB-1k: 1,000 categories × 1,000 instances = 250,000 renderings × 4 flips
    print(f"BENCH fractalDB1k_projected_minutes_2core {1_000_000 / i2 / 60:.1f} min", flush=True)
    print(f"BENCH fractalDB1k_projected_minutes_2core_no_flip_reuse {1_000_000 / r2 / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
