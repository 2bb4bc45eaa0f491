"""The scoring worker: claims jobs from the submissions table and scores each in a fresh sandboxed child.

Run it as ``occam arena worker`` (or ``python -m occam.arena``) on any machine that
reaches the database and the blob folder; ``occam arena serve`` starts some by default.
The worker holds the labels; the model runs in a child process that never sees them.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from occam.arena import queue
from occam.arena.config import ArenaSettings
from occam.arena.schema import FAULT_MODEL, FAULT_PLATFORM, Challenge
from occam.arena.service import Arena
from occam.arena.tracks import ChallengeInfo, get_track
from occam.errors import ModelRejected, OccamError, ScoringError

log = logging.getLogger("occam.arena.worker")


class Worker:
    def __init__(self, arena: Arena, *, owner: str | None = None, stop: threading.Event | None = None):
        self.arena = arena
        self.settings = arena.settings
        self.owner = owner or queue.worker_id()
        self.stop = stop or threading.Event()
        self.jobs_done = 0
        self._last_sweep = 0.0
        self._last_beat = 0.0

    # ---- the loop ----------------------------------------------------------------------------
    def run(self, *, max_jobs: int | None = None, exit_when_idle: bool = False) -> int:
        """Score jobs until ``stop`` is set (or ``max_jobs`` are done / the queue is empty)."""
        log.info("worker %s started", self.owner)
        self.warm_up()
        while not self.stop.is_set():
            self._maybe_sweep()
            job = self._claim()
            if job is None:
                if exit_when_idle:
                    break
                self.stop.wait(self.settings.poll_seconds)
                continue
            self.process(job)
            self.jobs_done += 1
            if max_jobs is not None and self.jobs_done >= max_jobs:
                break
        try:
            queue.worker_gone(self.arena.db, self.owner)
        except Exception:
            log.exception("could not remove this worker from the admin list")
        log.info("worker %s stopped after %d jobs", self.owner, self.jobs_done)
        return self.jobs_done

    def warm_up(self) -> None:
        """Start the sandbox's fork server (it pre-imports onnxruntime) before the first job, not during it."""
        if self.settings.start_method != "forkserver":
            return
        try:
            from multiprocessing import forkserver

            from occam.scoring import sandbox

            sandbox._context("forkserver")  # sets the fork server's preload list
            forkserver.ensure_running()
        except Exception:  # only an optimization
            log.exception("warm-up failed")

    def _claim(self) -> queue.Job | None:
        try:
            job = queue.claim(self.arena.db, self.owner, self.settings.lease_seconds)
        except Exception:  # the database is briefly unreachable: wait and retry
            log.exception("claim failed")
            self.stop.wait(min(5.0, self.settings.poll_seconds * 4))
            return None
        if job is None and time.monotonic() - self._last_beat > self.settings.heartbeat_seconds:
            self._beat(None)
        return job

    def _maybe_sweep(self) -> None:
        if time.monotonic() - self._last_sweep < self.settings.sweep_seconds:
            return
        self._last_sweep = time.monotonic()
        try:
            requeued, failed = queue.sweep(self.arena.db, self.settings.max_attempts)
            if requeued or failed:
                log.warning("sweeper: %d expired leases re-queued, %d jobs failed after %d attempts",
                            requeued, failed, self.settings.max_attempts)
        except Exception:
            log.exception("sweep failed")

    def _beat(self, current: int | None) -> None:
        self._last_beat = time.monotonic()
        try:
            queue.worker_beat(self.arena.db, self.owner, current, done=self.jobs_done)
        except Exception:
            log.exception("worker heartbeat failed")

    # ---- one job -----------------------------------------------------------------------------
    def process(self, job: queue.Job) -> str:
        """Score one claimed job; returns 'scored', 'failed', 'lost' or 'released'."""
        lost = threading.Event()
        done = threading.Event()

        def heartbeat() -> None:
            while not done.wait(self.settings.heartbeat_seconds):
                try:
                    if not queue.heartbeat(self.arena.db, job, self.settings.lease_seconds):
                        lost.set()
                        return
                except Exception:
                    log.exception("lease heartbeat failed")

        beat = threading.Thread(target=heartbeat, name=f"lease-{job.submission_id}", daemon=True)
        beat.start()
        self._beat(job.submission_id)
        try:
            outcome = self._score(job)
        finally:
            done.set()
            beat.join(timeout=5)
        kind, payload = outcome
        if kind == "scored":
            ok = queue.complete(self.arena.db, job, payload)
        elif kind == "retry":
            if job.attempt < self.settings.max_attempts:
                ok = queue.release(self.arena.db, job)
                kind = "released"
            else:
                ok = queue.fail(self.arena.db, job, payload["error"], payload.get("fix"), FAULT_PLATFORM)
                kind = "failed"
        else:
            ok = queue.fail(self.arena.db, job, payload["error"], payload.get("fix"), payload["kind"])
        if not ok:
            log.warning("submission %d: lease lost before writing the result; dropped it", job.submission_id)
            return "lost"
        log.info("submission %d: %s", job.submission_id, kind)
        return kind

    def _score(self, job: queue.Job) -> tuple[str, dict]:
        try:
            with self.arena.db.read() as s:
                c = s.get(Challenge, job.challenge_id)
                if c is None:
                    raise OccamError(f"challenge {job.challenge_id!r} was deleted")
                info = ChallengeInfo.of(c)
            data = self.arena.blobs.get(job.sha256)
            track = get_track(info.track)
        except OccamError as exc:
            return "failed", {"error": exc.problem, "fix": exc.fix, "kind": FAULT_PLATFORM}
        except Exception as exc:
            log.exception("submission %d: cannot start scoring", job.submission_id)
            return "retry", {"error": f"internal error before scoring: {type(exc).__name__}"}
        try:
            results = track.score(data, info, {"start_method": self.settings.start_method,
                                               "private_dataset": self.arena.dataset_arrays})
        except (ModelRejected, ScoringError) as exc:
            return "failed", {"error": exc.problem, "fix": exc.fix, "kind": FAULT_MODEL}
        except OccamError as exc:
            return "failed", {"error": exc.problem, "fix": exc.fix, "kind": FAULT_PLATFORM}
        except Exception as exc:
            log.error("submission %d: scorer crashed:\n%s", job.submission_id, traceback.format_exc())
            return "retry", {"error": f"the scorer crashed ({type(exc).__name__}); the organizers were told",
                             "fix": "nothing to do: your quota was given back"}
        return "scored", results


def run_worker(settings: ArenaSettings, *, max_jobs: int | None = None, exit_when_idle: bool = False,
               migrate_first: bool = True) -> int:
    """Run one worker in this process until SIGTERM/SIGINT (finishes the current job first)."""
    arena = Arena(settings)
    if migrate_first:
        from occam.arena.db import migrate

        migrate(arena.db)
    worker = Worker(arena)

    def _stop(signum: int, _frame: object) -> None:
        worker.stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    try:
        return worker.run(max_jobs=max_jobs, exit_when_idle=exit_when_idle)
    finally:
        arena.db.dispose()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m occam.arena", description=__doc__)
    ap.add_argument("--home", type=Path, default=None)
    ap.add_argument("--db", default=None)
    ap.add_argument("--lease-seconds", type=float, default=30.0)
    ap.add_argument("--heartbeat-seconds", type=float, default=5.0)
    ap.add_argument("--sweep-seconds", type=float, default=5.0)
    ap.add_argument("--poll-seconds", type=float, default=0.5)
    ap.add_argument("--max-attempts", type=int, default=3)
    ap.add_argument("--max-jobs", type=int, default=None)
    ap.add_argument("--exit-when-idle", action="store_true")
    ap.add_argument("--no-migrate", action="store_true")
    ap.add_argument("--exit-with-parent", action="store_true",
                    help="stop when the process that started this worker ends (set by `occam arena serve`)")
    a = ap.parse_args(argv)
    if a.exit_with_parent:
        from occam.arena.lifeline import exit_with_parent

        exit_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = ArenaSettings(db_url=a.db, lease_seconds=a.lease_seconds, heartbeat_seconds=a.heartbeat_seconds,
                             sweep_seconds=a.sweep_seconds, poll_seconds=a.poll_seconds, max_attempts=a.max_attempts)
    if a.home is not None:
        settings.home = a.home
    run_worker(settings, max_jobs=a.max_jobs, exit_when_idle=a.exit_when_idle, migrate_first=not a.no_migrate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
