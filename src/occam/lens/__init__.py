"""Lens: one model's views side by side, with live edits (Python API; no web imports).

>>> from occam.lens import open_model, analysis
>>> lm = open_model("model.onnx", "digits")          # or an nn.Module, or an occam .pt checkpoint
>>> analysis.overview(lm)["metrics"]
>>> from occam.lens.editor import Editor
>>> Editor(lm).set_weight("fc1.weight", 0, 0.0)       # new val loss/accuracy/nnz/score

The web pages (``occam lens MODEL --task T``) live in :mod:`occam.web.lens_routes`.
"""

from __future__ import annotations

from occam.lens.model import Layer, LensModel, ModelInfo, open_model
from occam.lens.views import VIEWS, LensSession, View, register_view, views_for

__all__ = ["Layer", "LensModel", "ModelInfo", "open_model", "VIEWS", "View", "register_view", "views_for",
           "LensSession"]
