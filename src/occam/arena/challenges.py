"""Challenge definitions in TOML, and the seeded public/private split of a task's test set.

A challenge file::

    id = "fashion-sparse"              # a slug: letters, digits, '-', '_'
    title = "Fashion-MNIST, sparse track"
    track = "sparse"                   # how submissions are scored (a registered track: occam.arena.tracks)
    task = "fashion-mnist"             # an occam task; its *test* split is scored
    lam = 10.0                         # score = CE + log10(max(1, nnz)) / lam
    description = "Markdown-free text shown on the challenge page."
    start = 2026-11-27T09:00:00Z       # TOML datetimes; UTC if no offset is given
    end = 2026-11-29T17:00:00Z
    freeze = 2026-11-29T15:00:00Z      # optional: public leaderboard stops moving for others

    [split]
    seed = 7                           # which test images are public vs private
    public_fraction = 0.5

    [submissions]
    daily_quota = 5                    # accepted uploads per team per UTC day
    final_selections = 2               # finals a team may pick for the private leaderboard
    max_bytes = 5_000_000              # optional, on top of the guard's own cap

    [limits]                           # optional; passed to the sandbox (occam.scoring.Limits)
    wall_seconds = 60

A track may take settings from its own table, named after it (``[audit]`` for the audit track, see
docs/arena.md); the track parses and validates it (:meth:`occam.arena.tracks.Track.parse_settings`), may give
the challenge a default ``task`` and ``daily_quota``, and stores what it needs in the challenge's
``track_settings`` when the challenge is added (:meth:`occam.arena.tracks.Track.register`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from occam.arena.strict import DATETIME, NUMBER, check_table
from occam.errors import OccamError

DEFAULT_TRACK = "sparse"  # the same as occam.arena.tracks.DEFAULT_TRACK (imported from here)

_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass
class ChallengeSpec:
    id: str
    title: str
    task: str
    lam: float
    start_at: float
    end_at: float
    track: str = DEFAULT_TRACK
    description: str = ""
    freeze_at: float | None = None
    split_seed: int = 0
    public_fraction: float = 0.5
    daily_quota: int | None = None  # None: the track's default (Track.default_quota)
    final_selections: int = 2
    max_bytes: int | None = None
    limits: dict[str, Any] = field(default_factory=dict)
    source_toml: str = ""
    settings: dict[str, Any] = field(default_factory=dict)  # the track's settings (Track.parse_settings)

    def __post_init__(self) -> None:
        if self.daily_quota is None:
            self.daily_quota = _default_quota(self.track)


def _default_quota(track: str) -> int:
    from occam.arena.tracks import get_track

    try:
        return get_track(track).default_quota
    except OccamError:
        return 5


def _epoch(value: Any, key: str) -> float:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp()
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return _epoch(dt.datetime.fromisoformat(value.replace("Z", "+00:00")), key)
        except ValueError:
            pass
    raise OccamError(f"challenge field {key!r} is not a date-time: {value!r}",
                     "write it as a TOML date-time, e.g. 2026-11-27T09:00:00Z")


CORE_SCHEMA: dict[str, Any] = {
    "id": str, "title": str, "track": str, "task": str, "lam": NUMBER, "description": str,
    "start": DATETIME, "end": DATETIME, "freeze": DATETIME,
    "split": {"seed": int, "public_fraction": NUMBER},
    "submissions": {"daily_quota": int, "final_selections": int, "max_bytes": int},
    "limits": {"memory_mb": int, "cpu_seconds": int, "wall_seconds": NUMBER},
}


def challenge_schema(track: Any) -> dict[str, Any]:  # noqa: ANN401 - a Track
    """The keys and types a challenge TOML of ``track`` may hold: the core ones and the track's own table
    (:attr:`occam.arena.tracks.Track.settings_schema`; a track without a schema has its table checked by
    its own ``parse_settings`` only)."""
    schema = dict(CORE_SCHEMA)
    if track.settings_table:
        schema[track.settings_table] = dict(track.settings_schema) if track.settings_schema is not None else dict
    return schema


def parse_challenge(text: str, *, source: str = "challenge file", base_dir: Path | None = None) -> ChallengeSpec:
    """Parse and validate a challenge TOML document; errors name the field and the fix.

    The track (``track = "NAME"``, default ``sparse``) parses its own table (``[NAME]``, see
    :attr:`occam.arena.tracks.Track.settings_table`). ``base_dir``: where relative paths in it start; the
    file's folder.
    """
    from occam.arena.tracks import all_tracks, get_track, track_names
    from occam.tasks import get_task

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise OccamError(f"{source} is not valid TOML: {exc}", "fix the syntax error at the position shown") from exc
    track_name = str(raw.get("track", DEFAULT_TRACK))
    if track_name not in track_names():
        raise OccamError(f"unknown track {track_name!r}", f"use one of: {', '.join(track_names())}")
    track = get_track(track_name)
    if not isinstance(raw.get("track", ""), str):
        raise OccamError(f"{source}: track must be text (a quoted string), got {raw['track']!r}",
                         f'write track = "{DEFAULT_TRACK}"')
    for other in all_tracks():
        table_name = other.settings_table
        if other.name != track.name and table_name and table_name != track.settings_table and table_name in raw:
            article = "an" if table_name[0] in "aeiou" else "a"
            raise OccamError(f"{source} has {article} [{table_name}] table but track = {track_name!r}",
                             f'set track = "{other.name}" or remove the [{table_name}] table')
    check_table(raw, challenge_schema(track), where=source)
    table = raw.get(track.settings_table) if track.settings_table else None
    if table is not None and not isinstance(table, dict):
        raise OccamError(f"{source}: {track.settings_table} must be a table, got {table!r}",
                         f"write it as a [{track.settings_table}] table")
    settings = track.parse_settings(table, source=source, base_dir=base_dir)
    if "task" not in raw:
        default = track.default_task(settings)
        if default:
            raw["task"] = default
    missing = [k for k in ("id", "title", "task", "start", "end") if k not in raw]
    if missing:
        raise OccamError(f"{source} lacks {', '.join(missing)}", "add the missing keys (see docs/arena.md)")
    cid = str(raw["id"])
    if not _SLUG.match(cid):
        raise OccamError(f"challenge id {cid!r} is not a slug", "use letters, digits, '-' and '_' (at most 64)")
    task = get_task(str(raw["task"]))  # raises a clear DataError for unknown tasks
    split = raw.get("split", {})
    subs = raw.get("submissions", {})
    spec = ChallengeSpec(
        id=cid, title=str(raw["title"]), task=task.name, track=track_name,
        lam=float(raw.get("lam", task.default_lam)), description=str(raw.get("description", "")),
        start_at=_epoch(raw["start"], "start"), end_at=_epoch(raw["end"], "end"),
        freeze_at=_epoch(raw["freeze"], "freeze") if raw.get("freeze") is not None else None,
        split_seed=int(split.get("seed", 0)), public_fraction=float(split.get("public_fraction", 0.5)),
        daily_quota=int(subs.get("daily_quota", track.default_quota)),
        final_selections=int(subs.get("final_selections", 2)),
        max_bytes=int(subs["max_bytes"]) if subs.get("max_bytes") is not None else None,
        limits=dict(raw.get("limits", {})), source_toml=text, settings=settings,
    )
    if spec.lam <= 0:
        raise OccamError(f"lam must be positive, got {spec.lam}", "use e.g. lam = 10.0")
    if spec.end_at <= spec.start_at:
        raise OccamError("the challenge ends before it starts", "make 'end' later than 'start'")
    if spec.freeze_at is not None and not spec.start_at <= spec.freeze_at <= spec.end_at:
        raise OccamError("'freeze' lies outside [start, end]", "pick a freeze time between start and end")
    if not 0.0 < spec.public_fraction < 1.0:
        raise OccamError("split.public_fraction must lie strictly between 0 and 1", "use e.g. 0.5")
    if spec.daily_quota < 1 or spec.final_selections < 1:
        raise OccamError("daily_quota and final_selections must be at least 1", "raise them to 1 or more")
    return spec


def load_challenge_file(path: Path) -> ChallengeSpec:
    path = Path(path)
    if not path.is_file():
        raise OccamError(f"challenge file {path} not found", "pass the path of a .toml file")
    return parse_challenge(path.read_text(), source=str(path), base_dir=path.parent)


def demo_spec(task: str = "fashion-mnist", *, challenge_id: str = "demo", lam: float | None = None,
              daily_quota: int = 20) -> ChallengeSpec:
    """A challenge open from an hour ago for a week (what ``occam arena demo`` creates)."""
    from occam.tasks import get_task

    t = get_task(task)
    now = time.time()
    return ChallengeSpec(
        id=challenge_id, title=f"{t.title} — demo, sparse track", task=t.name, track="sparse",
        lam=lam if lam is not None else t.default_lam,
        description=(f"Classify {t.title} test images with as few non-zero parameters as you can. "
                     "The public leaderboard uses half of the test set; the other half decides the "
                     "private leaderboard revealed at the end."),
        start_at=now - 3600, end_at=now + 7 * 86400, split_seed=1, public_fraction=0.5,
        daily_quota=daily_quota, final_selections=2,
    )


def spec_columns(spec: ChallengeSpec) -> dict[str, Any]:
    """The Challenge row's columns for ``spec``."""
    return dict(id=spec.id, title=spec.title, description=spec.description, track=spec.track, task=spec.task,
                lam=spec.lam, split_seed=spec.split_seed, public_fraction=spec.public_fraction,
                daily_quota=spec.daily_quota, final_selections=spec.final_selections, max_bytes=spec.max_bytes,
                limits_json=json.dumps(spec.limits), start_at=spec.start_at, end_at=spec.end_at,
                freeze_at=spec.freeze_at, source_toml=spec.source_toml, track_settings=json.dumps(spec.settings))


@lru_cache(maxsize=32)
def public_mask(n: int, seed: int, public_fraction: float) -> np.ndarray:
    """A boolean mask over the ``n`` test items: True = public. Same seed, same split, everywhere."""
    rng = np.random.default_rng([seed, n, 0x0CCA])
    k = int(round(n * public_fraction))
    k = min(max(k, 1), n - 1)
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[:k]] = True
    mask.setflags(write=False)
    return mask
