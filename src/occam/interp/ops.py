"""The dispatch table: one PyTorch implementation per ONNX op the guard allows.

``OPS[op_type](args, node)`` takes the node's input tensors (``None`` for an omitted optional
input) and the :class:`Node` (attributes, output count, opset) and returns one tensor or a list
of tensors (one per output). Every implementation follows the ONNX operator specification, and
``tests/test_interp_conformance.py`` checks each against ONNX's own backend node test cases.

Shapes are computed eagerly (``Shape`` yields an int64 tensor that ``Reshape`` reads back): the
interpreter runs one batch at a time, so there is no symbolic shape tracing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from occam.errors import OccamError

__all__ = ["OPS", "Node", "OpFn", "auto_pad", "split_pads", "conv", "constant_value"]

Tensor = torch.Tensor
Args = list[Tensor | None]


@dataclass
class Node:
    """One ONNX node: op type, input and output value names, attributes (decoded), name, opset."""

    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    opset: int = 0  # the default domain's opset version of the model (0: unknown, latest semantics)


OpFn = Callable[[Args, Node], "Tensor | Sequence[Tensor]"]
OPS: dict[str, OpFn] = {}


def _register(*names: str) -> Callable[[OpFn], OpFn]:
    def deco(fn: OpFn) -> OpFn:
        for n in names:
            OPS[n] = fn
        return fn
    return deco


def _ints(t: Tensor | None) -> list[int] | None:
    return None if t is None else [int(v) for v in t.reshape(-1).tolist()]


def _arg(args: Args, i: int) -> Tensor | None:
    return args[i] if len(args) > i else None


def _axes(args: Args, node: Node, i: int = 1) -> list[int] | None:
    """Axes from input ``i`` (newer opsets) or the ``axes`` attribute (older ones)."""
    t = _arg(args, i)
    if t is not None:
        return _ints(t)
    axes = node.attrs.get("axes")
    return None if axes is None else list(axes)


def _float_attr(node: Node, name: str, default: float) -> float:
    return float(node.attrs.get(name, default))


# ---- constants and plumbing -------------------------------------------------------------------

def constant_value(attrs: dict[str, Any]) -> np.ndarray:
    """The value of a ``Constant`` node from its (decoded) attributes."""
    if "value" in attrs:
        return np.asarray(attrs["value"])
    for k, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                     ("value_ints", np.int64)):
        if k in attrs:
            return np.asarray(attrs[k], dtype=dtype)
    raise OccamError(f"Constant node with attributes {sorted(attrs)} is not supported",
                     "store the constant as a dense tensor (the 'value' attribute) or as an initializer")


@_register("Constant")
def _constant(args: Args, node: Node) -> Tensor:
    return torch.from_numpy(np.array(constant_value(node.attrs)))


@_register("Identity")
def _identity(args: Args, node: Node) -> Tensor:
    return args[0]


# ---- elementwise ------------------------------------------------------------------------------

def _unary(fn: Callable[[Tensor], Tensor]) -> OpFn:
    return lambda args, node: fn(args[0])


for _name, _fn in {
    "Neg": torch.neg, "Abs": torch.abs, "Sqrt": torch.sqrt, "Exp": torch.exp, "Log": torch.log,
    "Reciprocal": torch.reciprocal, "Sign": torch.sign, "Erf": torch.erf, "Relu": F.relu,
    "Sigmoid": torch.sigmoid, "Tanh": torch.tanh, "Softplus": F.softplus, "Softsign": F.softsign,
    "Mish": F.mish, "HardSwish": F.hardswish, "Not": torch.logical_not,
}.items():
    OPS[_name] = _unary(_fn)

for _name, _fn2 in {
    "Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Equal": torch.eq, "Less": torch.lt,
    "LessOrEqual": torch.le, "Greater": torch.gt, "GreaterOrEqual": torch.ge, "And": torch.logical_and,
    "Or": torch.logical_or,
}.items():
    OPS[_name] = (lambda f: (lambda args, node: f(args[0], args[1])))(_fn2)


@_register("Div")
def _div(args: Args, node: Node) -> Tensor:
    a, b = args[0], args[1]
    if not a.is_floating_point() and not b.is_floating_point():
        return torch.div(a, b, rounding_mode="trunc")
    return a / b


@_register("Pow")
def _pow(args: Args, node: Node) -> Tensor:
    return torch.pow(args[0], args[1]).to(args[0].dtype)


@_register("Max", "Min", "Sum", "Mean")
def _variadic(args: Args, node: Node) -> Tensor:
    ts = [t for t in args if t is not None]
    out = ts[0]
    for t in ts[1:]:
        out = (torch.maximum(out, t) if node.op == "Max" else torch.minimum(out, t) if node.op == "Min"
               else out + t)
    return out / len(ts) if node.op == "Mean" else out


@_register("Clip")
def _clip(args: Args, node: Node) -> Tensor:
    x = args[0]
    lo, hi = _arg(args, 1), _arg(args, 2)
    if lo is None and "min" in node.attrs:  # opset < 11: bounds are attributes
        lo = torch.tensor(node.attrs["min"], dtype=x.dtype)
    if hi is None and "max" in node.attrs:
        hi = torch.tensor(node.attrs["max"], dtype=x.dtype)
    if lo is not None:
        x = torch.maximum(x, lo.to(x.dtype))
    if hi is not None:
        x = torch.minimum(x, hi.to(x.dtype))
    return x


@_register("Where")
def _where(args: Args, node: Node) -> Tensor:
    return torch.where(args[0].bool(), args[1], args[2])


# ---- activations ------------------------------------------------------------------------------

def _alpha_activation(fn: Callable[[Tensor, float], Tensor], default: float) -> OpFn:
    return lambda args, node: fn(args[0], _float_attr(node, "alpha", default))


for _name, (_fa, _default) in {"LeakyRelu": (F.leaky_relu, 0.01), "Elu": (F.elu, 1.0), "Celu": (F.celu, 1.0)}.items():
    OPS[_name] = _alpha_activation(_fa, _default)


@_register("PRelu")
def _prelu(args: Args, node: Node) -> Tensor:
    x = args[0]
    return torch.where(x >= 0, x, x * args[1])


@_register("Selu")
def _selu(args: Args, node: Node) -> Tensor:
    x = args[0]
    alpha = _float_attr(node, "alpha", 1.67326319217681884765625)
    gamma = _float_attr(node, "gamma", 1.05070102214813232421875)
    return gamma * torch.where(x > 0, x, alpha * torch.expm1(x))


@_register("ThresholdedRelu")
def _thresholded_relu(args: Args, node: Node) -> Tensor:
    x = args[0]
    return torch.where(x > _float_attr(node, "alpha", 1.0), x, torch.zeros_like(x))


@_register("Gelu")
def _gelu(args: Args, node: Node) -> Tensor:
    return F.gelu(args[0], approximate="tanh" if node.attrs.get("approximate", "none") == "tanh" else "none")


@_register("HardSigmoid")
def _hard_sigmoid(args: Args, node: Node) -> Tensor:
    return torch.clamp(args[0] * _float_attr(node, "alpha", 0.2) + _float_attr(node, "beta", 0.5), 0, 1)


def _coerce_2d(x: Tensor, axis: int, fn: Callable[[Tensor], Tensor]) -> Tensor:
    """Opset < 13 Softmax semantics: flatten to [prod(shape[:axis]), prod(shape[axis:])], apply, restore."""
    axis %= max(1, x.dim())
    flat = x.reshape(math.prod(x.shape[:axis]), -1)
    return fn(flat).reshape(x.shape)


def _hardmax(x: Tensor, axis: int) -> Tensor:
    return F.one_hot(x.argmax(axis), x.shape[axis]).movedim(-1, axis).to(x.dtype)


@_register("Softmax", "LogSoftmax", "Hardmax")
def _softmax(args: Args, node: Node) -> Tensor:
    x = args[0]
    fns: dict[str, Callable[[Tensor, int], Tensor]] = {"Softmax": torch.softmax, "LogSoftmax": torch.log_softmax,
                                                       "Hardmax": _hardmax}
    fn = fns[node.op]
    if 0 < node.opset < 13:
        return _coerce_2d(x, int(node.attrs.get("axis", 1)), lambda t: fn(t, 1))
    return fn(x, int(node.attrs.get("axis", -1)))


# ---- convolution and pooling ------------------------------------------------------------------

def split_pads(pads: Sequence[int] | None, rank: int) -> tuple[list[int], list[int]]:
    """ONNX ``pads`` ``[b1, b2, ..., e1, e2, ...]`` as (begins, ends); zeros when absent."""
    if not pads:
        return [0] * rank, [0] * rank
    return list(pads[:rank]), list(pads[rank:])


def _torch_pad(begin: Sequence[int], end: Sequence[int]) -> list[int]:
    out: list[int] = []
    for b, e in zip(reversed(begin), reversed(end), strict=True):
        out += [b, e]
    return out


def auto_pad(attrs: dict, spatial: tuple[int, ...], kernel: Sequence[int], strides: Sequence[int],
             dil: Sequence[int]) -> list[int] | None:
    """The explicit ``pads`` a node's ``auto_pad`` attribute stands for (or its ``pads`` attribute)."""
    mode = attrs.get("auto_pad", "NOTSET")
    if mode in ("NOTSET", ""):
        return attrs.get("pads")
    if mode == "VALID":
        return None
    begin, end = [], []
    for s, k, st, d in zip(spatial, kernel, strides, dil, strict=True):
        out = math.ceil(s / st)
        total = max(0, (out - 1) * st + (k - 1) * d + 1 - s)
        small, big = total // 2, total - total // 2
        begin.append(big if mode == "SAME_LOWER" else small)
        end.append(small if mode == "SAME_LOWER" else big)
    return begin + end


def _geometry(x: Tensor, node: Node, kernel: Sequence[int]) -> tuple[list[int], list[int], list[int], list[int]]:
    rank = len(kernel)
    strides = list(node.attrs.get("strides") or [1] * rank)
    dil = list(node.attrs.get("dilations") or [1] * rank)
    begin, end = split_pads(auto_pad(node.attrs, tuple(x.shape[2:]), kernel, strides, dil), rank)
    return strides, dil, begin, end


def conv(x: Tensor, w: Tensor, b: Tensor | None, attrs: dict) -> Tensor:
    """ONNX ``Conv`` (1-3 spatial dims, groups, dilations, explicit or automatic pads)."""
    rank = w.dim() - 2
    kernel = list(attrs.get("kernel_shape") or w.shape[2:])
    strides = list(attrs.get("strides") or [1] * rank)
    dil = list(attrs.get("dilations") or [1] * rank)
    begin, end = split_pads(auto_pad(attrs, tuple(x.shape[2:]), kernel, strides, dil), rank)
    groups = int(attrs.get("group", 1))
    fn = (F.conv1d, F.conv2d, F.conv3d)[rank - 1]
    if begin == end:
        return fn(x, w, b, strides, begin, dil, groups)
    return fn(F.pad(x, _torch_pad(begin, end)), w, b, strides, 0, dil, groups)


@_register("Conv")
def _conv_op(args: Args, node: Node) -> Tensor:
    return conv(args[0], args[1], _arg(args, 2), node.attrs)


@_register("ConvTranspose")
def _conv_transpose(args: Args, node: Node) -> Tensor:
    x, w, b = args[0], args[1], _arg(args, 2)
    a = node.attrs
    rank = w.dim() - 2
    kernel = list(a.get("kernel_shape") or w.shape[2:])
    strides = list(a.get("strides") or [1] * rank)
    dil = list(a.get("dilations") or [1] * rank)
    out_pad = list(a.get("output_padding") or [0] * rank)
    groups = int(a.get("group", 1))
    spatial = x.shape[2:]
    full = [st * (s - 1) + op + (k - 1) * d + 1 for s, k, st, d, op in zip(spatial, kernel, strides, dil, out_pad,
                                                                           strict=True)]
    mode = a.get("auto_pad", "NOTSET")
    target = a.get("output_shape")
    if target is not None:
        target = list(target)[-rank:]
    elif mode in ("SAME_UPPER", "SAME_LOWER"):
        target = [s * st for s, st in zip(spatial, strides, strict=True)]
    if target is not None:
        total = [f - t for f, t in zip(full, target, strict=True)]
        if mode == "SAME_UPPER":
            begin, end = [t // 2 for t in total], [t - t // 2 for t in total]
        else:
            begin, end = [t - t // 2 for t in total], [t // 2 for t in total]
    elif mode == "VALID":
        begin, end = [0] * rank, [0] * rank
    else:
        begin, end = split_pads(a.get("pads"), rank)
    fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[rank - 1]
    y = fn(x, w, None, strides, 0, 0, groups, dil)
    # crop the pads (negative F.pad) and append output_padding rows (positive F.pad) in one step
    y = F.pad(y, _torch_pad([-p for p in begin], [op - e for op, e in zip(out_pad, end, strict=True)]))
    if b is not None:
        y = y + b.reshape((1, -1) + (1,) * rank)
    return y


def _pool_windows(x: Tensor, node: Node, kernel: list[int], fill: float,
                  mask_fill: float) -> tuple[Tensor, Tensor | None, list[int], list[int]]:
    """Pad ``x`` for pooling (pads, auto_pad and ceil_mode's extra end rows) with ``fill``.

    Returns (padded x, padded mask or None, strides, dilations); the mask is 1 on real elements,
    ``mask_fill`` on explicit pads and 0 on ceil-mode overhang.
    """
    rank = len(kernel)
    strides, dil, begin, end = _geometry(x, node, kernel)
    extra = [0] * rank
    if node.attrs.get("ceil_mode", 0):
        for i, (s, k, st, d) in enumerate(zip(x.shape[2:], kernel, strides, dil, strict=True)):
            span = s + begin[i] + end[i] - ((k - 1) * d + 1)
            out = -(-span // st) + 1
            if (out - 1) * st >= s + begin[i]:  # the last window must start inside the input or its left pad
                out -= 1
            extra[i] = max(0, (out - 1) * st + (k - 1) * d + 1 - (s + begin[i] + end[i]))
    xp = F.pad(x, _torch_pad(begin, end), value=fill)
    if any(extra):
        xp = F.pad(xp, _torch_pad([0] * rank, extra), value=fill)
    mask = None
    if mask_fill != 1.0 or any(extra):
        mask = torch.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype)
        mask = F.pad(mask, _torch_pad(begin, end), value=mask_fill)
        if any(extra):
            mask = F.pad(mask, _torch_pad([0] * rank, extra), value=0.0)
    return xp, mask, strides, dil


def _window_sum(x: Tensor, kernel: list[int], strides: list[int], dil: list[int]) -> Tensor:
    """Sum over every pooling window (a depthwise convolution with a kernel of ones)."""
    rank = len(kernel)
    c = x.shape[1]
    ones = torch.ones((c, 1, *kernel), dtype=x.dtype)
    return (F.conv1d, F.conv2d, F.conv3d)[rank - 1](x, ones, None, strides, 0, dil, c)


@_register("AveragePool")
def _average_pool(args: Args, node: Node) -> Tensor:
    x = args[0]
    kernel = list(node.attrs["kernel_shape"])
    rank = len(kernel)
    strides, dil, begin, end = _geometry(x, node, kernel)
    include = bool(node.attrs.get("count_include_pad", 0))
    ceil = bool(node.attrs.get("ceil_mode", 0))
    if (dil == [1] * rank and begin == end and all(2 * p <= k for p, k in zip(begin, kernel, strict=True))
            and rank <= 3 and not (ceil and include)):
        fn = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[rank - 1]
        return fn(x, kernel, strides, begin, ceil_mode=ceil, count_include_pad=include)
    xp, mask, strides, dil = _pool_windows(x, node, kernel, 0.0, 1.0 if include else 0.0)
    total = _window_sum(xp, kernel, strides, dil)
    if mask is None:
        return total / math.prod(kernel)
    count = _window_sum(mask, kernel, strides, dil)
    return total / count


@_register("LpPool")
def _lp_pool(args: Args, node: Node) -> Tensor:
    x = args[0]
    p = float(node.attrs.get("p", 2))
    kernel = list(node.attrs["kernel_shape"])
    xp, _mask, strides, dil = _pool_windows(x.abs().pow(p), node, kernel, 0.0, 1.0)
    return _window_sum(xp, kernel, strides, dil).pow(1.0 / p)


@_register("GlobalLpPool")
def _global_lp_pool(args: Args, node: Node) -> Tensor:
    x = args[0]
    p = float(node.attrs.get("p", 2))
    return x.abs().pow(p).sum(dim=tuple(range(2, x.dim())), keepdim=True).pow(1.0 / p)


@_register("MaxPool")
def _max_pool(args: Args, node: Node) -> Tensor | list[Tensor]:
    x = args[0]
    kernel = list(node.attrs["kernel_shape"])
    rank = len(kernel)
    strides, dil, begin, end = _geometry(x, node, kernel)
    ceil = bool(node.attrs.get("ceil_mode", 0))
    want_idx = len(node.outputs) > 1 and node.outputs[1] != ""
    fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[rank - 1]
    simple = begin == end and all(2 * p <= k for p, k in zip(begin, kernel, strict=True))
    if simple and not want_idx:
        return fn(x, kernel, strides, begin, dil, ceil_mode=ceil)
    if simple:
        y, idx = fn(x, kernel, strides, begin, dil, ceil_mode=ceil, return_indices=True)
        spatial = list(x.shape[2:])
    else:
        xp, _m, strides, dil = _pool_windows(x, node, kernel, -math.inf, 1.0)
        y, idx = fn(xp, kernel, strides, 0, dil, ceil_mode=False, return_indices=True)
        if not want_idx:
            return y
        # indices into the padded plane -> indices into the unpadded plane
        pspatial = list(xp.shape[2:])
        coords = []
        rest = idx
        for size in reversed(pspatial):
            coords.append(rest % size)
            rest = rest // size
        coords = coords[::-1]
        spatial = list(x.shape[2:])
        idx = torch.zeros_like(idx)
        for c, b, size in zip(coords, begin, spatial, strict=True):
            idx = idx * size + (c - b)
    return [y, _onnx_indices(idx, x.shape, spatial, int(node.attrs.get("storage_order", 0)))]


def _onnx_indices(idx: Tensor, shape: torch.Size, spatial: list[int], storage_order: int) -> Tensor:
    """PyTorch's per-plane argmax indices as ONNX's flat indices over the whole input tensor."""
    plane = math.prod(spatial)
    n, c = shape[0], shape[1]
    if storage_order == 1:  # column-major within the plane
        coords = []
        rest = idx
        for size in reversed(spatial):
            coords.append(rest % size)
            rest = rest // size
        col = torch.zeros_like(idx)
        for coord, size in zip(coords, list(reversed(spatial)), strict=True):
            col = col * size + coord
        idx = col
    offset = torch.arange(n * c, dtype=torch.int64).reshape((n, c) + (1,) * len(spatial)) * plane
    return idx + offset


@_register("GlobalAveragePool")
def _global_average_pool(args: Args, node: Node) -> Tensor:
    x = args[0]
    return x.mean(dim=tuple(range(2, x.dim())), keepdim=True)


@_register("GlobalMaxPool")
def _global_max_pool(args: Args, node: Node) -> Tensor:
    x = args[0]
    return x.amax(dim=tuple(range(2, x.dim())), keepdim=True)


# ---- linear algebra ---------------------------------------------------------------------------

@_register("MatMul")
def _matmul(args: Args, node: Node) -> Tensor:
    return torch.matmul(args[0], args[1])


@_register("Gemm")
def _gemm(args: Args, node: Node) -> Tensor:
    A, B, C = args[0], args[1], _arg(args, 2)
    a = node.attrs
    if a.get("transA", 0):
        A = A.t()
    if a.get("transB", 0):
        B = B.t()
    y = A @ B
    alpha = float(a.get("alpha", 1.0))
    if alpha != 1.0:
        y = y * alpha
    if C is not None:
        beta = float(a.get("beta", 1.0))
        y = y + (C if beta == 1.0 else beta * C)
    return y


@_register("Einsum")
def _einsum(args: Args, node: Node) -> Tensor:
    return torch.einsum(node.attrs["equation"], *args)


# ---- normalization ----------------------------------------------------------------------------

def _channel(t: Tensor, rank: int) -> Tensor:
    return t.reshape((1, -1) + (1,) * (rank - 2))


@_register("BatchNormalization")
def _batch_norm(args: Args, node: Node) -> Tensor | list[Tensor]:
    x, scale, bias, mean, var = args[:5]
    eps = _float_attr(node, "epsilon", 1e-5)
    training = bool(node.attrs.get("training_mode", 0)) and len([o for o in node.outputs if o]) > 1
    if not training:
        inv = scale / torch.sqrt(var + eps)
        return (x - _channel(mean, x.dim())) * _channel(inv, x.dim()) + _channel(bias, x.dim())
    dims = (0, *range(2, x.dim()))
    bmean = x.mean(dim=dims)
    bvar = x.var(dim=dims, unbiased=False)
    y = (x - _channel(bmean, x.dim())) / torch.sqrt(_channel(bvar, x.dim()) + eps) * _channel(scale, x.dim())
    y = y + _channel(bias, x.dim())
    m = _float_attr(node, "momentum", 0.9)
    return [y, mean * m + bmean * (1 - m), var * m + bvar * (1 - m)]


def _normalize(x: Tensor, dims: tuple[int, ...], eps: float) -> tuple[Tensor, Tensor, Tensor]:
    mean = x.mean(dim=dims, keepdim=True)
    var = (x - mean).pow(2).mean(dim=dims, keepdim=True)
    inv = torch.rsqrt(var + eps)
    return (x - mean) * inv, mean, inv


@_register("LayerNormalization")
def _layer_norm(args: Args, node: Node) -> Tensor | list[Tensor]:
    x, scale, bias = args[0], args[1], _arg(args, 2)
    axis = int(node.attrs.get("axis", -1)) % x.dim()
    eps = _float_attr(node, "epsilon", 1e-5)
    n_out = len(node.outputs)
    if n_out == 1 and x.dtype == torch.float32:
        return F.layer_norm(x, list(x.shape[axis:]), None if scale is None else scale.expand(x.shape[axis:]),
                            None if bias is None else bias.expand(x.shape[axis:]), eps)
    xs = x.float() if node.attrs.get("stash_type", 1) == 1 else x
    y, mean, inv = _normalize(xs, tuple(range(axis, x.dim())), eps)
    y = y.to(x.dtype) * scale
    if bias is not None:
        y = y + bias
    return [y, mean, inv][:n_out]


@_register("InstanceNormalization")
def _instance_norm(args: Args, node: Node) -> Tensor:
    x, scale, bias = args[:3]
    y, _, _ = _normalize(x, tuple(range(2, x.dim())), _float_attr(node, "epsilon", 1e-5))
    return y * _channel(scale, x.dim()) + _channel(bias, x.dim())


@_register("GroupNormalization")
def _group_norm(args: Args, node: Node) -> Tensor:
    x, scale, bias = args[:3]
    g = int(node.attrs["num_groups"])
    n, c = x.shape[:2]
    grouped = x.reshape(n, g, -1)
    y, _, _ = _normalize(grouped, (2,), _float_attr(node, "epsilon", 1e-5))
    y = y.reshape(x.shape)
    if scale.numel() == g and g != c:  # opset 18: one scale and bias per group
        scale, bias = scale.repeat_interleave(c // g), bias.repeat_interleave(c // g)
    return y * _channel(scale, x.dim()) + _channel(bias, x.dim())


@_register("LpNormalization")
def _lp_normalization(args: Args, node: Node) -> Tensor:
    x = args[0]
    p = int(node.attrs.get("p", 2))
    axis = int(node.attrs.get("axis", -1))
    norm = x.abs().sum(axis, keepdim=True) if p == 1 else x.pow(2).sum(axis, keepdim=True).sqrt()
    return torch.where(norm == 0, torch.zeros_like(x), x / norm)


@_register("MeanVarianceNormalization")
def _mean_variance_normalization(args: Args, node: Node) -> Tensor:
    x = args[0]
    dims = tuple(a % x.dim() for a in node.attrs.get("axes", [0, 2, 3]))
    mean = x.mean(dim=dims, keepdim=True)
    std = (x.pow(2).mean(dim=dims, keepdim=True) - mean.pow(2)).clamp_min(0).sqrt()
    return (x - mean) / (std + 1e-9)


@_register("RMSNormalization")
def _rms_normalization(args: Args, node: Node) -> Tensor:
    x, scale = args[0], args[1]
    axis = int(node.attrs.get("axis", -1)) % x.dim()
    xs = x.float() if node.attrs.get("stash_type", 1) == 1 else x
    ms = xs.pow(2).mean(dim=tuple(range(axis, x.dim())), keepdim=True)
    return (xs * torch.rsqrt(ms + _float_attr(node, "epsilon", 1e-5))).to(x.dtype) * scale


# ---- reductions -------------------------------------------------------------------------------

_EMPTY_REDUCTION = {"ReduceMax": -math.inf, "ReduceMin": math.inf, "ReduceProd": 1.0, "ReduceSum": 0.0,
                    "ReduceSumSquare": 0.0, "ReduceL1": 0.0, "ReduceL2": 0.0, "ReduceLogSum": -math.inf,
                    "ReduceLogSumExp": -math.inf, "ReduceMean": math.nan}


def _empty_value(op: str, dtype: torch.dtype) -> float | int | bool:
    """The value a reduction over an empty set gives, in ``dtype`` (infinities become the type's bounds)."""
    v = _EMPTY_REDUCTION[op]
    if dtype == torch.bool:
        return v > 0 if math.isinf(v) else bool(v)
    if not dtype.is_floating_point and math.isinf(v):
        info = torch.iinfo(dtype)
        return info.max if v > 0 else info.min
    return v


def _reduce_dims(x: Tensor, dims: tuple[int, ...], op: str, keep: bool) -> Tensor:
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
    return torch.logsumexp(x, dim=dims, keepdim=keep)


@_register(*_EMPTY_REDUCTION)
def _reduce(args: Args, node: Node) -> Tensor:
    x = args[0]
    axes = _axes(args, node)
    keep = bool(node.attrs.get("keepdims", 1))
    if not axes:
        if node.attrs.get("noop_with_empty_axes", 0):
            return x
        axes = list(range(x.dim()))
    dims = tuple(sorted({a % x.dim() for a in axes})) if x.dim() else ()
    if x.dim() == 0:
        return _reduce_dims(x, (), node.op, keep) if node.op != "ReduceProd" else x
    if any(x.shape[d] == 0 for d in dims):  # reducing an empty set: the reduction's identity
        shape = [1 if d in dims else s for d, s in enumerate(x.shape)] if keep else \
            [s for d, s in enumerate(x.shape) if d not in dims]
        return torch.full(shape, _empty_value(node.op, x.dtype), dtype=x.dtype)
    return _reduce_dims(x, dims, node.op, keep)


# ---- shapes and layout ------------------------------------------------------------------------

@_register("Reshape")
def _reshape(args: Args, node: Node) -> Tensor:
    x = args[0]
    shape = _ints(args[1]) if _arg(args, 1) is not None else list(node.attrs["shape"])
    if not node.attrs.get("allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


@_register("Flatten")
def _flatten(args: Args, node: Node) -> Tensor:
    x = args[0]
    axis = int(node.attrs.get("axis", 1))
    if axis < 0:
        axis += x.dim()
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


@_register("Transpose")
def _transpose(args: Args, node: Node) -> Tensor:
    x = args[0]
    perm = node.attrs.get("perm") or list(reversed(range(x.dim())))
    return x.permute(*perm)


@_register("Squeeze")
def _squeeze(args: Args, node: Node) -> Tensor:
    x = args[0]
    axes = _axes(args, node)
    if axes is None:
        return x.squeeze()
    for ax in sorted((ax % x.dim() for ax in axes), reverse=True):
        x = x.squeeze(ax)
    return x


@_register("Unsqueeze")
def _unsqueeze(args: Args, node: Node) -> Tensor:
    x = args[0]
    axes = _axes(args, node) or []
    rank = x.dim() + len(axes)
    for ax in sorted(ax % rank for ax in axes):
        x = x.unsqueeze(ax)
    return x


@_register("Concat")
def _concat(args: Args, node: Node) -> Tensor:
    ts = [t for t in args if t is not None]
    axis = int(node.attrs["axis"])
    rank = max(t.dim() for t in ts)
    return torch.cat([t for t in ts if t.dim() == rank] or ts, dim=axis)


@_register("Split")
def _split(args: Args, node: Node) -> list[Tensor]:
    x = args[0]
    axis = int(node.attrs.get("axis", 0))
    split = _ints(_arg(args, 1)) if _arg(args, 1) is not None else node.attrs.get("split")
    if split is None:
        n = int(node.attrs.get("num_outputs", len(node.outputs)))
        size = -(-x.shape[axis] // n)
        return list(torch.split(x, size, dim=axis))
    return list(torch.split(x, list(split), dim=axis))


@_register("Slice")
def _slice_op(args: Args, node: Node) -> Tensor:
    x = args[0]
    if _arg(args, 1) is None:  # opset < 10: attributes
        starts, ends = list(node.attrs["starts"]), list(node.attrs["ends"])
        axes, steps = node.attrs.get("axes"), None
    else:
        starts, ends = _ints(args[1]), _ints(args[2])
        axes, steps = _ints(_arg(args, 3)), _ints(_arg(args, 4))
    axes = list(axes) if axes is not None else list(range(len(starts)))
    steps = steps or [1] * len(starts)
    for s, e, ax, st in zip(starts, ends, axes, steps, strict=True):
        ax %= x.dim()
        n = x.shape[ax]
        if st > 0:
            s = max(0, min(n, s + n if s < 0 else s))
            e = max(0, min(n, e + n if e < 0 else e))
            x = x.narrow(ax, s, max(0, e - s))[(slice(None),) * ax + (slice(None, None, st),)]
        else:
            s = max(-1, min(n - 1, s + n if s < 0 else s))
            e = max(-1, min(n - 1, e + n if e < 0 else e))
            x = x.index_select(ax, torch.arange(s, e, st, dtype=torch.int64))
    return x


@_register("Gather")
def _gather(args: Args, node: Node) -> Tensor:
    x = args[0]
    axis = int(node.attrs.get("axis", 0)) % x.dim()
    idx = args[1].long()
    idx = torch.where(idx < 0, idx + x.shape[axis], idx)
    out = x.index_select(axis, idx.reshape(-1))
    return out.reshape(x.shape[:axis] + idx.shape + x.shape[axis + 1:])


@_register("Shape")
def _shape(args: Args, node: Node) -> Tensor:
    shape = list(args[0].shape)
    start, end = node.attrs.get("start", 0), node.attrs.get("end")
    return torch.tensor(shape[start:end], dtype=torch.int64)


@_register("Size")
def _size(args: Args, node: Node) -> Tensor:
    return torch.tensor(args[0].numel(), dtype=torch.int64)


@_register("Expand")
def _expand(args: Args, node: Node) -> Tensor:
    x = args[0]
    shape = torch.broadcast_shapes(x.shape, tuple(_ints(args[1])))
    return x.expand(shape)


@_register("Tile")
def _tile(args: Args, node: Node) -> Tensor:
    return args[0].repeat(*_ints(args[1]))


def _pad_index(n: int, begin: int, end: int, mode: str) -> Tensor:
    i = torch.arange(-begin, n + end, dtype=torch.int64)
    if mode == "edge":
        return i.clamp(0, n - 1)
    if mode == "wrap":
        return i % n
    if n == 1:  # reflect on a single element
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = i % period
    return torch.where(i < n, i, period - i)


@_register("Pad")
def _pad(args: Args, node: Node) -> Tensor:
    x = args[0]
    rank = x.dim()
    if _arg(args, 1) is None:  # opset < 11: attributes
        pads, value, axes = list(node.attrs["pads"]), float(node.attrs.get("value", 0.0)), list(range(rank))
    else:
        pads = _ints(args[1])
        v = _arg(args, 2)
        value = v.reshape(-1)[0].item() if v is not None and v.numel() else 0
        axes = _ints(_arg(args, 3)) or list(range(rank))
    begin, end = [0] * rank, [0] * rank
    for i, ax in enumerate(axes):
        begin[ax % rank], end[ax % rank] = pads[i], pads[i + len(axes)]
    mode = node.attrs.get("mode", "constant")
    if mode == "constant":
        return F.pad(x, _torch_pad(begin, end), value=value)
    if mode not in ("edge", "wrap", "reflect"):
        raise OccamError(f"Pad mode {mode!r} is not an ONNX pad mode", "use constant, reflect, edge or wrap")
    for ax in range(rank):
        if begin[ax] or end[ax]:
            x = x.index_select(ax, _pad_index(x.shape[ax], begin[ax], end[ax], mode))
    return x


@_register("DepthToSpace")
def _depth_to_space(args: Args, node: Node) -> Tensor:
    x = args[0]
    b = int(node.attrs["blocksize"])
    n, c, h, w = x.shape
    if node.attrs.get("mode", "DCR") == "CRD":
        y = x.reshape(n, c // (b * b), b, b, h, w).permute(0, 1, 4, 2, 5, 3)
    else:
        y = x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
    return y.reshape(n, c // (b * b), h * b, w * b)


@_register("SpaceToDepth")
def _space_to_depth(args: Args, node: Node) -> Tensor:
    x = args[0]
    b = int(node.attrs["blocksize"])
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // b, b, w // b, b)
    y = y.permute(0, 1, 3, 5, 2, 4) if node.attrs.get("mode", "DCR") == "CRD" else y.permute(0, 3, 5, 1, 2, 4)
    return y.reshape(n, c * b * b, h // b, w // b)


def run_op(node: Node, args: Args) -> list[Tensor]:
    """Run one node through the dispatch table; always a list (one tensor per output)."""
    try:
        fn = OPS[node.op]
    except KeyError:
        raise OccamError(f"ONNX op {node.op!r} cannot be run by the interpreter",
                         "use only ops on the guard's allowed list (docs/scoring.md)") from None
    out = fn(args, node)
    return [out] if isinstance(out, Tensor) else list(out)
