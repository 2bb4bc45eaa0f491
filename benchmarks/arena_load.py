"""Arena load test: concurrent uploads, live leaderboard reads, and kill -9 of workers mid-run.

    .venv/bin/python benchmarks/arena_load.py            # 500 uploads, 50 clients, 2 workers, 20 kills
    .venv/bin/python benchmarks/arena_load.py --quick    # a short run
    .venv/bin/python benchmarks/arena_load.py --backends sqlite

For each backend (SQLite in WAL mode; PostgreSQL in a private throw-away cluster) it starts
``occam arena serve --workers 0`` as a process, two ``python -m occam.arena.worker`` processes,
N client threads uploading tiny digits models over loopback, and one thread reading the
leaderboard page; a killer sends SIGKILL to a random worker at random moments (and starts a new
one). At the end every accepted upload must be scored exactly once.

Prints lines like ``BENCH arena_sqlite_upload_p95 85.2 ms``.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def digits_models(count: int, seed: int = 0) -> list[bytes]:
    """``count`` different linear digits classifiers (ridge fit, then random pruning), as ONNX bytes."""
    from onnx import TensorProto, helper, numpy_helper

    from occam.tasks import get_task

    t = get_task("digits")
    x = t.floats("train").reshape(-1, 64).astype(np.float64)
    y = np.eye(10)[t.labels("train")]
    w = np.linalg.solve(x.T @ x + 1.0 * np.eye(64), x.T @ (y * 8 - 4))
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        wi = w.copy()
        wi[rng.random(w.shape) < (i % 10) / 12] = 0.0
        graph = helper.make_graph(
            [helper.make_node("Flatten", ["input"], ["flat"], axis=1),
             helper.make_node("Gemm", ["flat", "w", "b"], ["logits"])],
            f"digits_{i}",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 8, 8])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
            initializer=[numpy_helper.from_array(wi.astype(np.float32), "w"),
                         numpy_helper.from_array(np.full(10, 0.01 * i, np.float32), "b")])
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)
        out.append(m.SerializeToString())
    return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return float(np.percentile(np.asarray(values), q))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_backend(name: str, db_url: str | None, args: argparse.Namespace, models: list[bytes]) -> dict[str, float]:
    import httpx

    from occam.arena.challenges import ChallengeSpec
    from occam.arena.config import ArenaSettings
    from occam.arena.service import Arena, Viewer

    home = Path(tempfile.mkdtemp(prefix=f"occam-bench-{name}-"))
    settings = ArenaSettings(home=home, db_url=db_url, workers=0)
    arena = Arena(settings)
    admin_token = arena.init()
    now = time.time()
    arena.add_challenge(ChallengeSpec(id="load", title="Load test", task="digits", lam=30.0, start_at=now - 60,
                                      end_at=now + 86400, daily_quota=100000, limits={"wall_seconds": 60.0}))
    tokens = [arena.add_team(f"team-{i:03d}")[1] for i in range(args.clients)]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    logf = open(home / "server.log", "wb")  # noqa: SIM115
    server = subprocess.Popen([sys.executable, "-m", "occam", "arena", "serve", "--home", str(home), "--db",
                               settings.url, "--port", str(port), "--workers", "0",
                               "--web-workers", str(args.web_workers)], stdout=logf, stderr=logf, env=env)
    wlog = open(home / "workers.log", "ab")  # noqa: SIM115
    wcmd = [sys.executable, "-m", "occam.arena", "--home", str(home), "--db", settings.url, "--lease-seconds",
            str(args.lease), "--heartbeat-seconds", str(args.lease / 6), "--sweep-seconds", "0.5", "--poll-seconds",
            "0.05", "--max-attempts", "10", "--no-migrate"]
    workers = [subprocess.Popen(wcmd, stdout=wlog, stderr=wlog, env=env) for _ in range(args.workers)]
    wlock = threading.Lock()
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise RuntimeError(f"server did not start; see {home / 'server.log'}")
        time.sleep(0.1)
    from sqlalchemy import func, select

    from occam.arena.schema import Submission, Worker

    while True:  # wait until every worker has started and looked at the queue
        with arena.db.read() as s:
            if (s.scalar(select(func.count()).select_from(Worker)) or 0) >= args.workers:
                break
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers did not start; see {home / 'workers.log'}")
        time.sleep(0.1)

    per_client = args.uploads // args.clients
    upload_ms: list[float] = []
    upload_at: list[tuple[float, float]] = []
    t_origin = time.perf_counter()
    board_ms: list[float] = []
    accepted: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()
    uploads_done = threading.Event()
    all_done = threading.Event()
    kills = 0

    # clients (and their connections) exist before the clock starts: building an httpx client costs
    # milliseconds of CPU in this process, which would otherwise be measured as server latency
    clients = [httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens[i]}"}, timeout=60)
               for i in range(args.clients)]
    for c in clients:
        c.get("/healthz")

    def client(i: int) -> None:
        rng = random.Random(i)
        time.sleep(rng.uniform(0, args.think))  # clients arrive over the first THINK seconds
        c = clients[i]
        try:
            for k in range(per_client):
                data = models[(i * per_client + k) % len(models)]  # every upload is a different file
                t0 = time.perf_counter()
                r = c.post("/api/challenges/load/submissions", files={"file": (f"m{k}.onnx", data)})
                dt = (time.perf_counter() - t0) * 1000
                with lock:
                    upload_ms.append(dt)
                    upload_at.append((t0 - t_origin, dt))
                    if r.status_code == 202:
                        accepted.append(r.json()["id"])
                    else:
                        errors.append(f"{r.status_code} {r.text[:200]}")
                time.sleep(rng.uniform(0, args.think))
        finally:
            c.close()

    def board_reader() -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            while not all_done.is_set():
                t0 = time.perf_counter()
                r = c.get("/challenges/load/leaderboard")
                dt = (time.perf_counter() - t0) * 1000
                if r.status_code == 200:
                    board_ms.append(dt)
                time.sleep(0.05)

    def killer() -> None:
        nonlocal kills
        rng = random.Random(42)
        while kills < args.kills and not all_done.is_set():
            time.sleep(rng.uniform(0.2, args.kill_gap))
            with wlock:
                i = rng.randrange(len(workers))
                victim = workers[i]
                if victim.poll() is None:
                    os.kill(victim.pid, signal.SIGKILL)
                    victim.wait()
                    kills += 1
                workers[i] = subprocess.Popen(wcmd, stdout=wlog, stderr=wlog, env=env)

    t_start = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    reader = threading.Thread(target=board_reader, daemon=True)
    kth = threading.Thread(target=killer, daemon=True)
    reader.start()
    kth.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    uploads_done.set()
    t_uploaded = time.monotonic() - t_start
    # wait for every accepted job to finish (kills go on meanwhile, until all were done)

    deadline = time.monotonic() + args.drain_timeout
    while time.monotonic() < deadline:
        with arena.db.read() as s:
            pending = s.scalar(select(func.count()).select_from(Submission)
                               .where(Submission.status.in_(("queued", "running")))) or 0
        if pending == 0 and (kills >= args.kills or time.monotonic() - t_start > args.drain_timeout / 2):
            break
        time.sleep(0.2)
    t_total = time.monotonic() - t_start
    all_done.set()
    kth.join(timeout=10)
    reader.join(timeout=10)
    admin = Viewer("admin")
    with arena.db.read() as s:
        rows = {r.id: r for r in s.scalars(select(Submission).where(Submission.id.in_(accepted)))}
    lost = sum(1 for sid in accepted if sid not in rows or rows[sid].status != "scored")
    double = sum(1 for r in rows.values() if r.times_scored > 1)
    failed = sum(1 for r in rows.values() if r.status == "failed")
    _ = admin, admin_token
    with wlock:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=20)
            except subprocess.TimeoutExpired:
                w.kill()
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    arena.db.dispose()
    if os.environ.get("ARENA_BENCH_DEBUG"):
        for at, ms in sorted(upload_at, key=lambda x: -x[1])[:15]:
            print(f"# slow upload at +{at:.2f}s: {ms:.0f} ms", file=sys.stderr)
    if errors:
        print(f"# {name}: {len(errors)} uploads not accepted, e.g. {errors[0]}", file=sys.stderr)
    return {
        "upload_p50": pct(upload_ms, 50), "upload_p95": pct(upload_ms, 95), "upload_max": max(upload_ms),
        "leaderboard_p50": pct(board_ms, 50), "leaderboard_p95": pct(board_ms, 95),
        "leaderboard_reads": len(board_ms), "uploads": len(upload_ms), "accepted": len(accepted),
        "lost": lost, "double_scored": double, "failed": failed, "kills": kills,
        "upload_phase_s": t_uploaded, "total_s": t_total,
        "scored_per_s": (len(accepted) - lost) / t_total if t_total else float("nan"),
        "requeued": sum(1 for r in rows.values() if r.attempts > 1),
        "load_avg_1min": os.getloadavg()[0],
    }


UNITS = {"upload_p50": "ms", "upload_p95": "ms", "upload_max": "ms", "leaderboard_p50": "ms", "leaderboard_p95": "ms",
         "leaderboard_reads": "count", "uploads": "count", "accepted": "count", "lost": "count",
         "double_scored": "count", "failed": "count", "kills": "count", "upload_phase_s": "s", "total_s": "s",
         "scored_per_s": "jobs/s", "requeued": "count", "load_avg_1min": "procs"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100 uploads, 20 clients, 5 kills")
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--uploads", type=int, default=None, help="default 500 (--quick: 100)")
    ap.add_argument("--clients", type=int, default=None, help="default 50 (--quick: 20)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--kills", type=int, default=None, help="default 20 (--quick: 5)")
    ap.add_argument("--kill-gap", type=float, default=None, help="max seconds between kills (default 3, --quick: 2)")
    ap.add_argument("--think", type=float, default=1.0,
                    help="a client pauses uniform(0, THINK) seconds between its uploads (0: back to back)")
    ap.add_argument("--lease", type=float, default=3.0)
    ap.add_argument("--web-workers", type=int, default=1, help="uvicorn processes (occam arena serve --web-workers)")
    ap.add_argument("--drain-timeout", type=float, default=600.0)
    args = ap.parse_args()
    for key, full, quick in (("uploads", 500, 100), ("clients", 50, 20), ("kills", 20, 5), ("kill_gap", 3.0, 2.0)):
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    models = digits_models(args.uploads)
    ok = True
    for backend in args.backends.split(","):
        backend = backend.strip()
        if backend == "sqlite":
            res = run_backend("sqlite", None, args, models)
        elif backend == "postgres":
            from occam.arena.pgcluster import PrivateCluster, unavailable_reason

            reason = unavailable_reason()
            if reason:
                print(f"# postgres skipped: {reason}", file=sys.stderr)
                continue
            with PrivateCluster() as pg:
                res = run_backend("postgres", pg.create_database(), args, models)
        else:
            raise SystemExit(f"unknown backend {backend!r}")
        for key, value in res.items():
            v = f"{value:.1f}" if isinstance(value, float) else str(value)
            print(f"BENCH arena_{backend}_{key} {v} {UNITS[key]}", flush=True)
        print(f"# {backend}: {args.uploads} uploads from {args.clients} clients (pause uniform(0, {args.think}) s), "
              f"{args.workers} workers, {args.kills} kill -9", flush=True)
        ok = ok and res["lost"] == 0 and res["double_scored"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
