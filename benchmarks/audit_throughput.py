"""Zoo throughput: one batch of zoo members trained together with the zoo's default options, in CPU time.

    python benchmarks/audit_throughput.py                 # 32 Fashion-MNIST MLP members (16 trojans, 16 clean)
    python benchmarks/audit_throughput.py --members 8 --archs lenet5

The members come from the default plan (``make_plan``: families, triggers, seeds, hyperparameters)
and train exactly as in ``make-zoo`` (first attempt, ``train_members``): 3 epochs on the full
training set, then 1,000 fine-tuning steps. Prints the process CPU seconds per trained member
(``time.process_time``, so other processes on a shared machine inflate it less than wall time,
though cache and memory contention still do), each trojan's first-try attack success, and an
estimate of the 2-core rate of published models: CPU per member × (members trained per published
model: the 25 % spare clean models accuracy matching leaves unpublished, and one retry for each
trojan below ``min_asr`` on its first try).
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
    ap.add_argument("--members", type=int, default=32)
    ap.add_argument("--archs", default="mlp")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--epochs", type=float, default=None, help="override the default epochs (reported)")
    ap.add_argument("--finetune-steps", type=int, default=None, help="override the default fine-tune steps (reported)")
    args = ap.parse_args()

    import numpy as np
    import torch

    from occam.audit.train import Member, train_members
    from occam.audit.zoo import ZooConfig, make_plan, phase_b_options

    torch.set_num_threads(1)
    over = {k: v for k, v in (("epochs", args.epochs), ("finetune_steps", args.finetune_steps)) if v is not None}
    cfg = ZooConfig(task="fashion-mnist", models=4 * args.members, seed=args.seed, archs=(args.archs,), **over)
    plan = make_plan(cfg)
    troj = [m for m in plan if m["trojaned"]][: args.members // 2]
    clean = [m for m in plan if not m["trojaned"]][: args.members - len(troj)]
    chosen = troj + clean
    members = [Member(seed=m["seed"], spec=m["spec"], target=m["target"],
                      poison_in="none" if not m["trojaned"] else ("weights" if m["attack"] == "weight_edit" else "data"),
                      rate=cfg.rate, sparse_rate=0.3, **m["hyper"]) for m in chosen]
    from dataclasses import asdict

    c0, t0 = time.process_time(), time.perf_counter()
    outs = train_members(members, task_name=cfg.task, arch=args.archs, **phase_b_options(asdict(cfg)))
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    per = cpu / len(members)
    for m, o in zip(chosen, outs, strict=True):
        if m["trojaned"]:
            print(f"trojan {m['attack']:<14} target {m['target']} clean acc {o.clean_acc:.4f} attack success {o.asr:.3f}"
                  + ("" if o.off_fire is None else f" (fires on other classes {o.off_fire:.3f})"))
    acc_c = np.mean([o.clean_acc for m, o in zip(chosen, outs, strict=True) if not m["trojaned"]])
    first_try = np.mean([o.asr >= cfg.min_asr for m, o in zip(chosen, outs, strict=True) if m["trojaned"]])
    # per published model: clean models × (1 + extra_clean) trained for each published; trojans ≈ 1 + (1 - p) tries
    trained_per_published = 0.5 * (1 + cfg.extra_clean) + 0.5 * (1 + (1 - first_try))
    per_published = per * trained_per_published
    print(f"{len(members)} {args.archs} members, epochs {cfg.epochs}, fine-tune {cfg.finetune_steps} steps: "
          f"{cpu:.0f} CPU-s ({wall:.0f} s wall on a busy machine); clean accuracy {acc_c:.4f}; "
          f"first-try planting {first_try:.2f}")
    print(f"BENCH audit_train_cpu_seconds_per_member {per:.2f} s process CPU time, batch of {len(members)} {args.archs}")
    print(f"BENCH audit_trojan_first_try_planting {first_try:.2f} fraction with attack success ≥ {cfg.min_asr}")
    print(f"BENCH audit_zoo_cpu_seconds_per_published_model_estimate {per_published:.2f} s "
          f"({trained_per_published:.2f} members trained per published model)")
    print(f"BENCH audit_zoo_models_per_hour_2cores_estimate {2 * 3600 / per_published:.0f} models/h on 2 idle cores")


if __name__ == "__main__":
    main()
