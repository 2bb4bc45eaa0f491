"""Benchmark: the ONNX interpreter (occam.interp) against onnxruntime on the zoo's architectures.

For each architecture (random weights, 1x28x28 input, 10 classes) on 1,000 images: the median
time of a full ``OnnxModule`` forward pass, of onnxruntime's run of the same file, and the
per-node dispatch overhead (the mean time of ``run_node`` on a 1-image batch, which is what the
Lens's weight editor pays per recomputed node). One thread.

    .venv/bin/python benchmarks/interp_speed.py [--images 1000] [--repeats 7]

Prints ``BENCH interp_forward_ms_<arch> <ms> ms``, ``BENCH interp_vs_ort_<arch> <ratio> x`` and
``BENCH interp_node_us_<arch> <us> us`` lines.
"""

from __future__ import annotations

import argparse
import statistics
import time


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def bench(arch: str, x, repeats: int) -> None:
    import onnxruntime as ort
    import torch

    from occam.interp import convert
    from occam.models import build_model, export_bytes

    shape = tuple(x.shape[1:])
    torch.manual_seed(0)
    data = export_bytes(build_model(arch, shape, 10), shape)
    mod = convert(data)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x.numpy()}
    with torch.no_grad():
        t_mod = _median_ms(lambda: mod(x), repeats)
        env = mod.run(x[:1])
        t_nodes = _median_ms(lambda: [mod.run_node(node, env) for node in mod.nodes], repeats * 5)
    t_ort = _median_ms(lambda: sess.run(None, feed), repeats)
    print(f"BENCH interp_forward_ms_{arch} {t_mod:.2f} ms")
    print(f"BENCH interp_vs_ort_{arch} {t_mod / t_ort:.2f} x")
    print(f"BENCH interp_node_us_{arch} {t_nodes / len(mod.nodes) * 1e3:.1f} us")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    x = torch.rand(args.images, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    for arch in ("mlp", "lenet5", "sepcnn", "vit"):
        bench(arch, x, args.repeats)


if __name__ == "__main__":
    main()
