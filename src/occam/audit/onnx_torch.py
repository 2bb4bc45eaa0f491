"""A tiny ONNX → PyTorch interpreter for the ops the zoo exports, so auditors get gradients.

Supports Conv, Gemm, MatMul, Relu, MaxPool, AveragePool, GlobalAveragePool, ReduceMean, Mul,
Add, Sub, Div, Reshape, Flatten, Identity, Constant, Transpose, Softmax, Sigmoid, Tanh,
Shape, Gather, Unsqueeze, Squeeze and Concat: what the MLP, LeNet-5 and SepCNN of the zoo
export to at opset 20. Weights become frozen tensors; the input can require gradients.

The Lens's general converter (``occam.lens.onnx_to_torch.convert``) is preferred by :func:`load_torch`;
this interpreter is the fallback (and what the audit tests check against onnxruntime).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from occam.errors import OccamError


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class OnnxModule(nn.Module):
    """Runs an ONNX graph with PyTorch ops (differentiable in the input)."""

    def __init__(self, proto):
        super().__init__()
        from onnx import numpy_helper

        self.graph = proto.graph
        self.consts: dict[str, torch.Tensor] = {}
        for init in proto.graph.initializer:
            arr = numpy_helper.to_array(init)
            self.consts[init.name] = torch.from_numpy(np.array(arr))
        self.input_name = [i.name for i in proto.graph.input if i.name not in self.consts][0]
        self.output_name = proto.graph.output[0].name
        unsupported = sorted({n.op_type for n in proto.graph.node if n.op_type not in _OPS})
        if unsupported:
            raise OccamError(f"the audit converter does not support ONNX ops {unsupported}",
                             "audit models exported by the zoo (MLP, LeNet-5, SepCNN), or use the Lens converter")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env = dict(self.consts)
        env[self.input_name] = x
        for node in self.graph.node:
            ins = [env[i] if i else None for i in node.input]
            outs = _OPS[node.op_type](ins, _attrs(node))
            if not isinstance(outs, tuple):
                outs = (outs,)
            for name, val in zip(node.output, outs, strict=False):
                env[name] = val
        return env[self.output_name]


def _conv(ins, a):
    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 else None
    pads = a.get("pads", [0] * (2 * (w.dim() - 2)))
    nd = w.dim() - 2
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise OccamError("Conv with auto_pad is not supported by the audit converter", "export with explicit pads")
    sym = all(pads[i] == pads[i + nd] for i in range(nd))
    if not sym:
        x = F.pad(x, [p for i in reversed(range(nd)) for p in (pads[i], pads[i + nd])])
        pad = 0
    else:
        pad = tuple(pads[:nd])
    fn = F.conv1d if nd == 1 else F.conv2d
    return fn(x, w, b, stride=tuple(a.get("strides", [1] * nd)), padding=pad,
              dilation=tuple(a.get("dilations", [1] * nd)), groups=a.get("group", 1))


def _pool(kind):
    def run(ins, a):
        x = ins[0]
        k = tuple(a["kernel_shape"])
        nd = len(k)
        pads = a.get("pads", [0] * 2 * nd)
        stride = tuple(a.get("strides", [1] * nd))
        ceil = bool(a.get("ceil_mode", 0))
        if kind == "max":
            fn = F.max_pool1d if nd == 1 else F.max_pool2d
            return fn(x, k, stride, tuple(pads[:nd]), tuple(a.get("dilations", [1] * nd)), ceil_mode=ceil)
        fn = F.avg_pool1d if nd == 1 else F.avg_pool2d
        return fn(x, k, stride, tuple(pads[:nd]), ceil_mode=ceil, count_include_pad=bool(a.get("count_include_pad", 0)))
    return run


def _gemm(ins, a):
    x, w = ins[0], ins[1]
    if a.get("transA", 0):
        x = x.t()
    if a.get("transB", 0):
        w = w.t()
    y = a.get("alpha", 1.0) * (x @ w)
    if len(ins) > 2 and ins[2] is not None:
        y = y + a.get("beta", 1.0) * ins[2]
    return y


def _reduce_mean(ins, a):
    axes = a.get("axes")
    if axes is None and len(ins) > 1 and ins[1] is not None:
        axes = [int(v) for v in ins[1].tolist()]
    keep = bool(a.get("keepdims", 1))
    if not axes:
        return ins[0].mean() if not a.get("noop_with_empty_axes", 0) else ins[0]
    return ins[0].mean(dim=tuple(axes), keepdim=keep)


def _reshape(ins, a):
    shape = [int(v) for v in ins[1].tolist()]
    x = ins[0]
    if not a.get("allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


def _axes(ins, a):
    if "axes" in a:
        return list(a["axes"])
    return [int(v) for v in ins[1].tolist()] if len(ins) > 1 and ins[1] is not None else None


def _unsqueeze(ins, a):
    x = ins[0]
    for ax in sorted(_axes(ins, a)):
        x = x.unsqueeze(ax)
    return x


def _squeeze(ins, a):
    axes = _axes(ins, a)
    x = ins[0]
    if axes is None:
        return x.squeeze()
    for ax in sorted((ax % x.dim() for ax in axes), reverse=True):
        x = x.squeeze(ax)
    return x


def _constant(ins, a):
    from onnx import numpy_helper

    if "value" in a:
        return torch.from_numpy(np.array(numpy_helper.to_array(a["value"])))
    for k in ("value_float", "value_int"):
        if k in a:
            return torch.tensor(a[k])
    for k in ("value_floats", "value_ints"):
        if k in a:
            return torch.tensor(list(a[k]))
    raise OccamError("unsupported Constant node", "use the Lens converter")


_OPS = {
    "Conv": _conv, "Gemm": _gemm, "MatMul": lambda i, a: i[0] @ i[1],
    "Relu": lambda i, a: F.relu(i[0]), "Sigmoid": lambda i, a: torch.sigmoid(i[0]), "Tanh": lambda i, a: torch.tanh(i[0]),
    "MaxPool": _pool("max"), "AveragePool": _pool("avg"),
    "GlobalAveragePool": lambda i, a: i[0].mean(dim=tuple(range(2, i[0].dim())), keepdim=True),
    "ReduceMean": _reduce_mean,
    "Mul": lambda i, a: i[0] * i[1], "Add": lambda i, a: i[0] + i[1], "Sub": lambda i, a: i[0] - i[1],
    "Div": lambda i, a: i[0] / i[1],
    "Reshape": _reshape, "Flatten": lambda i, a: i[0].flatten(a.get("axis", 1)) if a.get("axis", 1) else i[0].reshape(1, -1),
    "Identity": lambda i, a: i[0], "Constant": _constant,
    "Transpose": lambda i, a: i[0].permute(*a["perm"]) if "perm" in a else i[0].permute(*reversed(range(i[0].dim()))),
    "Softmax": lambda i, a: torch.softmax(i[0], dim=a.get("axis", -1)),
    "Shape": lambda i, a: torch.tensor(list(i[0].shape), dtype=torch.int64),
    "Gather": lambda i, a: torch.index_select(i[0], a.get("axis", 0), i[1].reshape(-1).long()).reshape(
        tuple(i[0].shape[: a.get("axis", 0)]) + tuple(i[1].shape) + tuple(i[0].shape[a.get("axis", 0) + 1:])),
    "Unsqueeze": _unsqueeze, "Squeeze": _squeeze,
    "Concat": lambda i, a: torch.cat([t for t in i if t is not None], dim=a["axis"]),
}


def load_torch(path: str | Path, *, prefer_lens: bool = True) -> nn.Module:
    """An eval-mode PyTorch module computing the same logits as the ONNX file at ``path``.

    Uses the Lens's converter (``occam.lens.onnx_to_torch.convert``) when it is available and
    accepts the graph, else this module's interpreter.
    """
    import onnx

    if prefer_lens:
        try:
            from occam.lens.onnx_to_torch import convert as lens_convert
        except ImportError:
            lens_convert = None
        if lens_convert is not None:
            try:
                return lens_convert(str(path)).eval()
            except OccamError:
                pass
    try:
        proto = onnx.load(str(path))
    except Exception as exc:
        raise OccamError(f"cannot read ONNX file {path}: {exc}", "pass a model file of the zoo") from exc
    return OnnxModule(proto).eval()
