"""The guard: each rejection names its problem; plain PyTorch exports pass."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from occam.errors import ModelRejected
from occam.scoring import ALLOWED_OPS, GuardPolicy, check_model, inspect_model
from occam.tasks import get_task
from test_scoring_helpers import linear, make, synthetic_task, to_bytes

TASK = synthetic_task()


def _rejected(source, task=TASK, **kw):
    rep = inspect_model(source, task, **kw)
    assert not rep.ok
    assert rep.reason and rep.fix
    return rep


def test_plain_linear_model_passes_with_cross_check():
    rep = inspect_model(to_bytes(linear()), TASK)
    assert rep.ok, rep.reason
    assert rep.reason is None and rep.cross_checked and rep.ort_nnz == rep.nnz == 51
    assert rep.ops == {"Flatten": 1, "Gemm": 1}
    assert rep.opset == 20
    assert rep.input_shape == ["batch", 1, 4, 4] and rep.output_shape == ["batch", 3]
    d = json.loads(json.dumps(rep.to_dict()))
    assert {"ok", "reason", "nnz", "stored_values", "tensors"} <= set(d)


def test_path_source_and_check_model(tmp_path):
    p = tmp_path / "m.onnx"
    p.write_bytes(to_bytes(linear()))
    assert check_model(p, TASK).ok
    assert inspect_model(str(p), None).ok  # no task: only task-independent checks
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(to_bytes(linear(classes=4, W=np.ones((4, 16), np.float32), b=np.ones(4, np.float32))))
    with pytest.raises(ModelRejected) as exc:
        check_model(bad, TASK)
    assert "[batch, 3]" in exc.value.problem and exc.value.fix


def test_missing_file(tmp_path):
    rep = _rejected(tmp_path / "nope.onnx")
    assert "not found" in rep.reason


def test_external_data_rejected_before_loading(tmp_path):
    model = linear()
    w = model.graph.initializer[0]
    w.ClearField("raw_data")
    w.ClearField("float_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "/etc/shadow"), ("offset", "0"), ("length", "192")):
        entry = w.external_data.add()
        entry.key, entry.value = k, v
    p = tmp_path / "ext.onnx"
    p.write_bytes(to_bytes(model))
    rep = _rejected(p)
    assert "external" in rep.reason and "W" in rep.reason
    assert "external_data=False" in rep.fix


def test_custom_domain_op_rejected():
    model = make([helper.make_node("Flatten", ["x"], ["f"], axis=1),
                  helper.make_node("FusedGemm", ["f", "W"], ["y"], domain="com.microsoft")],
                 [numpy_helper.from_array(np.ones((16, 3), np.float32), "W")],
                 extra_opsets=[("com.microsoft", 1)])
    rep = _rejected(to_bytes(model))
    assert "custom domain" in rep.reason and "com.microsoft" in rep.reason


@pytest.mark.parametrize("op", ["Floor", "Round", "Cos", "Cast", "Mod", "BitShift", "Range", "Loop", "Resize",
                                "DequantizeLinear", "RandomNormal", "OneHot"])
def test_disallowed_ops_are_not_on_the_list(op):
    assert op not in ALLOWED_OPS


@pytest.mark.parametrize("op, attrs", [("Floor", {}), ("Cos", {}), ("Cast", {"to": TensorProto.FLOAT})])
def test_disallowed_op_rejected(op, attrs):
    model = make([helper.make_node("Flatten", ["x"], ["f"], axis=1),
                  helper.make_node(op, ["f"], ["g"], **attrs),
                  helper.make_node("MatMul", ["g", "W"], ["y"])],
                 [numpy_helper.from_array(np.ones((16, 3), np.float32), "W")])
    rep = _rejected(to_bytes(model))
    assert f"op {op!r}" in rep.reason and "not allowed" in rep.reason


@pytest.mark.parametrize("dtype, name", [(np.float16, "float16"), (np.float64, "float64"), (np.int8, "int8")])
def test_non_float32_weights_rejected(dtype, name):
    model = linear()
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.ones((3, 16), dtype), "W"))
    rep = _rejected(to_bytes(model))
    assert name in rep.reason and "float32" in rep.reason


def test_big_integer_tensor_rejected_small_one_allowed():
    def model(n):
        idx = numpy_helper.from_array(np.arange(n, dtype=np.int64) % 16, "idx")
        return make([helper.make_node("Flatten", ["x"], ["f"], axis=1),
                     helper.make_node("Gather", ["f", "idx"], ["g"], axis=1),
                     helper.make_node("MatMul", ["g", "W"], ["y"])],
                    [idx, numpy_helper.from_array(np.ones((n, 3), np.float32), "W")])

    assert inspect_model(to_bytes(model(16)), TASK).ok
    rep = _rejected(to_bytes(model(100)))
    assert "int64" in rep.reason and "100" in rep.reason and "at most 64" in rep.reason


def test_wrong_input_shape_rejected():
    rep = _rejected(to_bytes(linear(in_shape=(1, 5, 5))))
    assert "input shape" in rep.reason and "[batch, 1, 4, 4]" in rep.reason


def test_wrong_input_dtype_rejected():
    model = linear()
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.UINT8
    rep = _rejected(to_bytes(model))
    assert "input" in rep.reason and "float32" in rep.reason


def test_wrong_output_classes_rejected():
    rep = _rejected(to_bytes(linear(classes=4)))
    assert "output shape" in rep.reason and "[batch, 4]" in rep.reason and "[batch, 3]" in rep.reason


def test_static_batch_rejected():
    rep = _rejected(to_bytes(linear(batch=2)))  # a batch fixed at 1 is made dynamic instead (below)
    assert "batch dimension is fixed at 2" in rep.reason and "dynamic" in rep.fix


def test_batch_fixed_at_one_is_made_dynamic():
    rep = inspect_model(to_bytes(linear(batch=1)), TASK)
    assert rep.ok, rep.reason
    assert rep.batch_made_dynamic and rep.to_dict()["batch_made_dynamic"] is True
    assert rep.input_shape == ["batch", 1, 4, 4] and rep.output_shape == ["batch", 3]
    assert not inspect_model(to_bytes(linear()), TASK).batch_made_dynamic


def _legacy_export(module, path, in_shape=(1, 4, 4)):
    """The legacy (TorchScript) exporter with its defaults: the batch stays fixed at the example's 1."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.rand(1, *in_shape),), str(path), dynamo=False)
    return path


def _legacy_net(flat: str):
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1, self.fc1 = nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.Linear(8, 3)

        def forward(self, x):
            x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
            return self.fc1(torch.flatten(x, 1) if flat == "flatten" else x.view(1, -1))

    torch.manual_seed(0)
    return Net()


def test_legacy_export_with_fixed_batch_is_scored_on_batches(tmp_path):
    import onnxruntime as ort

    from occam.scoring import score_model
    from occam.scoring.guard import inspect_bytes

    path = _legacy_export(_legacy_net("flatten"), tmp_path / "legacy.onnx")
    data = path.read_bytes()
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    report, model = inspect_bytes(data, TASK)
    assert report.ok and report.batch_made_dynamic and report.cross_checked, report.reason
    x = np.random.default_rng(0).random((5, 1, 4, 4), dtype=np.float32)
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {
        model.graph.input[0].name: x})[0]
    one = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    ref = np.concatenate([one.run(None, {one.get_inputs()[0].name: x[i:i + 1]})[0] for i in range(5)])
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    res = score_model(data, TASK, split="test", threads=1)  # the whole test split in batches
    assert res.n == 60 and res.guard.batch_made_dynamic


def test_fixed_batch_baked_into_a_reshape_is_rejected_naming_the_node(tmp_path):
    path = _legacy_export(_legacy_net("view"), tmp_path / "baked.onnx")
    reshape = next(n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Reshape")
    rep = _rejected(path)
    assert "fixed at 1 and cannot be made dynamic" in rep.reason
    assert f"node {reshape!r} (Reshape)" in rep.reason and "x.flatten(1)" in rep.fix


def test_unset_batch_dim_is_fine():
    model = linear()
    for vi in (model.graph.input[0], model.graph.output[0]):
        vi.type.tensor_type.shape.dim[0].Clear()
    assert inspect_model(to_bytes(model), TASK).ok


def test_over_size_limit_rejected(tmp_path):
    data = to_bytes(linear())
    rep = _rejected(data, policy=GuardPolicy(max_bytes=100))
    assert "size limit" in rep.reason and "100 bytes" in rep.reason
    p = tmp_path / "m.onnx"
    p.write_bytes(data)
    assert "size limit" in _rejected(p, policy=GuardPolicy(max_bytes=100)).reason


def test_checker_failure_rejected():
    # Gemm needs 2-D operands; W is 3-D, which shape inference refuses.
    model = make([helper.make_node("Flatten", ["x"], ["f"], axis=1),
                  helper.make_node("Gemm", ["f", "W"], ["y"])],
                 [numpy_helper.from_array(np.ones((16, 3, 1), np.float32), "W")])
    rep = _rejected(to_bytes(model))
    assert "checker" in rep.reason


def test_truncated_bytes_rejected():
    data = to_bytes(linear())
    rep = _rejected(data[: len(data) // 2])
    assert "truncated" in rep.reason or "not an ONNX model" in rep.reason


@pytest.mark.parametrize("junk", [b"", b"hello, this is not an ONNX file at all\n", b"\x89PNG\r\n\x1a\n" + bytes(64),
                                  bytes(range(256)) * 4])
def test_not_onnx_rejected(junk):
    rep = _rejected(junk)
    assert "ONNX" in rep.reason or "empty" in rep.reason


def test_rejected_report_serializes():
    rep = _rejected(to_bytes(linear(classes=4)))
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["ok"] is False and d["reason"] == rep.reason and d["nnz"] == rep.nnz


def test_attention_style_ops_pass():
    """Where / Equal / Expand / Softmax / Transpose, as attention code may emit."""
    W = numpy_helper.from_array(np.ones((16, 3), np.float32), "W")
    zero = numpy_helper.from_array(np.array(0.0, np.float32), "zero")
    ninf = numpy_helper.from_array(np.array(-1e9, np.float32), "neg")
    nodes = [helper.make_node("Flatten", ["x"], ["f"], axis=1),
             helper.make_node("MatMul", ["f", "W"], ["g"]),
             helper.make_node("Equal", ["g", "zero"], ["m"]),
             helper.make_node("Where", ["m", "neg", "g"], ["h"]),
             helper.make_node("Softmax", ["h"], ["y"], axis=-1)]
    rep = inspect_model(to_bytes(make(nodes, [W, zero, ninf])), TASK)
    assert rep.ok, rep.reason


# ---- real PyTorch exports -----------------------------------------------------------------------

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(784, 16), nn.Linear(16, 10)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 6, 5, padding=2), nn.Conv2d(6, 16, 5)
        self.f1, self.f2, self.f3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2).flatten(1)
        return self.f3(F.relu(self.f2(F.relu(self.f1(x)))))


class SeparableGAP(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.bn0 = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.dw, self.pw, self.bn = nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 16, 1), nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.avg_pool2d(F.relu(self.bn0(self.stem(x))), 2)
        x = F.relu(self.bn(self.pw(self.dw(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class TinyViT(nn.Module):
    def __init__(self, d: int = 16, p: int = 7):
        super().__init__()
        self.p, self.d = p, d
        self.emb = nn.Linear(p * p, d)
        self.pos = nn.Parameter(torch.randn(1, 16, d) * 0.02)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.head = nn.Linear(d, 10)

    def forward(self, x):
        b, p = x.shape[0], self.p
        x = x.reshape(b, 1, 4, p, 4, p).permute(0, 2, 4, 1, 3, 5).reshape(b, 16, p * p)
        h = self.emb(x) + self.pos
        q, k, v = self.qkv(self.ln1(h)).chunk(3, dim=-1)
        a = torch.softmax(q @ k.transpose(-2, -1) / self.d ** 0.5, dim=-1)
        h = h + self.proj(a @ v)
        h = h + self.mlp(self.ln2(h))
        return self.head(h.mean(1))


def _export(model, tmp_path) -> bytes:
    import logging
    import warnings

    model.eval()
    path = tmp_path / f"{type(model).__name__}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            prog = torch.onnx.export(model, (torch.rand(2, 1, 28, 28),), dynamo=True, opset_version=20,
                                     dynamic_shapes=({0: torch.export.Dim("batch")},), external_data=False,
                                     verbose=False)
        finally:
            logging.disable(logging.NOTSET)
    prog.save(str(path))
    return path.read_bytes()


@pytest.mark.parametrize("cls", [MLP, LeNet, SeparableGAP, TinyViT])
def test_pytorch_exports_pass(cls, tmp_path):
    torch.manual_seed(0)
    model = cls()
    data = _export(model, tmp_path)
    rep = inspect_model(data, get_task("fashion-mnist"))
    assert rep.ok, (rep.reason, rep.ops)
    assert rep.cross_checked and rep.ort_nnz <= rep.nnz
    n_params = sum(p.numel() for p in model.parameters())
    # Exported numbers ≈ parameters (BatchNorm may be folded; a few shape constants added).
    assert 0.5 * n_params <= rep.nnz <= n_params + 64
    assert set(rep.ops) <= ALLOWED_OPS
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
