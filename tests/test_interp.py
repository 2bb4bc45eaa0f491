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


def test_lost_weight_names_get_readable_display_names(tmp_path):
    """The legacy exporter folds BatchNorm into the conv and names the result ``onnx::Conv_<n>``."""
    import warnings

    import onnx
    from torch import nn

    from occam.interp import readable_weight_names

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1, self.fc1 = nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Linear(2 * 3 * 3, 4)

        def forward(self, x):
            return self.fc1(torch.flatten(nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2), 1))

    path = tmp_path / "legacy.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Net().eval(), (torch.rand(1, 1, 8, 8),), str(path), dynamo=False)
    mod = convert(path)
    lost = [n for n in mod.weight_names if n.startswith("onnx::")]
    assert len(lost) == 2  # the folded conv weight and bias
    assert sorted(mod.display_name(n) for n in lost) == ["conv1.bias", "conv1.weight"]
    assert mod.display_name("fc1.weight") == "fc1.weight"  # names the exporter kept stay
    assert mod.weight(lost[0]) is not None  # the ONNX name stays the key

    # an older naming style: nodes named Conv_0, weights named by number
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "7")
    b = numpy_helper.from_array(np.zeros(2, np.float32), "8")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "7", "8"], ["y"], name="Conv_0")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2, 3, 3])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert readable_weight_names(model) == {"7": "Conv_0.weight", "8": "Conv_0.bias"}
    onnx.checker.check_model(model)


def test_graph_inputs_are_taken_by_name():
    """A weight given as a graph input (as ONNX's node tests do) is fed by name; errors name what is missing."""
    from onnx import TensorProto, helper

    from occam.errors import OccamError

    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
                               helper.make_tensor_value_info("w", TensorProto.FLOAT, [3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])])
    mod = convert(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]))
    x, w = torch.rand(2, 3), torch.rand(3, 4)
    assert mod.input_names == ["x", "w"]
    assert torch.allclose(mod.run({"x": x, "w": w})["y"], x @ w)
    assert torch.allclose(mod(x, w), x @ w)
    with pytest.raises(OccamError, match="'w'"):
        mod.run({"x": x})
    with pytest.raises(OccamError, match="2 inputs"):
        mod.run(x)
