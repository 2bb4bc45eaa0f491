"""The view registry (with the built-in views registered) and the per-model session the web pages use.

Views are :class:`~occam.lens.view.View` objects (see :mod:`occam.lens.view`); the twelve
built-in ones live in :mod:`occam.lens.builtin_views`. :class:`LensSession` holds one opened
model and its background jobs (SAE training, trigger search); a *read-only* session (a model
several users share, such as an arena zoo model) refuses weight edits.
"""

from __future__ import annotations

import threading
from typing import Any

from occam.lens import builtin_views as _builtin  # noqa: F401  (registers the built-in views)
from occam.lens import depth_views as _depth  # noqa: F401  (registers the depth views)
from occam.lens.view import VIEWS, Param, View, ViewJob, ViewResult, get_view, register_view, run_view, views_for

__all__ = ["View", "Param", "ViewJob", "ViewResult", "VIEWS", "register_view", "get_view", "views_for", "run_view",
           "LensSession"]


class LensSession:
    """One model opened in the Lens (shared by the page's requests).

    ``read_only``: why its weights may not be edited (the editor's endpoints answer 409 with it), or None.
    ``jobs``: background runs of job views (id → job), also their result cache.
    """

    def __init__(self, lm: Any, *, read_only: str | None = None):
        self.lm = lm
        self._id: str = lm.hash
        self.read_only = read_only
        self.lock = threading.RLock()
        self.jobs: dict[str, Any] = {}
        self.compare_with: Any = None  # a second model the views compare with (``?compare=1``), or None

    # ---- comparison (the session API the arena uses for two submissions: ``set_compare(other_lm)``) ----
    def set_compare(self, other: Any) -> None:
        """Compare with ``other`` (a LensModel on the same task and val images), or stop comparing (None)."""
        if other is not None:
            from occam.lens.compare import _check_same_data

            _check_same_data(self.lm, other)
        self.compare_with = other

    def compare_checkpoint(self, index: int) -> None:
        """Compare with checkpoint ``index`` of this model."""
        from occam.lens.compare import checkpoint_model

        self.set_compare(checkpoint_model(self.lm, index))

    def compare_snapshot(self) -> None:
        """Compare with a frozen copy of the current (possibly edited) weights: later edits show as differences."""
        lm = self.lm
        self.set_compare(type(lm)(lm.to_onnx_bytes(), lm.task, name=f"{lm.name} (snapshot)", n_view=len(lm.x)))

    @property
    def compare_name(self) -> str | None:
        return None if self.compare_with is None else getattr(self.compare_with, "name", "second model")

    @property
    def trigger_jobs(self) -> dict[str, Any]:
        """The session's jobs (trigger searches and SAEs share one store, told apart by their view)."""
        return self.jobs

    @property
    def sae_jobs(self) -> dict[str, Any]:
        return self.jobs

    @property
    def id(self) -> str:
        """The model's address: its file hash when opened, kept when another checkpoint is checked out
        (the page's URL and requests stay valid while the scrubber moves)."""
        return self._id

    @property
    def editor(self) -> Any:
        with self.lock:
            return self.lm.editor

    def views(self) -> list[dict[str, Any]]:
        return [v.to_dict(self.lm) for v in views_for(self.lm)]
