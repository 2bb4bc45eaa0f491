"""What the Track plugin layer costs: looking a track up, loading it, and the request-time check through it.

    python benchmarks/track_registry.py          # full
    python benchmarks/track_registry.py --quick  # fewer repeats

Prints ``BENCH`` lines (see run_all.py). The cold figures run a fresh interpreter each time, so they include
Python's start-up; they show that asking for the sparse track does not import the audit part.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

COLD = ("import time, sys; t = time.perf_counter(); from occam.arena.tracks import get_track; get_track('{name}'); "
        "print(time.perf_counter() - t, any(m.startswith('occam.audit') for m in sys.modules))")


def cold(name: str, repeats: int) -> tuple[float, bool]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    times, audit = [], False
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", COLD.format(name=name)], capture_output=True, text=True, check=True,
                             env=env).stdout.split()
        times.append(float(out[0]))
        audit = out[1] == "True"
    return statistics.median(times), audit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    repeats = 3 if args.quick else 7
    sys.path.insert(0, str(SRC))
    from occam.arena.tracks import ChallengeInfo, get_track
    from occam.arena.tracks.sparse import linear_onnx

    for name in ("sparse", "audit"):
        t, audit = cold(name, repeats)
        print(f"BENCH track_load_{name} {1000 * t:.1f} ms cold import of the registry plus the {name} track "
              f"(occam.audit imported: {'yes' if audit else 'no'})")
    get_track("sparse")
    n = 20000 if not args.quick else 2000
    t0 = time.perf_counter()
    for _ in range(n):
        get_track("sparse")
    print(f"BENCH track_lookup {1e6 * (time.perf_counter() - t0) / n:.2f} us get_track of a loaded track")
    track = get_track("sparse")
    info = ChallengeInfo("bench", "sparse", "digits", 30.0, 0, 0.5, {}, {})
    data = linear_onnx((1, 8, 8), 10)
    track.check(data, info)
    k = 500 if not args.quick else 50
    t0 = time.perf_counter()
    for _ in range(k):
        track.check(data, info)
    print(f"BENCH sparse_check_via_track {1000 * (time.perf_counter() - t0) / k:.3f} ms the request-time guard on "
          f"a 650-weight linear model, through the Track")


if __name__ == "__main__":
    main()
