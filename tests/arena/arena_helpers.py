"""Helpers shared by the arena tests (imported by name; conftest.py modules are not importable reliably)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

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


# ---- the audit track: a tiny zoo (the `zoo` fixture in conftest.py builds it once per session) ----------------------

AUDIT_CID = "audit-test"
# a tiny digits zoo: 12 MLPs, badnets triggers (trains in ~15 s on 2 cores; the audit part needs 2 of each class)
ZOO_CFG = dict(task="digits", models=12, seed=3, epochs=20, archs=("mlp",), attacks=("badnets",), eval_limit=360,
               rate=0.2, finetune_steps=40, acc_tol=5.0, max_retries=2, distill=0.0,
               # the arena plumbing is under test here, not evasion: the joint protocol plants 2-px badnets on 8×8
               # digits reliably; the default fine-tune protocol is tested in tests/test_audit.py
               protocol="joint")


def _key(zoo: Path) -> dict:
    return json.loads((zoo / "private_key" / "key.json").read_text())


def _audit_names(zoo: Path) -> list[str]:
    return sorted(n for n, v in _key(zoo)["models"].items() if v["split"] == "audit")


def _labelled_names(zoo: Path) -> list[str]:
    return sorted(n for n, v in _key(zoo)["models"].items() if v["split"] != "audit")


def predictions(zoo: Path, *, right: bool = True) -> bytes:
    """A CSV with odd probabilities (exact log-loss and Brier have many decimals); ``right=False`` inverts them."""
    key = _key(zoo)["models"]
    lines = ["model,p_trojan,target"]
    for n in _audit_names(zoo):
        troj = bool(key[n]["trojaned"]) == right
        target = key[n]["target"] if key[n]["target"] is not None and right else ""
        lines.append(f"{n},{0.8123 if troj else 0.3217},{target}")
    return ("\n".join(lines) + "\n").encode()


def audit_spec(zoo: Path, cid: str = AUDIT_CID, **kw) -> ChallengeSpec:
    now = time.time()
    base = dict(id=cid, title="Find the trojans", task="digits", lam=30.0, track="audit", start_at=now - 60,
                end_at=now + 3600, split_seed=5, public_fraction=0.5, settings={"zoo": str(zoo)})
    base.update(kw)
    return ChallengeSpec(**base)
