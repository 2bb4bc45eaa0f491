"""Benchmark: the cost of `score_model` / `occam score` against a bare onnxruntime run.

Targets, on the 10,000 Fashion-MNIST test images and a hand-built LeNet-5:

- ``occam score`` as a whole process (interpreter start, CLI, guard, counting, sandboxed child,
  metrics) costs at most 1.5x a bare onnxruntime script that loads the same test set (the same
  .npy file the scorer's task cache holds) and runs the same model with the same thread count:
  ``BENCH score_cli_ratio_to_bare_ort``;
- in one process, ``score_model`` costs at most 1.5x creating a session and running it:
  ``BENCH score_overhead_ratio``.

    .venv/bin/python benchmarks/score_speed.py [--repeats 5] [--threads N] [--task fashion-mnist]

Each figure is the best of ``--repeats`` runs, the two sides interleaved so that load changes hit
both alike. PyTorch is used here only to export the model.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path


def export_lenet(path: Path, input_shape: tuple[int, ...], classes: int) -> None:
    import torch
    from torch import nn

    class LeNet5(nn.Module):
        def __init__(self):
            super().__init__()
            c, h, w = input_shape
            self.features = nn.Sequential(
                nn.Conv2d(c, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
            n = 16 * ((h // 2 - 4) // 2) * ((w // 2 - 4) // 2)
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(n, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                                      nn.Linear(84, classes))

        def forward(self, x):
            return self.head(self.features(x))

    torch.manual_seed(0)
    model = LeNet5().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        prog = torch.onnx.export(model, (torch.rand(2, *input_shape),), dynamo=True, opset_version=20,
                                 dynamic_shapes=({0: torch.export.Dim("batch")},), external_data=False,
                                 verbose=False)
        logging.disable(logging.NOTSET)
    prog.save(str(path))


BARE_SCRIPT = """
import sys, time, numpy as np, onnxruntime as ort
model, images, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
x = np.load(images).astype(np.float32) / np.float32(255.0)
o = ort.SessionOptions(); o.intra_op_num_threads = threads; o.inter_op_num_threads = 1
s = ort.InferenceSession(model, o, providers=["CPUExecutionProvider"])
y = s.run(None, {s.get_inputs()[0].name: x})[0]
print(y.shape)
"""


def bare_ort(model: Path, x, threads: int) -> float:
    import onnxruntime as ort

    t = time.perf_counter()
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    s = ort.InferenceSession(str(model), o, providers=["CPUExecutionProvider"])
    s.run(None, {s.get_inputs()[0].name: x})
    return time.perf_counter() - t


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="fashion-mnist")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    import numpy as np

    from occam.scoring import score_model
    from occam.scoring.sandbox import default_threads
    from occam.tasks import get_task

    task = get_task(args.task)
    threads = args.threads or default_threads()
    images = task.images("test")  # materializes the split once
    x = images.astype(np.float32) / np.float32(255.0)
    with tempfile.TemporaryDirectory(prefix="occam-bench-") as tmp:
        model = Path(tmp) / "lenet5.onnx"
        export_lenet(model, task.input_shape, task.num_classes)
        npy = Path(tmp) / "test_x.npy"
        np.save(npy, images)

        bare_ort(model, x[:64], threads)  # warm-up
        score_model(model, task, threads=threads)
        bare, scored = [], []
        for _ in range(args.repeats):  # interleaved, so load changes hit both alike
            bare.append(bare_ort(model, x, threads))
            t = time.perf_counter()
            res = score_model(model, task, threads=threads)
            scored.append(time.perf_counter() - t)
        b, s = min(bare), min(scored)

        occam = Path(sys.executable).with_name("occam")
        occam_cmd = ([str(occam)] if occam.exists() else [sys.executable, "-m", "occam"])
        score_cmd = [*occam_cmd, "score", str(model), "--task", task.name, "--threads", str(threads), "--json"]
        bare_cmd = [sys.executable, "-c", BARE_SCRIPT, str(model), str(npy), str(threads)]
        cmd_scored, cmd_bare = [], []
        for _ in range(args.repeats):
            cmd_bare.append(wall(bare_cmd))
            cmd_scored.append(wall(score_cmd))
        cb, cs = min(cmd_bare), min(cmd_scored)

    print(f"# task {task.name}: {res.n} test images, nnz {res.nnz}, threads {threads}, cpus {os.cpu_count()}")
    print(f"BENCH score_cli_seconds {cs:.3f} s")
    print(f"BENCH bare_ort_seconds {cb:.3f} s")
    print(f"BENCH score_cli_ratio_to_bare_ort {cs / cb:.2f} x")
    print(f"BENCH score_overhead_ratio {s / b:.2f} x")
    print(f"BENCH score_seconds {s:.3f} s")
    print(f"BENCH bare_ort_inprocess_seconds {b:.3f} s")


if __name__ == "__main__":
    main()
