"""Lens views: page-load cost and each view's compute + render time, LeNet-5 on Fashion-MNIST.

Page load = open the model, the overview and the weight editor's metrics (what the page asks
first); with one activation cache that is one forward pass over the validation set. Then every
view at its cheap parameter set (``View.quick_params``; --full: its first export set), through
:func:`occam.lens.run_view` plus rendering (payload and HTML), one torch thread.

    .venv/bin/python benchmarks/lens_views.py [--quick] [--n-val N]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1,000 validation examples instead of all 5,000")
    ap.add_argument("--n-val", type=int, default=None)
    ap.add_argument("--full", action="store_true", help="each view's first export parameter set")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from occam.lens import open_model, run_view, views_for
    from occam.models import build_model
    from occam.tasks import get_task

    n_val = args.n_val or (1000 if args.quick else None)
    task = get_task("fashion-mnist")
    torch.manual_seed(0)
    net = build_model("lenet5", task.input_shape, task.num_classes)  # untrained: the metric is speed
    t0 = time.perf_counter()
    lm = open_model(net, task, n_val=n_val)
    ov = run_view(lm, "overview")
    _ = ov.payload
    ed = lm.editor.metrics()
    load = time.perf_counter() - t0
    assert ed["ce"] == ov.data["metrics"]["ce"]
    print(f"# {lm.n_val} validation examples, {len(views_for(lm))} views, one torch thread")
    print(f"BENCH lens_page_load {load:.2f} s open + overview + editor metrics (one forward pass)")
    for view in views_for(lm):
        params = (view.export_params(lm) or [view.quick_params(lm)])[0] if args.full else view.quick_params(lm)
        t0 = time.perf_counter()
        res = run_view(lm, view, params)
        _ = res.html
        dt = time.perf_counter() - t0
        print(f"BENCH lens_view_{view.name} {dt * 1000:.0f} ms compute+render {params}")


if __name__ == "__main__":
    main()
