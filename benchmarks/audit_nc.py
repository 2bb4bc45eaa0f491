"""Neural Cleanse at one thread: process CPU seconds per model (the issue's target: ≤ 1 s per MLP on one core).

    python benchmarks/audit_nc.py            # 4 Fashion-MNIST MLPs (briefly trained), 300 steps, 40 images
    python benchmarks/audit_nc.py --arch lenet5

Each model is exported to ONNX and converted back (what the baseline runs on), then
``reverse_engineer`` (all classes at once) runs at one thread; the first run (warm-up) is not
counted. Prints ``BENCH audit_nc_cpu_seconds_per_<arch>``. CPU time, not wall time, so a busy
machine inflates it less; still noisy there.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="mlp")
    ap.add_argument("--models", type=int, default=4)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--images", type=int, default=40)
    args = ap.parse_args()

    import numpy as np
    import torch

    from occam.audit.attacks import sample_trigger
    from occam.audit.baselines import clean_images, load_torch, reverse_engineer
    from occam.audit.train import Member, export_member, train_members

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    members = [Member(seed=k, spec=sample_trigger("badnets", (1, 28, 28), rng), target=k % 10 if k % 2 else None,
                      poison_in="data" if k % 2 else "none") for k in range(args.models)]
    outs = train_members(members, task_name="fashion-mnist", arch=args.arch, epochs=0.3, train_limit=10000,
                         finetune_steps=100, eval_limit=1000)
    x = clean_images("fashion-mnist", args.images)
    tmp = ROOT / "runs" / "bench" / "audit-nc"
    tmp.mkdir(parents=True, exist_ok=True)
    times = []
    for k, out in enumerate([outs[0], *outs]):
        path = tmp / f"m{k}.onnx"
        path.write_bytes(export_member(out.model, "fashion-mnist")[0])
        model = load_torch(path)
        t0 = time.process_time()
        reverse_engineer(model, x, 10, steps=args.steps)
        if k > 0:  # the first run warms up
            times.append(time.process_time() - t0)
    print(f"neural cleanse, {args.arch}, {args.steps} steps, {args.images} images: "
          + ", ".join(f"{t:.2f}" for t in times) + " CPU-s (measured on a busy machine)")
    print(f"BENCH audit_nc_cpu_seconds_per_{args.arch.replace(':', '_')} {np.mean(times):.2f} s process CPU time, "
          f"one thread, {args.steps} steps, {args.images} images")


if __name__ == "__main__":
    main()
