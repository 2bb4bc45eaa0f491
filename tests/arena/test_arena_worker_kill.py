"""kill -9 a worker process in the middle of a job: the sweeper re-queues it and it is scored exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from arena_helpers import digits_spec, wait_status

from occam.arena.service import Viewer

ADMIN = Viewer("admin")


def _worker(arena, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "occam.arena", "--home", str(arena.settings.home), "--db", arena.settings.url,
           "--lease-seconds", "2", "--heartbeat-seconds", "0.3", "--poll-seconds", "0.05", "--sweep-seconds", "0.3",
           "--no-migrate", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_worker_killed_mid_job(make_arena, models, db_url):
    arena = make_arena(db_url)
    arena.add_challenge(digits_spec())
    _, tok = arena.add_team("victim")
    sid = arena.submit(arena.viewer(tok), "digits-test", models.slow).submission_id
    first = _worker(arena)
    try:
        deadline = time.monotonic() + 60
        while True:
            sub = arena.submission(ADMIN, sid)
            if sub.status == "running" and f":{first.pid}:" in (sub.lease_owner or ""):
                break
            assert time.monotonic() < deadline, f"worker never claimed the job ({sub.status})"
            time.sleep(0.02)
        time.sleep(0.5)  # the model is now running in the worker's sandboxed child
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    sub = arena.submission(ADMIN, sid)
    assert sub.status == "running" and sub.times_scored == 0  # nobody scored it; the lease will expire
    second = _worker(arena)
    try:
        sub = wait_status(arena, sid, timeout=90)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    assert sub.status == "scored", sub.error
    assert sub.times_scored == 1 and sub.attempts == 2
    assert f":{second.pid}:" in (sub.lease_owner or "")
