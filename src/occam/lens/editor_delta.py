"""Delta propagation for the weight editor: push one weight change through a cached forward pass.

The editor keeps every value of the graph on its evaluation images (``env``). A weight edit is
turned into a *delta* at the node that reads the weight, and the delta is pushed downstream in
graph order. A :class:`Delta` holds ``d = new - old`` for some channels (indices along axis 1)
of a value, or for all of it; ``env`` is updated in place as the deltas pass.

Per node, the cheapest exact rule that applies:

- **the edited weight**: a Conv kernel weight ``W[o, c, ky, kx] += δ`` adds ``δ`` times input
  plane ``c``, shifted by ``(ky, kx)``, to output channel ``o`` (only the overlap of the shifted
  plane and the output is touched); a Gemm/MatMul weight is a rank-one column update; a bias one
  channel plus a constant; a per-channel parameter (BatchNorm, a per-channel Add/Mul constant,
  PRelu) recomputes one channel;
- **linear in the changed input** (Conv, Gemm, MatMul with constant weights, BatchNormalization in
  inference form, Add/Sub, Mul/Div by a value that did not change, Neg, average pooling, Pad,
  reductions over spatial axes, Flatten/Reshape/Transpose/Concat/Slice/...): the node's linear part
  is applied to the delta alone (no bias), e.g. a conv of the one changed channel;
- **channel-local and nonlinear** (Relu and the other activations, MaxPool, GlobalMaxPool,
  InstanceNormalization, products of two changed values...): only the changed channels are
  recomputed, from the already updated inputs;
- anything else recomputes the whole node; the delta is then new minus old, narrowed to the
  channels that actually changed (none: propagation stops there).

All of this is exact up to float rounding: the editor's ``sync`` compares against a real forward
pass. No web imports, no knowledge of any model kind: it reads only the ONNX graph.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from occam.interp.ops import Node
from occam.interp.ops import auto_pad as _auto_pad
from occam.interp.ops import conv as _conv
from occam.interp.ops import split_pads as _pads

__all__ = ["Delta", "Propagator"]

_UNARY_NONLINEAR = {"Relu", "Sigmoid", "Tanh", "Gelu", "LeakyRelu", "Elu", "Selu", "Celu", "Erf", "Abs", "Exp",
                    "Softplus", "Softsign", "Mish", "HardSwish", "HardSigmoid", "Clip", "Sqrt", "ThresholdedRelu",
                    "Log", "Reciprocal", "Sign", "PRelu"}
# element-wise with broadcasting: recomputing some channels needs only those channels of every input
_ELEMENTWISE = _UNARY_NONLINEAR | {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where",
                                   "Identity", "Neg"}
_POOL_LOCAL = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "GlobalLpPool"}
# nodes whose changed channels are recomputed from their (already updated) first input
_RECOMPUTED = (_UNARY_NONLINEAR - {"PRelu"}) | {"MaxPool", "GlobalMaxPool"}
_PER_CHANNEL_PARAMS = {"BatchNormalization": (1, 2, 3, 4), "InstanceNormalization": (1, 2)}
# linear and homogeneous in their first input (the others are shapes, indices or axes)
_LINEAR_DATA = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Slice", "Gather", "Expand", "Tile",
                "DepthToSpace", "SpaceToDepth", "Split", "AveragePool", "GlobalAveragePool", "ReduceSum",
                "ReduceMean", "Identity", "Neg"}


_WIDE_MIN = 1 << 24  # multiply-adds from which a conv or matrix product is worth a second thread
_PRUNE_MAX = 1 << 20  # deltas up to this many numbers are checked for all-zero channels (cheap there)


@dataclass
class Delta:
    """``d = new - old`` of one value: for channels ``idx`` (axis 1) or, with ``idx`` None, all of it.

    ``d`` has the value's shape with axis 1 cut to ``len(idx)``; it may be a broadcast view, so it
    is never written to. ``d`` is None when no consumer needs it (only which channels changed is
    known) or, with ``idx`` None too, when the value changed shape or type.
    """

    idx: torch.Tensor | None
    d: torch.Tensor | None  # None: changed in an unknown way (shape or type); downstream recomputes

    @property
    def span(self) -> tuple[int, int] | None:
        if self.idx is None:
            return None
        return _span(self.idx)


def _span(idx: torch.Tensor) -> tuple[int, int] | None:
    n = int(idx.numel())
    if n == 0:
        return None
    lo = int(idx[0])
    if n == 1 or (int(idx[-1]) - lo == n - 1 and bool((idx[1:] > idx[:-1]).all())):
        return lo, lo + n
    return None


def _take(v: torch.Tensor, idx: torch.Tensor, axis: int = 1) -> torch.Tensor:
    """``v``'s entries ``idx`` along ``axis``: a view when they are a contiguous range."""
    sp = _span(idx)
    if sp is not None:
        return v.narrow(axis, sp[0], sp[1] - sp[0])
    return v.index_select(axis, idx)


def _add_at(v: torch.Tensor, idx: torch.Tensor | None, d: torch.Tensor) -> None:
    """``v[:, idx] += d`` in place."""
    if idx is None:
        v.add_(d)
        return
    sp = _span(idx)
    if sp is not None:
        v.narrow(1, sp[0], sp[1] - sp[0]).add_(d)
    else:
        v.index_add_(1, idx, d.expand(v.shape[:1] + (len(idx),) + v.shape[2:]) if d.dim() == v.dim() else d)


def _put_at(v: torch.Tensor, idx: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """``v[:, idx] = new`` in place; returns ``new - old``."""
    sp = _span(idx)
    if sp is not None:
        part = v.narrow(1, sp[0], sp[1] - sp[0])
        d = new - part
        part.copy_(new)
        return d
    d = new - v.index_select(1, idx)
    v.index_copy_(1, idx, new)
    return d


def _dense(delta: Delta, like: torch.Tensor) -> torch.Tensor:
    """The delta over the whole value (zeros on the channels it does not cover)."""
    if delta.idx is None:
        return delta.d
    full = torch.zeros_like(like)
    _add_at(full, delta.idx, delta.d)
    return full


def _slice_for(v: torch.Tensor, out_rank: int, idx: torch.Tensor) -> torch.Tensor:
    """The part of a (numpy-broadcast) operand ``v`` that meets output channels ``idx`` (axis 1)."""
    axis = v.dim() - (out_rank - 1)
    if axis < 0 or v.shape[axis] == 1:
        return v
    return _take(v, idx, axis)


def _channel_of(w: torch.Tensor, index: int, out: torch.Tensor) -> int | None:
    """The one output channel (axis 1) that element ``index`` of a broadcast operand ``w`` reaches, if one."""
    axis = w.dim() - (out.dim() - 1)
    if axis < 0 or out.dim() < 2 or w.shape[axis] != out.shape[1] or out.shape[1] == 1:
        return None
    return _unravel(index, tuple(w.shape))[axis]


def _unravel(index: int, shape: tuple[int, ...]) -> list[int]:
    out = []
    for s in reversed(shape):
        index, r = divmod(index, s)
        out.append(r)
    return list(reversed(out))


def _fast_maxpool(x: torch.Tensor, attrs: dict) -> torch.Tensor | None:
    """MaxPool without padding or dilation as a separable max of strided views (much faster than
    ``F.max_pool2d`` on large batches of small maps); None when the attributes need the general op."""
    kernel = list(attrs.get("kernel_shape") or [])
    rank = len(kernel)
    if not rank or x.dim() != rank + 2 or attrs.get("ceil_mode", 0) or attrs.get("auto_pad", "NOTSET") not in (
            "NOTSET", "VALID", ""):
        return None
    if any(attrs.get("pads") or []) or any(d != 1 for d in (attrs.get("dilations") or [])):
        return None
    strides = list(attrs.get("strides") or [1] * rank)
    for i, (k, s) in enumerate(zip(kernel, strides, strict=True)):
        axis = 2 + i
        n_out = (x.shape[axis] - k) // s + 1
        if n_out <= 0:
            return None
        y = None
        for j in range(k):
            part = x.narrow(axis, j, (n_out - 1) * s + 1)
            if s > 1:
                part = part[(slice(None),) * axis + (slice(None, None, s),)]
            y = part if y is None else torch.maximum(y, part)
        x = y
    return x.clone() if all(k == 1 for k in kernel) else x


class Propagator:
    """Pushes weight edits through ``env`` (``{value name: tensor}``, every value owning its memory)."""

    def __init__(self, mod: Any):
        self.mod = mod
        self.nodes: list[Node] = mod.nodes
        self.wide_threads = 1  # threads for large convs and matrix products (the editor sets it)
        self.recomputed: Counter[str] = Counter()  # ops that fell back to a whole-node recompute
        # values whose delta no consumer reads (every consumer recomputes its changed channels from
        # the current input): their nodes update in place and skip forming new - old
        self.no_delta: set[str] = set()
        for node in self.nodes:
            for o in node.outputs:
                users = [mod.nodes[i] for i in mod.consumers.get(o, [])]
                if users and o != mod.output_name and all(
                        u.op in _RECOMPUTED and u.inputs and u.inputs[0] == o and o not in u.inputs[1:] for u in users):
                    self.no_delta.add(o)

    @contextlib.contextmanager
    def _wide(self, work: int) -> Iterator[None]:
        """Run a large conv or matrix product on ``wide_threads`` torch threads (both cores where it pays)."""
        n = torch.get_num_threads()
        if work < _WIDE_MIN or self.wide_threads <= n:
            yield
            return
        torch.set_num_threads(self.wide_threads)
        try:
            yield
        finally:
            torch.set_num_threads(n)

    # ---- running nodes ----------------------------------------------------------------------
    def _value(self, name: str, env: dict[str, torch.Tensor]) -> torch.Tensor | None:
        if not name:
            return None
        v = env.get(name)
        return v if v is not None else self.mod.constant(name)

    def _run(self, node: Node, args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        if node.op == "MaxPool" and len(node.outputs) == 1 and args[0] is not None:
            y = _fast_maxpool(args[0], node.attrs)
            if y is not None:
                return [y]
        names = [f"a{i}" if a is not None else "" for i, a in enumerate(args)]
        env = {n: a for n, a in zip(names, args, strict=True) if n}
        return self.mod.run_node(Node(node.op, names, [f"o{i}" for i in range(len(node.outputs))], node.attrs), env)

    # ---- one edit ---------------------------------------------------------------------------
    @torch.no_grad()
    def edit(self, env: dict[str, torch.Tensor], wname: str, index: int, dv: float, w: torch.Tensor) -> None:
        """``w.view(-1)[index]`` has just grown by ``dv``: bring every value in ``env`` up to date."""
        deltas: dict[str, Delta] = {}
        consumers = self.mod.consumers.get(wname, [])
        if not consumers:
            return
        last_use: dict[str, int] = {}
        for i, node in enumerate(self.nodes):
            for n in node.inputs:
                last_use[n] = i
        for i in range(min(consumers), len(self.nodes)):
            node = self.nodes[i]
            changed = {n: deltas[n] for n in node.inputs if n in deltas}
            uses_w = wname in node.inputs
            if not changed and not uses_w:
                continue
            res: dict[str, Delta | None] | None = None
            if uses_w and not changed:
                res = self._weight_delta(env, node, wname, index, dv, w)
            elif uses_w:  # a shared weight met again downstream of its own change
                res = self._shared_weight(env, node, changed, wname, index, w)
            elif not uses_w and all(dl.d is not None or dl.idx is not None for dl in changed.values()):
                res = self._activation_delta(env, node, changed)
            if res is None:
                res = self._recompute(env, node)
            for o, dl in res.items():
                if dl is not None:
                    deltas[o] = dl
            for n in node.inputs:  # free deltas nobody reads any more
                if last_use.get(n) == i and n in deltas:
                    del deltas[n]

    # ---- whole-node fallback ------------------------------------------------------------------
    def _recompute(self, env: dict[str, torch.Tensor], node: Node) -> dict[str, Delta | None]:
        self.recomputed[node.op] += 1
        ins = [self._value(n, env) for n in node.inputs]
        outs = self._run(node, ins)
        res: dict[str, Delta | None] = {}
        for name, new in zip(node.outputs, outs, strict=False):
            old = env.get(name)
            if new._base is not None or any(new is a for a in ins if a is not None):
                new = new.clone()  # every value owns its memory (edits write in place)
            env[name] = new
            if old is None or old.shape != new.shape or old.dtype != new.dtype:
                res[name] = Delta(None, None)  # unknown change: everything downstream recomputes
            elif not new.is_floating_point():
                res[name] = None if torch.equal(old, new) else Delta(None, None)
            else:
                d = new - old
                res[name] = _narrow(d) if d.numel() <= _PRUNE_MAX or name not in self.no_delta else Delta(None, d)
        return res

    # ---- the node that reads the edited weight ------------------------------------------------
    def _weight_delta(self, env: dict[str, torch.Tensor], node: Node, wname: str, index: int, dv: float,
                      w: torch.Tensor) -> dict[str, Delta | None] | None:
        if len(node.outputs) != 1 or node.inputs.count(wname) != 1:
            return None
        oname = node.outputs[0]
        out = env[oname]
        pos = node.inputs.index(wname)
        if node.op == "Conv" and pos == 1 and node.inputs[0] in env:
            return self._conv_weight(env, node, index, dv, w)
        if node.op == "Conv" and pos == 2:
            d = torch.full((1,) * out.dim(), dv, dtype=out.dtype).expand((out.shape[0], 1) + tuple(out.shape[2:]))
            idx = torch.tensor([index])
            out.narrow(1, index, 1).add_(dv)
            return {oname: Delta(idx, None if oname in self.no_delta else d)}
        if node.op == "Gemm" and out.dim() == 2:
            alpha, beta = float(node.attrs.get("alpha", 1.0)), float(node.attrs.get("beta", 1.0))
            if pos == 2:
                i = _channel_of(w, index, out)
                if i is None:
                    return None
                d = torch.full((1, 1), beta * dv, dtype=out.dtype).expand(out.shape[0], 1)
            elif pos == 1 and not node.attrs.get("transA", 0) and node.inputs[0] in env:
                r, s = divmod(index, w.shape[1])
                i, j = (r, s) if node.attrs.get("transB", 0) else (s, r)
                d = env[node.inputs[0]][:, j:j + 1] * (alpha * dv)
            else:
                return None
            idx = torch.tensor([i])
            _add_at(out, idx, d)
            return {oname: Delta(idx, d)}
        if node.op == "MatMul" and pos == 1 and out.dim() == 2 and w.dim() == 2 and node.inputs[0] in env:
            j, i = divmod(index, w.shape[1])
            d = env[node.inputs[0]][:, j:j + 1] * dv
            idx = torch.tensor([i])
            _add_at(out, idx, d)
            return {oname: Delta(idx, d)}
        if node.op == "MatMul" and pos == 1 and out.dim() >= 3 and w.dim() == 2 and node.inputs[0] in env:
            j, i = divmod(index, w.shape[1])  # a token-wise linear map: feature i of every token moves
            d = torch.zeros_like(out)
            torch.mul(env[node.inputs[0]][..., j], dv, out=d[..., i])
            out[..., i] += d[..., i]
            return {oname: Delta(None, d)}
        # a per-channel parameter: recompute the one channel it reaches
        c: int | None = None
        if node.op in _PER_CHANNEL_PARAMS and pos in _PER_CHANNEL_PARAMS[node.op] and out.dim() >= 2:
            c = index if w.dim() == 1 and w.numel() == out.shape[1] else None
        elif node.op in _ELEMENTWISE and out.dim() >= 2:
            c = _channel_of(w, index, out)
        if c is not None:
            return {oname: self._channels(env, node, torch.tensor([c]))}
        return None

    def _shared_weight(self, env: dict[str, torch.Tensor], node: Node, changed: dict[str, Delta], wname: str,
                       index: int, w: torch.Tensor) -> dict[str, Delta | None] | None:
        """A channel-local node whose input and weight both changed: recompute the channels either touches."""
        out = env.get(node.outputs[0]) if len(node.outputs) == 1 else None
        if out is None or out.dim() < 2 or not out.is_floating_point() or not self._channel_local(env, node, out):
            return None
        if any(c.idx is None and c.d is None for c in changed.values()):
            return None
        if not all(env[n].dim() == out.dim() and env[n].shape[1] == out.shape[1] for n in changed):
            return None
        pos = node.inputs.index(wname)
        if node.op in _PER_CHANNEL_PARAMS and pos in _PER_CHANNEL_PARAMS[node.op]:
            c = index if w.dim() == 1 and w.numel() == out.shape[1] else None
        else:
            c = _channel_of(w, index, out)
        idxs = [d.idx for d in changed.values()] + [None if c is None else torch.tensor([c])]
        return {node.outputs[0]: self._channels(env, node, _union(idxs, out.shape[1]))}

    def _conv_weight(self, env: dict[str, torch.Tensor], node: Node, index: int, dv: float,
                     w: torch.Tensor) -> dict[str, Delta | None] | None:
        x = env[node.inputs[0]]
        oname = node.outputs[0]
        out = env[oname]
        multi = _unravel(index, tuple(w.shape))
        o, c, ks = multi[0], multi[1], multi[2:]
        groups = int(node.attrs.get("group", 1))
        ci = (o // (w.shape[0] // groups)) * w.shape[1] + c
        rank = w.dim() - 2
        strides = list(node.attrs.get("strides") or [1] * rank)
        dil = list(node.attrs.get("dilations") or [1] * rank)
        kernel = list(node.attrs.get("kernel_shape") or w.shape[2:])
        begin, _ = _pads(_auto_pad(node.attrs, tuple(x.shape[2:]), kernel, strides, dil), rank)
        # output position p reads input p * stride + k * dilation - pad; keep the p where that is inside
        dst: list[Any] = [slice(None), slice(0, 1)]
        src: list[Any] = [slice(None), slice(ci, ci + 1)]
        for ax in range(rank):
            s, off = strides[ax], ks[ax] * dil[ax] - begin[ax]
            lo = max(0, -(off // s))
            hi = min(out.shape[2 + ax] - 1, (x.shape[2 + ax] - 1 - off) // s)
            if hi < lo:
                return {oname: None}
            dst.append(slice(lo, hi + 1))
            src.append(slice(lo * s + off, hi * s + off + 1, s))
        if oname in self.no_delta:
            out[(slice(None), slice(o, o + 1)) + tuple(dst[2:])].add_(x[tuple(src)], alpha=dv)
            return {oname: Delta(torch.tensor([o]), None)}
        d = torch.zeros((out.shape[0], 1) + tuple(out.shape[2:]), dtype=out.dtype)
        torch.mul(x[tuple(src)], dv, out=d[tuple(dst)])
        out.narrow(1, o, 1).add_(d)
        return {oname: Delta(torch.tensor([o]), d)}

    # ---- a node whose inputs changed ------------------------------------------------------------
    def _activation_delta(self, env: dict[str, torch.Tensor], node: Node,
                          changed: dict[str, Delta]) -> dict[str, Delta | None] | None:
        mod = self.mod
        op = node.op
        if len(node.outputs) != 1:
            return self._linear_generic(env, node, changed) if op == "Split" else None
        oname = node.outputs[0]
        out = env.get(oname)
        if out is None or not out.is_floating_point():
            return None
        first = node.inputs[0] if node.inputs else ""
        single = len(changed) == 1
        name, dl = next(iter(changed.items()))
        x = env.get(name)
        if any(c.d is None for c in changed.values()):  # only the changed channels are known
            if out.dim() >= 2 and self._channel_local(env, node, out) and all(
                    env[n].dim() == out.dim() and env[n].shape[1] == out.shape[1] for n in changed):
                return {oname: self._channels(env, node, _union([c.idx for c in changed.values()], out.shape[1]))}
            return None
        # linear maps with constant weights
        if op == "Conv" and single and name == first and mod.is_weight(node.inputs[1]):
            return self._conv_input(env, node, dl)
        if op in ("Gemm", "MatMul") and single and name == first and len(node.inputs) > 1 \
                and mod.is_weight(node.inputs[1]) and x is not None and x.dim() == 2 and out.dim() == 2 \
                and not node.attrs.get("transA", 0):
            W = mod.weight(node.inputs[1])
            if op == "Gemm" and node.attrs.get("transB", 0):
                Wi = W.t() if dl.idx is None else _take(W, dl.idx, 1).t()
            else:
                Wi = W if dl.idx is None else _take(W, dl.idx, 0)
            with self._wide(dl.d.numel() * Wi.shape[-1]):
                upd = dl.d @ Wi
            alpha = float(node.attrs.get("alpha", 1.0)) if op == "Gemm" else 1.0
            if alpha != 1.0:
                upd = upd * alpha
            out.add_(upd)
            return {oname: Delta(None, upd)}
        if op == "MatMul" and single and name == first and mod.is_weight(node.inputs[1]) and x is not None \
                and x.dim() >= 3 and mod.weight(node.inputs[1]).dim() == 2:  # a token-wise linear map: channel-local
            upd = dl.d @ mod.weight(node.inputs[1])
            _add_at(out, dl.idx, upd)
            return {oname: Delta(dl.idx, upd)}
        if op == "BatchNormalization" and single and name == first and out.shape == x.shape:
            scale, _, _, var = (self._value(n, env) for n in node.inputs[1:5])
            inv = scale / torch.sqrt(var + float(node.attrs.get("epsilon", 1e-5)))
            if dl.idx is not None:
                inv = inv[dl.idx]
            upd = dl.d * inv.reshape((1, -1) + (1,) * (out.dim() - 2))
            _add_at(out, dl.idx, upd)
            return {oname: Delta(dl.idx, upd)}
        if op in ("Add", "Sub", "Sum", "Mean") and all(env[n].shape == out.shape for n in changed):
            total: Delta | None = None
            for k, n in enumerate(node.inputs):
                if n not in changed:
                    continue
                part = changed[n]
                if op == "Sub" and k == 1:
                    part = Delta(part.idx, -part.d)
                total = part if total is None else _sum(total, part, out)
            if op == "Mean":
                total = Delta(total.idx, total.d / len(node.inputs))
            _add_at(out, total.idx, total.d)
            return {oname: total}
        if op in ("Mul", "Div") and single and x is not None and x.shape == out.shape \
                and (op == "Mul" or name == first) and node.inputs.count(name) == 1:
            other = self._value(node.inputs[1 - node.inputs.index(name)], env)
            o = other if dl.idx is None else _slice_for(other, out.dim(), dl.idx)
            upd = dl.d * o if op == "Mul" else dl.d / o
            _add_at(out, dl.idx, upd)
            return {oname: Delta(dl.idx, upd)}
        if op in ("AveragePool", "GlobalAveragePool", "Neg", "Identity") and single and name == first \
                and out.dim() >= 2 and x is not None and out.shape[:2] == x.shape[:2]:
            upd = self._run(node, [dl.d])[0]
            _add_at(out, dl.idx, upd)
            return {oname: Delta(dl.idx, upd)}
        if op in ("Reshape", "Flatten") and single and name == first and dl.idx is not None and out.dim() == 2 \
                and x is not None and x.dim() >= 2 and out.shape[0] == x.shape[0] and out.shape[1] == x[0].numel():
            per = x[0, 0].numel()
            cols = (dl.idx[:, None] * per + torch.arange(per)[None, :]).reshape(-1)
            upd = dl.d.reshape(x.shape[0], -1)
            _add_at(out, cols, upd)
            return {oname: Delta(cols, upd)}
        if op == "Transpose" and single and dl.idx is not None:
            perm = node.attrs.get("perm") or list(reversed(range(x.dim())))
            if list(perm[:2]) == [0, 1]:
                upd = dl.d.permute(*perm)
                _add_at(out, dl.idx, upd)
                return {oname: Delta(dl.idx, upd)}
        # nonlinear but channel-local: recompute the changed channels
        if out.dim() >= 2 and self._channel_local(env, node, out):
            same = all(env[n].dim() == out.dim() and env[n].shape[1] == out.shape[1] for n in changed)
            idx = _union([d.idx for d in changed.values()], out.shape[1]) if same else torch.arange(out.shape[1])
            return {oname: self._channels(env, node, idx)}
        if single and name == first and (op in _LINEAR_DATA or op == "Pad" or op == "Concat"):
            return self._linear_generic(env, node, changed)
        if op == "Concat":
            return self._linear_generic(env, node, changed)
        return None

    def _conv_input(self, env: dict[str, torch.Tensor], node: Node, dl: Delta) -> dict[str, Delta | None] | None:
        W = self.mod.weight(node.inputs[1])
        oname = node.outputs[0]
        out = env[oname]
        groups = int(node.attrs.get("group", 1))
        attrs = {k: v for k, v in node.attrs.items() if k != "group"}
        if groups == 1:
            Wi = W if dl.idx is None else _take(W, dl.idx, 1)
            with self._wide(dl.d.numel() * W.shape[0]):
                upd = _conv(dl.d.contiguous(), Wi.contiguous(), None, attrs)
            out.add_(upd)
            return {oname: Delta(None, upd)}
        cin = W.shape[1] * groups
        if dl.idx is not None and W.shape[1] == 1 and groups == cin:  # depthwise: channel-local
            mult = W.shape[0] // groups
            oidx = (dl.idx[:, None] * mult + torch.arange(mult)[None, :]).reshape(-1)
            upd = _conv(dl.d.contiguous(), _take(W, oidx, 0).contiguous(), None, {**attrs, "group": len(dl.idx)})
            _add_at(out, oidx, upd)
            return {oname: Delta(oidx, upd)}
        d = _dense(dl, env[node.inputs[0]])
        with self._wide(d.numel() * W.shape[0]):
            upd = _conv(d.contiguous(), W, None, node.attrs)
        out.add_(upd)
        return {oname: Delta(None, upd)}

    def _linear_generic(self, env: dict[str, torch.Tensor], node: Node,
                        changed: dict[str, Delta]) -> dict[str, Delta | None] | None:
        """Run a node that is linear in its data inputs on the deltas (zeros for unchanged data inputs)."""
        if node.op == "Concat":
            args = [_dense(changed[n], env[n]) if n in changed else torch.zeros_like(env[n]) if n in env
                    else torch.zeros_like(self.mod.constant(n)) for n in node.inputs]
        else:
            if any(n in changed for n in node.inputs[1:]):
                return None
            args = [_dense(changed[node.inputs[0]], env[node.inputs[0]])] + [self._value(n, env)
                                                                             for n in node.inputs[1:]]
            if node.op == "Pad" and len(args) > 2 and args[2] is not None:
                args[2] = torch.zeros_like(args[2])
            if node.op == "Pad" and node.attrs.get("mode", "constant") != "constant":
                return None
        outs = self._run(node, args)
        res: dict[str, Delta | None] = {}
        for name, upd in zip(node.outputs, outs, strict=False):
            if env[name].shape != upd.shape:
                return None
            env[name].add_(upd)
            res[name] = Delta(None, upd)
        return res

    def _channel_local(self, env: dict[str, torch.Tensor], node: Node, out: torch.Tensor) -> bool:
        """Whether output channel c depends only on channel c of each input (and per-channel constants)."""
        op, rank = node.op, out.dim()
        if op in _ELEMENTWISE:
            for n in node.inputs:
                v = self._value(n, env)
                if v is None:
                    continue
                axis = v.dim() - (rank - 1)
                if axis >= 0 and v.shape[axis] not in (1, out.shape[1]):
                    return False
            return True
        x = env.get(node.inputs[0]) if node.inputs else None
        if x is None or x.dim() != rank or x.shape[1] != out.shape[1]:
            return False
        if op in _POOL_LOCAL or op in _PER_CHANNEL_PARAMS:
            return True
        if op in ("Softmax", "LogSoftmax", "Hardmax"):
            return int(node.attrs.get("axis", -1)) % rank >= 2
        if op == "LayerNormalization":
            return int(node.attrs.get("axis", -1)) % rank >= 2
        return False

    def _channels(self, env: dict[str, torch.Tensor], node: Node, idx: torch.Tensor) -> Delta | None:
        """Recompute output channels ``idx`` of a channel-local node from the current inputs."""
        out = env[node.outputs[0]]
        rank = out.dim()
        if rank == 2 and out.numel() <= _PRUNE_MAX and len(idx) > 1:
            idx = torch.arange(out.shape[1])  # small and dense: contiguous beats gathering scattered units
        args: list[torch.Tensor | None] = []
        per_channel = _PER_CHANNEL_PARAMS.get(node.op, ())
        for k, n in enumerate(node.inputs):
            v = self._value(n, env)
            if v is None:
                args.append(None)
            elif k in per_channel:
                args.append(_take(v, idx, 0))
            elif node.op == "LayerNormalization" and k > 0:
                args.append(v)
            else:
                args.append(_slice_for(v, rank, idx))
        oname = node.outputs[0]
        sp = _span(idx)
        if oname in self.no_delta and sp is not None:
            part = out.narrow(1, sp[0], sp[1] - sp[0])
            if node.op == "Relu":
                torch.clamp_min(args[0], 0.0, out=part)
            else:
                part.copy_(self._run(node, args)[0])
            return Delta(idx, None)
        new = self._run(node, args)[0]
        d = _put_at(out, idx, new)
        return _narrow(d, idx) if d.numel() <= _PRUNE_MAX else Delta(idx, d)


def _sum(a: Delta, b: Delta, like: torch.Tensor) -> Delta:
    if a.idx is not None and b.idx is not None and torch.equal(a.idx, b.idx):
        return Delta(a.idx, a.d + b.d)
    return Delta(None, _dense(a, like) + _dense(b, like))


def _union(idxs: list[torch.Tensor | None], n: int) -> torch.Tensor | None:
    if any(i is None for i in idxs):
        return torch.arange(n)
    if len(idxs) == 1:
        return idxs[0]
    return torch.unique(torch.cat(idxs))


def _narrow(d: torch.Tensor, idx: torch.Tensor | None = None) -> Delta | None:
    """A delta restricted to the channels (axis 1) where it is not zero; None when it is zero everywhere."""
    if d.dim() < 2:
        return Delta(idx, d) if bool(d.any()) else None
    nz = torch.count_nonzero(d, dim=(0,) + tuple(range(2, d.dim())))
    keep = torch.nonzero(nz).reshape(-1)
    if len(keep) == 0:
        return None
    if len(keep) == d.shape[1]:
        return Delta(idx, d)
    return Delta(keep if idx is None else idx[keep], d.index_select(1, keep))
