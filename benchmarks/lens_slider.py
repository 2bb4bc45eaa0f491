"""Weight-slider latency: one weight change → new val loss and accuracy, LeNet-5 on Fashion-MNIST.

Evaluation set: the 5,000 Fashion-MNIST val images plus the first 5,000 test images (10,000).
Weights are drawn uniformly over all of LeNet-5's weights and biases (so most land in fc1, as
in a user's random pick); each edit is one slider step (a new value for that weight). Also
reports p95 per weight tensor and the speed-up over a naive full forward pass per edit.

    .venv/bin/python benchmarks/lens_slider.py [--quick]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer edits")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--edits", type=int, default=400)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from occam.lens.editor import Editor
    from occam.lens.model import open_model
    from occam.models import build_model
    from occam.tasks import get_task

    task = get_task("fashion-mnist")
    torch.manual_seed(0)
    net = build_model("lenet5", task.input_shape, task.num_classes)  # untrained: the metric is speed
    lm = open_model(net, task, n_view=500)
    x = torch.cat([torch.from_numpy(task.floats("val")), torch.from_numpy(task.floats("test")[:5000])])
    y = torch.cat([torch.from_numpy(task.labels("val")), torch.from_numpy(task.labels("test")[:5000])])
    ed = Editor(lm, x, y)
    rng = random.Random(0)
    names = [n for n in lm.module.weight_names if lm.module.weight(n).numel() > 1]
    sizes = [lm.module.weight(n).numel() for n in names]
    n_edits = 60 if args.quick else args.edits
    times: list[float] = []
    per: dict[str, list[float]] = {}
    for _ in range(5):  # warm-up
        ed.set_weight(names[0], 0, rng.uniform(-0.3, 0.3), record=False)
    for _ in range(n_edits):
        name = rng.choices(names, weights=sizes)[0]
        i = rng.randrange(lm.module.weight(name).numel())
        t0 = time.perf_counter()
        m = ed.set_weight(name, i, rng.uniform(-0.3, 0.3), record=False)
        dt = (time.perf_counter() - t0) * 1000
        assert np.isfinite(m["ce"])
        times.append(dt)
        per.setdefault(name, []).append(dt)
    full: list[float] = []
    for _ in range(5 if args.quick else 15):
        t0 = time.perf_counter()
        ed.full_forward_metrics()
        full.append((time.perf_counter() - t0) * 1000)
    ref = ed.full_forward_metrics()
    inc = ed.metrics()
    p95 = float(np.percentile(times, 95))
    full_med = statistics.median(full)
    print(f"# {len(x)} images, {n_edits} edits, {args.threads} threads; incremental CE {inc['ce']:.6f} "
          f"vs full {ref['ce']:.6f}")
    for name, ts in sorted(per.items()):
        print(f"#   {name:14s} n={len(ts):4d} p50 {np.percentile(ts, 50):7.2f} ms  p95 {np.percentile(ts, 95):7.2f} ms")
    print(f"# full forward per edit: median {full_med:.1f} ms; incremental median {statistics.median(times):.2f} ms")
    print(f"BENCH lens_slider_p95 {p95:.1f} ms")
    print(f"BENCH lens_slider_speedup_vs_full {full_med / statistics.median(times):.1f} x")


if __name__ == "__main__":
    main()
