"""Zoo models: ONNX round trip with a dynamic batch, BatchNorm folding, nnz counting, checkpoints."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from occam.errors import OccamError
from occam.models import ARCHS, build_model, count_nonzero, export_bytes, fuse_for_export, load_checkpoint, save_checkpoint

SHAPES = [(1, 28, 28), (40,)]


def _ort(data: bytes, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _perturb_bn(model: torch.nn.Module) -> None:
    """Give BatchNorms non-trivial statistics so folding is really tested."""
    g = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("shape", SHAPES, ids=["image", "1d"])
def test_onnx_round_trip(arch, shape):
    torch.manual_seed(0)
    model = build_model(arch, shape, 10).eval()
    _perturb_bn(model)
    data = export_bytes(model, shape)
    proto = onnx.load_from_string(data)
    assert len(proto.graph.input) == 1 and len(proto.graph.output) == 1
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    assert not proto.metadata_props and proto.producer_name == "occam"
    for n in (1, 33):
        x = torch.rand(n, *shape, generator=torch.Generator().manual_seed(n))
        with torch.no_grad():
            ref = model(x).numpy()
        out = _ort(data, x.numpy())
        assert out.shape == (n, 10)
        assert np.max(np.abs(out - ref)) < 1e-4


def test_lenet5_has_the_classic_size():
    assert sum(p.numel() for p in build_model("lenet5", (1, 28, 28), 10).parameters()) == 61706


def test_sepcnn_shares_its_block_and_bn_folds():
    model = build_model("sepcnn", (1, 28, 28), 10)
    _perturb_bn(model)
    fused = fuse_for_export(model)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in fused.modules())
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), fused(x), atol=1e-5)
    data = export_bytes(model, (1, 28, 28))
    proto = onnx.load_from_string(data)
    dw_inits = [i for i in proto.graph.initializer if "shared.dw" in i.name]
    assert len(dw_inits) == 1  # one stored depthwise kernel, used three times


def test_count_nonzero_counts_negative_zero():
    model = build_model("mlp", (40,), 10, hidden=(8,))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.head.weight[0, 0] = -0.0
    # only the two normalization constants and the -0.0 remain
    assert count_nonzero(model) == 3


def test_unknown_arch_and_bad_option():
    with pytest.raises(OccamError, match="unknown architecture"):
        build_model("resnet", (1, 28, 28), 10)
    with pytest.raises(OccamError, match="bad options for mlp"):
        build_model("mlp", (1, 28, 28), 10, widht=3)


def test_checkpoint_round_trip(tmp_path):
    model = build_model("mlp", (1, 8, 8), 10)
    path = save_checkpoint(model, tmp_path / "m.pt", arch="mlp", arch_kwargs={}, input_shape=(1, 8, 8), num_classes=10)
    ckpt = load_checkpoint(path)
    assert ckpt["arch"] == "mlp" and torch.equal(ckpt["state_dict"]["head.weight"], model.state_dict()["head.weight"])
    (tmp_path / "bad.pt").write_bytes(b"junk")
    with pytest.raises(OccamError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")


def test_mlp_width_syntax():
    from occam.models import parse_arch

    assert parse_arch("mlp") == ("mlp", {})
    assert parse_arch("mlp:256") == ("mlp", {"hidden": (256,)})
    assert parse_arch("mlp:32x16") == ("mlp", {"hidden": (32, 16)})
    model = build_model("mlp:32x16", (1, 8, 8), 10)
    assert [m.out_features for m in model.body if isinstance(m, torch.nn.Linear)] == [32, 16]
    assert model.head.in_features == 16
    for bad, message in (("mlp:", "bad MLP widths"), ("mlp:0", "bad MLP widths"), ("mlp:wide", "bad MLP widths"),
                         ("lenet5:64", "only mlp takes widths"), ("resnet:3", "unknown architecture")):
        with pytest.raises(OccamError, match=message):
            build_model(bad, (1, 8, 8), 10)
