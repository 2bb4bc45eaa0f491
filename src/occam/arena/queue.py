"""The submissions table as a job queue: claims with leases, heartbeats, completion, and a sweeper.

Invariants (what makes a worker killed at any moment lose nothing and score nothing twice):

- A job is *claimed* in one transaction that moves it ``queued -> running`` and stamps a fresh
  random ``lease_token`` and an expiry (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN
  IMMEDIATE`` on SQLite, so two workers never claim the same row).
- The worker *heartbeats* by pushing the expiry forward, only while the token is still its own.
- Results are written by one ``UPDATE ... WHERE id = :id AND lease_token = :token AND status =
  'running'`` that also sets ``status = 'scored'`` and bumps ``times_scored``; if the lease was
  lost (expired and re-claimed by someone else) that update matches no row and the stale result
  is dropped.
- The *sweeper* returns jobs whose lease expired to ``queued`` (a new claim gets a new token),
  and fails them as the platform's fault, with the quota given back, after ``max_attempts``.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from occam.arena.db import Database
from occam.arena.schema import (
    FAILED,
    FAULT_PLATFORM,
    QUEUED,
    RUNNING,
    SCORED,
    Challenge,
    Submission,
    Worker,
)


@dataclass(frozen=True)
class Job:
    submission_id: int
    challenge_id: str
    team_id: int
    sha256: str
    lease_token: str
    attempt: int


_ANY_QUEUED = select(Submission.id).where(Submission.status == QUEUED).limit(1)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _bump(session: Session, challenge_id: str) -> None:
    session.execute(update(Challenge).where(Challenge.id == challenge_id).values(changes=Challenge.changes + 1))


def claim(db: Database, owner: str, lease_seconds: float) -> Job | None:
    """Take the oldest queued job, or None. One transaction; never hands a row to two workers."""
    with db.read() as s:  # a cheap look first: idle workers must not take the write lock every poll
        if s.execute(_ANY_QUEUED).first() is None:
            return None
    with db.write() as s:
        now = db.now(s)
        q = select(Submission.id).where(Submission.status == QUEUED).order_by(Submission.id).limit(1)
        if db.is_postgres:
            q = q.with_for_update(skip_locked=True)
        sid = s.scalar(q)
        if sid is None:
            return None
        token = uuid.uuid4().hex
        res = s.execute(
            update(Submission)
            .where(Submission.id == sid, Submission.status == QUEUED)
            .values(status=RUNNING, lease_token=token, lease_owner=owner, lease_expires_at=now + lease_seconds,
                    started_at=now, attempts=Submission.attempts + 1)
        )
        if res.rowcount != 1:  # pragma: no cover - impossible under the locks above
            return None
        row = s.execute(select(Submission.challenge_id, Submission.team_id, Submission.sha256, Submission.attempts)
                        .where(Submission.id == sid)).one()
        return Job(sid, row.challenge_id, row.team_id, row.sha256 or "", token, row.attempts)


def heartbeat(db: Database, job: Job, lease_seconds: float) -> bool:
    """Extend the lease; False when the job is no longer ours (then drop it, do not write results)."""
    with db.write() as s:
        now = db.now(s)
        res = s.execute(update(Submission)
                        .where(Submission.id == job.submission_id, Submission.lease_token == job.lease_token,
                               Submission.status == RUNNING)
                        .values(lease_expires_at=now + lease_seconds))
        return res.rowcount == 1


def complete(db: Database, job: Job, results: dict[str, Any]) -> bool:
    """Write a job's results and mark it scored, in one transaction, if the lease is still ours."""
    values = {k: results.get(k) for k in ("public_score", "public_ce", "public_accuracy",
                                           "private_score", "private_ce", "private_accuracy", "scorer_version")}
    if results.get("nnz") is not None:
        values["nnz"] = int(results["nnz"])
    with db.write() as s:
        now = db.now(s)
        res = s.execute(
            update(Submission)
            .where(Submission.id == job.submission_id, Submission.lease_token == job.lease_token,
                   Submission.status == RUNNING)
            .values(status=SCORED, finished_at=now, lease_token=None, lease_expires_at=None,
                    metrics_json=json.dumps(results.get("metrics", {})), error=None, error_fix=None,
                    error_kind=None, times_scored=Submission.times_scored + 1, **values)
        )
        if res.rowcount != 1:
            return False
        _bump(s, job.challenge_id)
        return True


def fail(db: Database, job: Job, error: str, fix: str | None, kind: str) -> bool:
    """Mark a job failed. ``kind`` is ``model`` (quota used) or ``platform`` (quota given back)."""
    with db.write() as s:
        now = db.now(s)
        values: dict[str, Any] = dict(status=FAILED, finished_at=now, lease_token=None, lease_expires_at=None,
                                      error=error, error_fix=fix, error_kind=kind, public_score=None,
                                      private_score=None, public_ce=None, private_ce=None,
                                      public_accuracy=None, private_accuracy=None)
        if kind == FAULT_PLATFORM:
            values["counts_quota"] = False
        res = s.execute(update(Submission)
                        .where(Submission.id == job.submission_id, Submission.lease_token == job.lease_token,
                               Submission.status == RUNNING)
                        .values(**values))
        if res.rowcount != 1:
            return False
        _bump(s, job.challenge_id)
        return True


def release(db: Database, job: Job) -> bool:
    """Give a job back to the queue at once (the attempt still counts towards ``max_attempts``)."""
    with db.write() as s:
        res = s.execute(update(Submission)
                        .where(Submission.id == job.submission_id, Submission.lease_token == job.lease_token,
                               Submission.status == RUNNING)
                        .values(status=QUEUED, lease_token=None, lease_owner=None, lease_expires_at=None))
        return res.rowcount == 1


def sweep(db: Database, max_attempts: int = 3) -> tuple[int, int]:
    """Re-queue running jobs whose lease expired; fail those already tried ``max_attempts`` times.

    Returns (requeued, failed). Safe to run from every worker and the server at once.
    """
    with db.write() as s:
        now = db.now(s)
        expired = and_(Submission.status == RUNNING, Submission.lease_expires_at < now)
        requeued = s.execute(update(Submission).where(expired, Submission.attempts < max_attempts)
                             .values(status=QUEUED, lease_token=None, lease_owner=None,
                                     lease_expires_at=None)).rowcount
        dead = list(s.execute(select(Submission.id, Submission.challenge_id)
                              .where(expired, Submission.attempts >= max_attempts)))
        for sid, cid in dead:
            s.execute(update(Submission).where(Submission.id == sid).values(
                status=FAILED, finished_at=now, lease_token=None, lease_expires_at=None, counts_quota=False,
                error_kind=FAULT_PLATFORM, error_fix="nothing to do: your quota was given back; submit again",
                error=f"the scoring worker stopped {max_attempts} times while running this model"))
            _bump(s, cid)
        return requeued, len(dead)


def requeue(session: Session, submission_ids: list[int]) -> int:
    """Put submissions back in the queue (rejudge). Old results stay visible until new ones land."""
    if not submission_ids:
        return 0
    return session.execute(update(Submission).where(Submission.id.in_(submission_ids), Submission.sha256.is_not(None))
                           .values(status=QUEUED, lease_token=None, lease_owner=None, lease_expires_at=None,
                                   attempts=0, rejudges=Submission.rejudges + 1)).rowcount


def queue_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(Submission.status, func.count()).group_by(Submission.status))
    return {status: n for status, n in rows}


def worker_gone(db: Database, owner: str) -> None:
    """Remove a worker that stopped cleanly from the admin list (crashed ones leave it when their heartbeat expires)."""
    with db.write() as s:
        row = s.get(Worker, owner)
        if row is not None:
            s.delete(row)


def worker_beat(db: Database, owner: str, current: int | None, *, done: int | None = None) -> None:
    """Record a worker's sign of life for the admin page."""
    with db.write() as s:
        now = db.now(s)
        row = s.get(Worker, owner)
        if row is None:
            host, pid = (owner.split(":") + ["", "0"])[:2]
            s.add(Worker(id=owner, host=host, pid=int(pid) if pid.isdigit() else 0, started_at=now,
                         heartbeat_at=now, jobs_done=0, current_submission=current))
        else:
            row.heartbeat_at = now
            row.current_submission = current
            if done is not None:
                row.jobs_done = done
