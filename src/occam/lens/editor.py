"""The weight editor: change one weight, get the new validation loss and accuracy fast.

All values of the graph on the evaluation images are cached. An edit recomputes only what it
changes, node by node in graph order, tracking for each changed value *which units* (indices
along axis 1) changed and what they were before:

- a Conv weight ``W[o, c, ky, kx] += δ`` changes output channel ``o`` by ``δ`` times the input
  plane ``c`` shifted by ``(ky, kx)``; a Gemm/MatMul weight ``W[i, j] += δ`` changes output unit
  ``i`` by ``δ · a_j`` (a rank-one update); a bias changes one unit by ``δ``;
- element-wise ops, pooling and per-channel affines recompute only the changed units;
- a Reshape/Flatten maps changed channels to the columns they become;
- a Conv, Gemm or MatMul fed by changed units adds ``Δ @ W[:, changed]`` (dense after that);
- anything else recomputes the whole node (always correct, just slower).

Undo restores the weight and recomputes everything, so metrics return exactly to what they
were. ``sync()`` recomputes everything too (call it when a drag ends to drop float drift).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from occam.interp.ops import Node
from occam.interp.ops import auto_pad as _auto_pad
from occam.interp.ops import split_pads as _pads
from occam.lens.model import LensModel, fast_metrics

__all__ = ["Editor"]

_ELEMENTWISE = {"Relu", "Sigmoid", "Tanh", "Gelu", "LeakyRelu", "Elu", "Selu", "Celu", "Identity", "Erf", "Neg",
                "Abs", "Exp", "Softplus", "Softsign", "Mish", "HardSwish", "HardSigmoid", "Clip", "Sqrt",
                "ThresholdedRelu"}
_CHANNEL_LOCAL = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"}
_BINARY = {"Add", "Sub", "Mul", "Div"}


@dataclass
class _Change:
    idx: torch.Tensor | None  # changed indices along axis 1 (None: everything may have changed)
    old: torch.Tensor | None  # the values at those indices before the change


class Editor:
    """Edits ``lm``'s weights in place, updating ``lm.cache`` (the activation cache every view reads);
    with ``x``/``y`` it keeps a private cache on those inputs instead (benchmarks).

    ``threads``: torch threads for incremental updates (None: leave torch's setting).
    """

    def __init__(self, lm: LensModel, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
                 threads: int | None = 1):
        from occam.lens.cache import ActivationCache

        self.lm = lm
        self.mod = lm.module
        self.cache = lm.cache if x is None and y is None else ActivationCache(lm.module, x, lm.y if y is None else y)
        self.x, self.y = self.cache.x, self.cache.y
        self.history: list[tuple[str, int, float]] = []
        self.lock = threading.RLock()
        self.nnz = lm.nnz()
        self.last_ms = 0.0
        # Incremental updates are small tensor ops: one thread avoids waiting for a busy second core.
        self.threads = threads
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
        """Recompute every value with a full forward pass."""
        with self.lock:
            self.cache.refresh()  # no two values share memory (edits write in place)
            if self.cache is not self.lm.cache:
                self.lm.invalidate()
            self.nnz = self.lm.nnz()
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
            threads = torch.get_num_threads()
            if self.threads and threads != self.threads:
                torch.set_num_threads(self.threads)
            try:
                self._propagate(name, index, float(new) - float(old), w)
            finally:
                if self.threads and threads != self.threads:
                    torch.set_num_threads(threads)
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
            return self.sync()

    def reset(self) -> dict[str, Any]:
        with self.lock:
            self.history.clear()
            self.lm.reset_weights()
            return self.sync()

    # ---- incremental propagation --------------------------------------------------------------
    def _propagate(self, wname: str, index: int, delta: float, w: torch.Tensor) -> None:
        mod, env = self.mod, self.env
        changes: dict[str, _Change] = {}
        first = min(mod.consumers.get(wname, [len(mod.nodes)]), default=len(mod.nodes))
        for node in mod.nodes[first:]:
            changed = [n for n in node.inputs if n in changes]
            uses_w = wname in node.inputs
            if not changed and not uses_w:
                continue
            out = node.outputs[0]
            ch: _Change | None = None
            if uses_w and not changed:
                ch = self._weight_delta(node, wname, index, delta, w)
            elif not uses_w and len(changed) == 1 and changes[changed[0]].idx is not None and len(node.outputs) == 1:
                ch = self._activation_delta(node, changed[0], changes[changed[0]])
            if ch is None:  # recompute the whole node
                outs = mod.run_node(node, env)
                for o, v in zip(node.outputs, outs, strict=False):
                    env[o] = v
                    changes[o] = _Change(None, None)
            else:
                changes[out] = ch

    def _weight_delta(self, node: Node, wname: str, index: int, delta: float, w: torch.Tensor) -> _Change | None:
        env = self.env
        out = env[node.outputs[0]]
        pos = node.inputs.index(wname)
        if node.op == "Conv" and node.inputs.count(wname) == 1:
            if pos == 2:  # bias
                o = index
                old = out[:, o:o + 1].clone()
                out[:, o] += delta
                return _Change(torch.tensor([o]), old)
            if pos != 1:
                return None
            x = env[node.inputs[0]]
            multi = _unravel(index, tuple(w.shape))
            o, c, ks = multi[0], multi[1], multi[2:]
            groups = int(node.attrs.get("group", 1))
            ci = (o // (w.shape[0] // groups)) * w.shape[1] + c
            rank = w.dim() - 2
            strides = list(node.attrs.get("strides") or [1] * rank)
            dil = list(node.attrs.get("dilations") or [1] * rank)
            kernel = list(node.attrs.get("kernel_shape") or w.shape[2:])
            begin, end = _pads(_auto_pad(node.attrs, tuple(x.shape[2:]), kernel, strides, dil), rank)
            plane = x[:, ci]
            if any(begin) or any(end):
                pad: list[int] = []
                for b, e in zip(reversed(begin), reversed(end), strict=True):
                    pad += [b, e]
                plane = F.pad(plane, pad)
            sl = [slice(None)]
            for d in range(rank):
                start = ks[d] * dil[d]
                stop = start + (out.shape[2 + d] - 1) * strides[d] + 1
                sl.append(slice(start, stop, strides[d]))
            old = out[:, o:o + 1].clone()
            out[:, o] += delta * plane[tuple(sl)]
            return _Change(torch.tensor([o]), old)
        if node.op == "Gemm" and node.inputs.count(wname) == 1 and out.dim() == 2:
            alpha, beta = float(node.attrs.get("alpha", 1.0)), float(node.attrs.get("beta", 1.0))
            if pos == 2:
                c = self.mod.constant(wname)
                if c is None or c.dim() == 0 or c.numel() != out.shape[1] or c.shape[-1] != out.shape[1]:
                    return None
                i = index
                old = out[:, i:i + 1].clone()
                out[:, i] += beta * delta
                return _Change(torch.tensor([i]), old)
            if pos != 1 or node.attrs.get("transA", 0):
                return None
            r, s = divmod(index, w.shape[1])
            i, j = (r, s) if node.attrs.get("transB", 0) else (s, r)
            a = env[node.inputs[0]]
            old = out[:, i:i + 1].clone()
            out[:, i] += (alpha * delta) * a[:, j]
            return _Change(torch.tensor([i]), old)
        if node.op == "MatMul" and pos == 1 and node.inputs[0] != wname and out.dim() == 2 and w.dim() == 2:
            j, i = divmod(index, w.shape[1])
            a = env[node.inputs[0]]
            old = out[:, i:i + 1].clone()
            out[:, i] += delta * a[:, j]
            return _Change(torch.tensor([i]), old)
        if node.op in ("Add", "Sub") and out.dim() >= 2 and out.shape[1] > 1:
            c = self.mod.constant(wname)
            other = node.inputs[1 - pos] if len(node.inputs) == 2 else None
            if c is None or other is None or self.mod.is_weight(other) or other not in env:
                return None
            unit = _const_unit(c, out, index)
            if unit is None:
                return None
            sign = -1.0 if node.op == "Sub" and pos == 1 else 1.0
            old = out[:, unit:unit + 1].clone()
            out[:, unit] += sign * delta
            return _Change(torch.tensor([unit]), old)
        return None

    def _activation_delta(self, node: Node, name: str, ch: _Change) -> _Change | None:
        env, mod = self.env, self.mod
        x = env[name]
        out = env[node.outputs[0]]
        idx = ch.idx
        if node.op in _ELEMENTWISE and out.shape == x.shape and node.inputs[0] == name:
            old = out[:, idx].clone()
            out[:, idx] = mod.run_node(node, {**_const_env(node, env, mod), name: x[:, idx]})[0]
            return _Change(idx, old)
        if node.op in _CHANNEL_LOCAL and x.dim() >= 3:
            old = out[:, idx].clone()
            out[:, idx] = mod.run_node(node, {name: x[:, idx]})[0]
            return _Change(idx, old)
        if node.op in _BINARY and len(node.inputs) == 2 and out.shape == x.shape:
            other = node.inputs[1 - node.inputs.index(name)]
            c = mod.constant(other)
            if c is None or other in env:
                return None
            cs = _slice_const(c, x.dim(), idx)
            if cs is None:
                return None
            old = out[:, idx].clone()
            a, b = (x[:, idx], cs) if node.inputs[0] == name else (cs, x[:, idx])
            out[:, idx] = mod.run_node(Node(node.op, ["a", "b"], ["o"]), {"a": a, "b": b})[0]
            return _Change(idx, old)
        if node.op in ("Reshape", "Flatten") and out.dim() == 2 and x.dim() >= 2 and out.shape[0] == x.shape[0]:
            per = x[0, 0].numel()
            cols = (idx[:, None] * per + torch.arange(per)[None, :]).reshape(-1)
            old = ch.old.reshape(x.shape[0], -1)
            out[:, cols] = x[:, idx].reshape(x.shape[0], -1)
            return _Change(cols, old)
        if node.op == "Gemm" and node.inputs[0] == name and mod.is_weight(node.inputs[1]) \
                and not node.attrs.get("transA", 0) and out.dim() == 2:
            W = mod.weight(node.inputs[1])
            d = x[:, idx] - ch.old
            alpha = float(node.attrs.get("alpha", 1.0))
            upd = d @ (W[:, idx].t() if node.attrs.get("transB", 0) else W[idx])
            out.add_(upd if alpha == 1.0 else alpha * upd)
            return _Change(None, None)
        if node.op == "MatMul" and node.inputs[0] == name and mod.is_weight(node.inputs[1]) and x.dim() == 2:
            W = mod.weight(node.inputs[1])
            out.add_((x[:, idx] - ch.old) @ W[idx])
            return _Change(None, None)
        if node.op == "Conv" and node.inputs[0] == name and mod.is_weight(node.inputs[1]):
            W = mod.weight(node.inputs[1])
            groups = int(node.attrs.get("group", 1))
            attrs = {k: v for k, v in node.attrs.items() if k != "group"}
            from occam.interp.ops import conv as _conv

            if groups == 1:
                out.add_(_conv(x[:, idx] - ch.old, W[:, idx], None, attrs))
                return _Change(None, None)
            if groups == x.shape[1] and W.shape[1] == 1:  # depthwise: channel-local
                mult = W.shape[0] // groups
                oidx = (idx[:, None] * mult + torch.arange(mult)[None, :]).reshape(-1)
                b = mod.constant(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
                old = out[:, oidx].clone()
                out[:, oidx] = _conv(x[:, idx], W[oidx], None if b is None else b[oidx], {**attrs, "group": len(idx)})
                return _Change(oidx, old)
        return None


def _unravel(index: int, shape: tuple[int, ...]) -> list[int]:
    out = []
    for s in reversed(shape):
        index, r = divmod(index, s)
        out.append(r)
    return list(reversed(out))


def _const_unit(c: torch.Tensor, out: torch.Tensor, index: int) -> int | None:
    """Which unit (axis 1 of ``out``) the constant element ``index`` feeds, if exactly one."""
    if c.dim() == out.dim() and c.shape[0] == 1 and c.shape[1] == out.shape[1] and c[0, :].numel() == out.shape[1]:
        return index
    if c.dim() == out.dim() - 1 and c.numel() == out.shape[1] and c.shape[0] == out.shape[1]:
        return index
    if c.dim() == 1 and out.dim() == 2 and c.shape[0] == out.shape[1]:
        return index
    return None


def _slice_const(c: torch.Tensor, rank: int, idx: torch.Tensor) -> torch.Tensor | None:
    """The part of a broadcast constant that meets units ``idx`` on axis 1, or None."""
    if c.dim() < rank - 1:
        return c  # does not reach axis 1
    if c.dim() == rank:
        if c.shape[0] != 1:
            return None
        return c if c.shape[1] == 1 else c[:, idx]
    if c.dim() == rank - 1:
        return c if c.shape[0] == 1 else c[idx]
    return None


def _const_env(node: Node, env: dict[str, torch.Tensor], mod: Any) -> dict[str, torch.Tensor]:
    return {n: env[n] for n in node.inputs[1:] if n and n in env}
