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
    r = APIRouter(prefix="/api", tags=["arena"])
    arena = ctx.arena

    @r.get("/challenges", summary="All challenges")
    @access(PUBLIC)
    def list_challenges() -> list[dict[str, Any]]:
        return [challenge_json(c) for c in arena.challenges()]

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

    @r.get("/me", summary="Who the token belongs to, and the quota left in each challenge")
    @access(TEAM)
    def me(request: Request):
        v = ctx.require_team(request)
        out: dict[str, Any] = {"kind": v.kind, "team_id": v.team_id, "team": v.team_name}
        if v.is_team:
            quotas = {}
            for c in arena.challenges():
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
        return {"id": team.id, "name": team.name, "token": token}

    @a.post("/teams/{tid}/disqualify", summary="Disqualify a team (or undo)")
    @access(ADMIN)
    def admin_dq_team(request: Request, tid: int, body: DisqualifyBody):
        arena.disqualify_team(tid, body.reason, undo=body.undo)
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
        return {"requeued": arena.rejudge([sid])}

    @a.post("/submissions/{sid}/disqualify", summary="Disqualify a submission (or undo)")
    @access(ADMIN)
    def admin_dq_submission(request: Request, sid: int, body: DisqualifyBody):
        arena.disqualify_submission(sid, body.reason, undo=body.undo)
        return {"ok": True}

    @a.post("/challenges/{cid}/rejudge", summary="Score every submission of a challenge again")
    @access(ADMIN)
    def admin_rejudge_all(request: Request, cid: str):
        arena.challenge(cid)
        return {"requeued": arena.rejudge(None, challenge_id=cid)}

    @a.post("/challenges/{cid}/freeze", summary="Freeze the public leaderboard now (or unfreeze)")
    @access(ADMIN)
    def admin_freeze(request: Request, cid: str, unfreeze: bool = False):
        return challenge_json(arena.set_freeze(cid, not unfreeze))

    @a.post("/challenges/{cid}/reveal", summary="Reveal the private leaderboard (or hide it again)")
    @access(ADMIN)
    def admin_reveal(request: Request, cid: str, hide: bool = False):
        return challenge_json(arena.set_revealed(cid, not hide))

    @a.post("/challenges/{cid}/end", summary="End the challenge now")
    @access(ADMIN)
    def admin_end(request: Request, cid: str):
        return challenge_json(arena.end_now(cid))

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
