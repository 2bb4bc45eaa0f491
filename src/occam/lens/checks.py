"""The contract every Lens view passes (in the spirit of scikit-learn's estimator checks).

>>> from occam.lens.checks import check_view, tiny_model
>>> check_view(my_view, tiny_model())  # doctest: +SKIP

:func:`check_view` verifies, on a tiny model: the declaration (name, title, kinds, typed
parameters); that bad parameters (an unknown name, a wrong type, a value out of bounds or not
among the choices) are refused with an :class:`~occam.errors.OccamError` naming the parameter
and what is allowed; that ``compute`` returns data (no PNG or HTML in it) whose payload is JSON;
that the renderer gives a non-empty, well-formed HTML fragment; that the Python API's result
shows it in notebooks; that job views run as jobs; and that the static export contains the view.
A new view is tested by registering it and calling this. No web imports.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

from occam.errors import OccamError
from occam.lens.view import Param, View, ViewResult, run_view, static_key, to_json, validate_params

__all__ = ["check_view", "tiny_model", "ViewCheckError"]

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class ViewCheckError(AssertionError):
    """A view breaks the view contract (the message says which part and how)."""


def tiny_model(arch: str = "lenet5", task: str = "digits", seed: int = 0) -> Any:
    """A small untrained network with fixed (seeded) weights on ``task``, opened in the Lens (seconds)."""
    import torch

    from occam.lens.kinds import open_model
    from occam.models import build_model
    from occam.tasks import get_task

    t = get_task(task)
    torch.manual_seed(seed)
    return open_model(build_model(arch, tuple(t.input_shape), t.num_classes), t, name=f"tiny-{arch}")


def _fail(view: View, what: str) -> ViewCheckError:
    return ViewCheckError(f"view {getattr(view, 'name', view)!r}: {what}")


def _expect_refusal(view: View, model: Any, params: dict[str, Any], must_mention: list[str], case: str) -> None:
    try:
        validate_params(view, params, model)
    except OccamError as exc:
        text = f"{exc.problem} {exc.fix or ''}"
        missing = [m for m in must_mention if m not in text]
        if missing:
            raise _fail(view, f"{case}: the error {text!r} does not mention {missing}") from None
        if not exc.fix:
            raise _fail(view, f"{case}: the error {exc.problem!r} gives no fix") from None
        return
    raise _fail(view, f"{case}: parameters {params} were accepted")


def _check_params(view: View, model: Any) -> None:
    for p in view.params:
        if not isinstance(p, Param):
            raise _fail(view, f"parameter {p!r} is not a Param")
    _expect_refusal(view, model, {"no_such_parameter": 1}, ["no_such_parameter"], "an unknown parameter")
    for p in view.params:
        lo, hi, choices = p.bounds(model)
        if p.type in ("int", "float", "image", "class"):
            _expect_refusal(view, model, {p.name: "not-a-number"}, [p.name], f"{p.name}: a wrong type")
            if lo is not None:
                _expect_refusal(view, model, {p.name: lo - 1}, [p.name, str(int(lo)) if float(lo).is_integer() else str(lo)],
                                f"{p.name}: below its minimum")
            if hi is not None:
                _expect_refusal(view, model, {p.name: hi + 1}, [p.name], f"{p.name}: above its maximum")
        elif p.type == "bool":
            _expect_refusal(view, model, {p.name: "maybe"}, [p.name], f"{p.name}: not a boolean")
        else:
            _expect_refusal(view, model, {p.name: 12345}, [p.name], f"{p.name}: a wrong type")
            if choices is not None:
                _expect_refusal(view, model, {p.name: "no-such-choice"}, [p.name], f"{p.name}: not one of the choices")


def _no_images(view: View, obj: Any, path: str = "data") -> None:
    if isinstance(obj, str):
        if obj.startswith("data:image") or obj.lstrip().startswith("<"):
            raise _fail(view, f"compute returned drawing, not data, at {path} ({obj[:30]!r}…): draw it in payload/html")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _no_images(view, v, f"{path}.{k}")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj[:50]):
            _no_images(view, v, f"{path}[{i}]")


class _Balance(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.tags += 1
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


def check_html(view: View, html: str) -> None:
    """A non-empty fragment whose tags balance (void tags excepted), with no script."""
    if not isinstance(html, str) or not html.strip():
        raise _fail(view, "the rendered HTML is empty")
    b = _Balance()
    b.feed(html)
    b.close()
    if b.tags == 0:
        raise _fail(view, "the rendered HTML has no element")
    if b.errors or b.stack:
        raise _fail(view, f"the rendered HTML is not well formed: {(b.errors or ['unclosed ' + ', '.join(b.stack)])[0]}")
    if "<script" in html.lower():
        raise _fail(view, "the rendered fragment contains a script")


def check_view(view: View, model: Any = None, *, export: bool = True) -> ViewResult:
    """Run the whole contract on ``view`` (see the module docstring); returns the computed result.

    ``model``: the model to try (default :func:`tiny_model`); it must be one the view applies to.
    Raises :class:`ViewCheckError` naming the view and the broken part.
    """
    for attr in ("name", "title", "kinds"):
        if not getattr(view, attr, None):
            raise _fail(view, f"declares no {attr}")
    model = tiny_model() if model is None else model
    if not view.applies_to(model):
        raise _fail(view, f"does not apply to the test model (kind {getattr(model, 'kind', '?')}); pass one it applies to")
    spec = view.to_dict(model)
    json.dumps(to_json(spec))
    _check_params(view, model)
    params = validate_params(view, view.quick_params(model), model)
    res = run_view(model, view, params)
    _no_images(view, res.data)
    try:
        text = json.dumps(res.to_json(), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _fail(view, f"its payload is not JSON: {exc}") from None
    if len(text) < 10:
        raise _fail(view, "its payload is empty")
    check_html(view, res.html)
    if res._repr_html_() != res.html:
        raise _fail(view, "the result's _repr_html_ is not its HTML")
    if view.job:
        job = view.start(model, params, jobs={}, wait=True)
        if job.state != "done" or job.result is None:
            raise _fail(view, f"its job did not finish: {job.state} {job.error}")
        json.dumps(to_json(job.to_dict()))
    if export:
        from occam.lens.export import export_data
        from occam.lens.views import LensSession

        data = export_data(LensSession(model), views=[view], quick=True)
        keys = [f"/lens/api/{model.hash}/" + static_key(view.name, params)]
        absent = [k for k in keys if k not in data]
        if absent:
            raise _fail(view, f"the static export lacks {absent[0]}")
        if view.job and view.name not in data["views"]:
            raise _fail(view, "the static export lacks its job result")
    return res
