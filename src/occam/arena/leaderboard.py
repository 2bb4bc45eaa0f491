"""Leaderboards (public, live; private, revealed at the end), the Pareto view, and CSV export.

Rules (Kaggle-style):

- **Public**: each team's best public score among its scored submissions; ties go to the
  earlier upload. Once the challenge is frozen, everyone but the admin sees the board as it was
  at the freeze (submissions uploaded after the freeze are left out).
- **Private**: for each team, its *final* submissions (those it selected, at most
  ``final_selections``), else its ``final_selections`` best public ones; the best private score
  among them ranks the team. Visible to the admin always, to everyone once revealed.
- Disqualified submissions and teams never appear.
- The order follows the track (``Track.higher_is_better``); a track may show extra metrics of the
  board's half (``Track.board_extra``) and export its own CSV columns (``Track.csv_columns``).
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from occam.arena.sanitize import csv_cell
from occam.arena.schema import Challenge, Submission, Team
from occam.arena.tracks import DEFAULT_TRACK, Track, get_track
from occam.errors import OccamError

_COLS = (Submission.id, Submission.team_id, Team.name, Submission.created_at, Submission.nnz, Submission.selected,
         Submission.public_score, Submission.public_ce, Submission.public_accuracy, Submission.private_score,
         Submission.private_ce, Submission.private_accuracy, Submission.scorer_version)


@dataclass
class Entry:
    rank: int
    team_id: int
    team: str
    submission_id: int
    score: float
    ce: float
    accuracy: float
    nnz: int
    submitted_at: float
    submissions: int
    scorer_version: str | None
    extra: dict[str, Any] = field(default_factory=dict)  # the track's board_extra metrics (of this board's half)


def _track(c: Challenge) -> Track | None:
    try:
        return get_track(c.track)
    except OccamError:
        return None


def _extra_keys(c: Challenge) -> tuple[str, ...]:
    t = _track(c)
    return t.board_extra if t is not None else ()


def _rows(session: Session, c: Challenge, *, before: float | None) -> list[Any]:
    cols = _COLS + ((Submission.metrics_json,) if _extra_keys(c) else ())
    q = (select(*cols).join(Team, Team.id == Submission.team_id)
         .where(Submission.challenge_id == c.id, Submission.public_score.is_not(None),
                Submission.disqualified.is_(False), Team.disqualified.is_(False)))
    if before is not None:
        q = q.where(Submission.created_at < before)
    return list(session.execute(q))


def frozen_view(c: Challenge, is_admin: bool, now: float | None = None) -> float | None:
    """The cut-off time of the board this viewer sees (None: live)."""
    now = time.time() if now is None else now
    if is_admin or c.freeze_at is None or now < c.freeze_at:
        return None
    return c.freeze_at


def private_visible(c: Challenge, is_admin: bool) -> bool:
    return is_admin or c.revealed


def compute(session: Session, c: Challenge, *, board: str = "public", is_admin: bool = False,
            now: float | None = None) -> list[Entry]:
    """The ranked entries of ``board`` ('public' or 'private') as this viewer may see them."""
    if board not in ("public", "private"):
        raise ValueError(f"unknown board {board!r}")
    if board == "private" and not private_visible(c, is_admin):
        return []
    before = frozen_view(c, is_admin, now) if board == "public" else None
    rows = _rows(session, c, before=before)
    by_team: dict[int, list[Any]] = {}
    for r in rows:
        by_team.setdefault(r.team_id, []).append(r)
    t = _track(c)
    sign = -1.0 if t is not None and t.higher_is_better else 1.0  # sort ascending on sign * score: best first

    def order(key: str):  # noqa: ANN202
        return lambda r: (sign * getattr(r, f"{key}_score"), r.created_at, r.id)

    best: list[tuple[Any, int]] = []
    for subs in by_team.values():
        subs.sort(key=order("public"))
        if board == "public":
            best.append((subs[0], len(subs)))
            continue
        chosen = [r for r in subs if r.selected][: c.final_selections] or subs[: c.final_selections]
        chosen = [r for r in chosen if r.private_score is not None]
        if chosen:
            chosen.sort(key=order("private"))
            best.append((chosen[0], len(subs)))
    key = "public" if board == "public" else "private"
    best.sort(key=lambda t: order(key)(t[0]))
    extra_keys = _extra_keys(c)
    out: list[Entry] = []
    for i, (r, n) in enumerate(best, start=1):
        extra: dict[str, Any] = {}
        if extra_keys:
            try:
                m = json.loads(r.metrics_json or "{}").get(key) or {}
            except (ValueError, AttributeError):
                m = {}
            extra = {k: m.get(k) for k in extra_keys}
        out.append(Entry(rank=i, team_id=r.team_id, team=r.name, submission_id=r.id,
                         score=getattr(r, f"{key}_score"), ce=getattr(r, f"{key}_ce"),
                         accuracy=getattr(r, f"{key}_accuracy"), nnz=int(r.nnz or 0), submitted_at=r.created_at,
                         submissions=n, scorer_version=r.scorer_version, extra=extra))
    return out


def entries_json(entries: list[Entry]) -> list[dict[str, Any]]:
    return [asdict(e) for e in entries]


def _frontier(points: list[tuple[int, float, int]]) -> list[tuple[int, float, int]]:
    """Points not dominated by any other (fewer-or-equal nnz with higher-or-equal accuracy), by nnz."""
    if not points:
        return []
    from occam.scoring.frontier import frontier

    idx = frontier([(max(1, p[0]), p[1]) for p in points], maximize=True)
    return [points[int(i)] for i in idx]


def iso_ce(score: float, nnz: float, lam: float) -> float:
    """The CE at which a model with ``nnz`` non-zeros reaches ``score``."""
    from occam.scoring.frontier import iso_score_ce

    return float(iso_score_ce(score, nnz, lam))


def pareto(session: Session, c: Challenge, *, board: str = "public", is_admin: bool = False,
           team_id: int | None = None, now: float | None = None) -> dict[str, Any]:
    """Every visible scored submission as (nnz, accuracy, CE), the accuracy frontier, and iso-score lines."""
    if board == "private" and not private_visible(c, is_admin):
        return {"points": [], "frontier": [], "iso": [], "lam": c.lam, "board": board}
    t = _track(c)
    if t is not None and not t.has_pareto:  # e.g. uploads are prediction files: no size, no frontier
        return {"points": [], "frontier": [], "iso": [], "lam": c.lam, "board": board,
                "note": f"the {c.track} track has no accuracy-versus-size view"}
    before = frozen_view(c, is_admin, now) if board == "public" else None
    rows = _rows(session, c, before=before)
    key = "public" if board == "public" else "private"
    pts = []
    for r in rows:
        score, acc, ce = getattr(r, f"{key}_score"), getattr(r, f"{key}_accuracy"), getattr(r, f"{key}_ce")
        if score is None:
            continue
        pts.append({"id": r.id, "team": r.name, "nnz": int(r.nnz or 0), "accuracy": acc, "ce": ce, "score": score,
                    "own": team_id is not None and r.team_id == team_id})
    front = _frontier([(p["nnz"], p["accuracy"], p["id"]) for p in pts])
    front_ids = {f[2] for f in front}
    ranked = compute(session, c, board=board, is_admin=is_admin, now=now)
    iso = []
    if pts:
        lo = max(1, min(p["nnz"] for p in pts))
        hi = max(lo * 10, max(p["nnz"] for p in pts) * 2)
        a, b = lo / 2, hi * 2
        xs = [a * (b / a) ** (i / 40) for i in range(41)]
        for e in ranked[:3]:
            iso.append({"score": e.score, "team": e.team, "nnz": xs, "ce": [iso_ce(e.score, x, c.lam) for x in xs]})
    return {"points": pts, "frontier": [p for p in sorted(pts, key=lambda p: p["nnz"]) if p["id"] in front_ids],
            "iso": iso, "lam": c.lam, "board": board}


def leaderboard_csv(entries: list[Entry], *, track: str | Track = DEFAULT_TRACK) -> str:
    """The entries as CSV, with the columns of ``track`` (a name or a Track)."""
    return (track if isinstance(track, Track) else get_track(track)).leaderboard_csv(entries)


def submissions_csv(session: Session, c: Challenge) -> str:
    q = (select(Submission, Team.name).join(Team, Team.id == Submission.team_id)
         .where(Submission.challenge_id == c.id).order_by(Submission.id))
    buf = io.StringIO()
    w = csv.writer(buf)
    cols = ["id", "team", "created_at_utc", "filename", "sha256", "size", "status", "nnz", "public_score",
            "public_ce", "public_accuracy", "private_score", "private_ce", "private_accuracy", "scorer_version",
            "attempts", "times_scored", "rejudges", "selected", "disqualified", "counts_quota", "error_kind", "error"]
    w.writerow(cols)
    for sub, name in session.execute(q):
        row = {c_: getattr(sub, c_, None) for c_ in cols}
        row["team"] = name
        row["created_at_utc"] = _iso(sub.created_at)
        w.writerow(["" if row[k] is None else csv_cell(row[k]) for k in cols])
    return buf.getvalue()


def _iso(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
