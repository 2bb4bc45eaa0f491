"""Settings of one arena (a home folder with the SQLite file and the uploaded blobs, or a DB URL)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from occam.arena.db import default_home, resolve_url


@dataclass
class ArenaSettings:
    home: Path = field(default_factory=default_home)
    db_url: str | None = None  # None: SQLite at HOME/arena.sqlite3 (or $OCCAM_ARENA_DB)
    host: str = field(default="127.0.0.1", metadata={"help": "Address to listen on (0.0.0.0: every interface)."})
    port: int = field(default=8000, metadata={"help": "Port.", "min": 0, "max": 65535})
    workers: int = field(default=2, metadata={"help": "Scoring worker processes to start here (0: run them elsewhere).",
                                              "min": 0})
    lease_seconds: float = field(default=30.0, metadata={"help": "A job's lease; a worker heartbeats every ~1/6 of it.",
                                                         "min": 1.0})
    heartbeat_seconds: float = 5.0
    max_attempts: int = field(default=3, metadata={"help": "Give up on a job (platform's fault, quota back) after this "
                                                           "many attempts.", "min": 1})
    poll_seconds: float = 0.5
    sweep_seconds: float = 5.0
    max_upload_bytes: int = field(default=20_000_000, metadata={
        "help": "The one upload-size limit in bytes (a challenge's max_bytes may lower it).", "min": 1})
    max_rejected_per_hour: int = field(default=30, metadata={
        "help": "Refused uploads a team may make per challenge and hour before a 429 (0: no limit).", "min": 0})
    start_method: str = "forkserver"
    secure_cookies: bool = field(default=False, metadata={"help": "Mark login cookies Secure (behind HTTPS)."})
    # Origins besides the arena's own (scheme://host:port as the browser sees it, e.g. behind a proxy) whose pages
    # may POST with the session cookie (occam.web.csrf)
    trusted_origins: tuple[str, ...] = ()
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
