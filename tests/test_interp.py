from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from occam.interp import convert
from occam.models import build_model, export_bytes


@pytest.mark.parametrize("arch", ["mlp", "lenet5", "sepcnn", "vit"])
def test_converted_matches_onnxruntime(arch):
    shape = (1, 28, 28)
    torch.manual_seed(0)
    model = build_model(arch, shape, 10)
    data = export_bytes(model, shape)
    mod = convert(data)
    x = torch.rand(9, *shape, generator=torch.Generator().manual_seed(1))
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        out = mod(x).numpy()
    assert np.max(np.abs(out - ref)) <= 1e-5
    assert all(p.requires_grad for p in mod.parameters())
    # every node output is addressable
    env = mod.run(x)
    assert all(o in env for n in mod.nodes for o in n.outputs)
    # round trip to ONNX keeps the weights
    again = ort.InferenceSession(mod.to_bytes(), providers=["CPUExecutionProvider"])
    assert np.array_equal(again.run(None, {again.get_inputs()[0].name: x.numpy()})[0], ref)


def test_file_model_matches_onnxruntime_with_input_gradients(tmp_path):
    """What the audit needs (moved from tests/test_audit.py): a zoo model read from its file, differentiable in x."""
    from occam.models import export_onnx

    x = torch.rand(5, 1, 8, 8)
    for arch in ("lenet5", "sepcnn"):
        model = build_model(arch, (1, 8, 8), 10)
        path = export_onnx(model, (1, 8, 8), tmp_path / f"{arch}.onnx")
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        ref = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        xg = x.clone().requires_grad_(True)
        out = convert(path)(xg)
        np.testing.assert_allclose(out.detach().numpy(), ref, atol=1e-4)
        out.sum().backward()
        assert xg.grad is not None and torch.isfinite(xg.grad).all()
