"""The shared contract battery every track must pass (scikit-learn's ``check_estimator``, for tracks).

``check_track(track, tmp)`` runs each check on the tiny fixtures the track provides
(:meth:`Track.example_settings`, :meth:`Track.example_bad_settings`, :meth:`Track.example_uploads`) and raises
:class:`TrackCheckFailed` (an AssertionError) naming the check that failed. A new track is tested by
registering it and running the battery; ``tests/arena/test_track_contract.py`` runs it over every registered
track.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from occam.arena.challenges import ChallengeSpec
from occam.arena.tracks.base import ChallengeInfo, CheckOutcome, ClientUpload, ServedFile, Track
from occam.errors import OccamError

RESULT_KEYS = ("nnz", "scorer_version", "public_score", "public_ce", "public_accuracy", "private_score", "private_ce",
               "private_accuracy", "metrics")
# bytes no track may raise on in its request-time check
HOSTILE_UPLOADS = (b"", b"\x00" * 64, b"\xff\xfe" * 300, b"{" * 5000, "é,\u2028,\n".encode() * 50,
                   bytes(range(256)) * 4)


class TrackCheckFailed(AssertionError):
    """A track broke its contract: the message names the check and what went wrong."""


def _fail(check: str, what: str) -> None:
    raise TrackCheckFailed(f"{check}: {what}")


def check_track(track: Track, tmp: Path, *, score: bool = True) -> dict[str, Any]:
    """Run every check on ``track`` (files go under ``tmp``); returns what the checks saw (settings, info,
    the score). ``score=False`` skips the worker's scoring (for a quick look). A track not registered under its
    name is registered for the duration of the checks."""
    from occam.arena.tracks import TRACKS, register_track, unregister_track

    tmp = Path(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    temporary = TRACKS.get(track.name) is not track
    previous = TRACKS.get(track.name)
    if temporary:
        register_track(track)
    try:
        return _run(track, tmp, score)
    finally:
        if temporary:
            unregister_track(track.name)
            if previous is not None:
                register_track(previous)


def _run(track: Track, tmp: Path, score: bool) -> dict[str, Any]:
    check_attributes(track)
    settings = check_settings(track, tmp)
    spec = example_spec(track, settings)
    check_quota(track, spec)
    stored = check_register(track, spec)
    info = ChallengeInfo(spec.id, track.name, spec.task, spec.lam, spec.split_seed, spec.public_fraction, {}, stored)
    good, bad = track.example_uploads(tmp, info)
    check_check(track, info, good, bad)
    result = check_score(track, info, good) if score else None
    check_public_json(track, info, stored, result)
    if result is not None:
        check_csv(track, result)
    check_files(track, info)
    check_client(track, tmp, good)
    return {"settings": settings, "stored": stored, "info": info, "result": result}


def check_attributes(track: Track) -> None:
    name = track.name
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        _fail("attributes", f"name {name!r} is not a slug")
    if not isinstance(track.policy, str) or not track.policy.strip():
        _fail("attributes", "policy (the sentence for the challenge page) is empty")
    if not all(a.startswith(".") for a in track.accept.split(",")):
        _fail("attributes", f"accept {track.accept!r} is not a list of '.ext' filters")
    if not isinstance(track.default_quota, int) or track.default_quota < 1:
        _fail("attributes", f"default_quota {track.default_quota!r} is not a positive int")
    if not isinstance(track.higher_is_better, bool):
        _fail("attributes", "higher_is_better is not a bool")


def check_settings(track: Track, tmp: Path) -> dict[str, Any]:
    """Valid settings parse to JSON-able ones; each bad table raises OccamError naming the field, with a fix."""
    table = track.example_settings(tmp)
    settings = track.parse_settings(table, source="check.toml", base_dir=tmp)
    _json_able("settings", settings)
    for bad, word in track.example_bad_settings(tmp):
        try:
            track.parse_settings(bad, source="check.toml", base_dir=tmp)
        except OccamError as exc:
            if word not in exc.problem:
                _fail("settings", f"the error for {bad!r} does not name {word!r}: {exc.problem!r}")
            if not exc.fix:
                _fail("settings", f"the error for {bad!r} gives no fix")
        except Exception as exc:  # noqa: BLE001 - the point of the check
            _fail("settings", f"{bad!r} raised {type(exc).__name__} ({exc}), not an OccamError")
        else:
            _fail("settings", f"the bad settings {bad!r} were accepted")
    return settings


def example_spec(track: Track, settings: dict[str, Any]) -> ChallengeSpec:
    from occam.tasks import get_task

    task = get_task(track.default_task(settings) or track.example_task())
    now = time.time()
    return ChallengeSpec(id=f"check-{track.name}", title=f"check {track.name}", task=task.name, lam=task.default_lam,
                         start_at=now - 60, end_at=now + 3600, track=track.name, split_seed=5, public_fraction=0.5,
                         settings=settings)


def check_quota(track: Track, spec: ChallengeSpec) -> None:
    if spec.daily_quota != track.default_quota:
        _fail("quota", f"a challenge without [submissions] daily_quota gets {spec.daily_quota}, "
                       f"not the track's default_quota {track.default_quota}")


def check_register(track: Track, spec: ChallengeSpec) -> dict[str, Any]:
    stored = track.register(spec)
    if not isinstance(stored, dict):
        _fail("register", f"register returned {type(stored).__name__}, not a dict")
    _json_able("register", stored)
    return json.loads(json.dumps(stored))  # as the database gives it back


def check_check(track: Track, info: ChallengeInfo, good: bytes, bad: list[bytes]) -> None:
    """The good upload passes; bad and hostile bytes are refused with a reason, never with an exception."""
    out = _outcome(track, info, good)
    if not out.ok:
        _fail("check", f"the example upload was refused: {out.reason}")
    for data in [*bad, *HOSTILE_UPLOADS]:
        out = _outcome(track, info, data)
        if data in bad and out.ok:
            _fail("check", f"the bad example upload {data[:40]!r} was accepted")
        if not out.ok and not (isinstance(out.reason, str) and out.reason.strip()):
            _fail("check", f"{data[:40]!r} was refused without a reason")


def _outcome(track: Track, info: ChallengeInfo, data: bytes) -> CheckOutcome:
    try:
        out = track.check(data, info)
    except Exception as exc:  # noqa: BLE001 - the point of the check
        _fail("check", f"check raised {type(exc).__name__} ({exc}) on {data[:40]!r}; it must return a refusal")
    if not isinstance(out, CheckOutcome):
        _fail("check", f"check returned {type(out).__name__}, not a CheckOutcome")
    _json_able("check report", out.report)
    return out


def check_score(track: Track, info: ChallengeInfo, good: bytes) -> dict[str, Any]:
    result = track.score(good, info, {"start_method": "spawn"})
    missing = [k for k in RESULT_KEYS if k not in result]
    if missing:
        _fail("score", f"the result lacks {missing}")
    for k in ("public_score", "private_score"):
        if not isinstance(result[k], int | float) or not math.isfinite(result[k]):
            _fail("score", f"{k} is {result[k]!r}, not a finite number")
    metrics = result["metrics"]
    if not (isinstance(metrics, dict) and isinstance(metrics.get("public"), dict)
            and isinstance(metrics.get("private"), dict)):
        _fail("score", "metrics must be {'public': {...}, 'private': {...}}")
    _json_able("score", result)
    return result


def _strings(value: Any) -> Iterator[str]:  # noqa: ANN401
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str) and len(value) >= 4:
        yield value


def _keys(value: Any) -> Iterator[str]:  # noqa: ANN401
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _keys(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _keys(v)


def check_public_json(track: Track, info: ChallengeInfo, stored: dict[str, Any], result: dict[str, Any] | None) -> None:
    """No private setting (paths, hidden lists, secrets) in the challenge's public JSON; no private score in a
    submission's JSON before the reveal."""
    pub = track.public_challenge(info)
    _json_able("public JSON", pub)
    text = json.dumps(pub)
    for key, value in stored.items():
        if key in track.public_settings:
            continue
        for s in _strings(value):
            if s in text:
                _fail("public JSON", f"the challenge's public JSON shows the private setting {key!r} ({s[:60]!r})")
    metrics = (result or {}).get("metrics") or {"public": {}, "private": {}}
    hidden = track.public_submission(metrics, scored=True, private_scored=True, show_private=False)
    _json_able("public JSON", hidden)
    leaked = [k for k in _keys(hidden) if "private" in k]
    if leaked:
        _fail("public JSON", f"a submission's JSON before the reveal has private keys {leaked}")
    shown = track.public_submission(metrics, scored=True, private_scored=True, show_private=True)
    _json_able("public JSON", shown)


def check_csv(track: Track, result: dict[str, Any]) -> None:
    from occam.arena.leaderboard import Entry

    entries = [Entry(rank=i + 1, team=f"team {i}", team_id=i, submission_id=10 + i, score=result["public_score"],
                     ce=result["public_ce"], accuracy=result["public_accuracy"], nnz=int(result["nnz"] or 0),
                     submitted_at=1.0e9 + i, submissions=1, scorer_version=result["scorer_version"],
                     extra={k: (result["metrics"]["public"] or {}).get(k) for k in track.board_extra})
               for i in range(2)]
    rows = list(csv.reader(io.StringIO(track.leaderboard_csv(entries))))
    if len(rows) != 3:
        _fail("csv", f"2 entries gave {len(rows)} CSV rows, expected a header and 2")
    header = rows[0]
    if len(set(header)) != len(header) or not all(h.strip() for h in header) or "rank" not in header:
        _fail("csv", f"the header {header} has blank, repeated or no 'rank' columns")
    if any(len(r) != len(header) for r in rows[1:]):
        _fail("csv", "a row has not as many fields as the header")
    if [r[header.index("rank")] for r in rows[1:]] != ["1", "2"]:
        _fail("csv", "the rank column does not hold the entries' ranks")


def check_files(track: Track, info: ChallengeInfo) -> None:
    files = track.public_files(info)
    if files is None:
        if track.lens_models(info, []):
            _fail("files", "lens_models names models but the track offers no files")
        return
    names = set()
    for f in files:
        if not isinstance(f, ServedFile) or f.name in names or f.name.startswith("/") or ".." in f.name.split("/"):
            _fail("files", f"{f!r} is not a unique, relative ServedFile")
        names.add(f.name)
        root = (f.root or f.path.parent).resolve()
        if root not in f.path.resolve().parents or f.path.stat().st_size != f.size:
            _fail("files", f"{f.name} lies outside its root or has another size than indexed")
    for model, f in track.lens_models(info, files).items():
        if f not in files:
            _fail("files", f"the Lens model {model!r} is not among the served files")
    json.dumps(track.files_meta(info))


def check_client(track: Track, tmp: Path, good: bytes) -> None:
    ext = track.accept.split(",")[0]
    path = tmp / f"upload{ext}"
    path.write_bytes(good)
    up = track.client_upload(path, f"check-{track.name}")
    if not isinstance(up, ClientUpload) or not up.data:
        _fail("client", "client_upload did not give a ClientUpload with bytes")
    wrong = tmp / "upload.wrong-extension"
    wrong.write_bytes(good)
    _raises_occam("client", lambda: track.client_upload(wrong, f"check-{track.name}"), "a file of the wrong kind")


def _raises_occam(check: str, fn: Callable[[], Any], what: str) -> None:
    try:
        fn()
    except OccamError as exc:
        if not exc.fix:
            _fail(check, f"the error for {what} gives no fix")
        return
    except Exception as exc:  # noqa: BLE001
        _fail(check, f"{what} raised {type(exc).__name__} ({exc}), not an OccamError")
    _fail(check, f"{what} was accepted")


def _json_able(check: str, value: Any) -> None:  # noqa: ANN401
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        _fail(check, f"{str(value)[:80]} is not plain JSON ({exc})")
