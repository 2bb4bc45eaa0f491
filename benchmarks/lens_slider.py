"""Weight-slider latency: one weight change → new val loss and accuracy, on 10,000 Fashion-MNIST images.

Evaluation set: the 5,000 Fashion-MNIST val images plus the first 5,000 test images (10,000).
Every weight tensor the Lens offers a slider for (all but scalars) gets the same number of
edits, each a new value for a random element of it (one slider step). Three models, untrained
(the metric is speed, and an edit costs the same whatever the weights are):

- ``lenet5``: the zoo's LeNet-5, as exported by ``occam`` (BatchNorm-free);
- ``lenet_bn``: the same layout with a BatchNormalization after each conv and fc1, kept in the graph;
- ``resnet``: a small residual network (stem conv, max pool, two 8-channel basic blocks with
  BatchNorm, a stride-2 conv, one 16-channel block, global average pool, a linear head).

Per model and tensor it prints the p95 edit latency; for LeNet-5 also the overall p95 and the
worst tensor's, for the BN and residual models the ratio of each tensor's p95 to a full forward
pass on the same images (the issue's target: at most 0.1). ``release`` is what letting go of a
slider costs (``Editor.sync``), measured after every tensor's run of edits.

    .venv/bin/python benchmarks/lens_slider.py [--quick] [--threads 1] [--wide-threads 2] [--per-tensor 30]
        [--per-tensor-deep 8] [--models lenet5,lenet_bn,resnet]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn


class _Graph:
    """A tiny builder for hand-written ONNX image classifiers (1×28×28 → 10 logits), PyTorch-initialised."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0

    def _name(self, kind: str) -> str:
        self.n += 1
        return f"{kind}{self.n}"

    def _init(self, name: str, t: torch.Tensor) -> str:
        self.inits.append(numpy_helper.from_array(t.detach().numpy().astype(np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self._name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1, pad: int = 0) -> str:
        c = nn.Conv2d(cin, cout, k)
        name = self._name("conv")
        return self.node("Conv", [x, self._init(f"{name}.weight", c.weight), self._init(f"{name}.bias", c.bias)],
                         kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)

    def bn(self, x: str, c: int) -> str:
        name = self._name("bn")
        g = torch.Generator().manual_seed(self.n)
        params = [1 + 0.1 * torch.randn(c, generator=g), 0.1 * torch.randn(c, generator=g),
                  0.1 * torch.randn(c, generator=g), 1 + torch.rand(c, generator=g)]
        keys = ["scale", "bias", "mean", "var"]
        return self.node("BatchNormalization", [x] + [self._init(f"{name}.{k}", p) for k, p in zip(keys, params,
                                                                                                    strict=True)])

    def linear(self, x: str, fin: int, fout: int) -> str:
        lin = nn.Linear(fin, fout)
        name = self._name("fc")
        return self.node("Gemm", [x, self._init(f"{name}.weight", lin.weight), self._init(f"{name}.bias", lin.bias)],
                         transB=1)

    def pool(self, x: str) -> str:
        return self.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])

    def model(self, out: str) -> bytes:
        self.nodes.append(helper.make_node("Identity", [out], ["logits"]))
        g = helper.make_graph(self.nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                              ["N", 1, 28, 28])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        return m.SerializeToString()


def lenet_bn() -> bytes:
    g = _Graph()
    h = g.pool(g.node("Relu", [g.bn(g.conv("x", 1, 6, 5, pad=2), 6)]))
    h = g.pool(g.node("Relu", [g.bn(g.conv(h, 6, 16, 5), 16)]))
    h = g.node("Flatten", [h])
    h = g.node("Relu", [g.bn(g.linear(h, 400, 120), 120)])
    h = g.node("Relu", [g.linear(h, 120, 84)])
    return g.model(g.linear(h, 84, 10))


def resnet() -> bytes:
    g = _Graph()

    def block(h: str, c: int) -> str:
        a = g.node("Relu", [g.bn(g.conv(h, c, c, 3, pad=1), c)])
        b = g.bn(g.conv(a, c, c, 3, pad=1), c)
        return g.node("Relu", [g.node("Add", [h, b])])

    h = g.pool(g.node("Relu", [g.conv("x", 1, 8, 3, pad=1)]))  # 8×14×14
    h = block(block(h, 8), 8)
    h = g.node("Relu", [g.bn(g.conv(h, 8, 16, 3, stride=2, pad=1), 16)])  # 16×7×7
    h = block(h, 16)
    h = g.node("Flatten", [g.node("GlobalAveragePool", [h])])
    return g.model(g.linear(h, 16, 10))


def _metric(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def bench(label: str, lm, x: torch.Tensor, y: torch.Tensor, per_tensor: int, threads: int, wide: int,
          full_runs: int) -> dict:
    from occam.lens.editor import Editor

    ed = Editor(lm, x, y, threads=threads, wide_threads=wide)
    mod = lm.module
    names = [n for n in mod.weight_names if mod.weight(n).numel() > 1]
    rng = random.Random(0)
    for _ in range(3):  # warm-up
        ed.set_weight(names[-1], 0, rng.uniform(-0.3, 0.3), record=False)
    per: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}  # process CPU time: a load-independent view on a shared machine
    release: list[float] = []
    for name in names:
        w = mod.weight(name)
        for _ in range(per_tensor):
            i = rng.randrange(w.numel())
            v = float(w.view(-1)[i]) + rng.uniform(-0.3, 0.3)
            if name.endswith(".var"):
                v = abs(v) + 0.05
            t0, c0 = time.perf_counter(), time.process_time()
            m = ed.set_weight(name, i, v, record=False)
            per.setdefault(name, []).append((time.perf_counter() - t0) * 1000)
            cpu.setdefault(name, []).append((time.process_time() - c0) * 1000)
            assert math.isfinite(m["ce"])
        t0 = time.perf_counter()
        ed.sync()
        release.append((time.perf_counter() - t0) * 1000)
    full: list[float] = []
    full_cpu: list[float] = []
    torch.set_num_threads(wide)  # the full pass gets the threads the editor's large ops get
    for _ in range(full_runs):
        t0, c0 = time.perf_counter(), time.process_time()
        ref = ed.full_forward_metrics()
        full.append((time.perf_counter() - t0) * 1000)
        full_cpu.append((time.process_time() - c0) * 1000)
    inc = ed.metrics()
    assert abs(inc["ce"] - ref["ce"]) < 1e-4 and inc["accuracy"] == ref["accuracy"], (inc, ref)
    torch.set_num_threads(threads)
    full_med = statistics.median(full)
    p95 = {n: float(np.percentile(ts, 95)) for n, ts in per.items()}
    cpu95 = {n: float(np.percentile(ts, 95)) for n, ts in cpu.items()}
    cpu_full = statistics.median(full_cpu)
    print(f"# {label}: {len(x)} images, {per_tensor} edits per tensor, {threads}/{wide} threads; incremental CE "
          f"{inc['ce']:.6f} vs full {ref['ce']:.6f}; full forward median {full_med:.1f} ms; "
          f"(CPU {cpu_full:.1f} ms); full re-forwards on release {ed.full_syncs} of {len(release)}")
    for n, ts in per.items():
        print(f"#   {n:22s} p50 {np.percentile(ts, 50):8.2f} ms  p95 {p95[n]:8.2f} ms  "
              f"p95/full {p95[n] / full_med:.3f}  CPU p95 {cpu95[n]:8.2f} ms  CPU p95/full {cpu95[n] / cpu_full:.3f}")
    return {"cpu95": cpu95, "cpu_full": cpu_full,
            "p95": p95, "all": [t for ts in per.values() for t in ts], "full": full_med, "release": release}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer edits")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for element-wise work (the Lens default)")
    ap.add_argument("--wide-threads", type=int, default=2, help="threads for large convs/matmuls and the full pass")
    ap.add_argument("--per-tensor", type=int, default=30, help="edits per weight tensor (LeNet-5)")
    ap.add_argument("--per-tensor-deep", type=int, default=8,
                    help="edits per weight tensor for the BN and residual models (46 tensors, slow edits)")
    ap.add_argument("--models", default="lenet5,lenet_bn,resnet")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from occam.lens.model import open_model
    from occam.models import build_model
    from occam.tasks import get_task

    task = get_task("fashion-mnist")
    x = torch.cat([torch.from_numpy(task.floats("val")), torch.from_numpy(task.floats("test")[:5000])])
    y = torch.cat([torch.from_numpy(task.labels("val")), torch.from_numpy(task.labels("test")[:5000])])
    y = y.long()
    per_tensor = 8 if args.quick else args.per_tensor
    per_deep = 3 if args.quick else args.per_tensor_deep
    full_runs = 3 if args.quick else 7
    models = args.models.split(",")
    torch.manual_seed(0)
    if "lenet5" in models:
        lm = open_model(build_model("lenet5", task.input_shape, task.num_classes), task, n_view=500)
        r = bench("lenet5", lm, x, y, per_tensor, args.threads, args.wide_threads, full_runs)
        for n, v in r["p95"].items():
            print(f"BENCH lens_slider_p95_{_metric(n)} {v:.1f} ms")
        print(f"BENCH lens_slider_p95_worst_tensor {max(r['p95'].values()):.1f} ms")
        print(f"BENCH lens_slider_cpu_p95_worst_tensor {max(r['cpu95'].values()):.1f} ms")
        print(f"BENCH lens_slider_p95 {np.percentile(r['all'], 95):.1f} ms")
        print(f"BENCH lens_slider_release_p95 {np.percentile(r['release'], 95):.1f} ms")
        print(f"BENCH lens_slider_full_forward {r['full']:.1f} ms")
        print(f"BENCH lens_slider_speedup_vs_full {r['full'] / statistics.median(r['all']):.1f} x")
    for label, build in (("lenet_bn", lenet_bn), ("resnet", resnet)):
        if label not in models:
            continue
        lm = open_model(build(), task, n_view=500, name=label)
        r = bench(label, lm, x, y, per_deep, args.threads, args.wide_threads, full_runs)
        for n, v in r["p95"].items():
            print(f"BENCH lens_slider_{label}_p95_{_metric(n)} {v:.1f} ms")
        for n, v in r["p95"].items():
            print(f"BENCH lens_slider_{label}_ratio_{_metric(n)} {v / r['full']:.3f} x_full")
        print(f"BENCH lens_slider_{label}_worst_ratio {max(r['p95'].values()) / r['full']:.3f} x_full")
        print(f"BENCH lens_slider_{label}_cpu_worst_ratio {max(r['cpu95'].values()) / r['cpu_full']:.3f} x_full")
        print(f"BENCH lens_slider_{label}_full_forward {r['full']:.1f} ms")
        print(f"BENCH lens_slider_{label}_release_p95 {np.percentile(r['release'], 95):.1f} ms")


if __name__ == "__main__":
    main()
