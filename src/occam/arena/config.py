"""Settings of one arena (a home folder with the SQLite file and the uploaded blobs, or a DB URL)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from occam.arena.db import default_home, resolve_url


@dataclass
class ArenaSettings:
    home: Path = field(default_factory=default_home)
    db_url: str | None = None  # None: SQLite at HOME/arena.sqlite3 (or $OCCAM_ARENA_DB)
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2  # worker processes started by `serve` (0: run them elsewhere)
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 5.0
    max_attempts: int = 3
    poll_seconds: float = 0.5
    sweep_seconds: float = 5.0
    max_upload_bytes: int = 20_000_000  # the one upload-size limit (a challenge's max_bytes may lower it)
    max_rejected_per_hour: int = 30  # refused uploads a team may make per challenge and hour before a 429
    start_method: str = "forkserver"
    secure_cookies: bool = False
    sse_poll_seconds: float = 1.0
    site_title: str = "Occam Arena"
    lens_sessions: int = 8  # Lens sessions (opened models, ~10-200 MB each) kept open per web process
    lens_jobs_per_team: int = 2  # background Lens jobs (trigger searches, SAEs) running at once per team
    lens_jobs_total: int = 6  # ... and in all, per web process
    # each open Lens model lives in its own limited child process (occam.isolate): these are its limits
    lens_idle_seconds: float = 900.0  # a child unused this long is closed
    lens_memory_mb: int = 1024  # address space a child may grow by after opening its model
    lens_cpu_seconds: float = 60.0  # CPU-seconds per request (view, edit, ...)
    lens_wall_seconds: float = 60.0  # wall-clock seconds per request

    def __post_init__(self) -> None:
        self.home = Path(self.home).expanduser()

    @property
    def url(self) -> str:
        return resolve_url(self.home, self.db_url)

    @property
    def blobs_dir(self) -> Path:
        return self.home / "blobs"
