"""Lens: one model's views side by side, with live edits (Python API; no web imports).

>>> from occam.lens import open_model, run_view
>>> lm = open_model("model.onnx", "digits")       # or an nn.Module, an occam .pt checkpoint, a directory of them
>>> res = run_view(lm, "units", layer="relu", unit=2)
>>> res.data                                      # numbers, records, numpy arrays
>>> res                                           # in a notebook: the view drawn (``_repr_html_``)
>>> lm.editor.set_weight("fc1.weight", 0, 0.0)    # new val loss/accuracy/nnz/score; every view follows

Views (:mod:`occam.lens.view`, the twelve built-in ones in :mod:`occam.lens.builtin_views`) and
model kinds (:mod:`occam.lens.kinds`) are plugins behind one protocol and one registry each; all
views and the editor read one activation cache (:mod:`occam.lens.cache`). The web pages
(``occam lens MODEL --task T``) live in :mod:`occam.web.lens_routes`.
"""

from __future__ import annotations

from occam.lens.kinds import KINDS, ModelKind, open_model, register_kind
from occam.lens.model import Layer, LensModel, ModelInfo
from occam.lens.views import VIEWS, LensSession, Param, View, ViewResult, get_view, register_view, run_view, views_for

__all__ = ["Layer", "LensModel", "ModelInfo", "open_model", "KINDS", "ModelKind", "register_kind", "VIEWS", "View",
           "Param", "ViewResult", "register_view", "get_view", "run_view", "views_for", "LensSession"]
