"""The app factory: ``create_app(settings)`` with the API, the pages, and any extra routers."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.templating import Jinja2Templates
from jinja2 import BaseLoader, ChoiceLoader, Environment, FileSystemLoader, TemplateNotFound, select_autoescape

from occam import __version__
from occam.arena.config import ArenaSettings
from occam.arena.service import Arena, Refused
from occam.arena.tracks import get_track
from occam.errors import OccamError
from occam.web.api import create_api_router
from occam.web.context import COOKIE, TEMPLATES_DIR, WebContext
from occam.web.csrf import csrf_problem
from occam.web.pages import create_pages_router

log = logging.getLogger("occam.web")

RouterFactory = Callable[[WebContext], APIRouter]

# Routers other parts ship; each is included when its module imports (e.g. the Lens adds
# GET /lens/submissions/{id}; track_files serves the files a track offers, Track.public_files).
# A factory takes the WebContext and returns an APIRouter.
ROUTER_PLUGINS: list[str] = ["occam.web.lens_routes:create_router", "occam.web.track_files:create_router"]


def _plugin_factories(names: Iterable[str]) -> list[RouterFactory]:
    out: list[RouterFactory] = []
    for spec in names:
        mod_name, _, attr = spec.partition(":")
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name and (mod_name == exc.name or mod_name.startswith(exc.name + ".")):
                continue  # that part is not installed (yet)
            raise
        out.append(getattr(mod, attr or "create_router"))
    return out


def create_app(settings: ArenaSettings | None = None, *, arena: Arena | None = None,
               extra_routers: Sequence[RouterFactory] = (), plugins: bool = True, init: bool = True) -> FastAPI:
    """The Arena's FastAPI app.

    ``extra_routers``: factories ``f(ctx: WebContext) -> APIRouter`` to include (plus those in
    ``ROUTER_PLUGINS`` whose module exists, unless ``plugins=False``). ``init``: migrate the
    database at start-up.
    """
    settings = settings or ArenaSettings()
    arena = arena or Arena(settings)
    templates = Jinja2Templates(env=_template_env())
    templates.env.globals["version"] = __version__
    templates.env.globals["fragment"] = fragment
    ctx = WebContext(arena=arena, settings=settings, templates=templates)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        from fastapi.concurrency import run_in_threadpool

        if init:
            token = await run_in_threadpool(arena.init)
            if token:
                log.warning("created an admin token (shown once): %s", token)
                app.state.new_admin_token = token
        # warmed in the background: the server listens at once (the first requests may pay a little)
        import threading

        threading.Thread(target=_warm_up, args=(ctx,), name="warm-up", daemon=True).start()
        yield

    app = FastAPI(title="Occam Arena", version=__version__, lifespan=lifespan,
                  description="Self-hosted contests for small, interpretable neural networks. "
                              "Authenticate with `Authorization: Bearer TOKEN` (team or admin token).")
    app.state.ctx = ctx
    app.state.arena = arena

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused):  # noqa: ANN202
        return _error(ctx, request, exc.status, exc.problem, exc.fix, exc.code)

    @app.exception_handler(OccamError)
    async def _occam_error(request: Request, exc: OccamError):  # noqa: ANN202
        return _error(ctx, request, 400, exc.problem, exc.fix, "error")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):  # noqa: ANN202
        errs = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors())
        return _error(ctx, request, 422, f"bad request: {errs}", "see /docs for the expected fields", "invalid")

    app.add_middleware(UploadLimit, max_bytes=settings.max_upload_bytes + 256 * 1024)
    app.add_middleware(SessionCSRF, trusted_origins=settings.trusted_origins)  # outermost: refuses before reading
    app.include_router(create_api_router(ctx))
    app.include_router(create_pages_router(ctx))
    factories = list(extra_routers) + (_plugin_factories(ROUTER_PLUGINS) if plugins else [])
    for factory in factories:
        app.include_router(factory(ctx))
    return app


class TrackTemplates(BaseLoader):
    """Templates named ``track:NAME/FILE``: FILE in track NAME's ``template_dir`` (no '..', no absolute paths)."""

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        if not template.startswith("track:"):
            raise TemplateNotFound(template)
        name, _, rel = template[6:].partition("/")
        try:
            folder = get_track(name).template_dir
        except OccamError:
            folder = None
        if not folder or not rel or rel.startswith("/") or ".." in rel.split("/"):
            raise TemplateNotFound(template)
        path = Path(folder) / rel
        if not path.is_file():
            raise TemplateNotFound(template)
        mtime = path.stat().st_mtime
        return path.read_text(encoding="utf-8"), str(path), lambda: path.is_file() and path.stat().st_mtime == mtime


def _template_env() -> Environment:
    return Environment(loader=ChoiceLoader([FileSystemLoader(str(TEMPLATES_DIR)), TrackTemplates()]),
                       autoescape=select_autoescape())


def fragment(challenge: dict[str, Any], slot: str) -> str:
    """The template a challenge's track gives for a page fragment (``Track.fragments``), else the default one.
    ``challenge``: anything with a ``track`` key (a challenge's or a leaderboard's JSON)."""
    try:
        track = get_track(str(challenge.get("track")))
    except OccamError:
        return f"tracks/default_{slot}.html"
    return track.fragments.get(slot, f"tracks/default_{slot}.html")


class SessionCSRF:
    """Cross-site request forgery guard (the rule of :func:`occam.web.csrf.csrf_problem`) for the requests a forged
    form could abuse: those that carry the session cookie, and the login form (a forged login would plant a token).
    A request with neither has no ambient authority to borrow, so it gets the route's own answer (401 and so on)."""

    def __init__(self, app: Any, trusted_origins: Iterable[str] = ()):
        self.app = app
        self.trusted = tuple(trusted_origins)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            cookie = f"{COOKIE}=" in headers.get("cookie", "")
            if cookie or scope.get("path") in ("/login", "/register"):
                host = headers.get("host") or "{}:{}".format(*scope.get("server", ("localhost", 80)))
                problem = csrf_problem(scope["method"], headers, f"{scope.get('scheme', 'http')}://{host}", self.trusted)
                if problem is not None:
                    log.warning("refused a cross-origin %s %s: %s", scope["method"], scope.get("path"), problem)
                    resp = JSONResponse({"error": f"refused: {problem}",
                                         "fix": "submit from the arena's own pages, or send the token in an "
                                                "'Authorization: Bearer TOKEN' header", "code": "csrf"}, status_code=403)
                    await resp(scope, receive, send)
                    return
        await self.app(scope, receive, send)


class UploadLimit:
    """Refuse oversized uploads before their body is read (the form parser would spool it all to disk)."""

    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = {k.lower(): v for k, v in scope["headers"]}
            length = headers.get(b"content-length")
            problem = None
            if length is None and b"chunked" in headers.get(b"transfer-encoding", b""):
                status, problem, fix = 411, "uploads must state their length", "send a Content-Length header"
            elif length is not None and length.isdigit() and int(length) > self.max_bytes:
                status = 413
                problem = f"the request has {int(length):,} bytes, more than the server's limit of {self.max_bytes:,}"
                fix = "prune or quantize the model, or store fewer values"
            if problem is not None:
                resp = JSONResponse({"error": problem, "fix": fix, "code": "too_large"}, status_code=status)
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _warm_up(ctx: WebContext) -> None:
    """Do once, at start-up, what the first requests would otherwise pay for: imports (onnx, the form
    parser), template compilation, and SQL compilation of the hot statements."""
    try:
        import python_multipart  # noqa: F401

        for name in ("index.html", "challenge.html", "leaderboard.html", "team.html", "submission.html",
                     "admin.html", "login.html", "error.html"):
            ctx.templates.get_template(name)
        from occam.arena import leaderboard as lb
        from occam.scoring import inspect_model

        inspect_model(_tiny_model(), None, cross_check=False)
        if ctx.arena.db.is_postgres:
            ctx.arena.db.prefill()
        for c in ctx.arena.challenges():
            ctx.arena.quota(0, c)
            with ctx.arena.db.read() as s:
                lb.compute(s, c)
    except Exception:  # only a warm-up
        log.exception("warm-up failed")


def _tiny_model() -> bytes:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"], axis=1), helper.make_node("Gemm", ["f", "w", "b"], ["y"])], "warm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        initializer=[numpy_helper.from_array(np.ones((4, 2), np.float32), "w"),
                     numpy_helper.from_array(np.zeros(2, np.float32), "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10).SerializeToString()


def _error(ctx: WebContext, request: Request, status: int, problem: str, fix: str | None, code: str) -> Any:
    wants_html = (not request.url.path.startswith("/api/")
                  and "text/html" in request.headers.get("accept", ""))
    if wants_html:
        if status == 401 and request.method == "GET":
            from fastapi.responses import RedirectResponse

            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        return ctx.render(request, "error.html", status_code=status, status=status, problem=problem, fix=fix)
    return JSONResponse({"error": problem, "fix": fix, "code": code}, status_code=status)


def iter_routes(routes: Iterable[Any], prefix: str = "") -> list[tuple[str, set[str], Any, Any]]:
    """Every concrete route as (path, methods, endpoint, route), through included routers of any FastAPI version."""
    out: list[tuple[str, set[str], Any, Any]] = []
    for r in routes:
        inner = getattr(r, "original_router", None)
        if inner is not None:  # FastAPI >= 0.16x keeps included routers as branches
            ctx = getattr(r, "include_context", None)
            out.extend(iter_routes(inner.routes, prefix + (getattr(ctx, "prefix", "") or "")))
            continue
        path = getattr(r, "path", None)
        endpoint = getattr(r, "endpoint", None)
        if path is None or endpoint is None:
            continue
        out.append((prefix + path, set(getattr(r, "methods", None) or {"GET"}), endpoint, r))
    return out
