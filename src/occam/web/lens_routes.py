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
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel

from occam.errors import OccamError
from occam.lens.views import LensSession

TEMPLATES = Path(__file__).with_name("templates") / "lens"
STATIC = Path(__file__).with_name("static") / "lens"
_JINJA = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))

Resolver = Callable[[Request, str], LensSession]


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


def render_page(session: LensSession, *, base: str, mid: str, static_data: dict | None = None,
                focus: dict | None = None) -> str:
    lm = session.lm
    ctx = {"title": f"Lens · {lm.name}", "name": lm.name, "task": lm.task.name, "hash": lm.hash, "mid": mid,
           "base": base, "views": session.views(), "focus": json.dumps(focus or {}),
           "static": static_data is not None, "read_only": session.read_only}
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


class SAEBody(BaseModel):
    layer: str
    size: int = 64
    l1: float = 1e-3
    steps: int = 300


class TriggersBody(BaseModel):
    steps: int = 300
    images: int = 40


# gate(request, start): run ``start(admit)``, which starts (or reuses) a background job and calls
# ``admit()`` just before a new one starts; ``admit`` may raise to refuse it.
JobGate = Callable[[Request, Callable[[Callable[[], None] | None], Any]], Any]


def _read_only(s: LensSession) -> JSONResponse | None:
    if s.read_only is None:
        return None
    return JSONResponse({"error": s.read_only, "code": "read_only",
                         "fix": f"download the model and run `occam lens FILE --task {s.lm.task.name}` to edit its weights"},
                        status_code=409)


def create_lens_router(resolve: Resolver, *, tag: Callable[[Any], Any] | None = None,  # noqa: C901
                       public_tag: Callable[[Any], Any] | None = None, gate: JobGate | None = None) -> APIRouter:
    """Pages under ``/lens/m/{mid}`` and the API under ``/lens/api/{mid}``; ``tag`` decorates each
    model endpoint, ``public_tag`` the static files (the arena tags access levels this way);
    ``gate`` admits new background jobs (trigger searches, SAEs), see :data:`JobGate`."""
    from occam.lens import analysis as A

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
        return HTMLResponse(render_page(s, base="/lens", mid=mid))

    @get("/lens/m/{mid}/units/{layer}/{unit}", response_class=HTMLResponse)
    def lens_unit_page(request: Request, mid: str, layer: str, unit: int):
        s = resolve(request, mid)
        s.lm.layer(layer)
        return HTMLResponse(render_page(s, base="/lens", mid=mid, focus={"layer": layer, "unit": unit}))

    @get("/lens/api/{mid}/overview")
    def api_overview(request: Request, mid: str):
        s = resolve(request, mid)
        with s.lock:
            return _json({**A.overview(s.lm), "views": s.views(), "images": A.image_list(s.lm)})

    @get("/lens/api/{mid}/unit")
    def api_unit(request: Request, mid: str, layer: str, unit: int = 0):
        s = resolve(request, mid)
        with s.lock:
            d = A.unit_detail(s.lm, layer, unit)
        d["url"] = f"/lens/m/{mid}/units/{layer}/{unit}"
        return _json(d)

    @get("/lens/api/{mid}/featvis")
    def api_featvis(request: Request, mid: str, layer: str | None = None, unit: int | None = None,
                    cls: int | None = None, steps: int = 128, tv: float = 0.05, jitter: int = 1, fourier: bool = True):
        from occam.lens.featvis import visualize

        s = resolve(request, mid)
        with s.lock:
            return _json(visualize(s.lm, layer, unit, cls, steps=min(steps, 1000), tv=tv, jitter=jitter,
                                   fourier=fourier))

    @get("/lens/api/{mid}/readouts")
    def api_readouts(request: Request, mid: str):
        s = resolve(request, mid)
        with s.lock:
            return _json(A.readouts(s.lm))

    @get("/lens/api/{mid}/attribution")
    def api_attribution(request: Request, mid: str, index: int = 0, target: int | None = None):
        s = resolve(request, mid)
        with s.lock:
            d = A.attribution(s.lm, index, target)
        d.pop("raw", None)
        return _json(d)

    @get("/lens/api/{mid}/adversarial")
    def api_adversarial(request: Request, mid: str, index: int = 0, eps: float = 0.1, method: str = "fgsm",
                        steps: int = 10):
        s = resolve(request, mid)
        with s.lock:
            return _json(A.adversarial(s.lm, index, eps, method, steps))

    @post("/lens/api/{mid}/predict")
    def api_predict(request: Request, mid: str, body: PredictBody):
        s = resolve(request, mid)
        with s.lock:
            return _json(A.predict(s.lm, body.pixels))

    @get("/lens/api/{mid}/weights")
    def api_weights(request: Request, mid: str):
        s = resolve(request, mid)
        with s.lock:
            ed = s.editor
            return _json({"weights": A.weights_list(s.lm), "metrics": ed.metrics(), "history": len(ed.history)})

    @get("/lens/api/{mid}/weight")
    def api_weight(request: Request, mid: str, name: str, row: int = 0):
        s = resolve(request, mid)
        with s.lock:
            return _json(A.weight_view(s.lm, name, row))

    @post("/lens/api/{mid}/edit")
    def api_edit(request: Request, mid: str, body: EditBody):
        s = resolve(request, mid)
        if (ro := _read_only(s)) is not None:
            return ro
        t0 = time.perf_counter()
        with s.lock:
            ed = s.editor
            m = ed.set_weight(body.name, body.index, body.value)
            m["history"] = len(ed.history)
        m["server_ms"] = (time.perf_counter() - t0) * 1000
        return _json(m)

    def editor_call(request: Request, mid: str, op: Callable[[Any], dict]) -> Any:
        """Run one editor operation under the session lock; read-only sessions get their refusal."""
        s = resolve(request, mid)
        if (ro := _read_only(s)) is not None:
            return ro
        with s.lock:
            m = op(s.editor)
            m["history"] = len(s.editor.history)
            return _json(m)

    @post("/lens/api/{mid}/undo")
    def api_undo(request: Request, mid: str):
        return editor_call(request, mid, lambda ed: ed.undo())

    @post("/lens/api/{mid}/sync")
    def api_sync(request: Request, mid: str):
        return editor_call(request, mid, lambda ed: ed.sync())

    @post("/lens/api/{mid}/reset")
    def api_reset(request: Request, mid: str):
        return editor_call(request, mid, lambda ed: ed.reset())  # reset clears the history

    @get("/lens/api/{mid}/save")
    def api_save(request: Request, mid: str):
        s = resolve(request, mid)
        with s.lock:
            data = s.lm.to_onnx_bytes()
        return Response(data, media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{s.lm.name}-edited.onnx"'})

    @get("/lens/api/{mid}/prune")
    def api_prune(request: Request, mid: str, threshold: float = 0.0, scope: str = "global", layer: str | None = None):
        s = resolve(request, mid)
        with s.lock:
            d = A.prune(s.lm, threshold, scope, layer)
            d["prunable"] = A.prunable(s.lm)
            return _json(d)

    @get("/lens/api/{mid}/steer")
    def api_steer(request: Request, mid: str, layer: str, strength: float = 0.0, kind: str = "classes", a: int = 0,
                  b: int = 1, unit: int = 0):
        s = resolve(request, mid)
        with s.lock:
            return _json(A.steer(s.lm, layer, strength, kind, a, b, unit))

    @post("/lens/api/{mid}/sae")
    def api_sae(request: Request, mid: str, body: SAEBody):
        from occam.lens.sae import start_job

        s = resolve(request, mid)

        def start(admit: Callable[[], None] | None) -> Any:
            if admit is not None:
                admit()
            job = start_job(s.lm, body.layer, max(1, min(body.size, 4096)), body.l1, max(1, min(body.steps, 5000)))
            s.sae_jobs[job.id] = job
            return job

        return _json(gated(request, start).to_dict())

    @get("/lens/api/{mid}/sae/{job}")
    def api_sae_job(request: Request, mid: str, job: str):
        s = resolve(request, mid)
        j = s.sae_jobs.get(job)
        if j is None:
            return JSONResponse({"error": f"no SAE job {job}"}, status_code=404)
        return _json(j.to_dict())

    @post("/lens/api/{mid}/triggers")
    def api_triggers(request: Request, mid: str, body: TriggersBody):
        from occam.lens.triggers import start_job

        s = resolve(request, mid)

        def start(admit: Callable[[], None] | None) -> Any:
            with s.lock:  # a consistent snapshot of the weights; the search itself runs in a thread
                return start_job(s.lm, body.steps, body.images, jobs=s.trigger_jobs, admit=admit)

        return _json(gated(request, start).to_dict())

    @get("/lens/api/{mid}/triggers/{job}")
    def api_triggers_job(request: Request, mid: str, job: str):
        s = resolve(request, mid)
        j = s.trigger_jobs.get(job)
        if j is None:
            return JSONResponse({"error": f"no trigger job {job}"}, status_code=404)
        return _json(j.to_dict())

    @get("/lens/api/{mid}/clusters")
    def api_clusters(request: Request, mid: str, layer: str, k: int = 4):
        s = resolve(request, mid)
        with s.lock:
            return _json(A.clusters(s.lm, layer, k))

    return r


# ---- standalone app (occam lens) ------------------------------------------------------------------
def create_app(session: LensSession) -> FastAPI:
    app = FastAPI(title=f"Occam Lens · {session.lm.name}")

    def resolve(request: Request, mid: str) -> LensSession:
        if mid != session.id:
            raise OccamError(f"no model {mid!r} here", f"open /lens/m/{session.id}")
        return session

    @app.exception_handler(OccamError)
    async def _occam_error(request: Request, exc: OccamError):  # noqa: ANN202
        return JSONResponse({"error": exc.problem, "fix": exc.fix}, status_code=400)

    @app.get("/favicon.ico")
    def favicon():
        return Response(status_code=204)

    @app.get("/")
    def index():
        return RedirectResponse(f"/lens/m/{session.id}")

    app.include_router(create_lens_router(resolve))
    return app


# ---- the arena's plugin ------------------------------------------------------------------------------
class SessionCache:
    """The arena's open Lens sessions, by key: at most ``limit`` stay open, the least recently used idle one
    (no trigger search or SAE running) being closed first; a session whose job runs is kept until it ends.
    A session opens once per key (other keys are served meanwhile)."""

    def __init__(self, limit: int):
        self.limit = max(1, int(limit))
        self._lock = threading.Lock()
        self._open: OrderedDict[str, LensSession] = OrderedDict()
        self._opening: dict[str, threading.Lock] = {}

    def __len__(self) -> int:
        return len(self._open)

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._open)

    def _hit(self, key: str) -> LensSession | None:
        s = self._open.get(key)
        if s is not None:
            self._open.move_to_end(key)
        return s

    @staticmethod
    def busy(s: LensSession) -> bool:
        return any(j.state == "running" for j in (*s.trigger_jobs.values(), *s.sae_jobs.values()))

    def get(self, key: str, opener: Callable[[], LensSession]) -> LensSession:
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
                self._opening.pop(key, None)
                for k in [k for k in self._open if k != key]:
                    if len(self._open) <= self.limit:
                        break
                    if not self.busy(self._open[k]):
                        del self._open[k]
            return s


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
            if job.state == "running" and all(j is not job for _, j in self._running):
                self._running.append((owner, job))
            return job


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
    from occam.tasks import get_task
    from occam.web.context import PUBLIC, TEAM, access

    arena = ctx.arena
    settings = ctx.settings
    sessions = SessionCache(settings.lens_sessions)
    jobs = ArenaJobGate(settings.lens_jobs_per_team, settings.lens_jobs_total)

    def open_lens(data: bytes, task: str, name: str, read_only: str | None = None) -> LensSession:
        from occam.lens.model import LensModel

        return LensSession(LensModel(data, get_task(task), name=name), read_only=read_only)

    def resolve(request: Request, mid: str) -> LensSession:
        from occam.arena.service import Refused

        if mid.startswith("z."):  # a model the challenge's track lets the Lens open (Track.lens_models)
            from occam.web.track_files import read_model, track_model

            cid, _, model = mid[2:].partition(".")
            c, f, task = track_model(ctx, request, cid, model)
            return sessions.get(f"zoo:{task}:{f.sha256}", lambda: open_lens(
                read_model(c, f), task, model,
                "zoo models are shared by every team, so the arena's Lens does not edit their weights"))
        if not mid.startswith("s") or not mid[1:].isdigit():
            raise Refused(f"no model {mid!r}", status=404, code="not_found")
        v = ctx.require_team(request)
        sub, data = arena.model_bytes(v, int(mid[1:]))
        task = arena.challenge(sub.challenge_id).task
        return sessions.get(f"sub:{task}:{sub.sha256 or mid}", lambda: open_lens(data, task, f"submission-{sub.id}"))

    def gate(request: Request, start: Callable[[Callable[[], None] | None], Any]) -> Any:
        v = ctx.viewer(request)
        return jobs("admin" if v.is_admin else f"team:{v.team_id}", start)

    r = create_lens_router(resolve, tag=access(TEAM), public_tag=access(PUBLIC), gate=gate)

    @r.get("/lens/submissions/{sid}")
    @access(TEAM)
    def lens_submission(request: Request, sid: int):
        resolve(request, f"s{sid}")
        return RedirectResponse(f"/lens/m/s{sid}", status_code=303)

    @r.get("/lens/challenges/{cid}/zoo/{model}")
    @access(TEAM)
    def lens_zoo_model(request: Request, cid: str, model: str):
        mid = zoo_mid(cid, model)
        resolve(request, mid)
        return RedirectResponse(f"/lens/m/{mid}", status_code=303)

    return r


# ---- static export ----------------------------------------------------------------------------------
def export_data(session: LensSession) -> dict[str, Any]:
    """Everything the page shows, precomputed (slider positions as snapshots; triggers at the page's defaults)."""
    from occam.lens import analysis as A
    from occam.lens.featvis import visualize
    from occam.lens.sae import start_job

    lm = session.lm
    mid = lm.hash
    data: dict[str, Any] = {}

    def put(path: str, value: Any) -> None:
        data[f"/lens/api/{mid}/{path}"] = _clean(value)

    put("overview", {**A.overview(lm), "views": session.views(), "images": A.image_list(lm)})
    hidden = [x for x in lm.layers if x.name != lm.module.output_name]
    layer = hidden[len(hidden) // 2] if hidden else lm.layers[-1]
    for u in range(min(layer.units, 4)):
        d = A.unit_detail(lm, layer.name, u)
        d["url"] = f"#unit-{layer.name}-{u}"
        put(f"unit?layer={layer.name}&unit={u}", d)
    put(f"featvis?layer={layer.name}&unit=0", visualize(lm, layer.name, 0))
    put("featvis?cls=0", visualize(lm, cls=0))
    put("readouts", A.readouts(lm))
    att = A.attribution(lm, 0)
    att.pop("raw", None)
    put("attribution?index=0", att)
    for eps in (0.05, 0.1, 0.2):
        put(f"adversarial?index=0&eps={_js(eps)}&method=fgsm", A.adversarial(lm, 0, eps, "fgsm"))
    ed = session.editor
    put("weights", {"weights": A.weights_list(lm), "metrics": ed.metrics(), "history": 0})
    first = A.weights_list(lm)[0]["name"]
    put(f"weight?name={first}&row=0", A.weight_view(lm, first, 0))
    for t in (0.0, 0.01, 0.02, 0.05, 0.1, 0.2):
        d = A.prune(lm, t)
        d["prunable"] = A.prunable(lm)
        put(f"prune?threshold={_js(t)}&scope=global", d)
    for st in (-2.0, -1.0, 0.0, 1.0, 2.0):
        put(f"steer?layer={layer.name}&strength={_js(st)}&kind=classes&a=0&b=1", A.steer(lm, layer.name, st, "classes", 0, 1))
    job = start_job(lm, layer.name, 32, 1e-3, 150, wait=True)
    data["sae"] = _clean(job.to_dict())
    put(f"clusters?layer={layer.name}&k=4", A.clusters(lm, layer.name, 4))
    if any(v["name"] == "triggers" for v in session.views()):
        from occam.lens.triggers import start_job as start_triggers

        data["triggers"] = _clean(start_triggers(lm, jobs=session.trigger_jobs, wait=True).result)
    data["defaults"] = {"layer": layer.name}
    return data


def _js(x: float) -> str:
    """A number as JavaScript's String() writes it (the page builds its query strings that way)."""
    r = repr(float(x))
    return r[:-2] if r.endswith(".0") else r


def export_html(session: LensSession, path: str | Path) -> Path:
    path = Path(path)
    page = render_page(session, base="/lens", mid=session.id, static_data=export_data(session))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path

