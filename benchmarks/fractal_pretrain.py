"""Does fractal pre-training help on small labelled subsets? (occam.fractal.pretrain)

Runs ``occam fractal experiment``'s protocol: for each seed, LeNet-5 is pre-trained to
classify fractal categories rendered on the fly at 28×28, then fine-tuned on 100 / 500 /
1,000 labelled Fashion-MNIST images (CIFAR-10 too when its files are present); the
``scratch`` arm gets the same fine-tuning steps from a random init and ``scratch+`` gets
pre-training + fine-tuning steps (matched compute). Prints
``BENCH fractal_pretrain_<task>_n<N>_<arm>_acc <mean> acc`` (and ``_std``), the
fractal-minus-scratch gaps, and the wall time; writes CSV + PNG under runs/fractal-experiment.

Usage: ``python benchmarks/fractal_pretrain.py [--quick] [--out DIR]``
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one seed, two sizes, short runs")
    ap.add_argument("--out", default="runs/fractal-experiment")
    args = ap.parse_args()

    import torch

    from occam.fractal.pretrain import ExperimentConfig, PretrainConfig, run_experiment, summarize

    torch.set_num_threads(2)
    if args.quick:
        pre = PretrainConfig(categories=16, instances=64, points=2000, epochs=1.0)
        cfg = ExperimentConfig(tasks=("fashion-mnist", "cifar10"), sizes=(100, 500), seeds=(0,),
                               finetune_steps=60, pretrain=pre, test_limit=2000)
    else:
        pre = PretrainConfig(categories=64, instances=128, points=3000, epochs=2.0)
        cfg = ExperimentConfig(tasks=("fashion-mnist", "cifar10"), sizes=(100, 500, 1000), seeds=(0, 1, 2),
                               finetune_steps=200, pretrain=pre)
    t0 = time.perf_counter()
    rows = run_experiment(cfg, args.out, log=lambda m: print(m, flush=True))
    summary = summarize(rows)
    for s in summary:
        key = f"fractal_pretrain_{s['task'].replace('-', '_')}_n{s['n_labelled']}_{s['arm'].replace('+', '_matched')}"
        print(f"BENCH {key}_acc {s['mean_accuracy']:.4f} acc")
        print(f"BENCH {key}_std {s['std_accuracy']:.4f} acc")
    by = {(s["task"], s["n_labelled"], s["arm"]): s["mean_accuracy"] for s in summary}
    for (task, n, arm), acc in sorted(by.items()):
        if arm == "fractal":
            t = task.replace("-", "_")
            print(f"BENCH fractal_pretrain_{t}_n{n}_gain_vs_scratch {100 * (acc - by[(task, n, 'scratch')]):+.2f} pp")
            print(f"BENCH fractal_pretrain_{t}_n{n}_gain_vs_matched {100 * (acc - by[(task, n, 'scratch+')]):+.2f} pp")
    print(f"BENCH fractal_pretrain_wall_seconds {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
