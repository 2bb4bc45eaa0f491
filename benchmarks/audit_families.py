"""Trojan families against Neural Cleanse: planting and the anomaly index per family (a small-n first look).

    python benchmarks/audit_families.py                   # 2 trojans per family + 6 clean, Fashion-MNIST MLPs
    python benchmarks/audit_families.py --per-family 4 --clean 12

Members are trained together (``train_members``) with the zoo's default options (fine-tune
protocol, 3 epochs, 1,000 fine-tune steps, first attempt only, no retries), then each goes through
the ONNX exporter and Neural Cleanse (300 steps, 40 images, one thread). Prints per family the mean
attack success on held-out triggered images, the mean anomaly index, the fraction flagged (index
> 2), whether the smallest trigger's class is the target, and the AUROC of the anomaly index
against the clean models (with this few models, a rough reading: its chance sd is printed too).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

FAMILIES = ("badnets", "source", "all_to_all", "multi", "distributed", "low_amplitude", "nc_evasive")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-family", type=int, default=2)
    ap.add_argument("--clean", type=int, default=6)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--families", default=",".join(FAMILIES), help="comma-separated families to plant")
    args = ap.parse_args()

    import numpy as np
    import torch

    from occam.audit.attacks import sample_trigger
    from occam.audit.baselines import clean_images, load_torch, reverse_engineer
    from occam.audit.battery import chance_sd
    from occam.audit.scoring import auroc
    from occam.audit.train import Member, export_member, train_members
    from occam.audit.zoo import ZooConfig, phase_b_options

    torch.set_num_threads(1)
    cfg = ZooConfig(task="fashion-mnist")
    rng = np.random.default_rng(args.seed)
    shape = (1, 28, 28)
    rows = []
    families = tuple(args.families.split(","))
    for fam in families:
        for _ in range(args.per_family):
            target = int(rng.integers(1, 10))
            rows.append((fam, target, sample_trigger(fam, shape, rng, target=target)))
    for k in range(args.clean):
        rows.append((None, None, sample_trigger(families[k % len(families)], shape, rng)))
    members = [Member(seed=int(rng.integers(0, 2**31 - 1)), spec=spec, target=t,
                      poison_in="none" if fam is None else "data", rate=cfg.rate,
                      lr_mult=float(np.exp(rng.uniform(-1, 1) * np.log(1.4)))) for fam, t, spec in rows]
    outs = train_members(members, task_name=cfg.task, arch="mlp", **phase_b_options(asdict(cfg)))
    x = clean_images(cfg.task, 40)
    res = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, ((fam, t, _), out) in enumerate(zip(rows, outs, strict=True)):
            path = Path(tmp) / f"m{i}.onnx"
            path.write_bytes(export_member(out.model, cfg.task)[0])
            ai, k = reverse_engineer(load_torch(path), x, 10, steps=300).anomaly_index()
            res.append((fam, t, out.asr, ai, k))
            print(f"{fam or 'clean':<14} target {t} attack success {out.asr if out.asr is not None else float('nan'):.3f} "
                  f"anomaly index {ai:.2f} smallest class {k}", flush=True)
    clean_ai = [r[3] for r in res if r[0] is None]
    print(f"BENCH audit_families_clean_flagged {np.mean([a > 2 for a in clean_ai]):.2f} fraction "
          f"{len(clean_ai)} clean models, anomaly index > 2 (measured on a busy machine)")
    for fam in families:
        sub = [r for r in res if r[0] == fam]
        ai = [r[3] for r in sub]
        a = auroc([1] * len(ai) + [0] * len(clean_ai), ai + clean_ai)
        print(f"BENCH audit_families_{fam}_asr {np.mean([r[2] for r in sub]):.3f} mean {len(sub)} trojans, first try, "
              "held-out triggered images")
        print(f"BENCH audit_families_{fam}_nc_flagged {np.mean([x > 2 for x in ai]):.2f} fraction "
              f"mean anomaly index {np.mean(ai):.2f}; smallest trigger's class = target in "
              f"{sum(r[4] == r[1] for r in sub)}/{len(sub)}")
        print(f"BENCH audit_families_{fam}_nc_auroc {a:.2f} AUROC vs {len(clean_ai)} clean, chance sd "
              f"{chance_sd(len(sub), len(clean_ai)):.2f}")


if __name__ == "__main__":
    main()
