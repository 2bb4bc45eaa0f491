"""The Lens's operations on one open model as plain-data methods: what a limited child process serves.

:class:`LensHost` lives where the model lives and answers with plain data (dicts, lists, numbers, bytes):
view results (``data`` + ``html``), the weight editor's actions, background jobs (started there, polled),
and the few accessors the web pages need (:meth:`LensHost.info`). The web routes hold a
:class:`occam.web.lens_isolated.LensClient`, which forwards these methods either to a host in the same process
(``occam lens MODEL``: the user's own model) or to one built by :func:`open_host` inside an
:class:`~occam.isolate.IsolatedObject` (the arena: uploaded models, which may be hostile).

Adding an operation: a method here (plain data in and out) and a forwarding method on ``LensClient``.
"""

from __future__ import annotations

import time
from typing import Any

from occam.errors import OccamError

__all__ = ["LensHost", "open_host"]


def _plain(obj: Any) -> Any:
    """JSON-ready and picklable without project classes: numpy → lists, NaN/inf → None."""
    from occam.lens.view import to_json

    return to_json(obj)


class LensHost:
    """One open model (a :class:`~occam.lens.views.LensSession`) behind plain-data methods."""

    def __init__(self, session: Any):
        self.session = session

    # ---- accessors -------------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """What the page needs to render: names, checkpoints, the model kind, the views and their parameters."""
        s = self.session
        lm = s.lm
        return _plain({"id": s.id, "name": lm.name, "task": lm.task.name, "hash": lm.hash, "kind": lm.kind,
                       "n_val": lm.n_val, "checkpoints": [c[0] for c in lm.checkpoints], "checkpoint": lm.checkpoint,
                       "read_only": s.read_only, "views": s.views(), "compare_name": s.compare_name})

    def has_layer(self, layer: str) -> bool:
        self.session.lm.layer(layer)  # raises OccamError naming the layers
        return True

    # ---- views -----------------------------------------------------------------------------------------
    def view(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """``run_view`` of view ``name``: ``{view, params, n_val, data, html}`` (data: the page's payload)."""
        from occam.lens.views import get_view, run_view

        params = dict(params)
        compare = params.pop("compare", None) not in (None, "", "0", "false", False)
        s = self.session
        with s.lock:
            if compare and s.compare_with is None:
                raise OccamError("this session has no second model to compare with",
                                 f"POST /lens/api/{s.id}/compare with a checkpoint first, or drop compare=1")
            return _plain(run_view(s.lm, get_view(name), params, compare=s.compare_with if compare else None).to_json())

    def compare(self, checkpoint: int | None = None, snapshot: bool = False, clear: bool = False) -> dict[str, Any]:
        """Hold a second model to compare with: a checkpoint of this one, a snapshot of the current (possibly
        edited) weights, or none; views then take ``compare=1``."""
        s = self.session
        with s.lock:
            if clear:
                s.set_compare(None)
            elif checkpoint is not None:
                s.compare_checkpoint(int(checkpoint))
            elif snapshot:
                s.compare_snapshot()
            else:
                raise OccamError("say what to compare with", "pass checkpoint, snapshot: true, or clear: true")
            return {"compare": s.compare_name}

    def start_job(self, name: str, params: dict[str, Any], may_start: bool = True) -> dict[str, Any] | None:
        """Start (or reuse) a background job of job view ``name``; None when it would need a new job and
        ``may_start`` is false (the caller's admission refused it)."""
        from occam.lens.view import validate_params
        from occam.lens.views import get_view

        s = self.session
        view = get_view(name)
        if not view.job:
            raise OccamError(f"view {name!r} is not a background job", f"GET its results at views/{name}")
        view.require(s.lm)
        p = validate_params(view, params, s.lm)
        def admit() -> None:
            if not may_start:
                raise _Refused

        try:
            with s.lock:  # a consistent snapshot of the weights; the work itself runs in a thread
                job = view.start(s.lm, p, jobs=s.jobs, admit=admit)
        except _Refused:
            return None
        return _plain(job.to_dict())

    def job(self, job_id: str) -> dict[str, Any] | None:
        j = self.session.jobs.get(job_id)
        return None if j is None else _plain(j.to_dict())

    def busy(self) -> bool:
        """Whether a background job is running (the session cache keeps busy models open)."""
        return any(j.state == "running" for j in list(self.session.jobs.values()))

    # ---- painting and weights --------------------------------------------------------------------------
    def predict(self, pixels: list[float]) -> dict[str, Any]:
        from occam.lens import analysis

        with self.session.lock:
            return _plain(analysis.predict(self.session.lm, pixels))

    def weight(self, name: str, row: int = 0) -> dict[str, Any]:
        from occam.lens import analysis

        with self.session.lock:
            return _plain(analysis.weight_view(self.session.lm, name, row))

    def edit(self, name: str, index: int, value: float) -> dict[str, Any]:
        """Set one weight; the metrics after it, ``history`` (edits so far) and ``compute_ms`` (time spent here)."""
        t0 = time.perf_counter()
        with self.session.lock:
            ed = self.session.editor
            m = ed.set_weight(name, index, value)
            m["history"] = len(ed.history)
        m["compute_ms"] = (time.perf_counter() - t0) * 1000
        return _plain(m)

    def editor(self, op: str) -> dict[str, Any]:
        """``undo``, ``sync`` or ``reset`` (reset clears the history)."""
        if op not in ("undo", "sync", "reset"):
            raise OccamError(f"no editor action {op!r}", "use undo, sync or reset")
        with self.session.lock:
            ed = self.session.editor
            m = getattr(ed, op)()
            m["history"] = len(ed.history)
            return _plain(m)

    def checkout(self, index: int) -> dict[str, Any]:
        with self.session.lock:
            lm = self.session.lm
            lm.checkout(index)
            return _plain({"checkpoint": lm.checkpoint, "checkpoints": [c[0] for c in lm.checkpoints],
                           "metrics": lm.metrics()})

    def save(self) -> bytes:
        with self.session.lock:
            return self.session.lm.to_onnx_bytes()


class _Refused(Exception):
    pass


def open_host(data: bytes, task: str, name: str, read_only: str | None = None, kind: str | None = None) -> LensHost:
    """Open ONNX (or another kind's) bytes in the Lens: the factory an isolated child runs."""
    from occam.lens.kinds import open_model
    from occam.lens.views import LensSession
    from occam.tasks import get_task

    return LensHost(LensSession(open_model(data, get_task(task), name=name, kind=kind), read_only=read_only))
