"""The view registry and the per-model session the web pages (and the static export) use.

A :class:`View` has a name, a title and ``applies_to(model_info)``; new model kinds (e.g. a toy
transformer track with attention patterns and training checkpoints) register more views without
touching the existing ones. :class:`LensSession` holds one opened model, its weight editor and
its SAE and trigger-search jobs; a *read-only* session (a model several users share, such as an
arena zoo model) refuses weight edits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from occam.lens.model import LensModel, ModelInfo

__all__ = ["View", "VIEWS", "register_view", "views_for", "LensSession"]


@dataclass(frozen=True)
class View:
    name: str
    title: str
    applies_to: Callable[[ModelInfo], bool] = field(default=lambda info: True)
    description: str = ""


VIEWS: dict[str, View] = {}


def register_view(view: View) -> View:
    VIEWS[view.name] = view
    return view


def views_for(info: ModelInfo) -> list[View]:
    return [v for v in VIEWS.values() if v.applies_to(info)]


def _classifier(info: ModelInfo) -> bool:
    return info.kind == "classifier"


def _images(info: ModelInfo) -> bool:
    return info.kind == "classifier" and len(info.input_shape) in (1, 3)


def _image_maps(info: ModelInfo) -> bool:
    return info.kind == "classifier" and len(info.input_shape) == 3


for _name, _title, _desc, _fn in [
    ("overview", "Overview", "graph with shapes and nnz per layer, val metrics, confusion matrix", _classifier),
    ("units", "Units", "top/bottom images, histogram and ablation for one neuron or channel", _classifier),
    ("featvis", "Feature visualization", "activation maximization (Fourier parameterization, jitter, TV)", _images),
    ("readouts", "Layer readouts", "a linear probe per layer and the direct projection through the head", _classifier),
    ("attribution", "Attribution", "saliency, integrated gradients and occlusion (Captum)", _images),
    ("adversarial", "Adversarial", "FGSM/PGD at a chosen ε, and painting on the image", _images),
    ("editor", "Weight editor", "edit weights with live val loss, accuracy, nnz and score", _classifier),
    ("pruning", "Pruning", "magnitude threshold, global or per layer, with the live score", _classifier),
    ("steering", "Steering", "add a direction at a layer with a strength slider", _classifier),
    ("sae", "Dictionary learning", "a sparse autoencoder on a layer's activations", _classifier),
    ("clusters", "Clusters", "units clustered by their activation patterns, tagged by class", _classifier),
    ("triggers", "Triggers", "the reverse-engineered backdoor trigger of every class (Neural Cleanse)", _image_maps),
]:
    register_view(View(_name, _title, _fn, _desc))


class LensSession:
    """One model opened in the Lens (shared by the page's requests).

    ``read_only``: why its weights may not be edited (the editor's endpoints answer 409 with it), or None.
    """

    def __init__(self, lm: LensModel, *, read_only: str | None = None):
        self.lm = lm
        self.read_only = read_only
        self.lock = threading.RLock()
        self._editor: Any = None
        self.sae_jobs: dict[str, Any] = {}
        self.trigger_jobs: dict[str, Any] = {}  # id → occam.lens.triggers.TriggerJob (also the result cache)

    @property
    def id(self) -> str:
        return self.lm.hash

    @property
    def editor(self) -> Any:
        from occam.lens.editor import Editor

        with self.lock:
            if self._editor is None:
                self._editor = Editor(self.lm)
            return self._editor

    def views(self) -> list[dict[str, Any]]:
        return [{"name": v.name, "title": v.title, "description": v.description} for v in views_for(self.lm.info)]
