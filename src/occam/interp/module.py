"""An ONNX graph as an ``nn.Module`` that runs node by node through the dispatch table.

Every float initializer (and every float ``Constant``) is an ``nn.Parameter`` (so it can be
edited or differentiated), integer ones are plain tensors, and every node output is addressable
by its ONNX value name: ``run(x)`` returns the environment ``{value name: tensor}``,
``run(x, overrides={name: fn})`` replaces a value on the way, and ``rerun(env, dirty)``
recomputes only the nodes downstream of changed values.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from occam.errors import OccamError
from occam.interp.ops import OPS, Node, constant_value, run_op

__all__ = ["OnnxModule", "convert", "SUPPORTED_OPS", "readable_weight_names"]

Override = Callable[[torch.Tensor], torch.Tensor]
SUPPORTED_OPS: frozenset[str] = frozenset(OPS)
_DEFAULT_DOMAINS = ("", "ai.onnx")


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


# ---- readable weight names -------------------------------------------------------------------

_LOST = re.compile(r"^(onnx::.*|\d+|)$")
_ROLES: dict[str, tuple[str, ...]] = {
    "Conv": ("input", "weight", "bias"), "ConvTranspose": ("input", "weight", "bias"),
    "Gemm": ("input", "weight", "bias"), "MatMul": ("input", "weight"),
    "BatchNormalization": ("input", "weight", "bias", "running_mean", "running_var"),
    "LayerNormalization": ("input", "weight", "bias"), "InstanceNormalization": ("input", "weight", "bias"),
    "GroupNormalization": ("input", "weight", "bias"), "RMSNormalization": ("input", "weight"),
    "PRelu": ("input", "weight"), "Add": ("input", "bias"), "Mul": ("input", "scale"),
}


def _module_path(node_name: str) -> str:
    """``/features/conv1/Conv`` → ``features.conv1``; ``Conv_0`` → ``Conv_0``."""
    parts = [p for p in node_name.strip("/").split("/") if p]
    if len(parts) > 1:
        parts = parts[:-1]  # the last part names the op (``Conv``, ``Gemm``)
    return ".".join(parts)


def readable_weight_names(model: onnx.ModelProto) -> dict[str, str]:
    """``{ONNX name: display name}`` for every initializer and Constant output of the main graph.

    A name that an exporter lost (the legacy exporter's ``onnx::Conv_28``, a bare number) is
    rebuilt from the name of the first node that consumes it and the input's role there
    (``conv1.weight``, ``Conv_0.bias``); other names are kept as they are. Display names are unique.
    """
    g = model.graph
    names = [t.name for t in g.initializer] + [n.output[0] for n in g.node if n.op_type == "Constant"]
    consumer: dict[str, tuple[onnx.NodeProto, int, int]] = {}
    for ni, n in enumerate(g.node):
        for pos, i in enumerate(n.input):
            consumer.setdefault(i, (n, pos, ni))
    out: dict[str, str] = {}
    used: set[str] = set(n for n in names if not _LOST.match(n))
    for name in names:
        if not _LOST.match(name) or name not in consumer:
            out[name] = name
            continue
        node, pos, ni = consumer[name]
        base = _module_path(node.name) or f"{node.op_type}_{ni}"
        roles = _ROLES.get(node.op_type, ())
        role = roles[pos] if pos < len(roles) else f"input{pos}"
        cand = f"{base}.{role}"
        k = 2
        while cand in used:
            cand = f"{base}.{role}_{k}"
            k += 1
        used.add(cand)
        out[name] = cand
    return out


# ---- the module ------------------------------------------------------------------------------

class OnnxModule(nn.Module):
    """An ONNX graph as an ``nn.Module``; float initializers are editable ``nn.Parameter``s.

    ``weight(name)`` (an ONNX initializer or Constant output name) is the parameter and
    ``display_name(name)`` its readable name; ``nodes`` is the graph in topological order;
    ``input_names``/``output_names`` the graph's ends (``input_name``/``output_name`` when there is
    one of each).
    """

    def __init__(self, model: onnx.ModelProto):
        super().__init__()
        g = model.graph
        self.proto = model
        self.opset = next((int(o.version) for o in model.opset_import if o.domain in _DEFAULT_DOMAINS), 0)
        self.params = nn.ParameterDict()
        self._keys: dict[str, str] = {}
        self._consts: dict[str, torch.Tensor] = {}
        for init in g.initializer:
            self._add_tensor(init.name, numpy_helper.to_array(init))
        self.nodes: list[Node] = []
        for i, n in enumerate(g.node):
            if n.domain not in _DEFAULT_DOMAINS:
                raise OccamError(f"the interpreter runs only default-domain ONNX ops, not {n.domain}:{n.op_type} "
                                 f"(node {n.name or i})", "use only standard ONNX ops from the guard's allowed list")
            if n.op_type not in OPS:
                raise OccamError(f"ONNX op {n.op_type!r} (node {n.name or i}) cannot be run: it is not on the "
                                 "guard's allowed list", "use only the allowed ops listed in docs/scoring.md")
            attrs = {a.name: _attr(a) for a in n.attribute}
            if n.op_type == "Constant":
                self._add_tensor(n.output[0], constant_value(attrs))
                continue
            self.nodes.append(Node(n.op_type, list(n.input), list(n.output), attrs, n.name or f"node{i}",
                                   self.opset))
        known = set(self._keys) | set(self._consts)
        self.input_names: list[str] = [i.name for i in g.input if i.name not in known]
        self.output_names: list[str] = [o.name for o in g.output]
        self.producer: dict[str, int] = {o: i for i, n in enumerate(self.nodes) for o in n.outputs}
        self.consumers: dict[str, list[int]] = {}
        for i, n in enumerate(self.nodes):
            for name in n.inputs:
                self.consumers.setdefault(name, []).append(i)
        self._display = readable_weight_names(model)

    def _add_tensor(self, name: str, arr: np.ndarray) -> None:
        if arr.dtype.kind == "f":
            key = _key(name)
            self.params[key] = nn.Parameter(torch.from_numpy(np.array(arr, dtype=np.float32)))
            self._keys[name] = key
        else:
            self._consts[name] = torch.from_numpy(np.array(arr))

    @property
    def input_name(self) -> str:
        if len(self.input_names) != 1:
            raise OccamError(f"the model has {len(self.input_names)} inputs ({', '.join(self.input_names)}); "
                             "a single input name exists only for one-input models",
                             "pass {input name: tensor} to run() for models with several inputs")
        return self.input_names[0]

    @property
    def output_name(self) -> str:
        if len(self.output_names) != 1:
            raise OccamError(f"the model has {len(self.output_names)} outputs; a single output name exists only "
                             "for one-output models", "read the outputs by name from run()'s result")
        return self.output_names[0]

    # ---- weights --------------------------------------------------------------------------
    @property
    def weight_names(self) -> list[str]:
        return list(self._keys)

    def weight(self, name: str) -> nn.Parameter:
        return self.params[self._keys[name]]

    def is_weight(self, name: str) -> bool:
        return name in self._keys

    def display_name(self, name: str) -> str:
        """A readable name for a weight (see :func:`readable_weight_names`); the ONNX name stays the key."""
        return self._display.get(name, name)

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
            raise OccamError(f"value {name!r} is used before it is computed",
                             "pass every graph input to run() (a dict {input name: tensor})")
        return c

    def run_node(self, node: Node, env: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        return run_op(node, [self._value(n, env) for n in node.inputs])

    def _inputs(self, x: torch.Tensor | dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if isinstance(x, dict):
            missing = [n for n in self.input_names if n not in x and self.constant(n) is None]
            if missing:
                raise OccamError(f"no value given for graph input(s) {missing}", "pass every graph input by name")
            return dict(x)
        return {self.input_name: x}

    def run(self, x: torch.Tensor | dict[str, torch.Tensor], overrides: dict[str, Override] | None = None,
            keep: set[str] | None = None, stop_at: str | None = None) -> dict[str, torch.Tensor]:
        """Run the graph; returns ``{value name: tensor}`` (all values, or ``keep`` plus the outputs).

        ``x``: the input tensor, or ``{input name: tensor}`` (several inputs, or a graph input
        that replaces an initializer). ``overrides[name](value)`` replaces a value as soon as it is
        computed (inputs too). ``stop_at``: stop once that value is computed.
        """
        overrides = overrides or {}
        env = self._inputs(x)
        for name in self.output_names:  # an output that is a constant (a folded Constant node)
            if name not in env and name not in self.producer and self.constant(name) is not None:
                env[name] = self.constant(name)
        for name in list(env):
            if name in overrides:
                env[name] = overrides[name](env[name])
        last_use = None
        if keep is not None:
            last_use = {}
            for i, n in enumerate(self.nodes):
                for name in n.inputs:
                    last_use[name] = i
        outputs = set(self.output_names)
        for i, node in enumerate(self.nodes):
            outs = self.run_node(node, env)
            for name, val in zip(node.outputs, outs, strict=False):
                env[name] = overrides[name](val) if name in overrides else val
            if stop_at is not None and stop_at in node.outputs:
                break
            if last_use is not None:
                for name in node.inputs:
                    if last_use.get(name) == i and name not in keep and name not in outputs:
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

    def forward(self, *xs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """The graph's output(s) for positional inputs in the graph's input order."""
        if len(xs) != len(self.input_names):
            raise OccamError(f"the model takes {len(self.input_names)} input(s), got {len(xs)}",
                             "pass one tensor per graph input, in order")
        env = self.run(dict(zip(self.input_names, xs, strict=True)), keep=set())
        outs = tuple(env[n] for n in self.output_names)
        return outs[0] if len(outs) == 1 else outs

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


def convert(model: onnx.ModelProto | bytes | str | Path) -> OnnxModule:
    """``OnnxModule`` (in eval mode) for an ONNX model: a ``ModelProto``, its bytes or a file path."""
    if isinstance(model, bytes | bytearray):
        try:
            model = onnx.load_from_string(bytes(model))
        except Exception as exc:
            raise OccamError(f"cannot parse the ONNX model ({type(exc).__name__})",
                             "pass the bytes of an .onnx file") from exc
    elif not isinstance(model, onnx.ModelProto):
        try:
            model = onnx.load(str(model))
        except Exception as exc:
            raise OccamError(f"cannot read ONNX file {model}: {exc}", "pass the path of an .onnx model file") from exc
    return OnnxModule(model).eval()
