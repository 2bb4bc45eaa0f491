"""The Lens view protocol: one object per view, its typed parameters, its registry and its results.

A :class:`View` has a ``name``, a ``title``, the model ``kinds`` it applies to, ``params`` (typed,
with bounds, declared once as :class:`Param`), a ``compute(model, params)`` that returns *data*
(numbers, records, numpy arrays: never PNGs or HTML) and a renderer: ``payload(data)`` (what the
page's scripts draw, JSON-ready, images as PNG data URIs) and ``html(payload)`` (a self-contained
HTML fragment: notebooks, the result's ``_repr_html_``, the route's ``html`` field).

Views whose computation takes long (``job = True``) also run as background jobs
(:meth:`View.start`), polled by the page; ``compute`` runs them inline.

Register a view with :func:`register_view`; :func:`views_for` lists those that apply to a model,
:func:`run_view` runs one (the Python API), and :func:`occam.lens.checks.check_view` is the
contract every registered view passes. No web imports.
"""

from __future__ import annotations

import html as _html
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from occam.errors import OccamError

__all__ = ["Param", "View", "ViewResult", "ViewJob", "VIEWS", "register_view", "get_view", "views_for", "run_view",
           "validate_params", "to_json", "static_key", "esc"]

_TYPES = ("int", "float", "str", "bool", "layer", "image", "class", "weight")


@dataclass(frozen=True)
class Param:
    """One parameter of a view.

    ``type``: ``int``, ``float``, ``str``, ``bool``, or a model-dependent choice: ``layer`` (a layer
    name of the model), ``weight`` (a weight name), ``image`` (a validation example's index),
    ``class`` (a class index). ``min``/``max`` bound numbers (inclusive); ``choices`` lists the
    allowed strings; ``optional``: None is allowed (and is the default when ``default`` is None).
    """

    name: str
    type: str
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    optional: bool = False
    help: str = ""

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"parameter {self.name!r}: unknown type {self.type!r} (one of {', '.join(_TYPES)})")

    def spec(self, model: Any = None) -> dict[str, Any]:
        """JSON description (the page fills defaults from it); model-dependent bounds resolved for ``model``."""
        lo, hi, choices = self.bounds(model) if model is not None else (self.min, self.max, self.choices)
        default = self.default
        if default is None and not self.optional and model is not None and self.type in ("layer", "weight"):
            default = _default_choice(self.type, model)
        return {"name": self.name, "type": self.type, "default": default, "min": lo, "max": hi,
                "choices": list(choices) if choices is not None else None, "optional": self.optional, "help": self.help}

    def bounds(self, model: Any) -> tuple[float | None, float | None, tuple[str, ...] | None]:
        if self.type == "layer":
            return None, None, tuple(layer.name for layer in model.layers)
        if self.type == "weight":
            return None, None, tuple(_weight_names(model))
        if self.type == "image":
            return 0, model.n_val - 1, None
        if self.type == "class":
            return 0, model.task.num_classes - 1, None
        return self.min, self.max, self.choices

    def convert(self, view: str, value: Any, model: Any) -> Any:
        """``value`` (a Python value or a query-string text) checked and converted; raises OccamError."""
        where = f"view {view!r}: parameter {self.name}"
        if value is None or (isinstance(value, str) and value == "" and self.type != "str"):
            if self.optional:
                return None
            if self.type in ("layer", "weight") and self.default is None:
                return _default_choice(self.type, model)
            raise OccamError(f"{where} needs a value", f"pass {self.name}=<{self.type}>")
        lo, hi, choices = self.bounds(model)
        if self.type in ("int", "image", "class"):
            v = _as_int(value)
            if v is None:
                raise OccamError(f"{where} must be an integer, got {value!r}", _range_fix(self.name, lo, hi))
        elif self.type == "float":
            v = _as_float(value)
            if v is None:
                raise OccamError(f"{where} must be a number, got {value!r}", _range_fix(self.name, lo, hi))
        elif self.type == "bool":
            v = _as_bool(value)
            if v is None:
                raise OccamError(f"{where} must be true or false, got {value!r}", f"pass {self.name}=true or false")
        else:
            if not isinstance(value, str):
                raise OccamError(f"{where} must be a string, got {value!r}",
                                 "pick one of: " + ", ".join(choices) if choices else f"pass {self.name}=<text>")
            v = value
        if choices is not None and v not in choices:
            shown = ", ".join(choices[:40]) + (" …" if len(choices) > 40 else "")
            raise OccamError(f"{where} must be one of the model's {self.type}s" if self.type in ("layer", "weight")
                             else f"{where} must be one of {', '.join(choices)}", f"got {v!r}; pick one of: {shown}")
        if isinstance(v, int | float) and not isinstance(v, bool):
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                raise OccamError(f"{where} must be between {_num(lo)} and {_num(hi)}, got {_num(v)}",
                                 _range_fix(self.name, lo, hi))
        return v


def _num(x: Any) -> str:
    if x is None:
        return "∞"
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


def _range_fix(name: str, lo: Any, hi: Any) -> str:
    if lo is None and hi is None:
        return f"pass a number as {name}"
    return f"pass {name} between {_num(lo) if lo is not None else '−∞'} and {_num(hi)}"


def _as_int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            return None
    return None


def _as_float(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        f = float(v) if isinstance(v, int | float | str) else None
    except ValueError:
        return None
    return f if f is not None and math.isfinite(f) else None


def _as_bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
        return v.lower() in ("true", "1", "yes", "on")
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    return None


def _weight_names(model: Any) -> list[str]:
    mod = model.module
    return [n for n in mod.weight_names if mod.weight(n).numel() > 1]


def _default_choice(type_: str, model: Any) -> str:
    if type_ == "weight":
        names = _weight_names(model)
        if not names:
            raise OccamError("this model has no weights with more than one element")
        return names[0]
    hidden = [x for x in model.layers if x.name != model.module.output_name]
    return (hidden[len(hidden) // 2] if hidden else model.layers[-1]).name


def validate_params(view: View, params: Mapping[str, Any] | None, model: Any) -> dict[str, Any]:
    """``params`` checked against ``view.params`` and completed with defaults (raises OccamError)."""
    params = dict(params or {})
    known = {p.name: p for p in view.params}
    unknown = [k for k in params if k not in known]
    if unknown:
        names = ", ".join(known) or "none"
        raise OccamError(f"view {view.name!r} has no parameter {unknown[0]!r}", f"its parameters: {names}")
    return {name: p.convert(view.name, params.get(name, p.default), model) for name, p in known.items()}


# ---- JSON helpers ------------------------------------------------------------------------------------
def to_json(obj: Any) -> Any:
    """JSON-ready: numpy arrays and tensors → lists, numpy scalars → Python, NaN/inf → None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_json(obj.tolist())
    if isinstance(obj, np.generic):
        return to_json(obj.item())
    if hasattr(obj, "detach") and hasattr(obj, "numpy"):
        return to_json(obj.detach().cpu().numpy())
    return obj


def _js(x: Any) -> str:
    """A parameter value as the page's scripts write it (JavaScript's ``String()``)."""
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float):
        r = repr(x)
        return r[:-2] if r.endswith(".0") else r
    return str(x)


def static_key(name: str, params: Mapping[str, Any]) -> str:
    """The key of a precomputed result in a static export: ``views/NAME?k=v&…`` (sorted, Nones dropped)."""
    from urllib.parse import quote

    q = "&".join(f"{k}={quote(_js(v), safe='')}" for k, v in sorted(params.items()) if v is not None)
    return f"views/{name}" + (f"?{q}" if q else "")


def esc(x: Any) -> str:
    return _html.escape(str(x), quote=True)


# ---- the view protocol -------------------------------------------------------------------------------
class View:
    """Base class of a Lens view (subclass it, set the class attributes, implement :meth:`compute`)."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    kinds: ClassVar[tuple[str, ...]] = ()
    params: ClassVar[tuple[Param, ...]] = ()
    job: ClassVar[bool] = False  # long: the page starts it as a background job and polls it
    needs_session: ClassVar[bool] = False  # compute needs state beyond the model (e.g. the editor's history)

    def applies_to(self, model: Any) -> bool:
        """Whether this view can show ``model`` (its kind is one of ``kinds``; subclasses add conditions)."""
        return getattr(model, "kind", None) in self.kinds

    def require(self, model: Any) -> None:
        """Raise :class:`~occam.errors.OccamError` saying why this view cannot show ``model``, if it cannot."""
        if not self.applies_to(model):
            raise OccamError(f"view {self.name!r} does not apply to this model ({getattr(model, 'kind', '?')})",
                             "views for it: " + ", ".join(x.name for x in views_for(model)))

    def compute(self, model: Any, params: dict[str, Any], *, progress: Callable[[int, int], None] | None = None) -> Any:
        """The view's data for validated ``params``: numbers, records, numpy arrays (never PNGs or HTML)."""
        raise NotImplementedError

    def payload(self, data: Any) -> Any:
        """What the page draws (JSON-ready; images as PNG data URIs). Default: ``data`` made JSON-ready."""
        return to_json(data)

    def html(self, payload: Any) -> str:
        """A self-contained HTML fragment of the payload. Default: a table of its scalar fields."""
        return _default_html(self.title, payload)

    def export_params(self, model: Any) -> list[dict[str, Any]]:
        """The parameter sets a static export precomputes (default: the defaults only)."""
        return [{}]

    def quick_params(self, model: Any) -> dict[str, Any]:
        """A cheap parameter set (seconds on a tiny model) for the contract battery; default: the first export set."""
        return dict(self.export_params(model)[0])

    def to_dict(self, model: Any = None) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "description": self.description, "kinds": list(self.kinds),
                "job": self.job, "params": [p.spec(model) for p in self.params]}

    # ---- background jobs ---------------------------------------------------------------------------
    def start(self, model: Any, params: dict[str, Any], *, jobs: dict[str, ViewJob] | None = None, wait: bool = False,
              admit: Callable[[], None] | None = None) -> ViewJob:
        """Run :meth:`compute` in a background thread (``wait``: inline); ``jobs`` keeps it by id.

        A job with the same parameters on the same weights is reused (running or done) when
        :meth:`job_key` gives a key; ``admit`` is called just before a new job starts and may raise.
        """
        from occam.lens.jobs import run_job

        key = self.job_key(model, params)
        if jobs is not None and key is not None:
            for j in jobs.values():
                if getattr(j, "view", None) == self.name and j.key == key and j.state != "error":
                    j.reused += 1
                    return j
        if admit is not None:
            admit()
        import uuid

        job = ViewJob(id=uuid.uuid4().hex[:10], view=self.name, key=key, params=params, steps=int(params.get("steps", 1)))
        if jobs is not None:
            jobs[job.id] = job
        snapshot = self.snapshot(model)

        def progress(step: int, total: int, *rest: Any) -> None:
            job.step, job.steps = step, total
            if rest:  # e.g. the training loss
                job.extra["loss"] = rest[0]

        def compute() -> None:
            data = self.compute(snapshot, params, progress=progress)
            job.result = self.payload(data)
            job.step = job.steps

        run_job(job, compute, wait=wait, name=f"lens-{self.name}-{job.id}")
        return job

    def job_key(self, model: Any, params: dict[str, Any]) -> str | None:
        """A cache key for a job (None: never reuse)."""
        return None

    def snapshot(self, model: Any) -> Any:
        """What a background job computes on (default: the model itself)."""
        return model


@dataclass
class ViewJob:
    """A background run of a view: ``state`` running/done/error, ``step`` of ``steps``, the ``result`` payload."""

    id: str
    view: str
    key: str | None
    params: dict[str, Any]
    steps: int = 1
    step: int = 0
    state: str = "running"
    error: str | None = None
    result: Any = None
    reused: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return to_json({**self.params, **self.extra, "id": self.id, "view": self.view, "steps": self.steps,
                        "step": self.step, "state": self.state, "error": self.error, "result": self.result,
                        "cached": self.reused > 0})


@dataclass
class ViewResult:
    """One view's result: ``data`` (as computed), ``payload`` (for the page), ``html`` (a fragment)."""

    view: View
    params: dict[str, Any]
    data: Any
    n_val: int | None = None
    model_name: str | None = None
    compare: ViewResult | None = None  # the same view on a second model (run_view's ``compare``)
    diff: dict[str, Any] | None = None  # :func:`occam.lens.compare.diff_results` of the two data (``changed``, ``max_abs``)
    _payload: Any = None
    _html: str | None = None

    @property
    def payload(self) -> Any:
        if self._payload is None:
            self._payload = self.view.payload(self.data)
        return self._payload

    @property
    def html(self) -> str:
        if self._html is None:
            own = self.view.html(self.payload)
            if self.compare is None:
                self._html = own
            else:  # side by side, with the differences named
                self._html = (f'<div class="lens-compare">{_diff_html(self.diff)}<div class="side-by-side">'
                              f'<div class="side a"><h4>{esc(self.model_name or "model A")}</h4>{own}</div>'
                              f'<div class="side b"><h4>{esc(self.compare.model_name or "model B")}</h4>'
                              f"{self.compare.html}</div></div></div>")
        return self._html

    @property
    def same(self) -> bool | None:
        """With a comparison: whether the two results are equal (no differences); None without one."""
        return None if self.diff is None else not self.diff["changed"]

    def _repr_html_(self) -> str:
        return self.html

    def to_json(self) -> dict[str, Any]:
        out = {"view": self.view.name, "params": to_json(self.params), "n_val": self.n_val, "data": self.payload,
               "html": self.html}
        if self.compare is not None and self.diff is not None:
            out["compare"] = {"model": self.compare.model_name, "data": self.compare.payload, "html": self.compare.html}
            out["diff_results"] = to_json({"changed": self.diff["changed"], "max_abs": self.diff["max_abs"]})
        return out


VIEWS: dict[str, View] = {}


def register_view(view: View | type[View]) -> View:
    """Register a view (an instance, or a class that is instantiated); returns the instance."""
    v = view() if isinstance(view, type) else view
    if not v.name or not isinstance(v.name, str):
        raise TypeError(f"{type(v).__name__} needs a name")
    if not v.kinds:
        raise TypeError(f"view {v.name!r} must declare the model kinds it applies to (kinds = (...,))")
    names = [p.name for p in v.params]
    if len(set(names)) != len(names):
        raise TypeError(f"view {v.name!r} declares a parameter twice")
    VIEWS[v.name] = v
    return v


def get_view(name: str) -> View:
    if name not in VIEWS:
        raise OccamError(f"no Lens view {name!r}", "pick one of: " + ", ".join(VIEWS))
    return VIEWS[name]


def views_for(model: Any) -> list[View]:
    """The registered views that apply to ``model``, in registration order."""
    return [v for v in VIEWS.values() if v.applies_to(model)]


def run_view(model: Any, view: str | View, params: Mapping[str, Any] | None = None, *, compare: Any = None,
             **kwargs: Any) -> ViewResult:
    """Run a view on ``model`` (the Python API): ``run_view(lm, "units", layer="relu", unit=2).data``.

    ``compare``: a second model (a pruned or edited copy, another submission, another checkpoint): the
    view runs on both with the same parameters; the result's ``compare`` holds the second result,
    ``diff`` the differences (``changed`` paths, ``max_abs`` per path) and ``html`` shows both side by side.
    """
    v = get_view(view) if isinstance(view, str) else view
    v.require(model)
    p = validate_params(v, {**(params or {}), **kwargs}, model)
    res = ViewResult(v, p, v.compute(model, p), n_val=getattr(model, "n_val", None),
                     model_name=getattr(model, "name", None))
    if compare is not None:
        if compare is model:
            raise OccamError("the model is compared with itself (the same object)",
                             "open a second model, e.g. a snapshot: open_model(lm.to_onnx_bytes(), lm.task)")
        v.require(compare)
        p2 = validate_params(v, {**(params or {}), **kwargs}, compare)
        res.compare = ViewResult(v, p2, v.compute(compare, p2), n_val=getattr(compare, "n_val", None),
                                 model_name=getattr(compare, "name", None))
        from occam.lens.compare import diff_results

        diff = diff_results(res.data, res.compare.data)
        ident = [c for c in diff["changed"] if c.rsplit(".", 1)[-1] in _IDENTITY]  # which model, not what it computes
        diff["changed"] = [c for c in diff["changed"] if c not in ident]
        diff["identity"] = ident
        res.diff = diff
    return res


_IDENTITY = {"name", "hash", "model", "url", "model_name"}


def _diff_html(diff: dict[str, Any] | None) -> str:
    if diff is None:
        return ""
    changed = diff["changed"]
    if not changed:
        return '<p class="diff same">no differences: both models give the same result</p>'
    top = sorted(diff["max_abs"].items(), key=lambda kv: -kv[1])[:8]
    items = "".join(f"<li><code>{esc(k)}</code> |Δ| ≤ {v:.4g}</li>" for k, v in top)
    other = [c for c in changed if c not in diff["max_abs"]][:8]
    items += "".join(f"<li><code>{esc(k)}</code> differs</li>" for k in other)
    return f'<div class="diff changed"><p>{len(changed)} differences; the largest:</p><ul>{items}</ul></div>'


# ---- default HTML ------------------------------------------------------------------------------------
def _default_html(title: str, payload: Any) -> str:
    rows = []
    if isinstance(payload, dict):
        for k, v in payload.items():
            if isinstance(v, str | int | float | bool) or v is None:
                rows.append(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>")
    return f'<div class="lens-view"><h3>{esc(title)}</h3><table class="t">{"".join(rows)}</table></div>'
