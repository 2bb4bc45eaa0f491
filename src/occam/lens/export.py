"""The static export's data: every view of a model, precomputed (no web imports; the page is
:func:`occam.web.lens_routes.export_html`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from occam.errors import OccamError
from occam.lens.builtin_views import BUILTIN_VIEWS
from occam.lens.view import View, run_view, static_key, to_json, validate_params, views_for

__all__ = ["export_data"]


def export_data(session: Any, views: Iterable[View] | None = None, *, quick: bool = False) -> dict[str, Any]:
    """Every view that applies to ``session.lm`` (or only ``views``), computed at the parameter sets it
    names (``View.export_params``: slider positions as snapshots; job views run to the end), keyed
    ``/lens/api/{hash}/views/NAME?params`` as the page asks for them; job views' results also under
    ``views[NAME]``. ``quick``: each view's cheap parameter set only (``View.quick_params``, for checks)."""
    lock = getattr(session, "lock", None)
    if lock is not None:  # the live page's requests may be computing on the same model: wait for them
        with lock:
            return _export(session, views, quick)
    return _export(session, views, quick)


def _export(session: Any, views: Iterable[View] | None, quick: bool) -> dict[str, Any]:
    lm = session.lm
    api = f"/lens/api/{getattr(session, 'id', lm.hash)}/"
    data: dict[str, Any] = {"views": {}, "defaults": {}}
    for view in views_for(lm) if views is None else list(views):
        for params in [view.quick_params(lm)] if quick else view.export_params(lm):
            p = validate_params(view, params, lm)
            if view.job:
                job = view.start(lm, p, jobs=session.jobs, wait=True)
                if job.state != "done":
                    raise OccamError(f"the static export could not run view {view.name!r}: {job.error}")
                data["views"].setdefault(view.name, job.result)
                value: Any = {"view": view.name, "params": p, "n_val": lm.n_val, "data": job.result}
            else:
                value = run_view(lm, view, p).to_json()
                if view in BUILTIN_VIEWS:
                    value.pop("html", None)  # their page panels draw the data; other views show the fragment
            data[api + static_key(view.name, p)] = to_json(value)
    hidden = [x for x in lm.layers if x.name != lm.module.output_name]
    data["defaults"] = {"layer": (hidden[len(hidden) // 2] if hidden else lm.layers[-1]).name}
    return data
