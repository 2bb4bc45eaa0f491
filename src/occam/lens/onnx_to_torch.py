"""A small ONNX → PyTorch converter for the ops the arena's guard allows.

The result is an :class:`OnnxModule`: an ``nn.Module`` that interprets the ONNX graph node by
node with ``torch.nn.functional``. Every float initializer (and every float ``Constant``) is an
``nn.Parameter`` (so it can be edited or differentiated), integer initializers are buffers, and
every node output is addressable by its ONNX value name: ``run(x)`` returns the whole
environment ``{value name: tensor}``, ``run(x, overrides={name: fn})`` replaces a value on the
way, and ``rerun(env, dirty)`` recomputes only the nodes downstream of changed values.

No torchvision, no onnx2torch: shapes are computed eagerly (``Shape`` yields an int64 tensor,
``Reshape`` reads it back), which is fine for an interpreter that runs one batch at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import nn

from occam.errors import OccamError

__all__ = ["OnnxModule", "Node", "convert", "SUPPORTED_OPS"]

Override = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Node:
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""


def _attr(a: onnx.AttributeProto) -> Any:
    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, onnx.TensorProto):
        return numpy_helper.to_array(v)
    return v


def _key(name: str) -> str:
    """A ParameterDict-safe key for an ONNX value name."""
    return "p_" + "".join(c if c.isalnum() or c == "_" else "_" for c in name) + f"_{abs(hash(name)) % 10**6}"


def _pads(pads: list[int] | None, rank: int) -> tuple[list[int], list[int]]:
    if not pads:
        return [0] * rank, [0] * rank
    return list(pads[:rank]), list(pads[rank:])


def _torch_pad(begin: list[int], end: list[int]) -> list[int]:
    out: list[int] = []
    for b, e in zip(reversed(begin), reversed(end), strict=True):
        out += [b, e]
    return out


def _auto_pad(attrs: dict, spatial: tuple[int, ...], kernel: list[int], strides: list[int],
              dil: list[int]) -> list[int] | None:
    mode = attrs.get("auto_pad", "NOTSET")
    if mode in ("NOTSET", "VALID", ""):
        return attrs.get("pads") if mode != "VALID" else None
    begin, end = [], []
    for s, k, st, d in zip(spatial, kernel, strides, dil, strict=True):
        out = math.ceil(s / st)
        total = max(0, (out - 1) * st + (k - 1) * d + 1 - s)
        small, big = total // 2, total - total // 2
        begin.append(big if mode == "SAME_LOWER" else small)
        end.append(small if mode == "SAME_LOWER" else big)
    return begin + end


def _conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, attrs: dict) -> torch.Tensor:
    rank = w.dim() - 2
    kernel = list(attrs.get("kernel_shape") or w.shape[2:])
    strides = list(attrs.get("strides") or [1] * rank)
    dil = list(attrs.get("dilations") or [1] * rank)
    begin, end = _pads(_auto_pad(attrs, tuple(x.shape[2:]), kernel, strides, dil), rank)
    groups = int(attrs.get("group", 1))
    fn = (F.conv1d, F.conv2d, F.conv3d)[rank - 1]
    if begin == end:
        return fn(x, w, b, strides, begin, dil, groups)
    return fn(F.pad(x, _torch_pad(begin, end)), w, b, strides, 0, dil, groups)


def _pool(x: torch.Tensor, attrs: dict, kind: str) -> torch.Tensor:
    kernel = list(attrs["kernel_shape"])
    rank = len(kernel)
    strides = list(attrs.get("strides") or [1] * rank)
    dil = list(attrs.get("dilations") or [1] * rank)
    begin, end = _pads(_auto_pad(attrs, tuple(x.shape[2:]), kernel, strides, dil), rank)
    ceil = bool(attrs.get("ceil_mode", 0))
    if kind == "max":
        fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[rank - 1]
        if begin != end:
            x = F.pad(x, _torch_pad(begin, end), value=-math.inf)
            begin = [0] * rank
        return fn(x, kernel, strides, begin, dil, ceil_mode=ceil)
    fn = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[rank - 1]
    include = bool(attrs.get("count_include_pad", 0))
    if begin != end:
        x = F.pad(x, _torch_pad(begin, end))
        begin, include = [0] * rank, True
    return fn(x, kernel, strides, begin, ceil_mode=ceil, count_include_pad=include)


def _ints(t: torch.Tensor | None) -> list[int] | None:
    return None if t is None else [int(v) for v in t.reshape(-1).tolist()]


def _reduce(op: str, x: torch.Tensor, axes: list[int] | None, keep: bool, noop: bool) -> torch.Tensor:
    if axes is None or len(axes) == 0:
        if noop:
            return x
        axes = list(range(x.dim()))
    dims = tuple(a % x.dim() for a in axes)
    if op == "ReduceMean":
        return x.mean(dim=dims, keepdim=keep)
    if op == "ReduceSum":
        return x.sum(dim=dims, keepdim=keep)
    if op == "ReduceMax":
        return x.amax(dim=dims, keepdim=keep)
    if op == "ReduceMin":
        return x.amin(dim=dims, keepdim=keep)
    if op == "ReduceProd":
        for d in sorted(dims, reverse=True):
            x = x.prod(dim=d, keepdim=keep)
        return x
    if op == "ReduceL1":
        return x.abs().sum(dim=dims, keepdim=keep)
    if op == "ReduceL2":
        return x.pow(2).sum(dim=dims, keepdim=keep).sqrt()
    if op == "ReduceSumSquare":
        return x.pow(2).sum(dim=dims, keepdim=keep)
    if op == "ReduceLogSum":
        return x.sum(dim=dims, keepdim=keep).log()
    if op == "ReduceLogSumExp":
        return torch.logsumexp(x, dim=dims, keepdim=keep)
    raise OccamError(f"unsupported reduction {op}")


_UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "Identity": lambda x: x, "Neg": torch.neg, "Abs": torch.abs, "Sqrt": torch.sqrt, "Exp": torch.exp,
    "Log": torch.log, "Reciprocal": torch.reciprocal, "Sign": torch.sign, "Erf": torch.erf, "Relu": F.relu,
    "Sigmoid": torch.sigmoid, "Tanh": torch.tanh, "Softplus": F.softplus, "Softsign": F.softsign,
    "Mish": F.mish, "Not": torch.logical_not,
}
_BINARY: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Pow": torch.pow,
    "Equal": torch.eq, "Less": torch.lt, "LessOrEqual": torch.le, "Greater": torch.gt, "GreaterOrEqual": torch.ge,
    "And": torch.logical_and, "Or": torch.logical_or,
}


def _div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if not a.is_floating_point() and not b.is_floating_point():
        return torch.div(a, b, rounding_mode="trunc")
    return a / b


def _slice(x: torch.Tensor, starts: list[int], ends: list[int], axes: list[int] | None,
           steps: list[int] | None) -> torch.Tensor:
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps or [1] * len(starts)
    for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
        a %= x.dim()
        n = x.shape[a]
        if st > 0:
            s = max(0, min(n, s + n if s < 0 else s))
            e = max(0, min(n, e + n if e < 0 else e))
            x = x.narrow(a, s, max(0, e - s))[(slice(None),) * a + (slice(None, None, st),)]
        else:
            s = max(-1, min(n - 1, s + n if s < 0 else s))
            e = max(-1, min(n - 1, e + n if e < 0 else e))
            idx = torch.arange(s, e, st, device=x.device)
            x = x.index_select(a, idx)
    return x


def _reshape(x: torch.Tensor, shape: list[int], allowzero: bool) -> torch.Tensor:
    if not allowzero:
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


def _run_node(node: Node, args: list[torch.Tensor | None]) -> list[torch.Tensor]:  # noqa: C901
    op, a = node.op, node.attrs
    x = args[0] if args else None
    if op in _UNARY:
        return [_UNARY[op](x)]
    if op in _BINARY:
        return [_BINARY[op](x, args[1])]
    if op == "Div":
        return [_div(x, args[1])]
    if op == "Conv":
        return [_conv(x, args[1], args[2] if len(args) > 2 else None, a)]
    if op == "ConvTranspose":
        w = args[1]
        rank = w.dim() - 2
        begin, end = _pads(a.get("pads"), rank)
        if begin != end:
            raise OccamError("ConvTranspose with asymmetric pads is not supported by the Lens converter")
        fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[rank - 1]
        return [fn(x, w, args[2] if len(args) > 2 else None, list(a.get("strides") or [1] * rank), begin,
                   list(a.get("output_padding") or [0] * rank), int(a.get("group", 1)),
                   list(a.get("dilations") or [1] * rank))]
    if op == "Gemm":
        A, B = args[0], args[1]
        if a.get("transA", 0):
            A = A.t()
        if a.get("transB", 0):
            B = B.t()
        y = A @ B
        alpha = float(a.get("alpha", 1.0))
        if alpha != 1.0:
            y = y * alpha
        if len(args) > 2 and args[2] is not None:
            beta = float(a.get("beta", 1.0))
            y = y + (args[2] if beta == 1.0 else beta * args[2])
        return [y]
    if op == "MatMul":
        return [torch.matmul(x, args[1])]
    if op == "Einsum":
        return [torch.einsum(a["equation"], *args)]
    if op == "LeakyRelu":
        return [F.leaky_relu(x, float(a.get("alpha", 0.01)))]
    if op == "PRelu":
        return [torch.where(x >= 0, x, x * args[1])]
    if op == "Elu":
        return [F.elu(x, float(a.get("alpha", 1.0)))]
    if op == "Selu":
        return [F.selu(x)]
    if op == "Celu":
        return [F.celu(x, float(a.get("alpha", 1.0)))]
    if op == "ThresholdedRelu":
        return [torch.where(x > float(a.get("alpha", 1.0)), x, torch.zeros_like(x))]
    if op == "Gelu":
        return [F.gelu(x, approximate="tanh" if a.get("approximate", "none") == "tanh" else "none")]
    if op == "HardSigmoid":
        return [torch.clamp(x * float(a.get("alpha", 0.2)) + float(a.get("beta", 0.5)), 0, 1)]
    if op == "HardSwish":
        return [F.hardswish(x)]
    if op == "Clip":
        lo = args[1] if len(args) > 1 and args[1] is not None else None
        hi = args[2] if len(args) > 2 and args[2] is not None else None
        return [torch.clamp(x, lo, hi)]
    if op in ("Max", "Min", "Sum", "Mean"):
        out = args[0]
        for t in args[1:]:
            out = torch.maximum(out, t) if op == "Max" else torch.minimum(out, t) if op == "Min" else out + t
        return [out / len(args) if op == "Mean" else out]
    if op in ("Softmax", "LogSoftmax", "Hardmax"):
        axis = int(a.get("axis", -1))
        if op == "Softmax":
            return [torch.softmax(x, axis)]
        if op == "LogSoftmax":
            return [torch.log_softmax(x, axis)]
        return [F.one_hot(x.argmax(axis), x.shape[axis]).movedim(-1, axis).to(x.dtype)]
    if op == "MaxPool":
        return [_pool(x, a, "max")]
    if op == "AveragePool":
        return [_pool(x, a, "avg")]
    if op == "GlobalAveragePool":
        return [x.mean(dim=tuple(range(2, x.dim())), keepdim=True)]
    if op == "GlobalMaxPool":
        return [x.amax(dim=tuple(range(2, x.dim())), keepdim=True)]
    if op == "BatchNormalization":
        scale, bias, mean, var = args[1:5]
        shape = (1, -1) + (1,) * (x.dim() - 2)
        inv = scale / torch.sqrt(var + float(a.get("epsilon", 1e-5)))
        return [(x - mean.reshape(shape)) * inv.reshape(shape) + bias.reshape(shape)]
    if op == "LayerNormalization":
        axis = int(a.get("axis", -1)) % x.dim()
        shape = list(x.shape[axis:])
        return [F.layer_norm(x, shape, args[1], args[2] if len(args) > 2 else None, float(a.get("epsilon", 1e-5)))]
    if op == "InstanceNormalization":
        return [F.instance_norm(x, weight=args[1], bias=args[2], eps=float(a.get("epsilon", 1e-5)))]
    if op == "GroupNormalization":
        g = int(a["num_groups"])
        n, c = x.shape[:2]
        y = F.group_norm(x, g, eps=float(a.get("epsilon", 1e-5)))
        shape = (1, c) + (1,) * (x.dim() - 2)
        sc, bi = args[1], args[2]
        if sc.numel() == g:
            sc, bi = sc.repeat_interleave(c // g), bi.repeat_interleave(c // g)
        return [y * sc.reshape(shape) + bi.reshape(shape)]
    if op.startswith("Reduce"):
        axes = _ints(args[1]) if len(args) > 1 and args[1] is not None else a.get("axes")
        return [_reduce(op, x, axes, bool(a.get("keepdims", 1)), bool(a.get("noop_with_empty_axes", 0)))]
    if op == "Reshape":
        return [_reshape(x, _ints(args[1]), bool(a.get("allowzero", 0)))]
    if op == "Flatten":
        axis = int(a.get("axis", 1)) % max(1, x.dim()) if x.dim() else 0
        return [x.reshape(math.prod(x.shape[:axis]), -1)]
    if op == "Transpose":
        perm = a.get("perm") or list(reversed(range(x.dim())))
        return [x.permute(*perm)]
    if op == "Squeeze":
        axes = _ints(args[1]) if len(args) > 1 and args[1] is not None else a.get("axes")
        if axes is None:
            return [x.squeeze()]
        for ax in sorted((ax % x.dim() for ax in axes), reverse=True):
            x = x.squeeze(ax)
        return [x]
    if op == "Unsqueeze":
        axes = _ints(args[1]) if len(args) > 1 and args[1] is not None else a.get("axes")
        rank = x.dim() + len(axes)
        for ax in sorted(ax % rank for ax in axes):
            x = x.unsqueeze(ax)
        return [x]
    if op == "Concat":
        return [torch.cat([t for t in args if t is not None and t.numel() > 0] or [args[0]], dim=int(a["axis"]))]
    if op == "Split":
        axis = int(a.get("axis", 0))
        split = _ints(args[1]) if len(args) > 1 and args[1] is not None else a.get("split")
        if split is None:
            n = int(a.get("num_outputs", len(node.outputs)))
            size = math.ceil(x.shape[axis] / n)
            return list(torch.split(x, size, dim=axis))
        return list(torch.split(x, split, dim=axis))
    if op == "Slice":
        return [_slice(x, _ints(args[1]), _ints(args[2]), _ints(args[3]) if len(args) > 3 and args[3] is not None
                       else None, _ints(args[4]) if len(args) > 4 and args[4] is not None else None)]
    if op == "Gather":
        axis = int(a.get("axis", 0)) % x.dim()
        idx = args[1].long()
        idx = torch.where(idx < 0, idx + x.shape[axis], idx)
        out = x.index_select(axis, idx.reshape(-1))
        return [out.reshape(x.shape[:axis] + idx.shape + x.shape[axis + 1:])]
    if op == "Shape":
        shape = list(x.shape)
        start, end = a.get("start", 0), a.get("end")
        return [torch.tensor(shape[start:end], dtype=torch.int64)]
    if op == "Size":
        return [torch.tensor(x.numel(), dtype=torch.int64)]
    if op == "Expand":
        shape = _ints(args[1])
        return [x * torch.ones(shape, dtype=x.dtype) if x.dtype != torch.bool else x.expand(
            torch.broadcast_shapes(x.shape, tuple(shape)))]
    if op == "Tile":
        return [x.repeat(*_ints(args[1]))]
    if op == "Pad":
        pads = _ints(args[1])
        value = float(args[2]) if len(args) > 2 and args[2] is not None and args[2].numel() else 0.0
        rank = x.dim()
        axes = _ints(args[3]) if len(args) > 3 and args[3] is not None else list(range(rank))
        begin, end = [0] * rank, [0] * rank
        for i, ax in enumerate(axes):
            begin[ax % rank], end[ax % rank] = pads[i], pads[i + len(axes)]
        mode = a.get("mode", "constant")
        tp = _torch_pad(begin, end)
        return [F.pad(x, tp, mode=mode, value=value) if mode == "constant" else F.pad(x, tp, mode=mode)]
    if op == "Where":
        return [torch.where(args[0].bool(), args[1], args[2])]
    if op == "DepthToSpace":
        return [F.pixel_shuffle(x, int(a["blocksize"]))]
    if op == "SpaceToDepth":
        return [F.pixel_unshuffle(x, int(a["blocksize"]))]
    raise OccamError(f"the Lens cannot run ONNX op {op!r}", "use ops from the guard's allowed list (see docs/lens.md)")


SUPPORTED_OPS = frozenset(set(_UNARY) | set(_BINARY) | {
    "Div", "Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu",
    "ThresholdedRelu", "Gelu", "HardSigmoid", "HardSwish", "Clip", "Max", "Min", "Sum", "Mean", "Softmax",
    "LogSoftmax", "Hardmax", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization",
    "LayerNormalization", "InstanceNormalization", "GroupNormalization", "ReduceMean", "ReduceSum", "ReduceMax",
    "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp",
    "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice", "Gather", "Shape",
    "Size", "Expand", "Tile", "Pad", "Where", "DepthToSpace", "SpaceToDepth", "Constant",
})


class OnnxModule(nn.Module):
    """An ONNX graph as an ``nn.Module``; float initializers are editable ``nn.Parameter``s.

    ``weights[name]`` (an ONNX initializer or Constant output name) is the parameter; ``nodes``
    the graph in topological order; ``input_name``/``output_name`` the graph's ends.
    """

    def __init__(self, model: onnx.ModelProto):
        super().__init__()
        g = model.graph
        self.proto = model
        self.params = nn.ParameterDict()
        self._keys: dict[str, str] = {}
        self._consts: dict[str, torch.Tensor] = {}
        for init in g.initializer:
            self._add_tensor(init.name, numpy_helper.to_array(init))
        self.nodes: list[Node] = []
        for i, n in enumerate(g.node):
            attrs = {a.name: _attr(a) for a in n.attribute}
            if n.op_type == "Constant":
                val = attrs.get("value")
                if val is None:
                    for k in ("value_float", "value_floats", "value_int", "value_ints"):
                        if k in attrs:
                            val = np.asarray(attrs[k], dtype=np.float32 if "float" in k else np.int64)
                self._add_tensor(n.output[0], np.asarray(val))
                continue
            if n.op_type not in SUPPORTED_OPS:
                raise OccamError(f"the Lens cannot run ONNX op {n.op_type!r}",
                                 "use ops from the guard's allowed list (see docs/lens.md)")
            if n.domain not in ("", "ai.onnx"):
                raise OccamError(f"the Lens runs only default-domain ops, not {n.domain}:{n.op_type}")
            self.nodes.append(Node(n.op_type, list(n.input), list(n.output), attrs, n.name or f"node{i}"))
        inits = set(self._keys) | set(self._consts)
        real_inputs = [i for i in g.input if i.name not in inits]
        if len(real_inputs) != 1 or len(g.output) != 1:
            raise OccamError("the Lens needs a model with one input and one output")
        self.input_name = real_inputs[0].name
        self.output_name = g.output[0].name
        self.producer: dict[str, int] = {o: i for i, n in enumerate(self.nodes) for o in n.outputs}
        self.consumers: dict[str, list[int]] = {}
        for i, n in enumerate(self.nodes):
            for name in n.inputs:
                self.consumers.setdefault(name, []).append(i)

    def _add_tensor(self, name: str, arr: np.ndarray) -> None:
        if arr.dtype.kind == "f":
            key = _key(name)
            self.params[key] = nn.Parameter(torch.from_numpy(np.array(arr, dtype=np.float32)))
            self._keys[name] = key
        else:
            self._consts[name] = torch.from_numpy(np.array(arr))

    # ---- weights --------------------------------------------------------------------------
    @property
    def weight_names(self) -> list[str]:
        return list(self._keys)

    def weight(self, name: str) -> nn.Parameter:
        return self.params[self._keys[name]]

    def is_weight(self, name: str) -> bool:
        return name in self._keys

    def constant(self, name: str) -> torch.Tensor | None:
        if name in self._keys:
            return self.params[self._keys[name]]
        return self._consts.get(name)

    # ---- running --------------------------------------------------------------------------
    def _value(self, name: str, env: dict[str, torch.Tensor]) -> torch.Tensor | None:
        if name == "":
            return None
        if name in env:
            return env[name]
        c = self.constant(name)
        if c is None:
            raise OccamError(f"value {name!r} is used before it is computed")
        return c

    def run_node(self, node: Node, env: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        return _run_node(node, [self._value(n, env) for n in node.inputs])

    def run(self, x: torch.Tensor, overrides: dict[str, Override] | None = None,
            keep: set[str] | None = None, stop_at: str | None = None) -> dict[str, torch.Tensor]:
        """Run the graph; returns ``{value name: tensor}`` (all values, or ``keep`` plus the output).

        ``overrides[name](value)`` replaces a value as soon as it is computed (also the input).
        ``stop_at``: stop once that value is computed.
        """
        overrides = overrides or {}
        env: dict[str, torch.Tensor] = {self.input_name: x}
        if self.input_name in overrides:
            env[self.input_name] = overrides[self.input_name](x)
        last_use = None
        if keep is not None:
            last_use = {}
            for i, n in enumerate(self.nodes):
                for name in n.inputs:
                    last_use[name] = i
        for i, node in enumerate(self.nodes):
            outs = self.run_node(node, env)
            for name, val in zip(node.outputs, outs, strict=False):
                env[name] = overrides[name](val) if name in overrides else val
            if stop_at is not None and stop_at in node.outputs:
                break
            if last_use is not None:
                for name in node.inputs:
                    if last_use.get(name) == i and name not in keep and name != self.output_name:
                        env.pop(name, None)
        return env

    def rerun(self, env: dict[str, torch.Tensor], dirty: set[str],
              overrides: dict[str, Override] | None = None) -> dict[str, torch.Tensor]:
        """A copy of ``env`` with every node downstream of ``dirty`` values (or weights) recomputed."""
        overrides = overrides or {}
        out = dict(env)
        dirty = set(dirty)
        for node in self.nodes:
            if not any(n in dirty for n in node.inputs):
                continue
            outs = self.run_node(node, out)
            for name, val in zip(node.outputs, outs, strict=False):
                out[name] = overrides[name](val) if name in overrides else val
                dirty.add(name)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x, keep=set())[self.output_name]

    # ---- back to ONNX -----------------------------------------------------------------------
    def to_onnx(self) -> onnx.ModelProto:
        """The original ONNX model with every weight replaced by this module's current value."""
        model = onnx.ModelProto()
        model.CopyFrom(self.proto)
        for init in model.graph.initializer:
            if init.name in self._keys:
                arr = self.weight(init.name).detach().cpu().numpy().astype(np.float32)
                init.CopyFrom(numpy_helper.from_array(arr.reshape(tuple(init.dims)), init.name))
        for n in model.graph.node:
            if n.op_type == "Constant" and n.output[0] in self._keys:
                arr = self.weight(n.output[0]).detach().cpu().numpy().astype(np.float32)
                for a in n.attribute:
                    if a.name == "value":
                        a.t.CopyFrom(numpy_helper.from_array(arr, a.t.name))
        return model

    def to_bytes(self) -> bytes:
        return self.to_onnx().SerializeToString()


def convert(model: onnx.ModelProto | bytes | str) -> OnnxModule:
    """``OnnxModule`` for an ONNX model (a ``ModelProto``, bytes or a path)."""
    if isinstance(model, bytes | bytearray):
        model = onnx.load_from_string(bytes(model))
    elif not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    return OnnxModule(model).eval()
