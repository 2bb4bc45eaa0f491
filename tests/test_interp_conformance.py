"""The interpreter against ONNX's own backend node test cases, for every op the guard allows.

The cases come from the generators the ``onnx`` wheel ships (``onnx.backend.test.case.node``):
each is a one-node model with input and expected output arrays and a tolerance. Every case of an
allowed op runs through :func:`occam.interp.convert` with all graph inputs fed by name (an op's
weight given as a graph input included). Excluded, and counted in the test: cases whose tensors
are uint16/uint32/uint64 or strings, element types PyTorch's CPU kernels do not implement (and
that a guarded model, float32 with small int64/int32/bool tensors and no Cast, can never hold).
"""

from __future__ import annotations

import functools
import warnings
from collections import defaultdict

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper

from occam.interp import OPS, convert
from occam.scoring.guard import ALLOWED_OPS

_UNSUPPORTED_DTYPES = {"uint16", "uint32", "uint64", "object"}


def test_dispatch_table_is_the_guard_allowed_list():
    assert set(OPS) == set(ALLOWED_OPS)


@functools.cache
def _cases() -> tuple[dict[str, list], int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the generators divide by zero on purpose
        from onnx.backend.test.case.node import collect_testcases

        cases = collect_testcases()
    by_op: dict[str, list] = defaultdict(list)
    excluded = 0
    for case in cases:
        ops = {n.op_type for n in case.model.graph.node}
        if "_expanded" in case.name or len(ops) != 1 or next(iter(ops)) not in ALLOWED_OPS:
            continue  # expanded cases test a function's body, made of other ops
        if any(str(getattr(a, "dtype", "object")) in _UNSUPPORTED_DTYPES for ins, outs in case.data_sets
               for a in (*ins, *outs)):
            excluded += 1
            continue
        by_op[next(iter(ops))].append(case)
    return dict(by_op), excluded


def _tensor(a: np.ndarray) -> torch.Tensor:
    a = np.asarray(a)
    if str(a.dtype) == "bfloat16":  # ml_dtypes' bfloat16: same bits as torch.bfloat16
        return torch.from_numpy(np.array(a).view(np.uint16)).view(torch.bfloat16)
    return torch.from_numpy(np.array(a))


def _array(t: torch.Tensor, like: np.ndarray) -> np.ndarray:
    t = t.detach()
    if t.dtype == torch.bfloat16:
        return t.float().numpy().astype(like.dtype)
    return t.numpy()


def _run_case(case) -> None:
    mod = convert(case.model)
    for ins, outs in case.data_sets:
        env = mod.run({name: _tensor(a) for name, a in zip(mod.input_names, ins, strict=True)})
        for name, ref in zip(mod.output_names, outs, strict=True):
            ref = np.asarray(ref)
            got = _array(env[name], ref)
            assert got.dtype == ref.dtype, f"{case.name}: output {name} is {got.dtype}, expected {ref.dtype}"
            np.testing.assert_allclose(got, ref, rtol=case.rtol, atol=case.atol, err_msg=case.name)


# GlobalLpPool has no node test case in the onnx wheel: onnxruntime is its reference (below).
_NODE_TESTED = sorted(ALLOWED_OPS - {"GlobalLpPool"})


@pytest.mark.parametrize("op", _NODE_TESTED)
def test_onnx_node_cases(op):
    by_op, _ = _cases()
    cases = by_op.get(op, [])
    assert cases, f"no ONNX node test case for {op}"
    failures = []
    for case in cases:
        try:
            _run_case(case)
        except Exception as exc:  # collect all of an op's failures, then report them together
            failures.append(f"{case.name}: {type(exc).__name__}: {str(exc).strip()[:300]}")
    assert not failures, "\n".join(failures)


def test_cases_cover_every_allowed_op_and_few_are_excluded():
    by_op, excluded = _cases()
    assert set(by_op) == set(_NODE_TESTED)
    assert sum(len(v) for v in by_op.values()) >= 500
    assert excluded <= 40  # only the uint16/32/64 and string variants of arithmetic and comparisons


@pytest.mark.parametrize("p", [1, 2, 3])
def test_global_lp_pool_matches_onnxruntime(p):
    node = helper.make_node("GlobalLpPool", ["x"], ["y"], p=p)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3, 5, 4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3, 1, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = np.random.default_rng(p).normal(size=(2, 3, 5, 4)).astype(np.float32)
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = convert(model)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


# Older opsets that exporters still emit (the legacy exporter writes opset 17 and below): ops whose
# attributes became inputs, and Softmax's flatten-to-2-D semantics before opset 13; onnxruntime is
# the reference. (op, opset, attributes, input shapes, extra initializers)
_F = onnx.TensorProto.FLOAT
_LEGACY = [
    ("Softmax", 11, {"axis": 1}, [(2, 3, 4)], {}),
    ("LogSoftmax", 11, {"axis": 1}, [(2, 3, 4)], {}),
    ("Hardmax", 11, {"axis": 1}, [(2, 3, 4)], {}),
    ("Clip", 6, {"min": -0.5, "max": 0.5}, [(3, 4)], {}),
    ("Pad", 2, {"pads": [0, 0, 1, 2, 0, 0, 2, 1], "mode": "reflect"}, [(1, 2, 4, 4)], {}),
    ("Pad", 2, {"pads": [0, 0, 1, 2, 0, 0, 2, 1], "mode": "edge"}, [(1, 2, 4, 4)], {}),
    ("Pad", 2, {"pads": [0, 1, 0, 1], "value": 1.5}, [(2, 3)], {}),
    ("Slice", 9, {"starts": [1, -3], "ends": [3, 100], "axes": [0, 1]}, [(4, 5)], {}),
    ("Split", 11, {"axis": 1, "split": [1, 3]}, [(2, 4)], {}),
    ("Squeeze", 11, {"axes": [1]}, [(2, 1, 3)], {}),
    ("Unsqueeze", 11, {"axes": [0, 3]}, [(2, 3)], {}),
    ("ReduceSum", 11, {"axes": [1], "keepdims": 0}, [(2, 3, 4)], {}),
    ("ReduceMean", 17, {"axes": [-1]}, [(2, 3, 4)], {}),
    ("ReduceMax", 17, {"axes": [0, 2]}, [(2, 3, 4)], {}),
    ("BatchNormalization", 9, {"epsilon": 1e-3}, [(2, 3, 4, 4)],
     {"s": np.array([1.0, 2.0, 0.5]), "b": np.array([0.1, -0.2, 0.0]), "m": np.array([0.5, 0.0, -1.0]),
      "v": np.array([1.0, 4.0, 0.25])}),
]


@pytest.mark.parametrize(("op", "opset", "attrs", "shapes", "inits"), _LEGACY,
                         ids=[f"{c[0]}-opset{c[1]}-{i}" for i, c in enumerate(_LEGACY)])
def test_older_opsets_match_onnxruntime(op, opset, attrs, shapes, inits):
    names = [f"x{i}" for i in range(len(shapes))]
    n_out = 2 if op == "Split" else 1
    outs = [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op, names + list(inits), outs, **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, _F, s) for n, s in zip(names, shapes,
                                                                                                   strict=True)],
                              [helper.make_tensor_value_info(o, _F, None) for o in outs],
                              [onnx.numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    rng = np.random.default_rng(0)
    feed = {n: rng.normal(size=s).astype(np.float32) for n, s in zip(names, shapes, strict=True)}
    refs = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)
    env = convert(model).run({k: torch.from_numpy(v) for k, v in feed.items()})
    for o, ref in zip(outs, refs, strict=True):
        np.testing.assert_allclose(env[o].detach().numpy(), ref, rtol=1e-5, atol=1e-6)
