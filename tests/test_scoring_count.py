"""count_model on hand-built ONNX graphs: every place a number can hide is counted."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from occam.scoring import count_model, inspect_model
from test_scoring_helpers import IN_SHAPE, OPSET, linear, make, synthetic_task, to_bytes

TASK = synthetic_task()


def _by_where(report, fragment: str):
    return [t for t in report.tensors if fragment in t.where]


def test_initializers_count_nonzero_by_value():
    W = np.zeros((3, 16), np.float32)
    W[0, :5] = 1.5
    b = np.array([0.0, 2.0, 0.0], np.float32)
    r = count_model(linear(W, b))
    assert r.stored_values == 48 + 3
    assert r.nnz == 5 + 1
    assert {t.name for t in _by_where(r, "initializer")} == {"W", "b"}
    w = next(t for t in r.tensors if t.name == "W")
    assert (w.dtype, w.shape, w.size, w.nnz) == ("float32", [3, 16], 48, 5)


def test_negative_zero_and_nan_count():
    W = np.zeros((3, 16), np.float32)
    W[0, 0] = -0.0
    W[1, 1] = np.nan
    W[2, 2] = np.inf
    b = np.array([0.0, -0.0, 0.0], np.float32)
    r = count_model(linear(W, b))
    assert r.nnz == 4  # -0.0, NaN, Inf in W and -0.0 in b; +0.0 does not count


def test_shared_tensor_counted_once():
    W = np.full((16, 16), 0.5, np.float32)
    V = np.ones((16, 3), np.float32)
    nodes = [helper.make_node("Flatten", ["x"], ["f"], axis=1),
             helper.make_node("MatMul", ["f", "W"], ["h1"]),
             helper.make_node("MatMul", ["h1", "W"], ["h2"]),
             helper.make_node("MatMul", ["h2", "W"], ["h3"]),
             helper.make_node("MatMul", ["h3", "V"], ["y"])]
    model = make(nodes, [numpy_helper.from_array(W, "W"), numpy_helper.from_array(V, "V")])
    r = count_model(model)
    assert r.nnz == 256 + 48
    rep = inspect_model(to_bytes(model), TASK)
    assert rep.ok, rep.reason
    assert rep.nnz == 256 + 48


def test_sparse_initializer_values_and_indices():
    values = numpy_helper.from_array(np.array([1.0, -2.0, 0.0, 4.0], np.float32), "W")
    indices = numpy_helper.from_array(np.array([0, 5, 17, 47], np.int64), "W_idx")
    sp = helper.make_sparse_tensor(values, indices, [3, 16])
    b = numpy_helper.from_array(np.zeros(3, np.float32), "b")
    nodes = [helper.make_node("Flatten", ["x"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "W", "b"], ["y"], transB=1)]
    model = make(nodes, [b], sparse=[sp])
    r = count_model(model)
    vals = _by_where(r, "sparse_initializer values")
    idx = _by_where(r, "sparse_initializer indices")
    assert len(vals) == 1 and (vals[0].size, vals[0].nnz) == (4, 3)
    assert len(idx) == 1 and (idx[0].size, idx[0].nnz) == (4, 3)  # index 0 is a zero
    assert r.nnz == 3 + 3
    assert r.stored_values == 4 + 4 + 3
    rep = inspect_model(to_bytes(model), TASK)
    assert not rep.ok and "sparse" in rep.reason and "densely" in rep.fix
    assert rep.nnz == 6


def _constant_model(**attr) -> onnx.ModelProto:
    """x → Flatten → Gemm(W, b) → Add(c) where c comes from a Constant node with ``attr``."""
    W = numpy_helper.from_array(np.eye(3, 16, dtype=np.float32), "W")
    b = numpy_helper.from_array(np.zeros(3, np.float32), "b")
    nodes = [helper.make_node("Constant", [], ["c"], name="const_c", **attr),
             helper.make_node("Flatten", ["x"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "W", "b"], ["g"], transB=1),
             helper.make_node("Add", ["g", "c"], ["y"])]
    return make(nodes, [W, b])


def test_constant_value_tensor():
    t = numpy_helper.from_array(np.array([0.5, 0.0, -1.0], np.float32), "cv")
    r = count_model(_constant_model(value=t))
    c = _by_where(r, "Constant node const_c")
    assert len(c) == 1 and (c[0].name, c[0].size, c[0].nnz) == ("c", 3, 2)
    assert r.nnz == 3 + 2


def test_constant_value_floats_float_ints_int():
    r = count_model(_constant_model(value_floats=[1.0, 0.0, 2.0]))
    assert _by_where(r, "Constant node")[0].nnz == 2
    r = count_model(_constant_model(value_float=0.25))
    assert _by_where(r, "Constant node")[0].nnz == 1
    r = count_model(_constant_model(value_ints=[3, 0, 7, 9]))
    c = _by_where(r, "Constant node")[0]
    assert (c.dtype, c.size, c.nnz) == ("int64", 4, 3)
    r = count_model(_constant_model(value_int=5))
    assert _by_where(r, "Constant node")[0].nnz == 1


def test_constant_sparse_value():
    values = numpy_helper.from_array(np.array([7.0, 8.0], np.float32), "sv")
    indices = numpy_helper.from_array(np.array([1, 2], np.int64), "si")
    r = count_model(_constant_model(sparse_value=helper.make_sparse_tensor(values, indices, [3])))
    c = _by_where(r, "Constant node const_c")
    assert sorted((t.where.rsplit(" ", 1)[-1], t.nnz) for t in c) == [("indices", 2), ("values", 2)]
    assert r.nnz == 3 + 4


def test_tensor_attribute_on_ordinary_node_is_counted_then_rejected():
    hidden = numpy_helper.from_array(np.array([3.25], np.float32), "v")
    shape = numpy_helper.from_array(np.array([1, 3], np.int64), "shape")
    W = numpy_helper.from_array(np.eye(3, 16, dtype=np.float32), "W")
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["c"], name="cos", value=hidden),
             helper.make_node("Flatten", ["x"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "W", "c"], ["y"], transB=1)]
    model = make(nodes, [W, shape])
    r = count_model(model)
    attr = _by_where(r, "attribute value of node cos")
    assert len(attr) == 1 and attr[0].nnz == 1
    rep = inspect_model(to_bytes(model), TASK)
    assert not rep.ok and "ConstantOfShape" in rep.reason
    assert rep.nnz == r.nnz  # the count is reported even for a rejected model


def test_subgraph_in_if_is_counted_then_rejected():
    then_c = numpy_helper.from_array(np.full((3,), 2.0, np.float32), "tc")
    else_c = numpy_helper.from_array(np.array([0.0, 0.0, 1.0], np.float32), "ec")
    out = helper.make_tensor_value_info("branch_out", TensorProto.FLOAT, [3])
    then_g = helper.make_graph([helper.make_node("Identity", ["tc"], ["branch_out"])], "then", [], [out],
                               initializer=[then_c])
    else_g = helper.make_graph([helper.make_node("Constant", [], ["branch_out"], value=else_c)], "else", [], [out])
    cond = numpy_helper.from_array(np.array(True), "cond")
    W = numpy_helper.from_array(np.eye(3, 16, dtype=np.float32), "W")
    nodes = [helper.make_node("If", ["cond"], ["bias"], name="if0", then_branch=then_g, else_branch=else_g),
             helper.make_node("Flatten", ["x"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "W", "bias"], ["y"], transB=1)]
    model = make(nodes, [W, cond])
    r = count_model(model)
    assert [t.nnz for t in _by_where(r, "subgraph then_branch of node if0")] == [3]
    assert [t.nnz for t in _by_where(r, "subgraph else_branch of node if0")] == [1]
    rep = inspect_model(to_bytes(model), TASK)
    assert not rep.ok and "If" in rep.reason and "control flow" in rep.reason
    assert rep.nnz == 3 + 3 + 1 + 1  # W, then, else, the bool cond


def test_model_local_function_is_counted_then_rejected():
    fn = helper.make_function(
        "custom.fns", "AddBias", ["t"], ["u"],
        [helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(
            np.array([1.0, 0.0, -3.0], np.float32), "k")),
         helper.make_node("Add", ["t", "k"], ["u"])],
        opset_imports=[helper.make_opsetid("", OPSET)])
    W = numpy_helper.from_array(np.eye(3, 16, dtype=np.float32), "W")
    nodes = [helper.make_node("Flatten", ["x"], ["f"], axis=1),
             helper.make_node("MatMul", ["f", "Wt"], ["g"]),
             helper.make_node("AddBias", ["g"], ["y"], domain="custom.fns")]
    Wt = numpy_helper.from_array(np.eye(3, 16, dtype=np.float32).T.copy(), "Wt")
    model = make(nodes, [Wt], functions=[fn], extra_opsets=[("custom.fns", 1)])
    del W
    r = count_model(model)
    f = _by_where(r, "function custom.fns.AddBias")
    assert len(f) == 1 and f[0].nnz == 2
    rep = inspect_model(to_bytes(model), TASK)
    assert not rep.ok and "custom.fns" in rep.reason and "function" in rep.reason


def test_float_attribute_counts_only_when_not_default():
    base = count_model(linear()).nnz
    assert count_model(linear(gemm_attrs={"alpha": 1.0, "beta": 1.0})).nnz == base  # schema defaults
    r = count_model(linear(gemm_attrs={"alpha": 0.5}))
    assert r.nnz == base + 1
    a = _by_where(r, "attribute alpha of node gemm")
    assert len(a) == 1 and a[0].shape == []
    # INT attributes of ordinary ops (Flatten axis, Gemm transB) are structural: never counted.
    assert not _by_where(r, "attribute axis") and not _by_where(r, "attribute transB")


def test_leaky_relu_alpha_default_vs_custom():
    W = numpy_helper.from_array(np.eye(3, 16, dtype=np.float32), "W")

    def model(**attrs):
        return make([helper.make_node("Flatten", ["x"], ["f"], axis=1),
                     helper.make_node("MatMul", ["f", "Wt"], ["g"]),
                     helper.make_node("LeakyRelu", ["g"], ["y"], name="lr", **attrs)],
                    [numpy_helper.from_array(np.eye(3, 16, dtype=np.float32).T.copy(), "Wt")])

    del W
    assert count_model(model()).nnz == 3
    assert count_model(model(alpha=0.01)).nnz == 3  # the default, written out
    assert count_model(model(alpha=0.2)).nnz == 4


def test_to_dict_is_json_ready():
    import json

    r = count_model(linear())
    d = json.loads(json.dumps(r.to_dict()))
    assert d["nnz"] == r.nnz and d["stored_values"] == r.stored_values
    assert set(d["tensors"][0]) == {"name", "where", "dtype", "shape", "size", "nnz"}
    assert IN_SHAPE == (1, 4, 4)
