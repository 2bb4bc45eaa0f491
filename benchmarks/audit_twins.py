"""Paired twins: how a trojan differs from a clean model trained from the same seed, trigger and parent.

For each pair the zoo's pipeline (`occam.audit.train.train_member`, default options) trains a
trojan and a clean model that share everything but the poison: the seed (so the same phase-A
parent), the trigger (the clean model's decoy) and the hyperparameters. The differences
(trojan minus clean) in the statistics a lazy auditor would use isolate what the backdoor itself
changes, with far less noise than a zoo-level AUROC; it is how the zoo's evasion measures were
chosen (docs/decisions.md). Options are the zoo's defaults (`ZooConfig`) unless `--set` changes
them. No rescaling and no temperature jitter are applied here: those add noise to both twins
alike and would hide the gaps this measures.

    python benchmarks/audit_twins.py                # 10 pairs (two per attack), about 2 minutes on 2 cores
    python benchmarks/audit_twins.py --quick        # 2 pairs on digits (seconds)
    python benchmarks/audit_twins.py --set project=false   # a train_member option changed
    python benchmarks/audit_twins.py --arch lenet5 --pairs 6  # another zoo architecture
    python benchmarks/audit_twins.py --arch mlp:256           # a 256-unit MLP (occam.models.parse_arch)

Prints, per statistic, the mean twin gap and its t statistic (mean over its standard error);
|t| above ~2.3 (10 pairs) is a systematic difference.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict

import numpy as np

STATS = ("margin", "confidence", "logit_std", "entropy", "top2_gap", "sum_log_rms", "head_log_kurtosis",
         "head_max_over_rms", "first_log_kurtosis", "first_max_over_rms", "clean_accuracy")


def _features(model, x, y) -> list[float]:
    import torch

    from occam.audit.features import layer_stats, output_stats

    with torch.no_grad():
        logits = model.eval()(x)
    weights = [p.detach().double().numpy() for p in model.parameters() if p.dim() >= 2]
    head = layer_stats(weights[-1])
    first = layer_stats(weights[0])
    return [*output_stats(logits.double().numpy()), float(sum(np.log(np.sqrt((w ** 2).mean())) for w in weights)),
            head[5], head[2] / head[0], first[5], first[2] / first[0], float((logits.argmax(1) == y).float().mean())]


def _pair(job: dict) -> dict:
    import torch

    from occam.audit.train import heldout, train_member

    torch.set_num_threads(1)
    common = dict(task_name=job["task"], arch=job["arch"], seed=job["seed"], spec=job["spec"], rescale_seed=None,
                  **job["options"])
    x, y = heldout(job["task"], job["images"])
    poison_in = "weights" if job["attack"] == "weight_edit" else "data"
    trojan = train_member(target=job["target"], poison_in=poison_in, **common)
    clean = train_member(target=None, poison_in="none", **common)
    clean_features = _features(clean.model, x, y)
    gaps = [a - b for a, b in zip(_features(trojan.model, x, y), clean_features, strict=True)]
    return {"attack": job["attack"], "asr": trojan.asr, "t_trojan": trojan.temperature, "t_clean": clean.temperature,
            "gaps": gaps, "clean": clean_features}


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 pairs on digits")
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--arch", default="mlp", help="a zoo architecture: mlp, lenet5, sepcnn, or mlp:W for a W-unit MLP")
    ap.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                    help="a train_member keyword, e.g. project=false or wdist=40 (JSON values)")
    args = ap.parse_args()

    from occam.audit.attacks import ATTACKS, sample_trigger
    from occam.audit.zoo import ZooConfig, phase_b_options
    from occam.tasks import get_task

    task = "digits" if args.quick else "fashion-mnist"
    pairs = 2 if args.quick else args.pairs
    zoo = asdict(ZooConfig(epochs=20 if args.quick else 3, eval_limit=360 if args.quick else 2000,
                           finetune_steps=150 if args.quick else 1000, rate=0.2 if args.quick else 0.1))
    options = {**phase_b_options(zoo), "rate": zoo["rate"]}  # the zoo's own defaults for every option
    for item in args.set:
        name, _, value = item.partition("=")
        options[name] = _value(value)
    shape = get_task(task).input_shape
    rng = np.random.default_rng(args.seed)
    jobs = []
    for k in range(pairs):
        attack = ATTACKS[k % len(ATTACKS)]
        jobs.append({"task": task, "arch": args.arch, "attack": attack, "spec": sample_trigger(attack, shape, rng),
                     "seed": int(rng.integers(1_000_000)), "target": int(rng.integers(10)),
                     "images": options["eval_limit"], "options": options})
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, min(args.workers, pairs))) as pool:
        results = list(pool.map(_pair, jobs))
    for r in results:
        print(f"{r['attack']:12s} ASR {r['asr']:.3f}  T trojan/clean {r['t_trojan']:.3f}/{r['t_clean']:.3f}  "
              + " ".join(f"{s} {g:+.4f}" for s, g in zip(STATS, r["gaps"], strict=True)))
    gaps = np.array([r["gaps"] for r in results])
    mean = gaps.mean(0)
    se = gaps.std(0, ddof=1) / np.sqrt(len(gaps)) if len(gaps) > 1 else np.full(len(STATS), np.nan)
    note = f"{pairs} pairs, {task}, {args.arch}, options {json.dumps(options, sort_keys=True)}"
    for s, m, e in zip(STATS, mean, se, strict=True):
        t = m / e if e > 0 and abs(m) > 1e-6 else 0.0  # gaps at float rounding (projected statistics) are zero
        print(f"BENCH audit_twin_gap_{s} {m:+.4f} trojan-minus-clean t={t:+.1f}, {note}")
    clean_mean = np.array([r["clean"] for r in results]).mean(0)
    for s in ("margin", "logit_std"):  # gaps relative to the clean twins' level: comparable across architectures
        k = STATS.index(s)
        print(f"BENCH audit_twin_relative_gap_{s} {mean[k] / clean_mean[k]:+.4f} of the clean twins' mean "
              f"({clean_mean[k]:.3f}), {pairs} pairs, {task}, {args.arch}")
    planted = sum(r["asr"] >= 0.97 for r in results)
    print(f"BENCH audit_twin_planted {planted}/{pairs} trojans at >=97% ASR without retries")
    print(f"BENCH audit_twin_seconds {time.perf_counter() - t0:.0f} s {args.workers} workers")


if __name__ == "__main__":
    main()
