"""JSON shapes of challenges and submissions, as a given viewer may see them."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from occam.arena.leaderboard import private_visible
from occam.arena.schema import Challenge, Submission
from occam.arena.service import Viewer, phase
from occam.arena.tracks import TRACKS, get_track
from occam.errors import OccamError


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _track(name: str):  # noqa: ANN202
    try:
        return get_track(name)
    except OccamError:
        return TRACKS.get(name)


def challenge_json(c: Challenge) -> dict[str, Any]:
    """A challenge as anyone may see it. For the audit track: the zoo's id and sizes and the download links,
    never the zoo's location, the key path or which models form the public half."""
    track = _track(c.track)
    out = {
        "id": c.id, "title": c.title, "description": c.description, "track": c.track, "task": c.task, "lam": c.lam,
        "phase": phase(c), "start": iso(c.start_at), "end": iso(c.end_at), "freeze": iso(c.freeze_at),
        "revealed": c.revealed, "daily_quota": c.daily_quota, "final_selections": c.final_selections,
        "public_fraction": c.public_fraction, "max_bytes": c.max_bytes,
        "scoring_policy": track.policy if track else "",
        "higher_is_better": bool(track and track.higher_is_better),
        "accept": track.accept if track else ".onnx",
        "links": {"page": f"/challenges/{c.id}", "leaderboard": f"/api/challenges/{c.id}/leaderboard",
                  "pareto": f"/api/challenges/{c.id}/pareto", "events": f"/api/challenges/{c.id}/events",
                  "submit": f"/api/challenges/{c.id}/submissions"},
    }
    if c.track == "audit":
        n_pub = len(_json_list(c.audit_public_models))
        n_all = n_pub + len(_json_list(c.audit_private_models))
        out["audit"] = {"zoo_id": c.audit_zoo_id, "audit_models": n_all, "public_board_models": n_pub,
                        "public_decimals": 2}
        out["links"].update(files=f"/api/challenges/{c.id}/files", zip=f"/api/challenges/{c.id}/zoo.zip",
                            files_page=f"/challenges/{c.id}/files",
                            manifest=f"/api/challenges/{c.id}/files/manifest.json",
                            labelled=f"/api/challenges/{c.id}/files/labelled.json")
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
    pub = metrics.get("public", {})
    if "per_class_accuracy" in pub:
        out["public_per_class_accuracy"] = pub["per_class_accuracy"]
    if c is not None and c.track == "audit":
        # the public half's metrics are stored rounded (2 decimals); the private half's only after the reveal
        keys = ("auroc", "log_loss", "brier", "target_accuracy", "trigger_success")
        out["audit_public"] = {k: pub.get(k) for k in keys} if sub.public_score is not None else None
        if show_private:
            priv = metrics.get("private", {})
            out["audit_private"] = {k: priv.get(k) for k in keys} if sub.private_score is not None else None
    return out
