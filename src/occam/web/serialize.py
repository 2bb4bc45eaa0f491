"""JSON shapes of challenges and submissions, as a given viewer may see them."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from occam.arena.leaderboard import private_visible
from occam.arena.schema import Challenge, Submission
from occam.arena.service import Viewer, phase
from occam.arena.tracks import TRACKS, ChallengeInfo, Track, get_track
from occam.errors import OccamError


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _track(name: str) -> Track | None:
    try:
        return get_track(name)
    except OccamError:
        return TRACKS.get(name)


def challenge_json(c: Challenge) -> dict[str, Any]:
    """A challenge as anyone may see it: the common fields, plus what its track adds
    (:meth:`Track.public_challenge`, e.g. an audit challenge's zoo id, sizes and download links); never a
    private track setting."""
    track = _track(c.track)
    out = {
        "id": c.id, "title": c.title, "description": c.description, "track": c.track, "task": c.task, "lam": c.lam,
        "phase": phase(c), "start": iso(c.start_at), "end": iso(c.end_at), "freeze": iso(c.freeze_at),
        "revealed": c.revealed, "daily_quota": c.daily_quota, "final_selections": c.final_selections,
        "public_fraction": c.public_fraction, "max_bytes": c.max_bytes,
        "scoring_policy": track.policy if track else "",
        "higher_is_better": bool(track and track.higher_is_better),
        "accept": track.accept if track else ".onnx",
        "uploads_models": bool(track is None or track.uploads_models),
        "has_pareto": bool(track is None or track.has_pareto),
        "uses_lam": bool(track is None or track.uses_lam),
        "hidden": bool(c.hidden), "archived": bool(c.archived),
        "warning": track.public_labels_warning(ChallengeInfo.of(c)) if track else "",
        "links": {"page": f"/challenges/{c.id}", "leaderboard": f"/api/challenges/{c.id}/leaderboard",
                  "pareto": f"/api/challenges/{c.id}/pareto", "events": f"/api/challenges/{c.id}/events",
                  "submit": f"/api/challenges/{c.id}/submissions"},
    }
    if track is not None:
        extra = dict(track.public_challenge(ChallengeInfo.of(c)))
        out["links"].update(extra.pop("links", {}))
        out.update({k: v for k, v in extra.items() if k not in out})
    return out


def _json_list(text: str | None) -> list:
    try:
        v = json.loads(text or "[]")
    except ValueError:
        return []
    return v if isinstance(v, list) else []


def submission_json(sub: Submission, viewer: Viewer, c: Challenge | None = None) -> dict[str, Any]:
    show_private = c is not None and private_visible(c, viewer.is_admin)
    track = _track(c.track) if c is not None else None
    models = track is None or track.uploads_models
    out: dict[str, Any] = {
        "id": sub.id, "challenge_id": sub.challenge_id, "team_id": sub.team_id,
        "team": sub.team.name if sub.team is not None else None,
        "created_at": iso(sub.created_at), "filename": sub.filename, "size": sub.size, "sha256": sub.sha256,
        "status": sub.status, "nnz": sub.nnz, "stored_values": sub.stored_values,
        "public_score": sub.public_score, "public_ce": sub.public_ce, "public_accuracy": sub.public_accuracy,
        "scorer_version": sub.scorer_version, "attempts": sub.attempts, "started_at": iso(sub.started_at),
        "finished_at": iso(sub.finished_at), "counts_quota": sub.counts_quota,
        "error": sub.error, "fix": sub.error_fix, "error_kind": sub.error_kind,
        "team_note": (sub.note or "") if viewer.is_team and viewer.team_id == sub.team_id else None,
        "selected": sub.selected, "disqualified": sub.disqualified, "dq_reason": sub.dq_reason,
        "links": {"self": f"/api/submissions/{sub.id}", "page": f"/submissions/{sub.id}",
                  "inspect": f"/lens/submissions/{sub.id}" if models else None,
                  "file": f"/api/submissions/{sub.id}/file" if sub.sha256 else None},
    }
    if show_private:
        out.update(private_score=sub.private_score, private_ce=sub.private_ce, private_accuracy=sub.private_accuracy)
    if viewer.is_admin:
        out.update(lease_owner=sub.lease_owner, times_scored=sub.times_scored, rejudges=sub.rejudges)
    try:
        metrics = json.loads(sub.metrics_json or "{}")
    except ValueError:
        metrics = {}
    if track is not None and isinstance(metrics, dict):
        out.update(track.public_submission(metrics, scored=sub.public_score is not None,
                                           private_scored=sub.private_score is not None, show_private=show_private))
    return out
