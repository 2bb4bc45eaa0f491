"""Benchmark: the toy-model experiments against issue #18's targets (2 cores).

    .venv/bin/python benchmarks/toy_models.py [--only grok,tms,induction,canonical] [--canonical-steps 40] [--threads 1]

Targets: `occam toy grok` (p = 59) memorized by ~step 200, test accuracy ≥ 99 % by step 3,000 in ≤ 20 s;
`occam toy tms` (5 → 2) D* ≈ 1 dense, ≈ 0.5 sparse, ≤ 15 s; `occam toy induction` ≤ 30 s with an induction head;
`occam toy grok --canonical` ≤ 15 min (measured here as the per-step cost of the full-batch step, projected to
20,000 steps plus its evaluations, unless --canonical-steps covers the whole run).

Prints ``BENCH <metric> <value> <unit>`` lines.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def bench(name: str, value: float | int | None, unit: str) -> None:
    print(f"BENCH {name} {'nan' if value is None else value} {unit}", flush=True)


def grok(tmp: Path) -> None:
    from occam.toy.grok import GrokConfig, train_grok

    t0, c0 = time.perf_counter(), time.process_time()
    s = train_grok(GrokConfig(), tmp / "grok")
    bench("toy_grok_seconds", round(time.perf_counter() - t0, 2), "s")
    bench("toy_grok_cpu_seconds", round(time.process_time() - c0, 2), "s")
    bench("toy_grok_train_seconds", round(s["train_seconds"], 2), "s")
    bench("toy_grok_step_memorized", s["step_train_acc_99"], "step")
    bench("toy_grok_step_99pct", s["step_test_acc_99"], "step")
    bench("toy_grok_final_test_acc", round(s["final"]["test_acc"], 4), "fraction")


def tms(tmp: Path) -> None:
    from occam.toy.tms import TMSConfig, train_tms

    t0, c0 = time.perf_counter(), time.process_time()
    s = train_tms(TMSConfig(), tmp / "tms")
    bench("toy_tms_seconds", round(time.perf_counter() - t0, 2), "s")
    bench("toy_tms_cpu_seconds", round(time.process_time() - c0, 2), "s")
    bench("toy_tms_dstar_dense", round(float(s["d_star"][0]), 3), "dims/feature")
    bench("toy_tms_dstar_sparse", round(float(s["d_star"][-1]), 3), "dims/feature")
    bench("toy_tms_features_dense", int(s["n_represented"][0]), "features")
    bench("toy_tms_features_sparse", int(s["n_represented"][-1]), "features")


def induction(tmp: Path) -> None:
    from occam.toy.induction import InductionConfig, train_induction

    t0, c0 = time.perf_counter(), time.process_time()
    s = train_induction(InductionConfig(), tmp / "ind")
    bench("toy_induction_seconds", round(time.perf_counter() - t0, 2), "s")
    bench("toy_induction_cpu_seconds", round(time.process_time() - c0, 2), "s")
    bench("toy_induction_phase_start", s["phase_start"], "step")
    bench("toy_induction_phase_end", s["phase_end"], "step")
    bench("toy_induction_best_head_score", round(float(max(max(r) for r in s["final"]["induction"])), 3), "score")


def _step_cost(forward, params, y, steps: int) -> tuple[float, float]:
    """Wall and process-CPU seconds per full-batch AdamW step (after 3 warm-up steps)."""
    import torch
    import torch.nn.functional as F

    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1.0, betas=(0.9, 0.98))
    for i in range(steps + 3):
        if i == 3:
            w0, c0 = time.perf_counter(), time.process_time()
        loss = F.cross_entropy(forward(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - w0) / steps, (time.process_time() - c0) / steps


def canonical(tmp: Path, steps: int) -> None:
    """Per-step cost of the canonical full-batch step (table-based forward) against the plain forward, one thread."""
    import torch

    from occam.toy.data import modular_data
    from occam.toy.grok import GrokConfig
    from occam.toy.models import build_model

    torch.set_num_threads(1)  # on a shared machine two OpenMP threads collapse; CPU time is the load-robust figure
    cfg = GrokConfig.canonical()
    a, b, y = modular_data(cfg.p, "+", cfg.frac_train, 0).split("train")
    model = build_model("transformer", p=cfg.p)
    wall, cpu = _step_cost(lambda: model(a, b), list(model.parameters()), y, steps)
    tokens = torch.stack([a, b, torch.full_like(a, cfg.p)], dim=1)
    plain = build_model("transformer", p=cfg.p)
    pwall, pcpu = _step_cost(lambda: plain.run_tokens(tokens)[0], list(plain.parameters()), y, max(steps // 4, 3))
    bench("toy_canonical_seconds_per_step", round(wall, 4), "s")
    bench("toy_canonical_cpu_seconds_per_step", round(cpu, 4), "s")
    bench("toy_canonical_plain_cpu_seconds_per_step", round(pcpu, 4), "s")
    bench("toy_canonical_projected_cpu_minutes", round(cpu * cfg.steps / 60, 1), "min")
    bench("toy_canonical_plain_projected_cpu_minutes", round(pcpu * cfg.steps / 60, 1), "min")
    bench("toy_canonical_projected_wall_minutes_this_machine", round(wall * cfg.steps / 60, 1), "min")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="grok,tms,induction,canonical")
    ap.add_argument("--canonical-steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: robust on a shared machine)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for part in args.only.split(","):
            if part == "canonical":
                canonical(tmp, args.canonical_steps)
            else:
                {"grok": grok, "tms": tms, "induction": induction}[part](tmp)


if __name__ == "__main__":
    main()
