"""Lens web pages and JSON API over :mod:`occam.lens` (FastAPI + Jinja2 + plain JS + Plotly, no build step).

- ``create_lens_router(resolve)``: the pages and API for any model a ``resolve(request, mid)``
  callback returns as a :class:`~occam.lens.views.LensSession`.
- ``create_router(ctx)``: the arena's plugin (``/lens/submissions/{id}`` for submissions the viewer
  may see, ``/lens/challenges/{cid}/zoo/{model}`` for the zoo models of audit challenges; every API
  call re-checks), with a bounded cache of open sessions and a cap on running background jobs.
- ``create_app(session)``: the standalone app of ``occam lens MODEL``.
- ``export_html(session, path)``: one static, offline HTML file with every view.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel

from occam.errors import OccamError
from occam.web.lens_isolated import LensClient, isolated_client, local_client

if TYPE_CHECKING:
    from occam.lens.views import LensSession

TEMPLATES = Path(__file__).with_name("templates") / "lens"
STATIC = Path(__file__).with_name("static") / "lens"
_JINJA = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))

Resolver = Callable[[Request, str], LensClient]


def plotly_path() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN/inf → None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def _json(obj: Any) -> JSONResponse:
    return JSONResponse(_clean(obj))


def render_page(session: LensClient | LensSession, *, base: str, mid: str, static_data: dict | None = None,
                focus: dict | None = None) -> str:
    """The Lens page of an open model (a client's ``info``; a local session for static exports)."""
    if isinstance(session, LensClient):
        info = session.info
    else:
        from occam.lens.remote import LensHost

        info = LensHost(session).info()
    ctx = {"checkpoints": info["checkpoints"], "checkpoint": info["checkpoint"],
           "title": f"Lens · {info['name']}", "name": info["name"], "task": info["task"], "hash": info["hash"],
           "mid": mid, "base": base, "views": info["views"], "focus": json.dumps(focus or {}),
           "static": static_data is not None, "read_only": info["read_only"], "kind": info["kind"],
           "n_val": info["n_val"], "views_json": json.dumps(_clean(info["views"])).replace("</", "<\\/"),
           "compare_name": info.get("compare_name"),
           "checkpoints_json": json.dumps([str(c) for c in info["checkpoints"]]).replace("</", "<\\/")}
    if static_data is not None:
        ctx["inline_css"] = (STATIC / "lens.css").read_text()
        ctx["inline_js"] = (STATIC / "lens.js").read_text()
        ctx["inline_plotly"] = plotly_path().read_text()
        ctx["static_json"] = json.dumps(_clean(static_data)).replace("</", "<\\/")
    return _JINJA.get_template("page.html").render(**ctx)


class EditBody(BaseModel):
    name: str
    index: int
    value: float


class PredictBody(BaseModel):
    pixels: list[float]


class CheckpointBody(BaseModel):
    index: int


class CompareBody(BaseModel):
    checkpoint: int | None = None
    snapshot: bool = False
    clear: bool = False


class TriggersBody(BaseModel):
    steps: int = 300
    images: int = 40


# gate(request, start): run ``start(admit)``, which starts (or reuses) a background job and calls
# ``admit()`` just before a new one starts; ``admit`` may raise to refuse it.
JobGate = Callable[[Request, Callable[[Callable[[], None] | None], Any]], Any]


def _read_only(s: LensClient) -> JSONResponse | None:
    if s.read_only is None:
        return None
    return JSONResponse({"error": s.read_only, "code": "read_only",
                         "fix": f"download the model and run `occam lens FILE --task {s.info['task']}` to edit its weights"},
                        status_code=409)


def create_lens_router(resolve: Resolver, *, tag: Callable[[Any], Any] | None = None,  # noqa: C901
                       public_tag: Callable[[Any], Any] | None = None, gate: JobGate | None = None) -> APIRouter:
    """Pages under ``/lens/m/{mid}`` and the API under ``/lens/api/{mid}``: one route serves every view
    (``GET views/{name}?param=…``; job views also ``POST views/{name}`` and ``GET views/{name}/jobs/{id}``),
    beside the editor's actions (edit, undo, sync, reset, save) and painting (predict). ``resolve(request, mid)``
    returns a :class:`~occam.web.lens_isolated.LensClient` (the model in this process or in a limited child: every
    computation goes through it). ``tag`` decorates each model endpoint, ``public_tag`` the static files (the arena
    tags access levels this way); ``gate`` admits new background jobs (trigger searches, SAEs), see :data:`JobGate`."""
    r = APIRouter()
    deco = tag or (lambda f: f)
    pub = public_tag or (lambda f: f)

    def gated(request: Request, start: Callable[[Callable[[], None] | None], Any]) -> Any:
        return gate(request, start) if gate is not None else start(None)

    def get(path: str, **kw: Any) -> Callable:
        def wrap(fn: Callable) -> Callable:
            return r.get(path, **kw)(deco(fn))
        return wrap

    def post(path: str, **kw: Any) -> Callable:
        def wrap(fn: Callable) -> Callable:
            return r.post(path, **kw)(deco(fn))
        return wrap

    @r.get("/lens/static/{name}")
    @pub
    def lens_static(name: str):
        p = STATIC / name
        if "/" in name or not p.is_file():
            return Response(status_code=404)
        return FileResponse(p)

    @r.get("/lens/plotly.min.js")
    @pub
    def lens_plotly():
        return FileResponse(plotly_path(), media_type="application/javascript")

    @get("/lens/m/{mid}", response_class=HTMLResponse)
    def lens_page(request: Request, mid: str):
        s = resolve(request, mid)
        s.refresh()  # views registered since the model opened show too
        return HTMLResponse(render_page(s, base="/lens", mid=mid))

    @get("/lens/m/{mid}/units/{layer:path}/{unit}", response_class=HTMLResponse)
    def lens_unit_page(request: Request, mid: str, layer: str, unit: int):
        """A unit's stable link; ``layer`` may hold "/" or "::" (the page percent-encodes it)."""
        s = resolve(request, mid)
        s.has_layer(layer)
        s.refresh()
        return HTMLResponse(render_page(s, base="/lens", mid=mid, focus={"layer": layer, "unit": unit}))

    @get("/lens/api/{mid}/views")
    def api_views(request: Request, mid: str):
        info = resolve(request, mid).refresh()
        return _json({"views": info["views"], "n_val": info["n_val"]})

    @get("/lens/api/{mid}/views/{name}")
    def api_view(request: Request, mid: str, name: str):
        """Every view: its query parameters validated against the view's declared ones; answers
        ``{view, params, n_val, data, html}``."""
        s = resolve(request, mid)
        return _json(s.view(name, dict(request.query_params)))

    def start_view_job(request: Request, s: LensClient, name: str, params: dict[str, Any]) -> Any:
        return _json(gated(request, lambda admit: s.start_job(name, params, admit)).to_dict())

    def poll_job(s: LensClient, job: str) -> Any:
        j = s.job(job)
        if j is None:
            return JSONResponse({"error": f"no job {job}", "fix": "start it again"}, status_code=404)
        return _json(j)

    @post("/lens/api/{mid}/views/{name}")
    def api_view_start(request: Request, mid: str, name: str, body: dict[str, Any] | None = None):
        """A background-job view (``job = True``): start (or reuse) it with the JSON body's parameters."""
        s = resolve(request, mid)
        return start_view_job(request, s, name, body or {})

    @get("/lens/api/{mid}/views/{name}/jobs/{job}")
    def api_view_job(request: Request, mid: str, name: str, job: str):
        return poll_job(resolve(request, mid), job)

    # ---- older addresses, kept for scripts and the arena's tests --------------------------------------------
    @get("/lens/api/{mid}/overview")
    def api_overview(request: Request, mid: str):
        s = resolve(request, mid)
        return _json({**s.view("overview", {})["data"], "views": s.refresh()["views"]})

    @get("/lens/api/{mid}/weights")
    def api_weights(request: Request, mid: str):
        s = resolve(request, mid)
        d = s.view("editor", {})["data"]
        return _json({"weights": d["weights"], "metrics": d["metrics"], "history": d["history"]})

    @post("/lens/api/{mid}/triggers")
    def api_triggers(request: Request, mid: str, body: TriggersBody):
        return start_view_job(request, resolve(request, mid), "triggers", body.model_dump())

    @get("/lens/api/{mid}/triggers/{job}")
    def api_triggers_job(request: Request, mid: str, job: str):
        return poll_job(resolve(request, mid), job)

    @post("/lens/api/{mid}/predict")
    def api_predict(request: Request, mid: str, body: PredictBody):
        return _json(resolve(request, mid).predict(body.pixels))

    @get("/lens/api/{mid}/weight")
    def api_weight(request: Request, mid: str, name: str, row: int = 0):
        return _json(resolve(request, mid).weight(name, row))

    @post("/lens/api/{mid}/edit")
    def api_edit(request: Request, mid: str, body: EditBody):
        """One weight edit; ``server_ms``: the time this request spent (including the trip to an isolated model),
        ``compute_ms``: the edit itself."""
        s = resolve(request, mid)
        if (ro := _read_only(s)) is not None:
            return ro
        t0 = time.perf_counter()
        m = s.edit(body.name, body.index, body.value)
        m["server_ms"] = (time.perf_counter() - t0) * 1000
        return _json(m)

    def editor_call(request: Request, mid: str, op: str) -> Any:
        """Run one editor operation; read-only sessions get their refusal."""
        s = resolve(request, mid)
        if (ro := _read_only(s)) is not None:
            return ro
        return _json(s.editor(op))

    @post("/lens/api/{mid}/undo")
    def api_undo(request: Request, mid: str):
        return editor_call(request, mid, "undo")

    @post("/lens/api/{mid}/sync")
    def api_sync(request: Request, mid: str):
        return editor_call(request, mid, "sync")

    @post("/lens/api/{mid}/reset")
    def api_reset(request: Request, mid: str):
        return editor_call(request, mid, "reset")  # reset clears the history

    @post("/lens/api/{mid}/checkpoint")
    def api_checkpoint(request: Request, mid: str, body: CheckpointBody):
        """Show another training checkpoint (every view follows; the editor starts over)."""
        s = resolve(request, mid)
        if (ro := _read_only(s)) is not None:
            return ro
        return _json(s.checkout(body.index))

    @post("/lens/api/{mid}/compare")
    def api_compare(request: Request, mid: str, body: CompareBody):
        """Hold a second model to compare with: a checkpoint of this one (``checkpoint``), a snapshot of the
        current (possibly edited) weights (``snapshot``), or none (``clear``). Views then take ``?compare=1``."""
        s = resolve(request, mid)
        return _json(s.compare(checkpoint=body.checkpoint, snapshot=bool(body.snapshot), clear=bool(body.clear)))

    @get("/lens/api/{mid}/save")
    def api_save(request: Request, mid: str):
        s = resolve(request, mid)
        data = s.save()
        return Response(data, media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{s.info["name"]}-edited.onnx"'})

    return r


# ---- standalone app (occam lens) ------------------------------------------------------------------
def create_app(session: LensSession) -> FastAPI:
    """The app of ``occam lens MODEL``: the user's own model, computed in this process."""
    app = FastAPI(title=f"Occam Lens · {session.lm.name}")
    client = local_client(session)

    def resolve(request: Request, mid: str) -> LensClient:
        if mid != client.id:
            raise OccamError(f"no model {mid!r} here", f"open /lens/m/{client.id}")
        return client

    @app.exception_handler(OccamError)
    async def _occam_error(request: Request, exc: OccamError):  # noqa: ANN202
        return JSONResponse({"error": exc.problem, "fix": exc.fix}, status_code=400)

    @app.get("/favicon.ico")
    def favicon():
        return Response(status_code=204)

    @app.get("/")
    def index():
        return RedirectResponse(f"/lens/m/{client.id}")

    app.include_router(create_lens_router(resolve))
    return app


# ---- the arena's plugin ------------------------------------------------------------------------------
class SessionCache:
    """The arena's open Lens sessions (a :class:`~occam.web.lens_isolated.LensClient` each, i.e. one limited
    child process per open model; plain :class:`~occam.lens.views.LensSession` objects work too), by key: at most
    ``limit`` stay open, the least recently used idle one (no trigger search or SAE running, no call in flight)
    being closed first; a session whose job runs is kept until it ends. Sessions unused for ``idle_seconds`` are
    closed too (checked whenever a session opens, and by :meth:`sweep`). A session opens once per key (other keys
    are served meanwhile). Closing a client ends its child process."""

    def __init__(self, limit: int, *, idle_seconds: float | None = None):
        self.limit = max(1, int(limit))
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._open: OrderedDict[str, Any] = OrderedDict()
        self._used: dict[str, float] = {}
        self._opening: dict[str, threading.Lock] = {}

    def __len__(self) -> int:
        return len(self._open)

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._open)

    def _hit(self, key: str) -> Any:
        s = self._open.get(key)
        if s is not None:
            self._open.move_to_end(key)
            self._used[key] = time.monotonic()
        return s

    @staticmethod
    def busy(s: Any) -> bool:
        check = getattr(s, "busy", None)
        if callable(check):
            return bool(check())
        return any(j.state == "running" for j in list(s.jobs.values()))

    def get(self, key: str, opener: Callable[[], Any]) -> Any:
        with self._lock:
            if (s := self._hit(key)) is not None:
                return s
            one = self._opening.setdefault(key, threading.Lock())
        with one:
            with self._lock:
                if (s := self._hit(key)) is not None:
                    return s
            try:
                s = opener()
            except BaseException:
                with self._lock:
                    self._opening.pop(key, None)
                raise
            with self._lock:
                self._open[key] = s
                self._used[key] = time.monotonic()
                self._opening.pop(key, None)
        self.sweep(keep=key)
        return s

    def sweep(self, keep: str | None = None) -> list[str]:
        """Close sessions over the limit (oldest idle first) and those idle too long; the keys closed."""
        now = time.monotonic()
        with self._lock:
            candidates = [(k, v) for k, v in self._open.items() if k != keep]  # least recently used first
        closed: list[str] = []
        for k, v in candidates:
            with self._lock:
                over = len(self._open) > self.limit
                stale = self.idle_seconds is not None and now - self._used.get(k, now) > self.idle_seconds
            if not (over or stale) or self.busy(v):
                continue
            with self._lock:
                if self._open.get(k) is not v:
                    continue
                del self._open[k]
                self._used.pop(k, None)
            closed.append(k)
            close = getattr(v, "close", None)
            if callable(close):
                close()
        return closed

    def close_all(self) -> None:
        with self._lock:
            items, self._open = list(self._open.values()), OrderedDict()
            self._used.clear()
        for v in items:
            close = getattr(v, "close", None)
            if callable(close):
                close()


class ArenaJobGate:
    """At most ``per_owner`` running background Lens jobs per team (or the admin) and ``total`` in all; a new
    job over either answers 429. Reusing a cached or running job is always allowed."""

    def __init__(self, per_owner: int, total: int):
        self.per_owner, self.total = max(1, int(per_owner)), max(1, int(total))
        self._lock = threading.Lock()
        self._running: list[tuple[str, Any]] = []

    def __call__(self, owner: str, start: Callable[[Callable[[], None] | None], Any]) -> Any:
        from occam.arena.service import Refused

        with self._lock:
            self._running = [(o, j) for o, j in self._running if j.state == "running"]
            mine = sum(o == owner for o, _ in self._running)

            def admit() -> None:
                if mine >= self.per_owner:
                    raise Refused(f"you already have {mine} Lens job(s) running (trigger searches, SAEs); the arena "
                                  f"runs at most {self.per_owner} per team at a time",
                                  "wait until one finishes (its progress bar), then start this one", status=429,
                                  code="busy")
                if len(self._running) >= self.total:
                    raise Refused(f"the server already runs {len(self._running)} Lens jobs (its limit)",
                                  "try again in a minute", status=429, code="busy")

            job = start(admit)
            if job.state == "running" and all(j.id != job.id for _, j in self._running):
                self._running.append((owner, job))
            return job


def lens_limits(settings: Any) -> Any:
    """The limits of the arena's Lens children (``settings.lens_memory_mb``, ``lens_cpu_seconds``,
    ``lens_wall_seconds``; one thread each)."""
    from occam.isolate import IsolationLimits

    return IsolationLimits(memory_mb=int(settings.lens_memory_mb), cpu_seconds=float(settings.lens_cpu_seconds),
                           wall_seconds=float(settings.lens_wall_seconds), threads=1)


def zoo_mid(cid: str, model: str) -> str:
    """The Lens's id of zoo model ``model`` of challenge ``cid`` (challenge ids are slugs: no '.')."""
    return f"z.{cid}.{model}"


def create_router(ctx: Any) -> APIRouter:
    """The arena's Lens: ``/lens/submissions/{id}`` (a submission the viewer may see) and
    ``/lens/challenges/{cid}/zoo/{model}`` (a model the challenge's track lets the Lens open, e.g. a zoo model
    of an audit challenge, for teams and the admin, as its downloads), then the pages and API under
    ``/lens/m/{mid}`` and ``/lens/api/{mid}``.

    Submissions are ``s{id}``; track models ``z.{cid}.{model}``, looked up by exact name in the track's public
    index (:func:`occam.web.track_files.track_model`, which asks ``Track.lens_models``), opened with the
    track's task (``Track.lens_task``) and *read-only*: one session per model file serves every team, so
    trigger searches are cached for all, and nobody's edits reach another team. At most
    ``settings.lens_sessions`` sessions stay open (:class:`SessionCache`), and background jobs are capped per
    team (:class:`ArenaJobGate`).
    """
    from occam.arena.tracks import get_track
    from occam.web.context import PUBLIC, TEAM, access

    arena = ctx.arena
    settings = ctx.settings
    sessions = SessionCache(settings.lens_sessions, idle_seconds=settings.lens_idle_seconds)
    # the server ends the children when it stops (occam.web.server.close_plugins)
    closers = getattr(ctx, "closers", None)
    if closers is None:
        closers = ctx.closers = []
    closers.append(sessions.close_all)
    jobs = ArenaJobGate(settings.lens_jobs_per_team, settings.lens_jobs_total)

    def open_lens(data: bytes, task: str, name: str, read_only: str | None = None) -> LensClient:
        """The model opened in its own limited child process (uploaded models may be hostile)."""
        return isolated_client(data, task, name, read_only, limits=lens_limits(settings))

    def admit(request: Request, mid: str) -> tuple[str, Callable[[], LensClient]]:
        """Check that the viewer may open model ``mid`` (raises Refused); its session key and opener."""
        from occam.arena.service import Refused

        if mid.startswith("z."):  # a model the challenge's track lets the Lens open (Track.lens_models)
            from occam.web.track_files import read_model, track_model

            cid, _, model = mid[2:].partition(".")
            c, f, task = track_model(ctx, request, cid, model)
            return f"zoo:{task}:{f.sha256}", lambda: open_lens(
                read_model(c, f), task, model,
                "zoo models are shared by every team, so the arena's Lens does not edit their weights")
        if not mid.startswith("s") or not mid[1:].isdigit():
            raise Refused(f"no model {mid!r}", status=404, code="not_found")
        v = ctx.require_team(request)
        sid = int(mid[1:])
        sub = arena.submission(v, sid)
        challenge = arena.challenge(sub.challenge_id)
        if not get_track(challenge.track).uploads_models:
            arena.model_bytes(v, sid)  # raises its clear 409: a prediction file is not a model
        if sub.status != "scored":
            raise Refused(f"submission {sid} is {sub.status}; the Lens opens only successfully scored submissions",
                          "wait until it is scored" if sub.status in ("queued", "running")
                          else "open one of your scored submissions", status=409, code="not_scored")
        task = challenge.task

        def opener() -> LensClient:
            _, data = arena.model_bytes(v, sid)
            return open_lens(data, task, f"submission-{sid}")

        # by file and viewer: a team's edits stay its own (the admin has its own copy)
        owner = "admin" if v.is_admin else f"team{v.team_id}"
        return f"sub:{task}:{sub.sha256 or mid}:{owner}", opener

    def resolve(request: Request, mid: str) -> LensClient:
        return sessions.get(*admit(request, mid))

    def gate(request: Request, start: Callable[[Callable[[], None] | None], Any]) -> Any:
        v = ctx.viewer(request)
        return jobs("admin" if v.is_admin else f"team:{v.team_id}", start)

    r = create_lens_router(resolve, tag=access(TEAM), public_tag=access(PUBLIC), gate=gate)

    @r.get("/lens/submissions/{sid}")
    @access(TEAM)
    def lens_submission(request: Request, sid: int):
        admit(request, f"s{sid}")  # checked here, opened by the page (opening takes seconds)
        return RedirectResponse(f"/lens/m/s{sid}", status_code=303)

    @r.get("/lens/challenges/{cid}/zoo/{model}")
    @access(TEAM)
    def lens_zoo_model(request: Request, cid: str, model: str):
        mid = zoo_mid(cid, model)
        admit(request, mid)
        return RedirectResponse(f"/lens/m/{mid}", status_code=303)

    return r


# ---- static export ----------------------------------------------------------------------------------
def export_html(session: LensSession, path: str | Path) -> Path:
    path = Path(path)
    from occam.lens.export import export_data

    page = render_page(session, base="/lens", mid=session.id, static_data=export_data(session))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path

