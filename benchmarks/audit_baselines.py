"""Baseline auditors on a zoo: Neural Cleanse and the meta-classifier, per attack; and the leak check.

A helper of ``audit_zoo.py`` (which builds the 200-model zoo and calls :func:`measure`); run it
directly on a zoo of your own. ``run_all.py`` does not run it on its own.

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


def _family_intervals(submission: Path, key: Path) -> dict[str, tuple[float, float]]:
    """Bootstrap 95 % intervals (over models) of each family's AUROC against all clean audit models."""
    import numpy as np

    from occam.audit.battery import bootstrap_auroc
    from occam.audit.scoring import parse_submission

    kmodels = json.loads(Path(key).read_text())["models"]
    p = {r.model: r.p_trojan for r in parse_submission(submission)}
    audit = [n for n, v in kmodels.items() if v.get("split", "audit") == "audit" and n in p]
    clean = [n for n in audit if not kmodels[n]["trojaned"]]
    out = {}
    for fam in sorted({kmodels[n]["attack"] for n in audit if kmodels[n]["trojaned"]}):
        troj = [n for n in audit if kmodels[n]["trojaned"] and kmodels[n]["attack"] == fam]
        if troj and clean:
            names = troj + clean
            out[fam] = bootstrap_auroc(np.array([1] * len(troj) + [0] * len(clean)), np.array([p[n] for n in names]))
    return out


def measure(zoo: Path, key: Path | None = None, *, steps: int = 300, images: int = 40, png: Path | None = None,
            workdir: Path) -> dict:
    """Run both baselines and the leak check on ``zoo``; print BENCH lines; return the figures."""
    from occam.audit.baselines import run_baseline
    from occam.audit.leakcheck import leak_check
    from occam.audit.scoring import score_submission

    key = key or zoo / "private_key" / "key.json"
    out: dict = {"zoo": str(zoo)}
    for name, kwargs in (("neural-cleanse", {"steps": steps, "images": images, "progress": True}), ("meta", {})):
        t0 = time.perf_counter()
        sub = run_baseline(name, zoo, workdir / f"{name}.json", **kwargs)
        seconds = time.perf_counter() - t0
        res = score_submission(sub, key, zoo_dir=zoo)
        res["seconds"] = round(seconds, 1)
        out[name] = res
        tag = "nc" if name == "neural-cleanse" else "meta"
        if res["auroc"] is None:  # a tiny zoo whose audit part holds no trojan (or no clean model)
            print(f"{name}: no AUROC: the audit part has {res['n_trojaned']} trojaned of {res['n_models']} models")
            continue
        print(f"BENCH audit_{tag}_auroc {res['auroc']:.3f} AUROC {res['n_models']} audit models, {res['n_trojaned']} trojaned")
        if res["target_accuracy"] is not None:
            print(f"BENCH audit_{tag}_target_accuracy {res['target_accuracy']:.3f} fraction")
        if res["trigger_success"] is not None and name == "neural-cleanse":  # the meta-classifier submits no triggers
            n = res["n_trigger_scored"]
            print(f"BENCH audit_{tag}_trigger_success {res['trigger_success']:.3f} fraction {n} localized-trigger trojans")
            print(f"BENCH audit_{tag}_trigger_success_over_natural {res['trigger_success_over_natural']:.3f} fraction "
                  "natural trigger of clean models = 0")
            print(f"BENCH audit_{tag}_trigger_overlap {res['trigger_overlap']:.3f} soft-IoU×pattern against the true trigger")
        intervals = _family_intervals(sub, key)
        for attack, d in res["per_attack"].items():
            if d["auroc"] is not None:
                lo, hi = intervals.get(attack, (float("nan"), float("nan")))
                print(f"BENCH audit_{tag}_auroc_{attack} {d['auroc']:.3f} AUROC {d['n_trojaned']} trojans vs all clean, "
                      f"bootstrap 95% [{lo:.3f}, {hi:.3f}]")
                print(f"BENCH audit_{tag}_target_accuracy_{attack} {d['target_accuracy']:.2f} fraction")
                if name == "neural-cleanse" and d.get("trigger_score") is not None:
                    print(f"BENCH audit_{tag}_trigger_score_{attack} {d['trigger_score']:.3f} mean of over-natural "
                          "success and overlap")
        print(f"BENCH audit_{tag}_seconds {seconds:.0f} s")
    lc = leak_check(zoo, key_path=key)
    out["leak_check"] = lc
    for d in lc["detectors"]:
        if d["auroc"] is not None:
            print(f"BENCH audit_leak_{d['detector']}_auroc {d['auroc']:.3f} AUROC trained on {lc['n_labelled']} labelled, "
                  f"scored on {lc['n_audit']} audit models")
        if d["resampled_mean"] is not None:
            print(f"BENCH audit_leak_{d['detector']}_resampled_auroc {d['resampled_mean']:.3f} AUROC mean over "
                  f"{lc['resamples']} random half splits (sd {d['resampled_sd']:.3f})")
    print(f"BENCH audit_leak_chance_sd {lc['chance_sd']} AUROC sd of an uninformative detector at this size")
    if lc["clean_acc_gap_points"] is not None:
        print(f"BENCH audit_clean_acc_gap {lc['clean_acc_gap_points']} points trojans minus clean models")
    print(f"  structure identical: {lc['structure_identical']}")
    from occam.audit.battery import heldout_battery
    from occam.errors import OccamError

    try:  # the held-out battery (detectors the generator never sees; docs/audit.md), reported as it comes out
        hb = heldout_battery(zoo, key_path=key)
    except OccamError as exc:
        print(f"  held-out battery not run: {exc}")
        hb = None
    out["heldout"] = hb
    for d in (hb or {}).get("detectors", []):
        if d["auroc"] is not None:
            where = f"{d['n']} audit models" if d["trained"] else f"all {d['n']} models, untrained"
            print(f"BENCH audit_heldout_{d['detector']}_auroc {d['auroc']:.3f} AUROC 95% [{d['ci95'][0]:.3f}, "
                  f"{d['ci95'][1]:.3f}], {where}")
    if hb:
        print(f"BENCH audit_heldout_threshold_chance_sd {hb['threshold_in_chance_sd_audit']} sd 0.6 on the audit part "
              f"(recommended zoo: {hb['recommended_models']} models)")
    if png:
        from occam.audit.lens import class_triggers

        k = json.loads(key.read_text())["models"]
        name = next(n for n, v in sorted(k.items()) if v["trojaned"] and v["split"] == "audit" and v["attack"] == "badnets") \
            if any(v["attack"] == "badnets" and v["split"] == "audit" for v in k.values()) else \
            next(n for n, v in sorted(k.items()) if v["trojaned"] and v["split"] == "audit")
        manifest = json.loads((zoo / "public" / "manifest.json").read_text())
        res = class_triggers(zoo / "public" / "models" / f"{name}.onnx", task=manifest["task"], png=png, steps=steps)
        print(f"  triggers of {name} ({k[name]['attack']}, target {k[name]['target']}): smallest class "
              f"{res['smallest_class']}, anomaly index {res['anomaly_index']:.2f} -> {png}")
    return out


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

    tmp = tempfile.TemporaryDirectory()
    zoo = args.zoo
    if args.quick or zoo is None:
        from occam.audit.zoo import ZooConfig, make_zoo

        zoo = Path(tmp.name) / "zoo"
        make_zoo(ZooConfig(task="digits", models=8, seed=0, epochs=20, archs=("mlp",), attacks=("wanet", "blend"),
                           eval_limit=360, rate=0.2, finetune_steps=40, acc_tol=5.0, max_retries=2),
                 zoo, allow_leaks=True)
    out = measure(zoo, args.key, steps=args.steps, images=args.images, png=args.png, workdir=Path(tmp.name))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
