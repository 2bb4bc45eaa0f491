"""Zoo generation rate (models per hour on this machine) and a projection for 1,000 models on Ray.

    python benchmarks/audit_zoo.py --quick                 # a 6-model digits zoo (about a minute)
    python benchmarks/audit_zoo.py                         # an 8-model Fashion-MNIST zoo (mlp, lenet5)
    python benchmarks/audit_zoo.py --from-report DIR/report.json   # figures of a zoo built earlier

Prints ``BENCH audit_zoo_models_per_hour <x> models/h`` (kept models per wall-clock hour, retries,
export, and the leak check included) and the projection for 1,000 models on a Ray cluster of
``--cluster-cpus`` single-thread workers, assuming: jobs are independent and scale linearly
(one model per CPU, one thread each, as here), every node holds the dataset locally, retries
happen at the rate measured here, and the two phases (clean models first, then trojans that
are checked against them) each lose at most one model-time to stragglers.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a 6-model digits zoo")
    ap.add_argument("--from-report", type=Path, help="use the report.json of a zoo built earlier")
    ap.add_argument("--models", type=int, default=8)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--cluster-cpus", type=int, default=64)
    args = ap.parse_args()

    if args.from_report:
        report = json.loads(args.from_report.read_text())
        wall = report["wall_seconds"]
    else:
        from occam.audit.zoo import ZooConfig, make_zoo

        if args.quick:
            cfg = ZooConfig(task="digits", models=6, seed=0, epochs=20, archs=("mlp",), attacks=("wanet", "blend"),
                            eval_limit=360, rate=0.2, sparse_steps=40, acc_tol=5.0, max_retries=2)
        else:
            cfg = ZooConfig(task="fashion-mnist", models=args.models, seed=0, epochs=3, archs=("mlp", "lenet5"),
                            train_limit=20000, eval_limit=2000)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            report = make_zoo(cfg, Path(tmp) / "zoo", workers=args.workers, allow_leaks=True)
            wall = time.perf_counter() - t0
    kept = report["models_kept"]
    cpu = report["train_cpu_seconds"]
    planned = report["models_planned"]
    per_model = cpu / max(1, kept)  # single-thread seconds per kept model, retries included
    rate = kept / (wall / 3600)
    cfg = report["config"]
    print(f"zoo: {kept} kept of {planned} ({report['dropped']} dropped, {report['retried']} retried), task {cfg['task']}, "
          f"archs {','.join(cfg['archs'])}, epochs {cfg['epochs']}, train_limit {cfg['train_limit']}; wall {wall:.0f} s; "
          f"{per_model:.1f} single-thread s per kept model")
    print(f"BENCH audit_zoo_models_per_hour {rate:.1f} models/h")
    hours = (1000 * per_model / args.cluster_cpus + 2 * per_model) / 3600
    print(f"BENCH audit_zoo_projection_1000_models_hours {hours:.2f} h (Ray, {args.cluster_cpus} CPUs)")


if __name__ == "__main__":
    main()
