"""Models for the isolated-Lens tests: a memory bomb that passes the guard."""

from __future__ import annotations

import numpy as np


def tile_bomb(factor: int = 200_000, shape: tuple[int, ...] = (1, 8, 8), classes: int = 10) -> bytes:
    """A small, valid classifier whose ``Tile`` makes every example ``factor`` times larger at run time
    (``x`` flattened, tiled ``factor`` times, averaged back): the file is tiny, the guard accepts it, and a
    batch of a few hundred examples asks for gigabytes."""
    from onnx import TensorProto, helper, numpy_helper

    n = int(np.prod(shape))
    nodes = [helper.make_node("Flatten", ["x"], ["f"], axis=1),
             helper.make_node("Tile", ["f", "reps"], ["t"]),
             helper.make_node("Reshape", ["t", "rs"], ["r"]),
             helper.make_node("ReduceMean", ["r", "axes"], ["m"], keepdims=0),
             helper.make_node("Gemm", ["m", "w", "b"], ["y"])]
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.array([1, factor], np.int64), "reps"),
             numpy_helper.from_array(np.array([0, factor, n], np.int64), "rs"),
             numpy_helper.from_array(np.array([1], np.int64), "axes"),
             numpy_helper.from_array(rng.normal(0, 0.1, (n, classes)).astype(np.float32), "w"),
             numpy_helper.from_array(np.zeros(classes, np.float32), "b")]
    graph = helper.make_graph(nodes, "tile-bomb", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *shape])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", classes])], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9).SerializeToString()
