"""Challenge definitions in TOML, and the seeded public/private split of a task's test set.

A challenge file::

    id = "fashion-sparse"              # a slug: letters, digits, '-', '_'
    title = "Fashion-MNIST, sparse track"
    track = "sparse"                   # how submissions are scored (see occam.arena.worker.TRACKS)
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

An ``audit`` challenge (track = "audit") names a zoo written by ``occam audit make-zoo``; its
``task`` defaults to the zoo's, ``[split]`` then splits the zoo's *audit models* (not test
images) into the public-board half and the final-ranking half, and ``daily_quota`` defaults to 2::

    [audit]
    zoo = "zoo"                        # relative paths are relative to the challenge file
    key = "zoo/private_key/key.json"   # optional (this is the default); never served
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

from occam.errors import OccamError

_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
KNOWN_TRACKS = ("sparse", "audit")
DEFAULT_QUOTA = {"sparse": 5, "audit": 2}  # audit: exact feedback on a few dozen models leaks labels
AUDIT_KEYS = ("zoo", "key")


@dataclass
class ChallengeSpec:
    id: str
    title: str
    task: str
    lam: float
    start_at: float
    end_at: float
    track: str = "sparse"
    description: str = ""
    freeze_at: float | None = None
    split_seed: int = 0
    public_fraction: float = 0.5
    daily_quota: int | None = None  # None: the track's default (DEFAULT_QUOTA)
    final_selections: int = 2
    max_bytes: int | None = None
    limits: dict[str, Any] = field(default_factory=dict)
    source_toml: str = ""
    audit_zoo: str | None = None  # audit track: the zoo directory (made absolute by parse_challenge)
    audit_key: str | None = None  # audit track: the key file (default ZOO/private_key/key.json)

    def __post_init__(self) -> None:
        if self.daily_quota is None:
            self.daily_quota = DEFAULT_QUOTA.get(self.track, 5)


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


def _audit_section(raw: dict[str, Any], source: str, base_dir: Path | None) -> tuple[str, str | None, str | None]:
    """(zoo dir, key path or None, the zoo's task or None) of an audit challenge's ``[audit]`` table."""
    audit = raw.get("audit")
    if not isinstance(audit, dict) or not audit.get("zoo"):
        raise OccamError(f"{source}: an audit challenge needs an [audit] table with zoo = \"DIR\"",
                         "point zoo at the directory written by `occam audit make-zoo` (see docs/arena.md)")
    unknown = sorted(set(audit) - set(AUDIT_KEYS))
    if unknown:
        raise OccamError(f"{source}: unknown key(s) {unknown} in [audit]", f"use only {', '.join(AUDIT_KEYS)}")

    def absolute(value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise OccamError(f"{source}: [audit] {key} must be a path (a string), got {value!r}",
                             f'write it as {key} = "PATH"')
        p = Path(value).expanduser()
        if not p.is_absolute() and base_dir is not None:
            p = base_dir / p
        return str(p.absolute())

    zoo = absolute(audit["zoo"], "zoo")
    key = absolute(audit["key"], "key") if audit.get("key") is not None else None
    task = None
    if "task" not in raw:  # the zoo's task; registration (Arena.add_challenge) checks the rest
        if not Path(zoo).is_dir():
            raise OccamError(f"{source}: [audit] zoo {zoo} does not exist",
                             "point zoo at the directory written by `occam audit make-zoo` (relative paths start "
                             "at the challenge file's folder)")
        try:
            task = json.loads((Path(zoo) / "public" / "manifest.json").read_text()).get("task")
        except (OSError, ValueError, AttributeError) as exc:
            raise OccamError(f"{source}: {zoo}/public/manifest.json cannot be read ({exc}), so the task is unknown",
                             "point zoo at the directory written by `occam audit make-zoo`") from exc
    return zoo, key, task


def parse_challenge(text: str, *, source: str = "challenge file", base_dir: Path | None = None) -> ChallengeSpec:
    """Parse and validate a challenge TOML document; errors name the field and the fix.

    ``base_dir``: where relative paths (an audit challenge's zoo and key) start; the file's folder.
    """
    from occam.tasks import get_task

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise OccamError(f"{source} is not valid TOML: {exc}", "fix the syntax error at the position shown") from exc
    track = str(raw.get("track", "sparse"))
    if track not in KNOWN_TRACKS:
        raise OccamError(f"unknown track {track!r}", f"use one of: {', '.join(KNOWN_TRACKS)}")
    zoo = key = zoo_task = None
    if track == "audit":
        zoo, key, zoo_task = _audit_section(raw, source, base_dir)
        if "task" not in raw and zoo_task:
            raw["task"] = zoo_task
    elif "audit" in raw:
        raise OccamError(f"{source} has an [audit] table but track = {track!r}",
                         'set track = "audit" or remove the [audit] table')
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
        id=cid, title=str(raw["title"]), task=task.name, track=track,
        lam=float(raw.get("lam", task.default_lam)), description=str(raw.get("description", "")),
        start_at=_epoch(raw["start"], "start"), end_at=_epoch(raw["end"], "end"),
        freeze_at=_epoch(raw["freeze"], "freeze") if raw.get("freeze") is not None else None,
        split_seed=int(split.get("seed", 0)), public_fraction=float(split.get("public_fraction", 0.5)),
        daily_quota=int(subs.get("daily_quota", DEFAULT_QUOTA[track])),
        final_selections=int(subs.get("final_selections", 2)),
        max_bytes=int(subs["max_bytes"]) if subs.get("max_bytes") is not None else None,
        limits=dict(raw.get("limits", {})), source_toml=text, audit_zoo=zoo, audit_key=key,
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
                freeze_at=spec.freeze_at, source_toml=spec.source_toml, audit_zoo_dir=spec.audit_zoo,
                audit_key_path=spec.audit_key, audit_zoo_id=None, audit_public_models=None, audit_private_models=None)


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
