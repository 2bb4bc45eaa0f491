"""Helpers shared by the arena tests (imported by name; conftest.py modules are not importable reliably)."""

from __future__ import annotations

import threading
import time

from occam.arena.challenges import ChallengeSpec
from occam.arena.service import Arena


def digits_spec(cid: str = "digits-test", **kw) -> ChallengeSpec:
    now = time.time()
    base = dict(id=cid, title="Digits test challenge", task="digits", lam=30.0, start_at=now - 60,
                end_at=now + 3600, split_seed=3, public_fraction=0.5, daily_quota=5, final_selections=2,
                limits={"wall_seconds": 60.0})
    base.update(kw)
    return ChallengeSpec(**base)


class WorkerThread:
    """An in-process worker (models still run in sandboxed children)."""

    def __init__(self, arena: Arena):
        from occam.arena.worker import Worker

        self.worker = Worker(arena)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)

    def __enter__(self) -> WorkerThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.worker.stop.set()
        self.thread.join(timeout=30)


def wait_status(arena: Arena, sid: int, statuses=("scored", "failed"), timeout: float = 60.0):
    from occam.arena.service import Viewer

    admin = Viewer("admin")
    deadline = time.monotonic() + timeout
    while True:
        sub = arena.submission(admin, sid)
        if sub.status in statuses:
            return sub
        if time.monotonic() > deadline:
            raise AssertionError(f"submission {sid} still {sub.status} after {timeout} s")
        time.sleep(0.05)
