"""Benchmark: toy runs in the Lens (checkpoint switch, each toy view) and the recover track's scoring.

    .venv/bin/python benchmarks/toy_lens.py [--threads 1]

Trains a p = 31 grokking run (embed_mlp, 1,000 steps) and a TMS 5 → 2 run (1,000 steps) in a temporary folder,
then times: opening the run, a checkout (load one checkpoint), each toy view (compute + figure, the page's cost
per click), and the recover track's score of one submission (both halves). Prints ``BENCH <metric> <value> <unit>``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def bench(name: str, value: float, unit: str) -> None:
    print(f"BENCH {name} {value} {unit}", flush=True)


def timed(fn, repeat: int = 3) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="accepted for run_all.py (the runs are already small)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from occam.arena.tracks import ChallengeInfo, get_track
    from occam.lens.kinds import open_model
    from occam.lens.view import get_view, run_view, views_for
    from occam.toy.grok import GrokConfig, train_grok
    from occam.toy.tms import TMSConfig, train_tms

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        train_grok(GrokConfig(p=31, kind="embed_mlp", model={"hidden": 128, "d_embed": 16}, frac_train=0.7, lr=1e-2,
                              steps=1000, n_log_checkpoints=10, checkpoint_every=250), tmp / "grok")
        train_tms(TMSConfig(steps=1000, batch=512, n_checkpoints=10), tmp / "tms")
        bench("toy_lens_open_grok_ms", round(1000 * timed(lambda: open_model(tmp / "grok")), 1), "ms")
        lm = open_model(tmp / "grok")
        flip = iter(range(10**6))
        bench("toy_lens_checkout_ms", round(1000 * timed(lambda: lm.checkout(next(flip) % 2)), 1), "ms")
        for run in ("grok", "tms"):
            m = open_model(tmp / run)
            for v in views_for(m):
                t = timed(lambda v=v, m=m: run_view(m, v).payload)
                bench(f"toy_view_{v.name}_{run}_ms", round(1000 * t, 1), "ms")
        track = get_track("recover")
        st = track.register(type("Spec", (), {"settings": {"run": str(tmp / "grok"), "penalty": 0.01}, "id": "b"})())
        info = ChallengeInfo("b", "recover", "digits", 0.0, 5, 0.5, {}, json.loads(json.dumps(st)))
        data = json.dumps({"frequencies": st["key_freqs"]}).encode()
        bench("toy_track_check_ms", round(1000 * timed(lambda: track.check(data, info)), 2), "ms")
        bench("toy_track_score_ms", round(1000 * timed(lambda: track.score(data, info, {})), 1), "ms")
        res = track.score(data, info, {})
        bench("toy_track_key_freq_fraction_recovered", round(res["metrics"]["public"]["fraction_recovered"], 4), "")
        assert get_view("toy-training")


if __name__ == "__main__":
    main()
