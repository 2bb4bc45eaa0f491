"""The JSON API (documented at /docs by FastAPI). Pages use the same service calls."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel

from occam.arena import leaderboard as lb
from occam.arena.schema import Challenge
from occam.arena.service import Refused
from occam.arena.tracks import get_track, higher_is_better
from occam.errors import OccamError
from occam.web.context import ADMIN, PUBLIC, TEAM, WebContext, access
from occam.web.serialize import challenge_json, iso, submission_json


class SelectBody(BaseModel):
    selected: bool = True


class DisqualifyBody(BaseModel):
    reason: str = ""
    undo: bool = False


class TeamBody(BaseModel):
    name: str


class RevealBody(BaseModel):
    confirm: str | None = None  # the challenge id, typed again
    force: bool = False  # reveal before the challenge's end
    hide: bool = False  # hide the private leaderboard again


class EditBody(BaseModel):
    title: str | None = None
    description: str | None = None
    daily_quota: int | None = None
    final_selections: int | None = None
    start: str | None = None  # ISO 8601 date-times (UTC unless an offset is given)
    end: str | None = None
    freeze: str | None = None


class VisibilityBody(BaseModel):
    hidden: bool | None = None
    archived: bool | None = None


class InviteBody(BaseModel):
    enabled: bool = True


class NoteBody(BaseModel):
    note: str = ""


def actor_of(request: Request) -> str:
    """Who did an admin action, for the admin log: "admin" and the client's address."""
    host = request.client.host if request.client else "?"
    return f"admin@{host}"


def edit_changes(body: EditBody) -> dict[str, Any]:
    """The challenge fields an edit form or JSON body changes (times as epoch seconds)."""
    from occam.arena.challenges import _epoch

    out: dict[str, Any] = {k: v for k, v in (("title", body.title), ("description", body.description),
                                              ("daily_quota", body.daily_quota),
                                              ("final_selections", body.final_selections)) if v is not None}
    for key, value in (("start", body.start), ("end", body.end), ("freeze", body.freeze)):
        if value:
            try:
                out[f"{key}_at"] = _epoch(value, key)
            except OccamError as exc:
                raise Refused(exc.problem, exc.fix) from None
    return out


async def read_upload(ctx: WebContext, file: UploadFile) -> bytes:
    """The uploaded bytes, reading at most one byte past the size cap (the service reports the excess)."""
    cap = ctx.settings.max_upload_bytes
    data = await file.read(cap + 1)
    return data


def submit_as_viewer(ctx: WebContext, request: Request, cid: str, data: bytes, filename: str):  # noqa: ANN201
    """Authenticate and run stage one in one trip to the thread pool."""
    return ctx.arena.submit(ctx.require_team(request), cid, data, filename)


def board_style(track: str) -> str:
    try:
        return get_track(track).board_style
    except OccamError:
        return "score"


def leaderboard_payload(ctx: WebContext, c: Challenge, viewer_is_admin: bool, board: str) -> dict[str, Any]:
    with ctx.arena.db.read() as s:
        entries = lb.compute(s, c, board=board, is_admin=viewer_is_admin)
    frozen_at = lb.frozen_view(c, viewer_is_admin)
    return {"challenge": c.id, "board": board, "changes": c.changes, "frozen_at": iso(frozen_at),
            "private_visible": lb.private_visible(c, viewer_is_admin), "lam": c.lam, "track": c.track,
            "higher_is_better": higher_is_better(c.track), "board_style": board_style(c.track),
            "entries": lb.entries_json(entries), "generated_at": iso(time.time())}


def create_api_router(ctx: WebContext) -> APIRouter:
    r = APIRouter(prefix="/api", tags=["arena"], dependencies=[Depends(ctx.check_challenge_visible)])
    arena = ctx.arena

    @r.get("/challenges", summary="All challenges (hidden ones: the admin only)")
    @access(PUBLIC)
    def list_challenges(request: Request) -> list[dict[str, Any]]:
        return [challenge_json(c) for c in ctx.visible_challenges(request)]

    @r.get("/challenges/{cid}", summary="One challenge: rules, λ, dates, scoring policy")
    @access(PUBLIC)
    def get_challenge(cid: str) -> dict[str, Any]:
        return challenge_json(arena.challenge(cid))

    @r.get("/challenges/{cid}/leaderboard", summary="The public (live) or private (revealed) leaderboard")
    @access(PUBLIC)
    def get_leaderboard(request: Request, cid: str, board: str = Query("public", pattern="^(public|private)$")):
        v = ctx.viewer(request)
        c = arena.challenge(cid)
        if board == "private" and not lb.private_visible(c, v.is_admin):
            raise Refused("the private leaderboard is not revealed yet", "wait for the organizers to reveal it",
                          status=403, code="not_revealed")
        return leaderboard_payload(ctx, c, v.is_admin, board)

    @r.get("/challenges/{cid}/pareto", summary="Accuracy vs nnz of every visible scored submission, with frontier")
    @access(PUBLIC)
    def get_pareto(request: Request, cid: str, board: str = Query("public", pattern="^(public|private)$")):
        v = ctx.viewer(request)
        c = arena.challenge(cid)
        with arena.db.read() as s:
            return lb.pareto(s, c, board=board, is_admin=v.is_admin, team_id=v.team_id)

    @r.get("/challenges/{cid}/history", summary="The top entries' best score over time (a step series per team)")
    @access(PUBLIC)
    def get_history(request: Request, cid: str, board: str = Query("public", pattern="^(public|private)$"),
                    top: int = Query(5, ge=1, le=20)):
        v = ctx.viewer(request)
        c = arena.challenge(cid)
        if board == "private" and not lb.private_visible(c, v.is_admin):
            raise Refused("the private leaderboard is not revealed yet", "wait for the organizers to reveal it",
                          status=403, code="not_revealed")
        frozen_at = lb.frozen_view(c, v.is_admin)
        h = arena.history(cid, private=board == "private", top=top, higher_is_better=higher_is_better(c.track),
                          until=frozen_at)
        for t in h["teams"]:
            t["points"] = [[iso(x), y] for x, y in t["points"]]
        return h

    @r.get("/challenges/{cid}/events", summary="Server-sent events: the leaderboard each time it changes")
    @access(PUBLIC)
    async def leaderboard_events(request: Request, cid: str):
        v = ctx.viewer(request)
        c0 = await run_in_threadpool(arena.challenge, cid)
        poll = ctx.settings.sse_poll_seconds

        async def stream():
            last = None
            started = time.monotonic()
            quiet = 0.0
            yield "retry: 2000\n\n"
            while time.monotonic() - started < 300:  # the browser reconnects; keeps stale streams short
                if await request.is_disconnected():
                    return
                try:
                    c = await run_in_threadpool(arena.challenge, c0.id)
                except Refused:
                    return
                if c.changes != last:
                    last = c.changes
                    payload = await run_in_threadpool(leaderboard_payload, ctx, c, v.is_admin, "public")
                    yield f"event: leaderboard\ndata: {json.dumps(payload)}\n\n"
                    quiet = 0.0
                elif quiet >= 15:
                    yield ": ping\n\n"
                    quiet = 0.0
                await asyncio.sleep(poll)
                quiet += poll

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @r.post("/challenges/{cid}/submissions", status_code=202,
            summary="Upload an ONNX model (multipart field 'file'); the guard answers at once",
            responses={422: {"description": "the guard refused the file (uses no quota)"},
                       429: {"description": "the daily quota is used up"}})
    @access(TEAM)
    async def submit(request: Request, cid: str, file: UploadFile = File(...)):
        data = await read_upload(ctx, file)
        res = await run_in_threadpool(submit_as_viewer, ctx, request, cid, data, file.filename or "model.onnx")
        body = res.to_dict()
        body["url"] = f"/api/submissions/{res.submission_id}"
        return JSONResponse(body, status_code=202 if res.accepted else 422)

    @r.get("/challenges/{cid}/submissions", summary="Your team's submissions to a challenge (admin: all)")
    @access(TEAM)
    def list_submissions(request: Request, cid: str):
        v = ctx.require_team(request)
        c = arena.challenge(cid)
        subs = arena.submissions(v, cid)
        out: dict[str, Any] = {"submissions": [submission_json(s, v, c) for s in subs]}
        if v.is_team:
            out["quota"] = arena.quota(v.team_id or 0, c)
            out["quota"]["resets_at"] = iso(out["quota"]["resets_at"])
        return out

    @r.get("/submissions/{sid}", summary="One submission (only its team and the admin see it)")
    @access(TEAM)
    def get_submission(request: Request, sid: int):
        v = ctx.require_team(request)
        sub = arena.submission(v, sid)
        return submission_json(sub, v, arena.challenge(sub.challenge_id))

    @r.get("/submissions/{sid}/file", summary="Download the uploaded ONNX file (its team and the admin only)")
    @access(TEAM)
    def get_submission_file(request: Request, sid: int):
        v = ctx.require_team(request)
        sub, data = arena.submission_bytes(v, sid)
        ext = Path(sub.filename or "").suffix.lower()
        ext = ext if ext in (".onnx", ".csv", ".json") else ".onnx"
        return Response(data, media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="submission-{sub.id}{ext}"'})

    @r.post("/submissions/{sid}/select", summary="Pick (or unpick) a submission as one of your finals")
    @access(TEAM)
    def select_submission(request: Request, sid: int, body: SelectBody):
        v = ctx.require_team(request)
        sub = arena.select_final(v, sid, body.selected)
        return submission_json(sub, v, arena.challenge(sub.challenge_id))

    @r.post("/submissions/{sid}/note", summary="Your team's short note on one of its submissions (only the team sees it)")
    @access(TEAM)
    def set_note(request: Request, sid: int, body: NoteBody):
        v = ctx.require_team(request)
        arena.set_note(v, sid, body.note)
        sub = arena.submission(v, sid)
        return submission_json(sub, v, arena.challenge(sub.challenge_id))

    @r.get("/me", summary="Who the token belongs to, and the quota left in each challenge")
    @access(TEAM)
    def me(request: Request):
        v = ctx.require_team(request)
        out: dict[str, Any] = {"kind": v.kind, "team_id": v.team_id, "team": v.team_name}
        if v.is_team:
            quotas = {}
            for c in ctx.visible_challenges(request):
                q = arena.quota(v.team_id or 0, c)
                q["resets_at"] = iso(q["resets_at"])
                quotas[c.id] = q
            out["quota"] = quotas
        return out

    # ---- admin: one router, one access check (require_admin) for every endpoint ----------
    a = APIRouter(prefix="/admin", dependencies=[Depends(ctx.require_admin)])

    @a.get("/status", summary="Queue counts and workers (admin)")
    @access(ADMIN)
    def admin_status(request: Request):
        return arena.status()

    @a.get("/teams", summary="All teams (admin)")
    @access(ADMIN)
    def admin_teams(request: Request):
        return [{"id": t.id, "name": t.name, "created_at": iso(t.created_at), "disqualified": t.disqualified,
                 "dq_reason": t.dq_reason} for t in arena.teams()]

    @a.post("/teams", status_code=201, summary="Create a team; the token is shown only in this answer")
    @access(ADMIN)
    def admin_add_team(request: Request, body: TeamBody):
        team, token = arena.add_team(body.name)
        arena.log_admin(actor_of(request), "add team", team.name)
        return {"id": team.id, "name": team.name, "token": token}

    @a.post("/teams/{tid}/disqualify", summary="Disqualify a team (or undo)")
    @access(ADMIN)
    def admin_dq_team(request: Request, tid: int, body: DisqualifyBody):
        arena.disqualify_team(tid, body.reason, undo=body.undo)
        arena.log_admin(actor_of(request), "reinstate team" if body.undo else "disqualify team", tid, body.reason)
        return {"ok": True}

    @a.get("/challenges/{cid}/submissions", summary="Every submission of a challenge (admin)")
    @access(ADMIN)
    def admin_submissions(request: Request, cid: str):
        v = ctx.viewer(request)
        c = arena.challenge(cid)
        return [submission_json(s, v, c) for s in arena.submissions(v, cid, limit=100000)]

    @a.post("/submissions/{sid}/rejudge", summary="Score one submission again")
    @access(ADMIN)
    def admin_rejudge(request: Request, sid: int):
        n = arena.rejudge([sid])
        arena.log_admin(actor_of(request), "rejudge", f"submission {sid}")
        return {"requeued": n}

    @a.post("/submissions/{sid}/disqualify", summary="Disqualify a submission (or undo)")
    @access(ADMIN)
    def admin_dq_submission(request: Request, sid: int, body: DisqualifyBody):
        arena.disqualify_submission(sid, body.reason, undo=body.undo)
        arena.log_admin(actor_of(request), "reinstate submission" if body.undo else "disqualify submission",
                        f"submission {sid}", body.reason)
        return {"ok": True}

    @a.post("/challenges/{cid}/rejudge", summary="Score every submission of a challenge again")
    @access(ADMIN)
    def admin_rejudge_all(request: Request, cid: str):
        arena.challenge(cid)
        n = arena.rejudge(None, challenge_id=cid)
        arena.log_admin(actor_of(request), "rejudge all", cid, {"requeued": n})
        return {"requeued": n}

    @a.post("/challenges/{cid}/freeze", summary="Freeze the public leaderboard now (or unfreeze)")
    @access(ADMIN)
    def admin_freeze(request: Request, cid: str, unfreeze: bool = False):
        c = arena.set_freeze(cid, not unfreeze)
        arena.log_admin(actor_of(request), "unfreeze" if unfreeze else "freeze", cid)
        return challenge_json(c)

    @a.post("/challenges/{cid}/reveal", summary="Reveal the private leaderboard: confirm = the challenge id; "
                                                 "refused before the end unless force (hide = true hides it again)")
    @access(ADMIN)
    def admin_reveal(request: Request, cid: str, body: RevealBody | None = None, hide: bool = False):
        body = body or RevealBody(hide=hide)
        if body.hide or hide:
            c = arena.set_revealed(cid, False)
            arena.log_admin(actor_of(request), "hide private", cid)
            return challenge_json(c)
        arena.reveal(cid, confirm=body.confirm, force=body.force, actor=actor_of(request))
        return challenge_json(arena.challenge(cid))

    @a.post("/challenges/{cid}/edit", summary="Change a challenge's title, description, quota, finals or times")
    @access(ADMIN)
    def admin_edit(request: Request, cid: str, body: EditBody):
        changes = edit_changes(body)
        if not changes:
            raise Refused("nothing to change", "give title, description, daily_quota, final_selections, start, end "
                                               "or freeze")
        arena.edit_challenge(cid, changes, actor=actor_of(request))
        return challenge_json(arena.challenge(cid))

    @a.post("/challenges/{cid}/visibility", summary="Hide a challenge from teams, or archive it (read-only)")
    @access(ADMIN)
    def admin_visibility(request: Request, cid: str, body: VisibilityBody):
        arena.set_visibility(cid, hidden=body.hidden, archived=body.archived, actor=actor_of(request))
        return challenge_json(arena.challenge(cid))

    @a.post("/challenges/{cid}/invite", summary="Turn invite-code self-registration on (the code is shown once) or off")
    @access(ADMIN)
    def admin_invite(request: Request, cid: str, body: InviteBody):
        arena.challenge(cid)
        code = arena.set_invite(cid, body.enabled, actor=actor_of(request))
        return {"challenge": cid, "enabled": body.enabled, "code": code,
                "register": f"/register?challenge={cid}" if code else None}

    @a.get("/challenges/{cid}/identical", summary="Files uploaded by more than one team (by SHA-256)")
    @access(ADMIN)
    def admin_identical(request: Request, cid: str):
        arena.challenge(cid)
        return arena.identical_uploads(cid)

    @a.get("/log", summary="The admin log: who did what, when")
    @access(ADMIN)
    def admin_log(request: Request, limit: int = Query(200, ge=1, le=5000)):
        return [{**e, "at": iso(e["at"])} for e in arena.admin_log(limit)]

    @a.get("/datasets", summary="Registered private datasets (manifests only: no images, no labels)")
    @access(ADMIN)
    def admin_datasets(request: Request):
        return [m.to_dict() for m in arena.datasets()]

    @a.post("/challenges/{cid}/end", summary="End the challenge now")
    @access(ADMIN)
    def admin_end(request: Request, cid: str):
        c = arena.end_now(cid)
        arena.log_admin(actor_of(request), "end now", cid)
        return challenge_json(c)

    @a.get("/challenges/{cid}/leaderboard.csv", summary="Export a leaderboard as CSV")
    @access(ADMIN)
    def admin_export_leaderboard(request: Request, cid: str,
                                 board: str = Query("public", pattern="^(public|private)$")):
        c = arena.challenge(cid)
        with arena.db.read() as s:
            text = lb.leaderboard_csv(lb.compute(s, c, board=board, is_admin=True), track=c.track)
        return PlainTextResponse(text, media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{cid}-{board}-leaderboard.csv"'})

    @a.get("/challenges/{cid}/submissions.csv", summary="Export all submissions as CSV")
    @access(ADMIN)
    def admin_export_submissions(request: Request, cid: str):
        c = arena.challenge(cid)
        with arena.db.read() as s:
            text = lb.submissions_csv(s, c)
        return PlainTextResponse(text, media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{cid}-submissions.csv"'})

    r.include_router(a)
    return r
