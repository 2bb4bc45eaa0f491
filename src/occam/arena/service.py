"""What the web layer and the CLI share: accepting uploads (stage one), quotas, access, admin actions."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from occam.arena import queue
from occam.arena.challenges import ChallengeSpec, spec_columns
from occam.arena.config import ArenaSettings
from occam.arena.db import Database, migrate
from occam.arena.organizer import OrganizerMixin
from occam.arena.schema import QUEUED, REJECTED, Challenge, Submission, Team
from occam.arena.security import (
    TEAM_PREFIX,
    has_admin_token,
    hash_token,
    is_admin_token,
    new_token,
    set_admin_token,
)
from occam.arena.storage import BlobStore
from occam.arena.tracks import ChallengeInfo, CheckOutcome, get_track
from occam.errors import OccamError

log = logging.getLogger("occam.arena.service")


class Refused(OccamError):
    """A request the arena refuses; ``status`` is the HTTP status the web layer answers with."""

    def __init__(self, problem: str, fix: str | None = None, *, status: int = 400, code: str = "refused"):
        super().__init__(problem, fix)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Viewer:
    kind: str  # "anon" | "team" | "admin"
    team_id: int | None = None
    team_name: str | None = None
    disqualified: bool = False

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    @property
    def is_team(self) -> bool:
        return self.kind == "team"

    def may_see(self, sub: Submission) -> bool:
        return self.is_admin or (self.is_team and sub.team_id == self.team_id)


ANON = Viewer("anon")
VIEWER_TTL = 5.0

# Prebuilt statements for the upload path (building SQLAlchemy expressions costs more than running them).
_QUOTA = (select(func.count()).select_from(Submission)
          .where(Submission.challenge_id == bindparam("challenge_id"), Submission.team_id == bindparam("team_id"),
                 Submission.counts_quota.is_(True), Submission.created_at >= bindparam("start"),
                 Submission.created_at < bindparam("end")))
_INSERT = insert(Submission).returning(Submission.id)
_LOCK_TEAM = select(Team.id).where(Team.id == bindparam("team_id")).with_for_update()


@dataclass
class SubmitResult:
    accepted: bool
    submission_id: int
    status: str
    reason: str = ""
    fix: str = ""
    nnz: int | None = None
    quota_left: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "id": self.submission_id, "status": self.status, "reason": self.reason,
                "fix": self.fix, "nnz": self.nnz, "quota_left": self.quota_left}


def day_bounds(now: float) -> tuple[float, float]:
    """The current UTC day as [start, end) in UNIX seconds (quotas reset at UTC midnight)."""
    d = dt.datetime.fromtimestamp(now, dt.UTC).date()
    start = dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp()
    return start, start + 86400.0


def phase(c: Challenge, now: float | None = None) -> str:
    now = time.time() if now is None else now
    if now < c.start_at:
        return "upcoming"
    if now >= c.end_at:
        return "ended"
    if c.freeze_at is not None and now >= c.freeze_at:
        return "frozen"
    return "running"


class Arena(OrganizerMixin):
    """One arena: its database, its blob store and its settings."""

    def __init__(self, settings: ArenaSettings, *, db: Database | None = None):
        self.settings = settings
        self.db = db or Database(settings.url)
        self.blobs = BlobStore(settings.blobs_dir, self.db)
        self._viewers: dict[str, tuple[float, Viewer]] = {}
        self._challenges: dict[str, tuple[float, Challenge]] = {}

    # ---- setup ---------------------------------------------------------------------------
    def init(self) -> str | None:
        """Migrate the schema; create an admin token if there is none and return it (else None)."""
        migrate(self.db)
        with self.db.write() as s:
            if not has_admin_token(s):
                return set_admin_token(s)
        return None

    def rotate_admin_token(self) -> str:
        self.forget_viewers()
        with self.db.write() as s:
            return set_admin_token(s)

    def add_challenge(self, spec: ChallengeSpec, *, replace: bool = False) -> Challenge:
        """Add (or with ``replace`` update) a challenge. Its track validates its own settings first
        (:meth:`Track.register`) and says what to store (``track_settings``)."""
        self._challenges.clear()
        track = get_track(spec.track)
        cols = spec_columns(spec)
        dataset = track.private_dataset(spec.settings)
        if dataset is not None:  # the test set exists and fits the task before anything is stored
            from occam.arena.datasets import check_against
            from occam.tasks import get_task

            try:
                manifest = self.dataset_manifest(dataset)
            except Refused:
                raise Refused(f"challenge {spec.id!r} uses the private dataset {dataset!r}, which is not registered",
                              "register it first (occam arena dataset add NAME PATH)", status=400) from None
            task = get_task(spec.task)
            check_against(manifest, tuple(task.input_shape), task.num_classes, task.name)
        cols["track_settings"] = json.dumps(track.register(spec))
        with self.db.write() as s:
            row = s.get(Challenge, spec.id)
            if row is not None and not replace:
                raise Refused(f"challenge {spec.id!r} exists already", "pass --replace to update it", status=409)
            if row is None:
                row = Challenge(created_at=time.time(), revealed=False, changes=0, **cols)
                s.add(row)
            else:
                for k, v in cols.items():
                    setattr(row, k, v)
                row.changes += 1
            return row

    def add_team(self, name: str) -> tuple[Team, str]:
        from occam.arena.sanitize import team_key, team_name

        try:
            name = team_name(name)
        except OccamError as exc:
            raise Refused(exc.problem, exc.fix) from None
        key = team_key(name)
        token = new_token(TEAM_PREFIX)
        try:
            with self.db.write() as s:
                clash = s.scalar(select(Team.name).where(Team.name_key == key))
                if clash is not None:
                    raise Refused(f"team {name!r} is too like the existing team {clash!r}",
                                  "pick a name that differs in more than case, spacing or look-alike characters",
                                  status=409)
                team = Team(name=name, name_key=key, token_sha256=hash_token(token), created_at=time.time(),
                            disqualified=False)
                s.add(team)
                s.flush()
        except IntegrityError:
            raise Refused(f"team {name!r} exists already", "pick another name", status=409) from None
        return team, token

    def rotate_team_token(self, team_id: int) -> str:
        self.forget_viewers()
        token = new_token(TEAM_PREFIX)
        with self.db.write() as s:
            team = s.get(Team, team_id)
            if team is None:
                raise Refused(f"no team {team_id}", status=404)
            team.token_sha256 = hash_token(token)
        return token

    # ---- who is asking -------------------------------------------------------------------
    def viewer(self, token: str | None) -> Viewer:
        """Who holds ``token`` (cached for a few seconds: a rotated token or a new disqualification takes
        at most ``VIEWER_TTL`` seconds to apply)."""
        if not token:
            return ANON
        token = token.strip()
        key = hash_token(token)
        hit = self._viewers.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[0] < VIEWER_TTL:
            return hit[1]
        v = self._lookup_viewer(token)
        if len(self._viewers) > 10000:
            self._viewers.clear()
        self._viewers[key] = (now, v)
        return v

    def forget_viewers(self) -> None:
        self._viewers.clear()
        self._challenges.clear()

    def _lookup_viewer(self, token: str) -> Viewer:
        with self.db.read() as s:
            if is_admin_token(s, token):
                return Viewer("admin")
            if token.startswith(TEAM_PREFIX):
                row = s.execute(select(Team.id, Team.name, Team.disqualified)
                                .where(Team.token_sha256 == hash_token(token))).first()
                if row is not None:
                    return Viewer("team", row.id, row.name, bool(row.disqualified))
        return ANON

    # ---- reading -------------------------------------------------------------------------
    def challenges(self) -> list[Challenge]:
        with self.db.read() as s:
            return list(s.scalars(select(Challenge).order_by(Challenge.start_at.desc(), Challenge.id)))

    def challenge(self, cid: str) -> Challenge:
        with self.db.read() as s:
            c = s.get(Challenge, cid)
        if c is None:
            raise Refused(f"no challenge {cid!r}", "see GET /api/challenges for the list", status=404, code="not_found")
        return c

    def submission(self, viewer: Viewer, sid: int) -> Submission:
        """A submission the viewer may see; 404 otherwise (never reveals that another team's exists)."""
        with self.db.read() as s:
            sub = s.get(Submission, sid)
        if sub is None or not viewer.may_see(sub):
            raise Refused(f"no submission {sid} visible to you", "log in as the team that uploaded it",
                          status=404, code="not_found")
        return sub

    def submissions(self, viewer: Viewer, challenge_id: str | None = None, *, limit: int = 500) -> list[Submission]:
        if not (viewer.is_team or viewer.is_admin):
            return []
        q = select(Submission).order_by(Submission.id.desc()).limit(limit)
        if viewer.is_team:
            q = q.where(Submission.team_id == viewer.team_id)
        if challenge_id is not None:
            q = q.where(Submission.challenge_id == challenge_id)
        with self.db.read() as s:
            return list(s.scalars(q))

    def teams(self) -> list[Team]:
        with self.db.read() as s:
            return list(s.scalars(select(Team).order_by(Team.id)))

    def quota(self, team_id: int, c: Challenge, *, session: Session | None = None,
              now: float | None = None) -> dict[str, Any]:
        """Accepted uploads today (UTC) that count against the quota, and when the count resets."""
        now = time.time() if now is None else now
        start, end = day_bounds(now)
        params = {"challenge_id": c.id, "team_id": team_id, "start": start, "end": end}
        if session is None:
            with self.db.read() as s:
                used = int(s.execute(_QUOTA, params).scalar_one() or 0)
        else:
            used = int(session.execute(_QUOTA, params).scalar_one() or 0)
        return {"used": used, "limit": c.daily_quota, "left": max(0, c.daily_quota - used), "resets_at": end}

    def _challenge_cached(self, cid: str) -> Challenge:
        """The challenge row, cached for a second (submissions check it on every upload)."""
        hit = self._challenges.get(cid)
        now = time.monotonic()
        if hit is not None and now - hit[0] < 1.0:
            return hit[1]
        c = self.challenge(cid)
        self._challenges[cid] = (now, c)
        return c

    # ---- stage one: accepting an upload --------------------------------------------------
    def submit(self, viewer: Viewer, challenge_id: str, data: bytes, filename: str = "model.onnx") -> SubmitResult:
        """Check an upload in the request; queue it for scoring or say at once why it was refused.

        A file the guard refuses is recorded as ``rejected`` and uses no quota. Raises
        :class:`Refused` for requests that cannot be accepted at all (closed challenge, no quota).
        """
        if not viewer.is_team:
            raise Refused("only teams can submit", "use your team's token (occam arena team add prints it)",
                          status=403, code="forbidden")
        now = time.time()
        c = self._challenge_cached(challenge_id)
        if viewer.disqualified:
            raise Refused("your team is disqualified", "contact the organizers", status=403, code="forbidden")
        if c.archived or c.hidden:
            raise Refused(f"challenge {c.id!r} is {'archived' if c.archived else 'hidden'}: it takes no submissions",
                          "ask the organizers", status=403, code="closed")
        p = phase(c, now)
        if p == "upcoming":
            raise Refused(f"challenge {c.id!r} has not started yet", f"submit after {_iso(c.start_at)}",
                          status=403, code="closed")
        if p == "ended":
            raise Refused(f"challenge {c.id!r} has ended", "no more submissions are accepted", status=403,
                          code="closed")
        limit_rejected = self.settings.max_rejected_per_hour
        if limit_rejected and self.rejected_recently(viewer.team_id or 0, c.id, 3600.0) >= limit_rejected:
            raise Refused(f"your team had {limit_rejected} uploads refused in the last hour",
                          "check files locally first (occam inspect MODEL --task TASK), then try again later",
                          status=429, code="rate_limited")
        track = get_track(c.track)
        filename = (filename or track.default_upload_name).replace("/", "_").replace("\\", "_")[:200]
        limit = min(self.settings.max_upload_bytes, c.max_bytes or self.settings.max_upload_bytes)
        if len(data) > limit:
            outcome = CheckOutcome(False, f"the file has {len(data):,} bytes, more than this challenge's limit of "
                                          f"{limit:,}", track.too_large_fix)
        elif len(data) == 0:
            outcome = CheckOutcome(False, "the file is empty", f"upload a {track.accept.replace(',', ' or ')} file")
        else:
            try:
                outcome = track.check(data, ChallengeInfo.of(c))
            except Exception as exc:  # a track's bug (the battery forbids it): the platform's fault, no row, no quota
                log.exception("challenge %s: the %s track's check raised", c.id, track.name)
                raise Refused("the server could not check this file (a bug in the challenge's track)",
                              "tell the organizers; this upload used no quota", status=500, code="check_failed") from exc
        team_id = viewer.team_id or 0
        row: dict[str, Any] = dict(challenge_id=c.id, team_id=team_id, created_at=now, filename=filename,
                                   size=len(data), guard_json=json.dumps(outcome.report, default=str),
                                   attempts=0, times_scored=0, rejudges=0, selected=False, disqualified=False,
                                   metrics_json="{}")
        if not outcome.ok:
            row.update(sha256=None, status=REJECTED, counts_quota=False, error=outcome.reason,
                       error_fix=outcome.fix, error_kind="model")
            with self.db.write() as s:
                sid = s.execute(_INSERT, row).scalar_one()
                left = self.quota(team_id, c, session=s, now=now)["left"]
            return SubmitResult(False, sid, REJECTED, outcome.reason, outcome.fix, None, left)
        # the local copy first (a crash in between leaves only an unused file); the database copy is written in
        # the row's transaction below: one commit per upload, and a refused quota stores nothing
        digest = self.blobs.put(data, in_db=False)
        row.update(sha256=digest, nnz=outcome.nnz, stored_values=outcome.stored_values, status=QUEUED,
                   counts_quota=True)
        with self.db.write() as s:
            if self.db.is_postgres:  # serialize this team's quota check (SQLite: BEGIN IMMEDIATE does it)
                s.execute(_LOCK_TEAM, {"team_id": team_id})
            q = self.quota(team_id, c, session=s, now=now)
            if q["left"] <= 0:
                raise _quota_refused(c, q)
            self.blobs.put_in(s, digest, data)
            sid = s.execute(_INSERT, row).scalar_one()
        return SubmitResult(True, sid, QUEUED, "", "", outcome.nnz, q["left"] - 1)

    def submission_bytes(self, viewer: Viewer, sid: int) -> tuple[Submission, bytes]:
        """The uploaded file of a submission the viewer may see (any track)."""
        sub = self.submission(viewer, sid)
        if not sub.sha256:
            raise Refused(f"submission {sid} has no stored file (the guard refused it)", status=404, code="not_found")
        return sub, self.blobs.get(sub.sha256)

    def model_bytes(self, viewer: Viewer, sid: int) -> tuple[Submission, bytes]:
        """The uploaded ONNX model (what the Lens opens); refused for tracks whose uploads are not models."""
        sub = self.submission(viewer, sid)
        track = get_track(self._challenge_cached(sub.challenge_id).track)
        if not track.uploads_models:
            raise Refused(f"submission {sid} is a {track.name} prediction file, not a model",
                          "the Lens opens ONNX models; download the file itself from the submission page",
                          status=409, code="not_a_model")
        return self.submission_bytes(viewer, sid)

    def select_final(self, viewer: Viewer, sid: int, selected: bool) -> Submission:
        sub = self.submission(viewer, sid)
        if not viewer.is_team:
            raise Refused("only the team itself picks its final submissions", status=403, code="forbidden")
        with self.db.write() as s:
            c = s.get(Challenge, sub.challenge_id)
            assert c is not None
            if time.time() >= c.end_at:
                raise Refused("the challenge has ended; finals can no longer change", status=403, code="closed")
            if selected:
                if sub.public_score is None or sub.disqualified:
                    raise Refused("only scored submissions can be final", "wait until it is scored", status=409)
                n = s.scalar(select(func.count()).select_from(Submission).where(
                    Submission.challenge_id == c.id, Submission.team_id == viewer.team_id,
                    Submission.selected.is_(True), Submission.id != sid)) or 0
                if n >= c.final_selections:
                    raise Refused(f"you already picked {n} final submissions (the limit is {c.final_selections})",
                                  "unselect one first", status=409, code="limit")
            s.execute(update(Submission).where(Submission.id == sid).values(selected=selected))
            s.execute(update(Challenge).where(Challenge.id == c.id).values(changes=Challenge.changes + 1))
        return self.submission(viewer, sid)

    # ---- admin ---------------------------------------------------------------------------
    def rejudge(self, submission_ids: list[int] | None = None, *, challenge_id: str | None = None) -> int:
        with self.db.write() as s:
            if submission_ids is None:
                q = select(Submission.id).where(Submission.sha256.is_not(None))
                if challenge_id is not None:
                    q = q.where(Submission.challenge_id == challenge_id)
                submission_ids = list(s.scalars(q))
            return queue.requeue(s, submission_ids)

    def disqualify_submission(self, sid: int, reason: str, *, undo: bool = False) -> None:
        with self.db.write() as s:
            sub = s.get(Submission, sid)
            if sub is None:
                raise Refused(f"no submission {sid}", status=404, code="not_found")
            sub.disqualified = not undo
            sub.dq_reason = None if undo else (reason or "disqualified by the organizers")
            if not undo:
                sub.selected = False
            s.execute(update(Challenge).where(Challenge.id == sub.challenge_id).values(changes=Challenge.changes + 1))

    def disqualify_team(self, team_id: int, reason: str, *, undo: bool = False) -> None:
        self.forget_viewers()
        with self.db.write() as s:
            team = s.get(Team, team_id)
            if team is None:
                raise Refused(f"no team {team_id}", status=404, code="not_found")
            team.disqualified = not undo
            team.dq_reason = None if undo else (reason or "disqualified by the organizers")
            s.execute(update(Challenge).values(changes=Challenge.changes + 1))

    def set_freeze(self, cid: str, freeze: bool) -> Challenge:
        self._challenges.clear()
        with self.db.write() as s:
            c = s.get(Challenge, cid)
            if c is None:
                raise Refused(f"no challenge {cid!r}", status=404, code="not_found")
            c.freeze_at = min(time.time(), c.end_at) if freeze else None
            c.changes += 1
            return c

    def set_revealed(self, cid: str, revealed: bool) -> Challenge:
        self._challenges.clear()
        with self.db.write() as s:
            c = s.get(Challenge, cid)
            if c is None:
                raise Refused(f"no challenge {cid!r}", status=404, code="not_found")
            c.revealed = revealed
            c.changes += 1
            return c

    def end_now(self, cid: str) -> Challenge:
        self._challenges.clear()
        with self.db.write() as s:
            c = s.get(Challenge, cid)
            if c is None:
                raise Refused(f"no challenge {cid!r}", status=404, code="not_found")
            now = time.time()
            c.end_at = max(now, c.start_at + 1)
            if c.freeze_at is not None and c.freeze_at > c.end_at:
                c.freeze_at = c.end_at
            c.changes += 1
            return c

    def status(self) -> dict[str, Any]:
        from occam.arena.schema import Worker

        # a worker that has not beaten for this long is dead (a busy one beats every heartbeat_seconds)
        expiry = max(self.settings.lease_seconds, 3 * self.settings.heartbeat_seconds)
        with self.db.read() as s:
            counts = queue.queue_counts(s)
            alive_since = self.db.now(s) - expiry
            workers = [{"id": w.id, "host": w.host, "pid": w.pid, "heartbeat_at": w.heartbeat_at,
                        "jobs_done": w.jobs_done, "current_submission": w.current_submission}
                       for w in s.scalars(select(Worker).where(Worker.heartbeat_at >= alive_since)
                                          .order_by(Worker.heartbeat_at.desc()).limit(50))]
        return {"queue": counts, "workers": workers}


def _quota_refused(c: Challenge, q: dict[str, Any]) -> Refused:
    return Refused(f"your team used its {c.daily_quota} submissions for today",
                   f"try again after {_iso(q['resets_at'])} (quotas reset at 00:00 UTC)", status=429, code="quota")


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
