"""The Lens's view of one model: an editable PyTorch module, its layers, the task data, metrics.

Every model the Lens opens becomes an :class:`~occam.interp.OnnxModule`: ONNX
files are checked by the arena's guard and converted; PyTorch modules are first exported with
:func:`occam.models.export_bytes` (the same file they would be submitted as). All views then
share one representation in which a *layer* is an ONNX value name.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import torch

from occam.errors import OccamError
from occam.interp import OnnxModule
from occam.tasks import Task

__all__ = ["LensModel", "Layer", "ModelInfo", "open_model", "bit_nnz"]

# Ops whose outputs are listed as layers (others are plumbing: shapes, reshapes, bias adds).
_LAYER_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Gelu",
              "Sigmoid", "Tanh", "HardSwish", "Mish", "Softplus", "MaxPool", "AveragePool", "GlobalAveragePool",
              "GlobalMaxPool", "Add", "LayerNormalization", "BatchNormalization", "ReduceMean", "Flatten"}
_CF_OPS = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
           "BatchNormalization", "InstanceNormalization", "GroupNormalization"}


def bit_nnz(t: torch.Tensor) -> int:
    """Non-zero float32 numbers by bit pattern (-0.0 counts), as the scorer counts them."""
    return int((t.detach().float().contiguous().view(torch.int32) != 0).sum())


@dataclass
class Layer:
    """One addressable value: ``name`` (ONNX value name), producing ``op``, per-example ``shape``,
    ``axis`` (the unit axis within the per-example shape + 1, i.e. in the batched tensor)."""

    name: str
    op: str
    shape: tuple[int, ...]
    axis: int
    index: int  # position in the graph

    @property
    def units(self) -> int:
        return self.shape[self.axis - 1]

    @property
    def spatial(self) -> bool:
        """True for channel-first maps with spatial (or sequence) axes after the channels."""
        return self.axis == 1 and len(self.shape) >= 2

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "op": self.op, "shape": list(self.shape), "axis": self.axis, "units": self.units,
                "spatial": self.spatial}


@dataclass
class ModelInfo:
    """A summary of an opened model (kind, task, shapes, op counts, checkpoint axis, validation size).

    ``checkpoints`` is the training-checkpoint axis (labels; ``checkpoint`` the one shown);
    a single ONNX file has one.
    """

    kind: str  # the model kind's registry name
    task: str
    input_shape: tuple[int, ...]
    num_classes: int
    ops: dict[str, int]
    has_attention: bool
    checkpoints: list[str] = field(default_factory=lambda: ["final"])
    checkpoint: int = 0
    n_val: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "task": self.task, "input_shape": list(self.input_shape),
                "num_classes": self.num_classes, "ops": self.ops, "has_attention": self.has_attention,
                "checkpoints": self.checkpoints, "checkpoint": self.checkpoint, "n_val": self.n_val}


class LensModel:
    """An image classifier opened in the Lens (the ``image-classifier`` model kind's model object).

    Module, task, layers, the one validation set and its :class:`~occam.lens.cache.ActivationCache`
    (``cache``: every view and the weight editor read it), base metrics, and the checkpoint axis
    (``checkpoints``: (label, ONNX bytes) pairs; :meth:`checkout` switches the one shown).

    ``n_val`` caps the validation examples (default: the whole validation split); every view
    reports this number as ``n_val``.
    """

    kind = "image-classifier"

    def __init__(self, data: bytes, task: Task, *, name: str = "model", n_val: int | None = None,
                 guard: bool = True, checkpoints: list[tuple[str, bytes]] | None = None,
                 n_view: int | None = None):
        from occam.lens.cache import ActivationCache

        if n_view is not None and n_val is None:  # the former name of n_val
            n_val = n_view
        if n_val is not None and n_val < 1:
            raise OccamError(f"the Lens needs at least one validation example, got n_val={n_val}",
                             "leave n_val unset to use the whole validation split")
        self.task = task
        self.name = name
        self.guard = guard
        self.lam = task.default_lam
        x, y = task.floats("val"), task.labels("val")
        self.x_all = torch.from_numpy(x)
        self.y_all = torch.from_numpy(y.astype(np.int64))
        n = len(x) if n_val is None else min(len(x), n_val)
        self.checkpoints = checkpoints or [("final", data)]
        self.checkpoint = next((i for i, c in enumerate(self.checkpoints) if c[1] == data), len(self.checkpoints) - 1)
        self._editor: Any = None
        self._load(data)
        self.cache = ActivationCache(self.module, self.x_all[:n], self.y_all[:n])
        self.layers = self._find_layers()

    def _load(self, data: bytes) -> None:
        from occam.interp import convert
        from occam.scoring import count_model, inspect_model

        if self.guard:
            report = inspect_model(data, self.task, cross_check=False)
            if not report.ok:
                raise OccamError(f"the arena's guard rejects this model: {report.reason}", report.fix)
        self.data = data
        self.hash = hashlib.sha256(data).hexdigest()[:12]
        self.proto = onnx.load_from_string(data)
        self.module: OnnxModule = convert(self.proto)
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.base_nnz = count_model(self.proto).nnz
        self.orig = {n: self.module.weight(n).detach().clone() for n in self.module.weight_names}

    @property
    def info(self) -> ModelInfo:
        ops: dict[str, int] = {}
        for nd in self.module.nodes:
            ops[nd.op] = ops.get(nd.op, 0) + 1
        return ModelInfo(kind=self.kind, task=self.task.name, input_shape=tuple(self.task.input_shape),
                         num_classes=self.task.num_classes, ops=ops, has_attention="Softmax" in ops,
                         checkpoints=[c[0] for c in self.checkpoints], checkpoint=self.checkpoint, n_val=self.n_val)

    @property
    def x(self) -> torch.Tensor:
        """The validation inputs every view uses."""
        return self.cache.x

    @property
    def y(self) -> torch.Tensor:
        return self.cache.y

    @property
    def n_val(self) -> int:
        return self.cache.n

    @property
    def editor(self) -> Any:
        """The weight editor (:class:`~occam.lens.editor.Editor`), created on first use, on the same cache."""
        if self._editor is None:
            from occam.lens.editor import Editor

            self._editor = Editor(self)
        return self._editor

    def checkout(self, index: int) -> None:
        """Show training checkpoint ``index`` (views follow: the cache and the editor start over)."""
        if not 0 <= index < len(self.checkpoints):
            raise OccamError(f"no checkpoint {index}: this model has {len(self.checkpoints)}",
                             f"pick 0..{len(self.checkpoints) - 1}")
        if index == self.checkpoint:
            return
        self._load(self.checkpoints[index][1])
        self.checkpoint = index
        self.cache.module = self.module
        self.cache.invalidate()
        self._editor = None
        self.layers = self._find_layers()

    # ---- weights and nnz -------------------------------------------------------------------
    def nnz(self) -> int:
        """The nnz the scorer would count for the current (possibly edited) weights."""
        total = self.base_nnz
        for n, w0 in self.orig.items():
            w = self.module.weight(n)
            if not torch.equal(w.view(torch.int32), w0.view(torch.int32)):
                total += bit_nnz(w) - bit_nnz(w0)
        return total

    def weight_nnz(self, name: str) -> int:
        return bit_nnz(self.module.weight(name))

    def node_weights(self, node_index: int) -> list[str]:
        return [i for i in self.module.nodes[node_index].inputs if self.module.is_weight(i)]

    def reset_weights(self) -> None:
        with torch.no_grad():
            for n, w0 in self.orig.items():
                self.module.weight(n).copy_(w0)
        self.cache.invalidate()

    def to_onnx_bytes(self) -> bytes:
        return self.module.to_bytes()

    # ---- running -----------------------------------------------------------------------------
    def env(self) -> dict[str, torch.Tensor]:
        """All values of the graph on the validation set (the activation cache's values)."""
        return self.cache.values()

    def invalidate(self) -> None:
        self.cache.invalidate()

    @torch.no_grad()
    def logits(self, x: torch.Tensor | None = None, overrides: dict | None = None) -> torch.Tensor:
        if x is None and not overrides:
            return self.env()[self.module.output_name]
        x = self.x if x is None else x
        return self.module.run(x, overrides=overrides, keep=set())[self.module.output_name]

    def metrics(self, logits: torch.Tensor | None = None, y: torch.Tensor | None = None,
                nnz: int | None = None) -> dict[str, Any]:
        """score, ce, accuracy (as the scorer computes them) on the validation set (``n``: its size)."""
        z = self.logits() if logits is None else logits
        return fast_metrics(z, self.y if y is None else y, self.nnz() if nnz is None else nnz, self.lam,
                            probs=self.output_is_probs)

    @property
    def output_is_probs(self) -> bool:
        """Whether the model's output is already a softmax: a final Softmax node, or non-negative rows that
        sum to 1 on the val set. Its loss is then computed on the log of the output."""
        cached = getattr(self, "_probs", None)
        if cached is None or cached[0] != self.hash:
            mod = self.module
            node_i = mod.producer.get(mod.output_name)
            final = node_i is not None and mod.nodes[node_i].op == "Softmax"
            cached = (self.hash, bool(final or looks_like_probabilities(self.logits())))
            self._probs = cached
        return cached[1]

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise OccamError(f"no layer {name!r} in this model", "pick one of: " + ", ".join(x.name for x in self.layers))

    def unit_acts(self, name: str, env: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """[N, units]: each unit's activation per image (mean over spatial or token positions)."""
        v = (env or self.env())[name]
        layer = self.layer(name)
        v = v.movedim(layer.axis, 1)
        return v.reshape(v.shape[0], v.shape[1], -1).mean(dim=2)

    def head(self) -> tuple[str, str, str | None, bool] | None:
        """(input value, weight, bias, transposed) of the final linear layer, if it has one."""
        out = self.module.output_name
        node_i = self.module.producer.get(out)
        bias = None
        if node_i is None:
            return None
        node = self.module.nodes[node_i]
        if node.op == "Add" and any(self.module.is_weight(i) for i in node.inputs):
            bias = next(i for i in node.inputs if self.module.is_weight(i))
            other = next(i for i in node.inputs if i != bias)
            node_i = self.module.producer.get(other)
            if node_i is None:
                return None
            node = self.module.nodes[node_i]
        if node.op == "Gemm" and self.module.is_weight(node.inputs[1]) and not node.attrs.get("transA", 0):
            b = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else bias
            return node.inputs[0], node.inputs[1], b, bool(node.attrs.get("transB", 0))
        if node.op == "MatMul" and self.module.is_weight(node.inputs[1]):
            return node.inputs[0], node.inputs[1], bias, False
        return None

    def apply_head(self, h: torch.Tensor) -> torch.Tensor:
        """The final linear layer applied to features ``h`` [N, width] (the direct projection)."""
        spec = self.head()
        if spec is None:
            raise OccamError("this model has no final linear layer to project through")
        _, w, b, trans = spec
        W = self.module.weight(w)
        z = h @ (W.t() if trans else W)
        if b is not None:
            z = z + self.module.weight(b)
        return z

    # ---- layers ------------------------------------------------------------------------------
    @torch.no_grad()
    def _find_layers(self) -> list[Layer]:
        mod = self.module
        env = self.module.run(self.x[:2])
        axis: dict[str, int | None] = {mod.input_name: 1}
        out: list[Layer] = []
        for node in mod.nodes:
            for o in node.outputs:
                v = env.get(o)
                if v is None or not v.is_floating_point():
                    axis[o] = None
                    continue
                axis[o] = _layout(node, v, [env.get(n) for n in node.inputs], [axis.get(n) for n in node.inputs])
        for i, node in enumerate(mod.nodes):
            o = node.outputs[0]
            v = env.get(o)
            if v is None or not v.is_floating_point() or v.dim() < 2 or v.shape[0] != 2 or axis.get(o) is None:
                continue
            if node.op not in _LAYER_OPS and o != mod.output_name:
                continue
            cons = mod.consumers.get(o, [])
            if node.op == "MatMul" and not any(mod.is_weight(n) for n in node.inputs):
                continue  # attention products (patterns are a later, transformer-specific view)
            if node.op in ("MatMul", "Conv", "Gemm") and len(cons) == 1:
                nxt = mod.nodes[cons[0]]
                if nxt.op == "Add" and any(mod.is_weight(n) for n in nxt.inputs):
                    continue  # the bias add that follows is the layer
            if (node.op == "Add" and v.dim() == 4 and len(cons) == 1 and mod.nodes[cons[0]].op == "Relu"
                    and any(mod.is_weight(n) or mod.constant(n) is not None for n in node.inputs)):
                continue  # a per-channel affine feeding a ReLU (a residual Add of two computed values is a layer)
            out.append(Layer(o, node.op, tuple(v.shape[1:]), int(axis[o]), i))
        return out


def _layout(node: Any, v: torch.Tensor, ins: list, axes: list) -> int | None:
    """Which axis of ``v`` holds units (1: channel-first; last: features-last)."""
    r = v.dim()
    if r == 2:
        return 1
    if node.op in _CF_OPS:
        return 1
    if node.op in ("Gemm", "MatMul", "LayerNormalization", "Softmax"):
        return r - 1
    x, a = (ins[0] if ins else None), (axes[0] if axes else None)
    if node.op == "Transpose" and a is not None:
        return list(node.attrs.get("perm") or reversed(range(r))).index(a)
    if node.op in ("Reshape", "Flatten", "Unsqueeze", "Squeeze"):
        if x is not None and a is not None and x.dim() >= 2 and r >= 2 and tuple(x.shape[:2]) == tuple(v.shape[:2]):
            return a if a < r else None
        if node.op == "Unsqueeze" and x is not None and x.dim() == 2 and r == 3:
            return 1  # [N, L] -> [N, 1, L]: a one-channel signal
        return None
    for t, ax in zip(ins, axes, strict=False):
        if t is not None and ax is not None and t.dim() == r:
            return ax
    return None


def looks_like_probabilities(z: np.ndarray | torch.Tensor, tol: float = 1e-3) -> bool:
    """Whether outputs ``z`` [N, C] are already probabilities: non-negative, every row summing to 1."""
    zz = z.detach().numpy() if isinstance(z, torch.Tensor) else np.asarray(z)
    if zz.ndim != 2 or zz.size == 0 or zz.shape[1] < 2:
        return False
    return bool(zz.min() >= 0 and np.abs(zz.sum(axis=1, dtype=np.float64) - 1).max() < tol)


def fast_metrics(z: torch.Tensor, y: torch.Tensor, nnz: int, lam: float, probs: bool | None = None) -> dict[str, Any]:
    """CE (float64, natural log), accuracy and score, as :func:`occam.scoring.compute_metrics` computes them.

    ``probs``: the outputs are already probabilities (a model ending in a softmax), so the loss is computed
    on their log (cross-entropy on logits would apply a second softmax); None: detect it from the values
    (:func:`looks_like_probabilities`). The result's ``probs`` says which basis was used.
    """
    from occam.scoring import score_value

    # numpy, single-threaded: on a busy machine torch's parallel kernels wait for a second core
    zz = z.detach().numpy().astype(np.float64)
    if probs is None:
        probs = looks_like_probabilities(zz)
    if probs:
        zz = np.log(np.clip(zz, 1e-12, None))
    yy = y.numpy()
    m = zz.max(axis=1)
    lse = m + np.log(np.exp(zz - m[:, None]).sum(axis=1))
    ce = float((lse - zz[np.arange(len(yy)), yy]).mean())
    acc = float((zz.argmax(axis=1) == yy).mean())
    if not math.isfinite(ce):
        ce = float("inf")
    score = score_value(ce, nnz, lam) if math.isfinite(ce) else float("inf")
    return {"ce": ce, "accuracy": acc, "nnz": int(nnz), "score": score, "lam": lam, "n": int(len(y)),
            "probs": bool(probs)}


def open_model(model: Any, task: str | Task | None = None, **kwargs: Any) -> Any:
    """Open ``model`` in the Lens through the model-kind registry (see :func:`occam.lens.kinds.open_model`)."""
    from occam.lens.kinds import open_model as _open

    return _open(model, task, **kwargs)
