"""Tracks: one protocol (:class:`Track`) for everything track-specific, and a registry.

A track owns its challenge settings (the TOML table named :attr:`Track.settings_table`, validated by
:meth:`Track.parse_settings` and turned into stored settings by :meth:`Track.register`), its default quota,
what an upload is (:attr:`Track.accept`, the request-time :meth:`Track.check`), the worker's
:meth:`Track.score`, its leaderboard columns and CSV export, its public JSON, the client-side upload, the files
teams may download and the models the Lens may open. The arena, the web layer and the CLI only call these
methods; none of them names a track.

Discovery: the entry-point group ``occam.tracks`` (``[project.entry-points."occam.tracks"]`` in a package's
``pyproject.toml``: ``name = "module:TrackClass"``), plus :data:`BUILTIN` (the same strings for the tracks this
distribution ships, so a source checkout works without re-installing), plus :func:`register_track` at run time.
Tracks load lazily, by name: asking for ``sparse`` imports no other track.
"""

from __future__ import annotations

import importlib
import logging
import threading
from importlib.metadata import entry_points

from occam.arena.challenges import DEFAULT_TRACK  # a challenge file without ``track = ...``
from occam.arena.tracks.base import (
    ChallengeInfo,
    CheckOutcome,
    ClientUpload,
    CsvColumn,
    ServedFile,
    Track,
)
from occam.errors import OccamError

__all__ = ["BUILTIN", "DEFAULT_TRACK", "ENTRY_POINT_GROUP", "ChallengeInfo", "CheckOutcome", "ClientUpload", "CsvColumn",
           "ServedFile", "Track", "all_tracks", "get_track", "higher_is_better", "register_track", "track_names",
           "unregister_track", "TRACKS"]

log = logging.getLogger("occam.arena.tracks")

ENTRY_POINT_GROUP = "occam.tracks"
# The tracks this distribution ships, written as entry points (pyproject.toml declares the same ones).
BUILTIN: tuple[str, ...] = (
    "sparse = occam.arena.tracks.sparse:SparseTrack",
    "audit = occam.audit.arena:AuditTrack",
    "recover = occam.toy.track:RecoverTrack",
    "grok-speed = occam.toy.speed_track:GrokSpeedTrack",
    "evasive = occam.audit.evasive_track:EvasiveTrack",
)

TRACKS: dict[str, Track] = {}  # loaded (or registered) tracks, by name
_LOCK = threading.RLock()


def _declared() -> dict[str, str]:
    """name -> "module:attr" of every declared track (entry points override the built-in strings)."""
    out: dict[str, str] = {}
    for spec in BUILTIN:
        name, _, target = spec.partition("=")
        out[name.strip()] = target.strip()
    try:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            out[ep.name] = ep.value
    except Exception:  # a broken distribution's metadata must not take the arena down
        log.exception("cannot read the %s entry points", ENTRY_POINT_GROUP)
    return out


def _load(name: str, target: str) -> Track:
    mod_name, _, attr = target.partition(":")
    obj = importlib.import_module(mod_name)
    for part in (attr or "TRACK").split("."):
        obj = getattr(obj, part)
    track = obj() if isinstance(obj, type) else obj
    if not isinstance(track, Track):
        raise OccamError(f"the track entry point {name} = {target!r} gives {type(track).__name__}, not a Track",
                         "point the entry point at a subclass of occam.arena.tracks.Track")
    if track.name != name:
        raise OccamError(f"the track entry point {name!r} loads a track named {track.name!r}",
                         "give the entry point the track's name")
    return track


def register_track(track: Track | type[Track]) -> Track:
    """Register ``track`` (a :class:`Track` or a subclass, instantiated here) under its name; returns it."""
    if isinstance(track, type):
        track = track()
    if not isinstance(track, Track):
        raise OccamError(f"{track!r} is not a Track", "register an instance or subclass of occam.arena.tracks.Track")
    if not track.name or not track.name.replace("-", "").replace("_", "").isalnum():
        raise OccamError(f"track name {track.name!r} is not a slug", "name the track with letters, digits, '-', '_'")
    with _LOCK:
        TRACKS[track.name] = track
    return track


def unregister_track(name: str) -> None:
    """Forget a registered track (tests register throw-away tracks)."""
    with _LOCK:
        TRACKS.pop(name, None)


def track_names() -> list[str]:
    """Every track name known here (loaded or declared), sorted."""
    return sorted(set(TRACKS) | set(_declared()))


def get_track(name: str) -> Track:
    """The track called ``name``, loading it from its entry point the first time (OccamError if unknown)."""
    track = TRACKS.get(name)
    if track is not None:
        return track
    with _LOCK:
        if name in TRACKS:
            return TRACKS[name]
        target = _declared().get(name)
        if target is None:
            raise OccamError(f"unknown track {name!r}", f"use one of: {', '.join(track_names())}")
        try:
            track = _load(name, target)
        except ModuleNotFoundError as exc:
            raise OccamError(f"track {name!r} has no scorer installed here ({exc.name} is missing)",
                             f"install the package that provides it, or use one of: {', '.join(sorted(TRACKS))}") from exc
        TRACKS[name] = track
        return track


def all_tracks() -> list[Track]:
    """Every track that loads here (declared ones that fail to import are logged and left out)."""
    out = []
    for name in track_names():
        try:
            out.append(get_track(name))
        except OccamError as exc:
            log.warning("track %s is not available: %s", name, exc)
    return out


def higher_is_better(name: str) -> bool:
    """Whether a higher score ranks first on ``name``'s leaderboards (False for unknown tracks)."""
    try:
        return get_track(name).higher_is_better
    except OccamError:
        return False
