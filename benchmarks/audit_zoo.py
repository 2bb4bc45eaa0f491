"""Audit zoo: generation rate, the 1,000-model Ray projection, baselines per attack and the leak check.

    python benchmarks/audit_zoo.py                  # a 200-model Fashion-MNIST MLP zoo (~20 min on 2 cores)
    python benchmarks/audit_zoo.py --quick          # an 8-model digits zoo (about a minute)
    python benchmarks/audit_zoo.py --zoo DIR        # figures of a zoo built earlier (rate from its report)

The zoo is kept in ``runs/bench/audit-zoo`` (rebuilt from scratch on each full run) so that the
figures can be inspected. Prints ``BENCH audit_zoo_models_per_hour`` (kept models per wall-clock
hour, retries, export and the leak check included; on a shared machine this is not the machine's
rate), ``audit_zoo_cpu_seconds_per_model`` (process CPU time of training per kept model: members are
trained vectorized in batches of ``--batch-members``, each batch's CPU time split over its members),
``audit_zoo_models_per_hour_2cores`` (what two otherwise idle cores make at that CPU cost) and the
projections for 1,000 and 10,000 models on a Ray cluster of ``--cluster-cpus`` single-thread
workers, assuming: batches are independent and scale linearly (one batch per CPU, one thread each,
as here), every node holds the dataset locally, retries happen at the rate measured here, and the
phases (clean models, trojans checked against them, replacements) each lose at most one batch-time
to stragglers. Then Neural Cleanse and the meta-classifier (AUROC and target accuracy overall and
per attack) and the leak check, through ``audit_baselines.measure``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="an 8-model digits zoo")
    ap.add_argument("--zoo", type=Path, help="use a zoo built earlier (its report.json gives the rate)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "audit-zoo")
    ap.add_argument("--models", type=int, default=200)
    ap.add_argument("--archs", default="mlp")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--cluster-cpus", type=int, default=64)
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--distill", type=float, default=0.0, help="logit matching toward clean references (0 = off)")
    ap.add_argument("--batch-members", type=int, default=32, help="members trained together (vectorized)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--attacks", default=None, help="comma-separated families (default: all)")
    args = ap.parse_args()

    from audit_baselines import measure

    tmp = tempfile.TemporaryDirectory()
    if args.zoo:
        zoo = args.zoo
        report = json.loads((zoo / "report.json").read_text())
        wall = report["wall_seconds"]
    else:
        from occam.audit.zoo import ZooConfig, make_zoo

        if args.quick:
            cfg = ZooConfig(task="digits", models=8, seed=3, epochs=20, archs=("mlp",), attacks=("wanet", "badnets"),
                            eval_limit=360, rate=0.2, finetune_steps=150, acc_tol=5.0, max_retries=2)
            zoo = Path(tmp.name) / "zoo"
        else:
            extra = {"attacks": tuple(args.attacks.split(","))} if args.attacks else {}
            cfg = ZooConfig(task="fashion-mnist", models=args.models, seed=args.seed, epochs=3,
                            archs=tuple(args.archs.split(",")), eval_limit=2000, distill=args.distill,
                            batch_members=args.batch_members, **extra)
            zoo = args.out
            if zoo.exists():
                shutil.rmtree(zoo)
        t0 = time.perf_counter()
        report = make_zoo(cfg, zoo, workers=args.workers, allow_leaks=True)
        wall = time.perf_counter() - t0
    kept = report["models_kept"]
    cpu = report.get("train_cpu_seconds")
    planned = report["models_planned"]
    if cpu is None:  # a zoo built before CPU time was recorded: its summed wall seconds (an upper bound)
        cpu = report["train_wall_seconds"] if "train_wall_seconds" in report else report.get("train_cpu_seconds_wall", 0)
    per_model = cpu / max(1, kept)  # process CPU seconds per kept model, retries and unpublished spares included
    rate = kept / (wall / 3600)
    cfg_d = report["config"]
    batch = cfg_d.get("batch_members", 1)
    print(f"zoo: {kept} kept of {planned} ({report['dropped']} dropped, {report.get('replaced', 0)} replaced, "
          f"{report['retried']} retried), task {cfg_d['task']}, archs {','.join(cfg_d['archs'])}, epochs {cfg_d['epochs']}, "
          f"batches of {batch}; wall {wall:.0f} s; {per_model:.2f} CPU-s per kept model (measured on a busy machine)")
    print(f"BENCH audit_zoo_models_per_hour {rate:.1f} models/h wall clock on this (busy, shared) machine, {kept} kept of "
          f"{planned} planned, {','.join(cfg_d['archs'])}, {cfg_d['task']}")
    print(f"BENCH audit_zoo_cpu_seconds_per_model {per_model:.2f} s process CPU time per kept model, retries included")
    print(f"BENCH audit_zoo_models_per_hour_2cores {2 * 3600 / max(per_model, 1e-9):.0f} models/h on 2 idle cores "
          "(from the CPU time)")
    for n in (1000, 10000):
        hours = (n * per_model / args.cluster_cpus + 3 * batch * per_model) / 3600
        print(f"BENCH audit_zoo_projection_{n}_models_hours {hours:.2f} h Ray, {args.cluster_cpus} single-thread CPUs")
    for attack, d in report["per_attack"].items():
        print(f"BENCH audit_zoo_kept_{attack} {d['kept']} models {d['dropped']} dropped after retries")
    if not args.no_baselines:
        measure(zoo, steps=300, images=40, workdir=Path(tmp.name))


if __name__ == "__main__":
    main()
