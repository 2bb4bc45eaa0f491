"""Tiny ONNX models for the arena tests and benchmarks (a digits linear classifier and variants)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def export_linear(out: Path, in_shape: tuple[int, ...] = (1, 8, 8), classes: int = 10, *, task: str | None = "digits",
                  steps: int = 150) -> Path:
    """Export a Flatten+Linear classifier (trained a little on ``task`` when given) to ``out``."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    n_in = int(np.prod(in_shape))
    model = nn.Sequential(nn.Flatten(), nn.Linear(n_in, classes))
    if task is not None and classes == 10:
        from occam.tasks import get_task

        t = get_task(task)
        x = torch.from_numpy(t.floats("train")).reshape(-1, *in_shape)
        y = torch.from_numpy(t.labels("train"))
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        for _ in range(steps):
            idx = torch.randint(0, len(x), (512,))
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    example = torch.rand(2, *in_shape)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(model, (example,), dynamo=True, opset_version=20,
                                 dynamic_shapes=({0: torch.export.Dim("batch")},), external_data=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    prog.save(str(out))
    return out


def variant(src: bytes, *, scale: float | None = None, nan_bias: bool = False, zero_fraction: float | None = None,
            seed: int = 0) -> bytes:
    """A copy of a linear model with its float initializers changed (same graph, same shapes)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load_from_string(src)
    rng = np.random.default_rng(seed)
    for init in m.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype != np.float32:
            continue
        arr = arr.copy()
        if scale is not None:
            arr *= np.float32(scale)
        if zero_fraction is not None and arr.ndim == 2:
            arr[rng.random(arr.shape) < zero_fraction] = 0.0
        if nan_bias and arr.ndim == 1:
            arr[:] = np.nan
        init.CopyFrom(numpy_helper.from_array(arr, init.name))
    return m.SerializeToString()


def slow_model(hidden: int = 1024, layers: int = 24, in_shape: tuple[int, ...] = (1, 8, 8), classes: int = 10) -> bytes:
    """A valid classifier that takes seconds on a few hundred images: one hidden×hidden weight reused by
    ``layers`` MatMul nodes (a small file, a lot of arithmetic)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    n_in = int(np.prod(in_shape))
    w_in = numpy_helper.from_array((rng.standard_normal((n_in, hidden)) * 0.1).astype(np.float32), "w_in")
    w_h = numpy_helper.from_array((rng.standard_normal((hidden, hidden)) / np.sqrt(hidden)).astype(np.float32), "w_h")
    w_out = numpy_helper.from_array((rng.standard_normal((hidden, classes)) * 0.1).astype(np.float32), "w_out")
    nodes = [helper.make_node("Flatten", ["input"], ["flat"], axis=1),
             helper.make_node("MatMul", ["flat", "w_in"], ["h0"])]
    for i in range(layers):
        nodes.append(helper.make_node("MatMul", [f"h{i}", "w_h"], [f"m{i}"]))
        nodes.append(helper.make_node("Relu", [f"m{i}"], [f"h{i + 1}"]))
    nodes.append(helper.make_node("MatMul", [f"h{layers}", "w_out"], ["logits"]))
    graph = helper.make_graph(
        nodes, "slow",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", *in_shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        initializer=[w_in, w_h, w_out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)
    onnx.checker.check_model(model)
    return model.SerializeToString()
