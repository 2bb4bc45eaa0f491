"""The Arena's schema. Times are UNIX seconds (floats) in UTC, the same on SQLite and PostgreSQL.

The ``submissions`` table is also the job queue: a row's ``status`` moves
``queued -> running -> scored | failed`` (or back to ``queued`` when a lease expires), and
``rejected`` rows record uploads the guard refused (they use no quota and hold no file).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


# Submission statuses.
REJECTED = "rejected"
QUEUED = "queued"
RUNNING = "running"
SCORED = "scored"
FAILED = "failed"
STATUSES = (REJECTED, QUEUED, RUNNING, SCORED, FAILED)

# Who is at fault when a submission fails: the model (quota used) or the platform (quota returned).
FAULT_MODEL = "model"
FAULT_PLATFORM = "platform"


class Setting(Base):
    """Key/value settings of one arena (e.g. the admin token's hash)."""

    __tablename__ = "arena_settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Challenge(Base):
    __tablename__ = "challenges"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    track: Mapped[str] = mapped_column(String(32), default="sparse")  # challenges.DEFAULT_TRACK
    task: Mapped[str] = mapped_column(String(64))
    lam: Mapped[float] = mapped_column(Float)
    split_seed: Mapped[int] = mapped_column(Integer, default=0)
    public_fraction: Mapped[float] = mapped_column(Float, default=0.5)
    daily_quota: Mapped[int] = mapped_column(Integer, default=5)
    final_selections: Mapped[int] = mapped_column(Integer, default=2)
    max_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    limits_json: Mapped[str] = mapped_column(Text, default="{}")
    start_at: Mapped[float] = mapped_column(Float)
    end_at: Mapped[float] = mapped_column(Float)
    freeze_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revealed: Mapped[bool] = mapped_column(Boolean, default=False)
    changes: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float)
    source_toml: Mapped[str] = mapped_column(Text, default="")
    # --- organizer controls ---
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)  # only the admin sees it
    archived: Mapped[bool] = mapped_column(Boolean, default=False)  # read-only, listed apart
    invite_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)  # self-registration when set
    # the track's own settings (a JSON object, what Track.register returned); may hold private values
    # (server paths, hidden halves), so it is never served as such: Track.public_challenge picks what is shown
    track_settings: Mapped[str] = mapped_column(Text, default="{}")

    @property
    def settings(self) -> dict:
        """``track_settings`` as a dict."""
        from occam.arena.tracks.base import load_settings

        return load_settings(self.track_settings)


class Team(Base):
    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    name_key: Mapped[str | None] = mapped_column(String(200), nullable=True)  # sanitize.team_key; unique index uq_teams_name_key
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    disqualified: Mapped[bool] = mapped_column(Boolean, default=False)
    dq_reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("uq_teams_name_key", "name_key", unique=True),)


class Submission(Base):
    __tablename__ = "submissions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    challenge_id: Mapped[str] = mapped_column(ForeignKey("challenges.id", ondelete="CASCADE"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    created_at: Mapped[float] = mapped_column(Float)
    filename: Mapped[str] = mapped_column(String(255), default="model.onnx")
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    nnz: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stored_values: Mapped[int | None] = mapped_column(Integer, nullable=True)
    guard_json: Mapped[str] = mapped_column(Text, default="{}")
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    counts_quota: Mapped[bool] = mapped_column(Boolean, default=True)
    # --- the queue ---
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # --- results (written in the transaction that completes the job) ---
    public_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    public_ce: Mapped[float | None] = mapped_column(Float, nullable=True)
    public_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    private_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    private_ce: Mapped[float | None] = mapped_column(Float, nullable=True)
    private_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    metrics_json: Mapped[str] = mapped_column(Text, default="{}")
    scorer_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    times_scored: Mapped[int] = mapped_column(Integer, default=0)
    rejudges: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_fix: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # --- contest state ---
    selected: Mapped[bool] = mapped_column(Boolean, default=False)
    disqualified: Mapped[bool] = mapped_column(Boolean, default=False)
    dq_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)  # the team's own note, shown to the team

    team: Mapped[Team] = relationship(lazy="joined")

    __table_args__ = (
        Index("ix_submissions_status_id", "status", "id"),
        Index("ix_submissions_challenge_team_created", "challenge_id", "team_id", "created_at"),
        Index("ix_submissions_challenge_status", "challenge_id", "status"),
    )


class Worker(Base):
    """A worker's last sign of life (for the admin page; leases, not this table, decide who owns a job)."""

    __tablename__ = "workers"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(200), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[float] = mapped_column(Float)
    heartbeat_at: Mapped[float] = mapped_column(Float)
    jobs_done: Mapped[int] = mapped_column(Integer, default=0)
    current_submission: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Blob(Base):
    """An uploaded file, stored in the database so that a worker on another machine needs only the database."""

    __tablename__ = "blobs"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[float] = mapped_column(Float)


class PrivateDataset(Base):
    """An organizer's private test set (images and labels in a blob). Only workers read the blob."""

    __tablename__ = "private_datasets"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    manifest_json: Mapped[str] = mapped_column(Text)
    blob_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)


class AdminAction(Base):
    """The admin audit log: who did what, when."""

    __tablename__ = "admin_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
