from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from occam.lens.onnx_to_torch import convert
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
