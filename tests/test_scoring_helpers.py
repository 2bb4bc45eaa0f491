"""Builders of small, real ONNX models for the scoring tests (no tests here)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from occam.tasks import Task, loaders

OPSET = 20
IN_SHAPE = (1, 4, 4)
CLASSES = 3


def synthetic_task(name: str = "scoring-synth", n: int = 60, seed: int = 0, input_shape=IN_SHAPE,
                   classes: int = CLASSES, cls=Task) -> Task:
    """A tiny task whose data is generated here (materialized under the test's OCCAM_CACHE)."""
    rng = np.random.default_rng(seed)

    def raw() -> loaders.RawData:
        return loaders.RawData(
            train_x=rng.integers(0, 256, (n, *input_shape), dtype=np.uint8),
            train_y=np.arange(n, dtype=np.int64) % classes,
            test_x=rng.integers(0, 256, (n, *input_shape), dtype=np.uint8),
            test_y=rng.permutation(np.arange(n, dtype=np.int64) % classes),
        )

    return cls(name=name, title=name, input_shape=tuple(input_shape), num_classes=classes,
               class_names=tuple(str(i) for i in range(classes)), default_lam=10.0, val_size=n // 3,
               description="synthetic test task", raw_loader=raw,
               locate=lambda: loaders.Located(True, "generated in the test"))


def io(in_shape=IN_SHAPE, classes=CLASSES, batch="batch", in_type=TensorProto.FLOAT):
    x = helper.make_tensor_value_info("x", in_type, [batch, *in_shape])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, classes])
    return x, y


def make(nodes, initializers=(), *, in_shape=IN_SHAPE, classes=CLASSES, batch="batch", sparse=(),
         functions=(), extra_opsets=(), in_type=TensorProto.FLOAT) -> onnx.ModelProto:
    x, y = io(in_shape, classes, batch, in_type)
    graph = helper.make_graph(list(nodes), "g", [x], [y], initializer=list(initializers),
                              sparse_initializer=list(sparse))
    opsets = [helper.make_opsetid("", OPSET), *[helper.make_opsetid(d, v) for d, v in extra_opsets]]
    model = helper.make_model(graph, opset_imports=opsets, functions=list(functions))
    model.ir_version = 10
    return model


def linear(W: np.ndarray | None = None, b: np.ndarray | None = None, *, in_shape=IN_SHAPE, classes=CLASSES,
           batch="batch", gemm_attrs=None) -> onnx.ModelProto:
    """y = Flatten(x) @ W.T + b via Gemm(transB=1)."""
    d = int(np.prod(in_shape))
    rng = np.random.default_rng(1)
    W = rng.normal(size=(classes, d)).astype(np.float32) if W is None else W
    b = rng.normal(size=(classes,)).astype(np.float32) if b is None else b
    nodes = [helper.make_node("Flatten", ["x"], ["f"], axis=1, name="flatten"),
             helper.make_node("Gemm", ["f", "W", "b"], ["y"], transB=1, name="gemm", **(gemm_attrs or {}))]
    return make(nodes, [numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "b")],
                in_shape=in_shape, classes=classes, batch=batch)


def to_bytes(model: onnx.ModelProto) -> bytes:
    return model.SerializeToString()
