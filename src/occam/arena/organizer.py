"""Organizer essentials on top of :class:`occam.arena.service.Arena`: the admin log, challenge edit/hide/archive,
invite-code self-registration, submission notes, leaderboard history, identical-file flags, a limit on rejected
uploads, a reveal that cannot be clicked by accident, and private test sets.

``Arena`` inherits :class:`OrganizerMixin`; the web layer and the CLI call these methods.
"""

from __future__ import annotations

import json
import secrets
import time
import unicodedata
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from occam.arena import datasets as ds
from occam.arena.schema import REJECTED, AdminAction, Challenge, PrivateDataset, Submission, Team
from occam.arena.security import hash_token
from occam.errors import OccamError

if TYPE_CHECKING:
    from occam.arena.db import Database
    from occam.arena.storage import BlobStore

MAX_NOTE = 500
EDITABLE = {"title": str, "description": str, "daily_quota": int, "final_selections": int, "end_at": float,
            "start_at": float, "freeze_at": float}


def _refused(problem: str, fix: str = "", status: int = 400, code: str = "refused") -> OccamError:
    from occam.arena.service import Refused

    return Refused(problem, fix, status=status, code=code)


class OrganizerMixin:
    db: Database
    blobs: BlobStore
    settings: Any
    _challenges: dict

    # ---- the admin log ------------------------------------------------------------------------------------------
    def log_admin(self, actor: str, action: str, target: str = "", detail: Any = "") -> None:
        text = detail if isinstance(detail, str) else json.dumps(detail, default=str, sort_keys=True)
        with self.db.write() as s:
            s.add(AdminAction(at=time.time(), actor=actor[:200], action=action[:64], target=str(target)[:200],
                              detail=text[:4000]))

    def admin_log(self, limit: int = 200) -> list[dict[str, Any]]:
        with self.db.read() as s:
            rows = s.scalars(select(AdminAction).order_by(AdminAction.id.desc()).limit(limit))
            return [{"at": r.at, "actor": r.actor, "action": r.action, "target": r.target, "detail": r.detail}
                    for r in rows]

    # ---- challenges: edit, hide, archive, reveal ------------------------------------------------------------------
    def _challenge_row(self, s: Any, cid: str) -> Challenge:
        c = s.get(Challenge, cid)
        if c is None:
            raise _refused(f"no challenge {cid!r}", "see `occam arena challenges`", status=404, code="not_found")
        return c

    def edit_challenge(self, cid: str, changes: dict[str, Any], *, actor: str = "admin") -> Challenge:
        """Change a challenge's title, description, quota, final selections or times (the rest is fixed once
        submissions exist: re-add the challenge with ``replace`` before the start to change it)."""
        unknown = sorted(set(changes) - set(EDITABLE))
        if unknown:
            raise _refused(f"cannot edit {', '.join(unknown)}", f"editable fields: {', '.join(sorted(EDITABLE))}")
        clean: dict[str, Any] = {}
        for k, v in changes.items():
            want = EDITABLE[k]
            if k == "freeze_at" and v is None:
                clean[k] = None
                continue
            ok_type = isinstance(v, str) if want is str else (isinstance(v, int | float) and not isinstance(v, bool))
            if not ok_type or (want is int and float(v) != int(v)):
                kind = {str: "text", int: "a whole number", float: "a number"}[want]
                raise _refused(f"{k} must be {kind}, got {v!r}", f"give {k} as {kind}")
            clean[k] = want(v)
            if want is int and clean[k] < 0:
                raise _refused(f"{k} must be ≥ 0, got {clean[k]}")
        if "title" in clean and not 1 <= len(clean["title"].strip()) <= 200:
            raise _refused("a title must have 1 to 200 characters")
        self._challenges.clear()
        with self.db.write() as s:
            c = self._challenge_row(s, cid)
            start = clean.get("start_at", c.start_at)
            end = clean.get("end_at", c.end_at)
            if end <= start:
                raise _refused("end_at must be after start_at", "give an end after the start")
            for k, v in clean.items():
                setattr(c, k, v)
            c.changes += 1
            s.flush()
            s.expunge(c)
        self.log_admin(actor, "edit challenge", cid, clean)
        return c

    def set_visibility(self, cid: str, *, hidden: bool | None = None, archived: bool | None = None,
                       actor: str = "admin") -> None:
        self._challenges.clear()
        with self.db.write() as s:
            c = self._challenge_row(s, cid)
            if hidden is not None:
                c.hidden = hidden
            if archived is not None:
                c.archived = archived
            c.changes += 1
        self.log_admin(actor, "visibility", cid, {"hidden": hidden, "archived": archived})

    def reveal(self, cid: str, *, confirm: str | None, force: bool = False, actor: str = "admin") -> None:
        """Reveal the private leaderboard. ``confirm`` must repeat the challenge id; before the challenge's end
        the reveal is refused unless ``force``."""
        if confirm != cid:
            raise _refused(f"type the challenge id ({cid}) to confirm the reveal",
                           "revealing shows every team the private scores; it cannot be undone in anyone's memory",
                           status=409, code="confirm")
        with self.db.read() as s:
            c = self._challenge_row(s, cid)
            end = c.end_at
        if time.time() < end and not force:
            raise _refused(f"challenge {cid!r} has not ended yet", "end it first, or force the reveal", status=409,
                           code="early")
        self.set_revealed(cid, True)  # type: ignore[attr-defined]
        self.log_admin(actor, "reveal", cid, {"forced": bool(force and time.time() < end)})

    # ---- teams: invite codes --------------------------------------------------------------------------------------
    def set_invite(self, cid: str, enabled: bool, *, actor: str = "admin") -> str | None:
        """Turn self-registration on (returns the new invite code, shown once) or off."""
        code = f"inv_{secrets.token_urlsafe(12)}" if enabled else None
        with self.db.write() as s:
            c = self._challenge_row(s, cid)
            c.invite_sha256 = hash_token(code) if code else None
            c.changes += 1
        self.log_admin(actor, "invite " + ("on" if enabled else "off"), cid)
        return code

    def register_team(self, cid: str, code: str, name: str) -> tuple[Team, str]:
        """Self-registration: a team joins with the challenge's invite code; returns the team and its token."""
        with self.db.read() as s:
            c = s.get(Challenge, cid)
            ok = c is not None and c.invite_sha256 and secrets.compare_digest(c.invite_sha256, hash_token(code or ""))
        if not ok:
            raise _refused("that invite code is not valid for this challenge", "ask the organizers for the code",
                           status=403, code="forbidden")
        team, token = self.add_team(name)  # type: ignore[attr-defined]
        self.log_admin(f"team:{team.name}", "self-registered", cid)
        return team, token

    # ---- submissions: notes, rejected-upload limit, identical files ----------------------------------------------
    def set_note(self, viewer: Any, sid: int, note: str) -> None:
        sub = self.submission(viewer, sid)  # type: ignore[attr-defined]
        if not viewer.is_team or sub.team_id != viewer.team_id:
            raise _refused("only the team itself writes its notes", status=403, code="forbidden")
        note = "".join(ch for ch in unicodedata.normalize("NFC", note or "")
                       if ch in "\n" or unicodedata.category(ch)[0] != "C").strip()
        if len(note) > MAX_NOTE:
            raise _refused(f"the note has {len(note)} characters", f"keep it under {MAX_NOTE}")
        with self.db.write() as s:
            row = s.get(Submission, sid)
            row.note = note or None

    def rejected_recently(self, team_id: int, cid: str, window: float) -> int:
        with self.db.read() as s:
            return int(s.scalar(select(func.count()).select_from(Submission).where(
                Submission.team_id == team_id, Submission.challenge_id == cid, Submission.status == REJECTED,
                Submission.created_at >= time.time() - window)) or 0)

    def identical_uploads(self, cid: str) -> list[dict[str, Any]]:
        """Files uploaded by more than one team (by SHA-256): a flag for the admin, not a verdict."""
        with self.db.read() as s:
            rows = s.execute(select(Submission.sha256, Submission.team_id, Team.name, Submission.id)
                             .join(Team, Team.id == Submission.team_id)
                             .where(Submission.challenge_id == cid, Submission.sha256.is_not(None))
                             .order_by(Submission.id)).all()
        by_hash: dict[str, dict[int, tuple[str, list[int]]]] = defaultdict(dict)
        for sha, tid, name, sid in rows:
            by_hash[sha].setdefault(tid, (name, []))[1].append(sid)
        return [{"sha256": sha, "teams": [{"team": n, "submissions": ids} for n, ids in teams.values()]}
                for sha, teams in by_hash.items() if len(teams) > 1]

    # ---- leaderboard history --------------------------------------------------------------------------------------
    def history(self, cid: str, *, private: bool = False, top: int = 5,
                higher_is_better: bool = False, until: float | None = None) -> dict[str, Any]:
        """Each of the ``top`` teams' best score over time (a step series per team, from scored submissions).
        ``until``: only submissions made before then (a frozen board's freeze time, for everyone but the admin)."""
        col = Submission.private_score if private else Submission.public_score
        q = (select(Submission.finished_at, Team.name, col)
             .join(Team, Team.id == Submission.team_id)
             .where(Submission.challenge_id == cid, col.is_not(None), Submission.finished_at.is_not(None),
                    Submission.disqualified.is_(False), Team.disqualified.is_(False))
             .order_by(Submission.finished_at))
        if until is not None:
            q = q.where(Submission.created_at <= until)
        with self.db.read() as s:
            rows = s.execute(q).all()
        best: dict[str, float] = {}
        series: dict[str, list[tuple[float, float]]] = defaultdict(list)
        better = (lambda a, b: a > b) if higher_is_better else (lambda a, b: a < b)
        for t, team, score in rows:
            if team not in best or better(score, best[team]):
                best[team] = score
                series[team].append((float(t), float(score)))
        ranked = sorted(best, key=lambda k: best[k], reverse=higher_is_better)[:top]
        return {"challenge": cid, "board": "private" if private else "public",
                "teams": [{"team": k, "best": best[k], "points": series[k]} for k in ranked]}

    # ---- private test sets ----------------------------------------------------------------------------------------
    def add_dataset(self, name: str, source: str | Path, labels: str | Path | None = None, *, fmt: str | None = None,
                    num_classes: int | None = None, replace: bool = False, actor: str = "admin") -> ds.DatasetManifest:
        ds.check_name(name)
        x, y = ds.read_dataset(source, labels, fmt=fmt, num_classes=num_classes)
        blob, manifest = ds.pack(name, x, y, num_classes=num_classes, source=Path(source).name)
        with self.db.read() as s:
            exists = s.get(PrivateDataset, name) is not None
        if exists and not replace:
            raise _refused(f"private dataset {name!r} exists already", "choose another name or replace it", status=409)
        digest = self.blobs.put(blob) if self.blobs.db is not None else None
        if digest is None:
            raise _refused("private datasets need the database blob store", "use an arena created by this release")
        with self.db.write() as s:
            row = s.get(PrivateDataset, name)
            if row is None:
                s.add(PrivateDataset(name=name, manifest_json=json.dumps(manifest.to_dict()), blob_sha256=digest,
                                     created_at=time.time()))
            else:
                row.manifest_json, row.blob_sha256 = json.dumps(manifest.to_dict()), digest
        self.log_admin(actor, "add dataset", name, {"count": manifest.count, "shape": list(manifest.input_shape)})
        return manifest

    def datasets(self) -> list[ds.DatasetManifest]:
        """The registered private datasets' manifests (no images, no labels)."""
        with self.db.read() as s:
            return [ds.DatasetManifest.from_dict(json.loads(r.manifest_json))
                    for r in s.scalars(select(PrivateDataset).order_by(PrivateDataset.name))]

    def dataset_manifest(self, name: str) -> ds.DatasetManifest:
        with self.db.read() as s:
            row = s.get(PrivateDataset, name)
        if row is None:
            raise _refused(f"no private dataset {name!r}", "register it with `occam arena dataset add`", status=404,
                           code="not_found")
        return ds.DatasetManifest.from_dict(json.loads(row.manifest_json))

    def dataset_arrays(self, name: str) -> tuple[Any, Any]:
        """Images and labels of a private dataset: for the scoring workers only (no route or team call reaches it)."""
        with self.db.read() as s:
            row = s.get(PrivateDataset, name)
        if row is None:
            raise OccamError(f"private dataset {name!r} is not registered", "register it again, then rejudge")
        manifest = ds.DatasetManifest.from_dict(json.loads(row.manifest_json))
        return ds.unpack(self.blobs.get(row.blob_sha256), manifest)
