"""The weight editor: change one weight, get the new validation loss and accuracy fast.

All values of the graph on the evaluation images are cached. An edit recomputes only what it
changes: :mod:`occam.lens.editor_delta` turns the edit into a delta at the node that reads the
weight (a Conv kernel weight changes one output channel by a shifted, scaled copy of one input
plane; a Gemm weight one column by a scaled input column; a bias or per-channel parameter one
channel) and pushes it downstream, through linear layers as a delta (a conv of the changed
channels, a rank-k matrix update, a per-channel scale, a sum at a residual Add) and through
nonlinear layers by recomputing only the changed channels, stopping where the delta is zero.

Undo and reset restore the weights and recompute everything, so metrics return exactly to what
they were. ``sync()`` (called when a slider is released) checks the cached logits against a real
forward pass on a few rows and recomputes everything only when float drift shows, or after
``resync_every`` incremental edits, so releasing a slider costs about as much as an edit.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import torch

from occam.lens.editor_delta import Propagator
from occam.lens.model import LensModel, fast_metrics

__all__ = ["Editor"]

_MALLOC_TUNED = False


def _reuse_freed_memory() -> None:
    """Keep large freed blocks in the heap (glibc only) instead of returning them to the system.

    An edit allocates tensors of tens of megabytes; with glibc's defaults each one is a fresh
    ``mmap`` whose pages fault in one by one, which costs more than the arithmetic on them.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED or not sys.platform.startswith("linux"):
        return
    _MALLOC_TUNED = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: serve blocks up to 1 GiB from the heap
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GiB of free heap
    except (OSError, AttributeError):
        pass


class Editor:
    """Edits ``lm``'s weights in place, updating ``lm.cache`` (the activation cache every view reads);
    with ``x``/``y`` it keeps a private cache on those inputs instead (benchmarks).

    ``threads``: torch threads for incremental updates (None: leave torch's setting);
    ``wide_threads``: threads for their large convolutions and matrix products (default: up to 2).
    ``resync_every``: incremental edits after which ``sync()`` always runs a full forward pass.
    """

    resync_every = 500
    drift_rows = 64

    def __init__(self, lm: LensModel, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
                 threads: int | None = 1, wide_threads: int | None = None):
        from occam.lens.cache import ActivationCache

        self.lm = lm
        self.mod = lm.module
        self.cache = lm.cache if x is None and y is None else ActivationCache(lm.module, x, lm.y if y is None else y)
        self.x, self.y = self.cache.x, self.cache.y
        self.history: list[tuple[str, int, float]] = []
        self.lock = threading.RLock()
        self.nnz = lm.nnz()
        self.last_ms = 0.0
        # Element-wise updates are memory-bound: one thread avoids waiting for a busy second core;
        # large convs and matrix products use ``wide_threads``.
        self.threads = threads
        self._since_full = 0  # incremental edits since the last full forward pass
        self.full_syncs = 0  # full forward passes this editor ran (undo, reset, drift)
        _reuse_freed_memory()
        self._prop = Propagator(self.mod)
        self._prop.wide_threads = wide_threads or min(2, os.cpu_count() or 1)
        self.cache.values()  # shared with the views: computed once, not again for the editor

    # ---- state ------------------------------------------------------------------------------
    @property
    def env(self) -> dict[str, torch.Tensor]:
        """The activation cache's values (edits update them in place)."""
        return self.cache.values()

    def _touched(self) -> None:
        self.cache.touch()
        if self.cache is not self.lm.cache:
            self.lm.invalidate()

    @torch.no_grad()
    def sync(self) -> dict[str, Any]:
        """Make sure the cached values are those of a full forward pass; returns the metrics.

        Cheap when nothing drifted: the cached logits of a few rows are compared with a real
        forward pass on those rows, and everything is recomputed only when they disagree beyond
        float rounding (or after ``resync_every`` incremental edits).
        """
        with self.lock:
            if self._since_full == 0:
                return self.metrics()
            with self._threads():
                ok = self._since_full < self.resync_every and self._drift_ok()
            return self.metrics() if ok else self._full_sync()

    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        n = torch.get_num_threads()
        if not self.threads or n == self.threads:
            yield
            return
        torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(n)

    def _drift_ok(self) -> bool:
        n = len(self.x)
        rows = torch.linspace(0, n - 1, min(n, self.drift_rows)).round().long().unique()
        ref = self.mod.run(self.x[rows], keep=set())[self.mod.output_name]
        got = self.env[self.mod.output_name][rows]
        if not (torch.isfinite(ref).all() and torch.isfinite(got).all()):
            return bool(torch.equal(ref, got))
        tol = 1e-4 * (1.0 + float(ref.abs().max()))
        return float((ref - got).abs().max()) <= tol

    @torch.no_grad()
    def _full_sync(self) -> dict[str, Any]:
        """Recompute every value with a full forward pass."""
        with self.lock:
            self.cache.refresh()  # no two values share memory (edits write in place)
            if self.cache is not self.lm.cache:
                self.lm.invalidate()
            self.nnz = self.lm.nnz()
            self._since_full = 0
            self.full_syncs += 1
            return self.metrics()

    def metrics(self) -> dict[str, Any]:
        return fast_metrics(self.env[self.mod.output_name], self.y, self.nnz, self.lm.lam)

    def full_forward_metrics(self) -> dict[str, Any]:
        """The naive path (a whole forward pass), for checks and benchmarks."""
        with torch.no_grad():
            z = self.mod.run(self.x, keep=set())[self.mod.output_name]
        return fast_metrics(z, self.y, self.nnz, self.lm.lam)

    # ---- edits ------------------------------------------------------------------------------
    @torch.no_grad()
    def set_weight(self, name: str, index: int, value: float, *, record: bool = True) -> dict[str, Any]:
        """Set ``weight[name].flatten()[index] = value``; returns the new metrics."""
        with self.lock:
            t0 = time.perf_counter()
            self.cache.values()  # the cached values must be those of the weights before this edit
            w = self.mod.weight(name)
            flat = w.view(-1)
            old = flat[index].clone()
            new = torch.tensor(value, dtype=w.dtype)
            if torch.equal(old.view(torch.int32), new.view(torch.int32)):
                return self.metrics()
            flat[index] = new
            self.nnz += int(new.view(torch.int32) != 0) - int(old.view(torch.int32) != 0)
            if record:
                self.history.append((name, index, float(old)))
            with self._threads():
                self._prop.edit(self.env, name, index, float(new) - float(old), w)
            self._since_full += 1
            self._touched()
            out = self.metrics()
            self.last_ms = (time.perf_counter() - t0) * 1000
            out["ms"] = self.last_ms
            return out

    def undo(self) -> dict[str, Any]:
        """Undo the last edit (exactly: the weight is restored and everything recomputed)."""
        with self.lock:
            if not self.history:
                return self.metrics()
            name, index, old = self.history.pop()
            with torch.no_grad():
                self.mod.weight(name).view(-1)[index] = old
            return self._full_sync()

    def reset(self) -> dict[str, Any]:
        with self.lock:
            self.history.clear()
            self.lm.reset_weights()
            return self._full_sync()
