"""Baseline auditors on a zoo: Neural Cleanse and the meta-classifier, per attack; and the leak check.

    python benchmarks/audit_baselines.py --zoo DIR            # a zoo built by `occam audit make-zoo`
    python benchmarks/audit_baselines.py --quick              # builds a 8-model digits zoo first

Prints ``BENCH audit_nc_auroc``, ``BENCH audit_meta_auroc``, target accuracies, per-attack AUROC
and the leak-check AUROCs, and writes a JSON summary (``--json``) and a trigger figure (``--png``).
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
    ap.add_argument("--zoo", type=Path)
    ap.add_argument("--key", type=Path, help="default ZOO/private_key/key.json")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", type=int, default=300, help="Neural Cleanse steps")
    ap.add_argument("--images", type=int, default=40, help="Neural Cleanse clean images")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--png", type=Path, help="draw the reverse-engineered triggers of one trojaned audit model here")
    args = ap.parse_args()

    from occam.audit.baselines import run_baseline
    from occam.audit.leakcheck import leak_check
    from occam.audit.scoring import score_submission

    tmp = tempfile.TemporaryDirectory()
    zoo = args.zoo
    if args.quick or zoo is None:
        from occam.audit.zoo import ZooConfig, make_zoo

        zoo = Path(tmp.name) / "zoo"
        make_zoo(ZooConfig(task="digits", models=8, seed=0, epochs=20, archs=("mlp",), attacks=("wanet", "blend"),
                           eval_limit=360, rate=0.2, sparse_steps=40, acc_tol=5.0, max_retries=2),
                 zoo, allow_leaks=True)
    key = args.key or zoo / "private_key" / "key.json"
    out: dict = {"zoo": str(zoo)}
    for name, kwargs in (("neural-cleanse", {"steps": args.steps, "images": args.images, "progress": True}), ("meta", {})):
        t0 = time.perf_counter()
        sub = run_baseline(name, zoo, Path(tmp.name) / f"{name}.json", **kwargs)
        seconds = time.perf_counter() - t0
        res = score_submission(sub, key, zoo_dir=zoo)
        res["seconds"] = round(seconds, 1)
        out[name] = res
        tag = "nc" if name == "neural-cleanse" else "meta"
        print(f"BENCH audit_{tag}_auroc {res['auroc']:.3f} (n={res['n_models']}, {res['n_trojaned']} trojaned)")
        print(f"BENCH audit_{tag}_target_accuracy {res['target_accuracy']:.3f}")
        if res["trigger_success"] is not None:
            print(f"BENCH audit_{tag}_trigger_success {res['trigger_success']:.3f}")
        for attack, d in res["per_attack"].items():
            auc = "–" if d["auroc"] is None else f"{d['auroc']:.3f}"
            print(f"  {tag} {attack:<12} AUROC {auc}  target acc {d['target_accuracy']:.2f}  (n trojaned {d['n_trojaned']})")
        print(f"  {tag} took {seconds:.0f} s")
    lc = leak_check(zoo, key_path=key)
    out["leak_check"] = lc
    for d in lc["detectors"]:
        if d["auroc"] is not None:
            print(f"BENCH audit_leak_{d['detector']}_auroc {d['auroc']:.3f}")
    print(f"  structure identical: {lc['structure_identical']}; chance sd {lc['chance_sd']}; "
          f"clean acc gap (trojan - clean) {lc['clean_acc_gap_points']} points")
    if args.png:
        from occam.audit.lens import class_triggers

        k = json.loads(key.read_text())["models"]
        name = next(n for n, v in sorted(k.items()) if v["trojaned"] and v["split"] == "audit" and v["attack"] == "badnets") \
            if any(v["attack"] == "badnets" and v["split"] == "audit" for v in k.values()) else \
            next(n for n, v in sorted(k.items()) if v["trojaned"] and v["split"] == "audit")
        manifest = json.loads((zoo / "public" / "manifest.json").read_text())
        res = class_triggers(zoo / "public" / "models" / f"{name}.onnx", task=manifest["task"], png=args.png, steps=args.steps)
        print(f"  triggers of {name} ({k[name]['attack']}, target {k[name]['target']}): smallest class "
              f"{res['smallest_class']}, anomaly index {res['anomaly_index']:.2f} -> {args.png}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
