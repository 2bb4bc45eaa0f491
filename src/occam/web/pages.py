"""Server-rendered pages (Jinja2) and the few static files they use (no CDN, no build step)."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from occam.arena import leaderboard as lb
from occam.arena.service import Refused, phase
from occam.web.api import leaderboard_payload, read_upload, submit_as_viewer
from occam.web.context import ADMIN, COOKIE, PUBLIC, STATIC_DIR, TEAM, WebContext, access
from occam.web.serialize import challenge_json, iso, submission_json

STATIC_FILES = {"arena.js": "text/javascript", "arena.css": "text/css"}


def plotly_js_path() -> Path:
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.exists():
        raise Refused("plotly.min.js is missing from the installed plotly package", "reinstall plotly",
                      status=404, code="not_found")
    return path


def create_pages_router(ctx: WebContext) -> APIRouter:
    r = APIRouter(include_in_schema=False, dependencies=[Depends(ctx.check_challenge_visible)])
    arena = ctx.arena

    @r.get("/", response_class=HTMLResponse)
    @access(PUBLIC)
    def index(request: Request):
        cs = [challenge_json(c) for c in ctx.visible_challenges(request)]
        return ctx.render(request, "index.html", challenges=cs)

    @r.get("/healthz")
    @access(PUBLIC)
    def healthz():
        with arena.db.read() as s:
            from sqlalchemy import text

            s.execute(text("SELECT 1"))
        return {"ok": True}

    @r.get("/static/{name}")
    @access(PUBLIC)
    def static(name: str):
        if name not in STATIC_FILES:
            raise Refused(f"no static file {name!r}", status=404, code="not_found")
        return FileResponse(STATIC_DIR / name, media_type=STATIC_FILES[name],
                            headers={"Cache-Control": "public, max-age=300"})

    @r.get("/vendor/plotly.min.js")
    @access(PUBLIC)
    def plotly_js():
        return FileResponse(plotly_js_path(), media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    @r.get("/login", response_class=HTMLResponse)
    @access(PUBLIC)
    def login_form(request: Request, next: str = "/"):
        return ctx.render(request, "login.html", next=_safe_next(next), error=None)

    @r.post("/login")
    @access(PUBLIC)
    def login(request: Request, token: str = Form(...), next: str = Form("/")):
        v = arena.viewer(token)
        if not (v.is_team or v.is_admin):
            return ctx.render(request, "login.html", status_code=401, next=_safe_next(next),
                              error="This token is not valid.")
        target = _safe_next(next)
        if target == "/":
            target = "/admin" if v.is_admin else "/team"
        resp = RedirectResponse(target, status_code=303)
        resp.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict", secure=ctx.settings.secure_cookies,
                        max_age=14 * 86400)
        return resp

    @r.get("/register", response_class=HTMLResponse)
    @access(PUBLIC)
    def register_form(request: Request, challenge: str = ""):
        return ctx.render(request, "register.html", challenge=challenge, error=None, token=None, team_name="")

    @r.post("/register", response_class=HTMLResponse)
    @access(PUBLIC)
    def register(request: Request, challenge: str = Form(...), code: str = Form(...), name: str = Form(...)):
        try:
            team, token = arena.register_team(challenge.strip(), code.strip(), name)
        except Refused as exc:
            return ctx.render(request, "register.html", status_code=exc.status, challenge=challenge, token=None,
                              team_name=name, error=exc.problem + (f" ({exc.fix})" if exc.fix else ""))
        resp = ctx.render(request, "register.html", challenge=challenge, error=None, token=token, team_name=team.name)
        resp.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=ctx.settings.secure_cookies,
                        max_age=14 * 86400)
        return resp

    @r.post("/submissions/{sid}/note")
    @access(TEAM)
    def note_form(request: Request, sid: int, note: str = Form("")):
        arena.set_note(ctx.require_team(request), sid, note)
        return RedirectResponse(f"/submissions/{sid}", status_code=303)

    @r.post("/logout")
    @access(PUBLIC)
    def logout():
        resp = RedirectResponse("/", status_code=303)
        resp.delete_cookie(COOKIE)
        return resp

    @r.get("/challenges/{cid}", response_class=HTMLResponse)
    @access(PUBLIC)
    def challenge_page(request: Request, cid: str):
        v = ctx.viewer(request)
        c = arena.challenge(cid)
        board = leaderboard_payload(ctx, c, v.is_admin, "public")
        quota = None
        if v.is_team:
            quota = arena.quota(v.team_id or 0, c)
        cj = challenge_json(c)
        return ctx.render(request, "challenge.html", c=cj, board=board, quota=quota,
                          policy=cj["scoring_policy"], phase=phase(c), iso=iso, lb_only=False)

    @r.get("/challenges/{cid}/leaderboard", response_class=HTMLResponse)
    @access(PUBLIC)
    def leaderboard_page(request: Request, cid: str, board: str = "public"):
        v = ctx.viewer(request)
        c = arena.challenge(cid)
        if board not in ("public", "private") or (board == "private" and not lb.private_visible(c, v.is_admin)):
            board = "public"
        payload = leaderboard_payload(ctx, c, v.is_admin, board)
        return ctx.render(request, "leaderboard.html", c=challenge_json(c), board=payload, iso=iso)

    @r.post("/challenges/{cid}/submit")
    @access(TEAM)
    async def submit_form(request: Request, cid: str, file: UploadFile = File(...)):
        data = await read_upload(ctx, file)
        res = await run_in_threadpool(submit_as_viewer, ctx, request, cid, data, file.filename or "model.onnx")
        return RedirectResponse(f"/submissions/{res.submission_id}", status_code=303)

    @r.get("/team", response_class=HTMLResponse)
    @access(TEAM)
    def team_page(request: Request):
        v = ctx.require_team(request)
        if v.is_admin:
            return RedirectResponse("/admin", status_code=303)
        sections = []
        subs = arena.submissions(v)
        for c in ctx.visible_challenges(request):
            mine = [submission_json(s, v, c) for s in subs if s.challenge_id == c.id]
            q = arena.quota(v.team_id or 0, c)
            sections.append({"c": challenge_json(c), "subs": mine, "quota": q, "phase": phase(c)})
        return ctx.render(request, "team.html", sections=sections, iso=iso, now=time.time())

    @r.get("/submissions/{sid}", response_class=HTMLResponse)
    @access(TEAM)
    def submission_page(request: Request, sid: int):
        v = ctx.require_team(request)
        sub = arena.submission(v, sid)
        c = arena.challenge(sub.challenge_id)
        return ctx.render(request, "submission.html", s=submission_json(sub, v, c), c=challenge_json(c))

    admin = APIRouter(dependencies=[Depends(ctx.require_admin)])  # every admin page: one access check

    @admin.get("/admin", response_class=HTMLResponse)
    @access(ADMIN)
    def admin_page(request: Request):
        v = ctx.viewer(request)
        cs = arena.challenges()
        subs = [submission_json(s, v, next((c for c in cs if c.id == s.challenge_id), None))
                for s in arena.submissions(v, limit=200)]
        identical = {c.id: arena.identical_uploads(c.id) for c in cs}
        return ctx.render(request, "admin.html", challenges=[challenge_json(c) for c in cs], subs=subs,
                          teams=arena.teams(), status=arena.status(), iso=iso, now=time.time(),
                          log=arena.admin_log(100), identical=identical, datasets=arena.datasets())

    @r.get("/favicon.ico")
    @access(PUBLIC)
    def favicon():
        return Response(status_code=204)

    r.include_router(admin)
    return r


def _safe_next(target: str) -> str:
    """Only local paths (no open redirects)."""
    if not target.startswith("/") or target.startswith("//"):
        return "/"
    return target
