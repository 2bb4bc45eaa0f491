"""The weight editor stays exact on conv, BatchNorm, residual and plumbing-heavy graphs.

The graphs are built by hand with ``onnx.helper`` (digits: 1×8×8 inputs, 10 classes) so that
every rule of the incremental machinery runs: conv kernel and bias edits, grouped and depthwise
convs, BatchNormalization parameters, a residual Add, per-channel Mul, max/average/global
pooling, Pad, Concat, Transpose, Reshape, MatMul + Add bias, Gemm, several activations.
After every edit the editor's metrics must equal a full forward pass to float tolerance.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from occam.lens.editor import Editor
from occam.lens.model import open_model

_rng = np.random.default_rng(0)


def _w(name: str, *shape: int, scale: float = 0.5, positive: bool = False) -> onnx.TensorProto:
    a = _rng.normal(0, scale, shape).astype(np.float32)
    if positive:
        a = np.abs(a) + 0.5
    return numpy_helper.from_array(a, name)


def _i64(name: str, values: list[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def _model(nodes: list, inits: list) -> bytes:
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m.SerializeToString()


def _bn(prefix: str, c: int, x: str, y: str) -> tuple[onnx.NodeProto, list]:
    inits = [_w(f"{prefix}.scale", c), _w(f"{prefix}.bias", c, scale=0.1), _w(f"{prefix}.mean", c, scale=0.1),
             _w(f"{prefix}.var", c, positive=True)]
    return helper.make_node("BatchNormalization", [x] + [i.name for i in inits], [y], epsilon=1e-5), inits


def bn_cnn() -> bytes:
    """Conv → BN → Relu → MaxPool → grouped Conv → BN → Relu → AveragePool → Flatten → Gemm."""
    bn1, i1 = _bn("bn1", 4, "c1", "b1")
    bn2, i2 = _bn("bn2", 6, "c2", "b2")
    nodes = [
        helper.make_node("Conv", ["x", "conv1.w", "conv1.b"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        bn1, helper.make_node("Relu", ["b1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2.w", "conv2.b"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         group=2),
        bn2, helper.make_node("Relu", ["b2"], ["r2"]),
        helper.make_node("AveragePool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["logits"], transB=1),
    ]
    inits = [_w("conv1.w", 4, 1, 3, 3), _w("conv1.b", 4, scale=0.1), _w("conv2.w", 6, 2, 3, 3),
             _w("conv2.b", 6, scale=0.1), _w("fc.w", 10, 24, scale=0.3), _w("fc.b", 10, scale=0.1)] + i1 + i2
    return _model(nodes, inits)


def residual() -> bytes:
    """Stem conv (stride 2 on a padded input) → two residual blocks (conv-BN-relu-conv ×scale, Add) → GAP → Gemm."""
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["xp"], mode="constant"),
        helper.make_node("Conv", ["xp", "stem.w", "stem.b"], ["s"], kernel_shape=[3, 3], strides=[2, 2]),
        helper.make_node("Relu", ["s"], ["h0"]),
    ]
    inits = [_i64("pads", [0, 0, 1, 1, 0, 0, 1, 1]), _w("stem.w", 4, 1, 3, 3), _w("stem.b", 4, scale=0.1)]
    h = "h0"
    for k in (1, 2):
        bn, ib = _bn(f"blk{k}.bn", 4, f"a{k}", f"n{k}")
        nodes += [
            helper.make_node("Conv", [h, f"blk{k}.w1"], [f"a{k}"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            bn, helper.make_node("LeakyRelu", [f"n{k}"], [f"r{k}"], alpha=0.1),
            helper.make_node("Conv", [f"r{k}", f"blk{k}.w2", f"blk{k}.b2"], [f"c{k}"], kernel_shape=[3, 3],
                             pads=[1, 1, 1, 1]),
            helper.make_node("Mul", [f"c{k}", f"blk{k}.scale"], [f"m{k}"]),
            helper.make_node("Add", [h, f"m{k}"], [f"s{k}"]),
            helper.make_node("Relu", [f"s{k}"], [f"h{k}"]),
        ]
        inits += [_w(f"blk{k}.w1", 4, 4, 3, 3, scale=0.3), _w(f"blk{k}.w2", 4, 4, 3, 3, scale=0.3),
                  _w(f"blk{k}.b2", 4, scale=0.1), _w(f"blk{k}.scale", 1, 4, 1, 1)] + ib
        h = f"h{k}"
    nodes += [helper.make_node("GlobalAveragePool", [h], ["gap"]),
              helper.make_node("Flatten", ["gap"], ["f"]),
              helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["logits"], transB=1)]
    inits += [_w("fc.w", 10, 4), _w("fc.b", 10, scale=0.1)]
    return _model(nodes, inits)


def plumbing() -> bytes:
    """Two convs concatenated, Sigmoid, Transpose, depthwise conv, Tanh, Reshape, MatMul + Add bias."""
    nodes = [
        helper.make_node("Conv", ["x", "ca.w", "ca.b"], ["ca"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["x", "cb.w"], ["cb"], kernel_shape=[5, 5], pads=[2, 2, 2, 2]),
        helper.make_node("Concat", ["ca", "cb"], ["cat"], axis=1),
        helper.make_node("Sigmoid", ["cat"], ["sg"]),
        helper.make_node("Transpose", ["sg"], ["tr"], perm=[0, 1, 3, 2]),
        helper.make_node("Conv", ["tr", "dw.w", "dw.b"], ["dw"], kernel_shape=[3, 3], group=5),
        helper.make_node("Tanh", ["dw"], ["th"]),
        helper.make_node("Reshape", ["th", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "head.w"], ["mm"]),
        helper.make_node("Add", ["mm", "head.b"], ["logits"]),
    ]
    inits = [_w("ca.w", 3, 1, 3, 3), _w("ca.b", 3, scale=0.1), _w("cb.w", 2, 1, 5, 5, scale=0.3),
             _w("dw.w", 5, 1, 3, 3), _w("dw.b", 5, scale=0.1), _i64("shape", [0, -1]),
             _w("head.w", 5 * 6 * 6, 10, scale=0.3), _w("head.b", 10, scale=0.1)]
    return _model(nodes, inits)


GRAPHS = {"bn_cnn": bn_cnn, "residual": residual, "plumbing": plumbing}


def _check(ed: Editor) -> None:
    got = ed.metrics()
    ref = ed.full_forward_metrics()
    assert abs(got["ce"] - ref["ce"]) < 1e-5, (got, ref)
    assert got["accuracy"] == ref["accuracy"] and got["nnz"] == ref["nnz"]
    z = ed.mod.run(ed.x, keep=set())[ed.mod.output_name]
    assert torch.allclose(ed.env[ed.mod.output_name], z, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_every_tensor_edit_matches_a_full_forward(graph):
    lm = open_model(GRAPHS[graph](), "digits")
    ed = Editor(lm)
    m0 = ed.metrics()
    rng = np.random.default_rng(1)
    names = [n for n in lm.module.weight_names if lm.module.weight(n).is_floating_point()]
    assert len(names) >= 7
    for _ in range(2):
        for name in names:
            w = lm.module.weight(name)
            i = int(rng.integers(w.numel()))
            v = 0.0 if rng.random() < 0.2 else float(w.view(-1)[i]) + float(rng.normal(0, 0.5))
            if name.endswith(".var"):
                v = abs(v) + 0.1
            m = ed.set_weight(name, i, v)
            assert np.isfinite(m["ce"]) and m["ms"] >= 0
            _check(ed)
    assert ed.full_syncs == 0  # all of that was incremental ...
    assert not ed._prop.recomputed, ed._prop.recomputed  # ... and no node needed a whole recompute
    n_edits = len(ed.history)
    for _ in range(n_edits // 2):
        ed.undo()
    _check(ed)
    for _ in range(n_edits - n_edits // 2):
        ed.undo()
    assert ed.metrics() == m0  # undo is exact
    ed.set_weight(names[0], 0, 0.25)
    ed.set_weight(names[-1], 1, -0.5)
    assert ed.reset() == m0


def test_conv_kernel_edit_touches_one_output_channel():
    lm = open_model(bn_cnn(), "digits")
    ed = Editor(lm)
    before = {k: v.clone() for k, v in ed.env.items()}
    ed.set_weight("conv1.w", 2 * 9 + 4, 0.9)  # output channel 2, centre tap
    for value in ("c1", "b1", "r1", "p1"):
        diff = (ed.env[value] != before[value]).flatten(2).any(2).any(0)
        assert diff.nonzero().flatten().tolist() == [2], value
    # channel 2 is in the second group (channels 2, 3) of the grouped conv: only its outputs 3-5 move
    diff = (ed.env["c2"] != before["c2"]).flatten(2).any(2).any(0)
    assert diff.nonzero().flatten().tolist() == [3, 4, 5]
    _check(ed)


def test_release_is_cheap_and_catches_drift():
    lm = open_model(residual(), "digits")
    ed = Editor(lm)
    for i in range(6):
        ed.set_weight("blk1.w1", i * 7, 0.3)
    synced = ed.sync()
    assert ed.full_syncs == 0  # no drift: no full forward pass on release
    assert synced == ed.metrics()
    _check(ed)
    ed.env["logits"][0] += 1.0  # simulate drift in a row that the check samples
    ed.sync()
    assert ed.full_syncs == 1
    _check(ed)
    ed.resync_every = 3
    for i in range(3):
        ed.set_weight("fc.w", i, 0.1)
    ed.sync()
    assert ed.full_syncs == 2


def test_scalar_and_per_channel_constants(lenet_digits):
    """Editing the input normalization's scalars (they reach every channel) stays exact."""
    lm = open_model(lenet_digits, "digits")
    ed = Editor(lm)
    scalars = [n for n in lm.module.weight_names if lm.module.weight(n).numel() == 1]
    assert scalars
    for n in scalars:
        ed.set_weight(n, 0, float(lm.module.weight(n).view(-1)[0]) * 1.1)
        _check(ed)


@pytest.mark.parametrize("arch", ["sepcnn", "vit"])
def test_zoo_models_stay_exact(arch):
    """The zoo's separable CNN (depthwise convs, per-channel affines) and tiny ViT (3-D MatMuls,
    LayerNorm, Softmax attention) under edits of every tensor."""
    from occam.models import build_model

    torch.manual_seed(0)
    lm = open_model(build_model(arch, (1, 8, 8), 10), "digits")
    ed = Editor(lm)
    rng = np.random.default_rng(2)
    names = [n for n in lm.module.weight_names if lm.module.weight(n).numel() > 1]
    for name in names:
        w = lm.module.weight(name)
        i = int(rng.integers(w.numel()))
        ed.set_weight(name, i, float(w.view(-1)[i]) + float(rng.normal(0, 0.3)))
        _check(ed)
