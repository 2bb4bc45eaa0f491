"""How fast `occam arena serve` accepts connections after it is started.

    python benchmarks/serve_start.py [--runs 3] [--workers 2]

Starts ``python -m occam arena serve`` on a fresh home (SQLite) and a free port, and times the first accepted TCP
connection and the first answered HTTP request, from the moment the process was started; then stops it with
SIGTERM (and checks that it ended). The first run also creates the database (migrations); later runs reuse it.
Prints ``BENCH serve_listen_seconds <median> s`` (and the first answer, and the fresh-database start).
Timings on a busy machine are noisy: read the median.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:  # noqa: S310 - loopback
            return r.status < 500
    except Exception:
        return False


def one_run(home: Path, workers: int, timeout: float = 120.0) -> tuple[float, float]:
    port = _free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("OCCAM_ARENA_DB", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "occam", "arena", "serve", "--home", str(home), "--port", str(port),
                             "--workers", str(workers)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    try:
        listen = answer = None
        while time.perf_counter() - t0 < timeout:
            if proc.poll() is not None:
                raise SystemExit(f"serve exited with {proc.returncode}")
            if listen is None and _connects(port):
                listen = time.perf_counter() - t0
            if listen is not None and _answers(port):
                answer = time.perf_counter() - t0
                break
            time.sleep(0.01)
        if listen is None or answer is None:
            raise SystemExit("serve did not listen in time")
        return listen, answer
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything left in its group (there should be nothing)
        except ProcessLookupError:
            pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="scoring workers serve starts (they start in parallel)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        fresh, _ = one_run(home, a.workers)
        listens, answers = [], []
        for _ in range(a.runs):
            li, an = one_run(home, a.workers)
            listens.append(li)
            answers.append(an)
            print(f"run: listening after {li:.2f} s, first answer after {an:.2f} s", flush=True)
    print(f"BENCH serve_listen_seconds {statistics.median(listens):.2f} s")
    print(f"BENCH serve_first_answer_seconds {statistics.median(answers):.2f} s")
    print(f"BENCH serve_listen_fresh_db_seconds {fresh:.2f} s")


if __name__ == "__main__":
    main()
