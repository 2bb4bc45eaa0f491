"""Weight-slider latency through the isolated Lens (the arena's): the model lives in a limited child process and
every edit crosses a pipe. Compared with the same edits on the same model opened in this process.

LeNet-5 (untrained: the metric is speed) on Fashion-MNIST as ONNX bytes, opened as the arena opens an upload
(``isolated_client``: one long-lived child, one thread, the arena's default limits) and in-process
(``local_client``, as ``occam lens MODEL``); the Lens's own validation set. Each edit is one slider step on a
weight drawn uniformly over all weights. ``compute_ms`` is the edit inside the host, so round trip minus compute
is the pipe's (and pickling's) overhead.

    python benchmarks/lens_isolated.py [--edits 300] [--task fashion-mnist]

Prints ``BENCH lens_isolated_edit_p95``, ``BENCH lens_local_edit_p95`` and the median overhead per edit. Timings
on a busy machine are noisy: compare medians, and both modes are measured in the same run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _lenet_bytes(task_name: str) -> bytes:
    import torch

    from occam.models import build_model
    from occam.models.export import export_onnx
    from occam.tasks import get_task

    task = get_task(task_name)
    torch.manual_seed(0)
    net = build_model("lenet5", task.input_shape, task.num_classes)
    with tempfile.TemporaryDirectory() as tmp:
        return export_onnx(net, task.input_shape, Path(tmp) / "m.onnx").read_bytes()


def _run(client, edits: int, seed: int = 0) -> tuple[list[float], list[float]]:  # noqa: ANN001
    weights = client.view("editor", {})["data"]["weights"]
    names = [w["name"] for w in weights if w["size"] > 1]
    sizes = [int(w["size"]) for w in weights if w["size"] > 1]
    rng = random.Random(seed)
    for _ in range(5):  # warm-up
        client.edit(names[0], 0, rng.uniform(-0.3, 0.3))
    rt, comp = [], []
    for _ in range(edits):
        name = rng.choices(names, weights=sizes)[0]
        i = rng.randrange(sizes[names.index(name)])
        t0 = time.perf_counter()
        m = client.edit(name, i, rng.uniform(-0.3, 0.3))
        rt.append((time.perf_counter() - t0) * 1000)
        comp.append(float(m["compute_ms"]))
        assert m["ce"] is not None and np.isfinite(m["ce"])
    client.editor("reset")
    return rt, comp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edits", type=int, default=300)
    ap.add_argument("--task", default="fashion-mnist")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)  # the isolated child runs one thread too
    from occam.isolate import IsolationLimits
    from occam.lens.kinds import open_model
    from occam.lens.views import LensSession
    from occam.tasks import get_task
    from occam.web.lens_isolated import isolated_client, local_client

    data = _lenet_bytes(a.task)
    t0 = time.perf_counter()
    iso = isolated_client(data, a.task, "lenet5", limits=IsolationLimits(threads=1))
    opened = time.perf_counter() - t0
    try:
        irt, icomp = _run(iso, a.edits)
    finally:
        iso.close()
    local = local_client(LensSession(open_model(data, get_task(a.task), name="lenet5")))
    lrt, lcomp = _run(local, a.edits)
    over = [r - c for r, c in zip(irt, icomp, strict=True)]
    print(f"# {a.edits} edits on LeNet-5 ({a.task}), one thread; isolated child opened in {opened:.1f} s")
    print(f"# isolated: round trip median {statistics.median(irt):.2f} ms p95 {np.percentile(irt, 95):.2f} ms "
          f"(compute median {statistics.median(icomp):.2f} ms)")
    print(f"# in-process: median {statistics.median(lrt):.2f} ms p95 {np.percentile(lrt, 95):.2f} ms "
          f"(compute median {statistics.median(lcomp):.2f} ms)")
    print(f"BENCH lens_isolated_edit_p95 {np.percentile(irt, 95):.1f} ms")
    print(f"BENCH lens_isolated_edit_median {statistics.median(irt):.2f} ms")
    print(f"BENCH lens_local_edit_p95 {np.percentile(lrt, 95):.1f} ms")
    print(f"BENCH lens_isolated_pipe_overhead_median {statistics.median(over):.2f} ms")


if __name__ == "__main__":
    main()
