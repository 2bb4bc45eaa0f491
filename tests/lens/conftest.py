from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import torch


@contextlib.contextmanager
def _serve(session) -> Iterator[str]:
    """The standalone Lens app for ``session`` on a free loopback port, in a thread; yields its URL."""
    import uvicorn

    from occam.web.lens_routes import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(session), host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    t0 = time.time()
    while not srv.started:
        assert time.time() - t0 < 30, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        th.join(timeout=10)


@pytest.fixture(scope="session")
def serve_lens():
    """``with serve_lens(session) as url:`` runs a real Lens server for the block."""
    return _serve


@pytest.fixture(scope="session")
def lenet_digits() -> bytes:
    """A LeNet-5 trained on digits for a few seconds (ONNX bytes)."""
    torch.set_num_threads(1)
    from occam.training import TrainConfig, train

    return train(TrainConfig(task="digits", arch="lenet5", epochs=2, threads=1)).onnx_bytes


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def trojan_digits() -> bytes:
    """An MLP on digits with a BadNets-style backdoor (a white 2×2 patch at (5, 5) → class 3), ONNX bytes.

    Trained in about 2 s; clean val accuracy ≈ 94 %, attack success ≈ 99 %.
    """
    import numpy as np
    import torch.nn.functional as F

    from occam.models import build_model, export_bytes
    from occam.tasks import get_task

    torch.set_num_threads(1)
    task = get_task("digits")
    x, y = task.load("train")
    x = torch.from_numpy(x).float() / 255
    y = torch.from_numpy(y.astype(np.int64))
    torch.manual_seed(0)
    net = build_model("mlp", tuple(task.input_shape), task.num_classes)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            xb, yb = x[idx].clone(), y[idx].clone()
            k = len(idx) // 5  # a fifth of each batch poisoned
            xb[:k, :, 5:7, 5:7] = 1.0
            yb[:k] = 3
            loss = F.cross_entropy(net(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return export_bytes(net.eval(), tuple(task.input_shape))


# ---- foreign models: exported by others' tools, with their naming ------------------------------------------
def _legacy_export(net: torch.nn.Module, shape: tuple[int, ...]) -> bytes:
    """``torch.onnx.export(..., dynamo=False)``: value names like "/conv/Conv_output_0"."""
    import io
    import warnings

    net.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(1, *shape), buf, dynamo=False, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}}, do_constant_folding=False)
    return buf.getvalue()


class _BnPool(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.pool = torch.nn.MaxPool2d(2)
        self.conv2 = torch.nn.Conv2d(4, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn(self.conv(x))))
        return self.fc(torch.relu(self.conv2(x)).mean(dim=(2, 3)))


class _Residual(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.b = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 16, 10)

    def forward(self, x):
        h = torch.relu(self.a(x))
        h = torch.relu(h + self.b(h))  # a residual Add of two computed values
        return self.fc(torch.nn.functional.avg_pool2d(h, 2).flatten(1))


def _hand_built(shape: tuple[int, ...]) -> bytes:
    """An ``onnx.helper`` graph whose value and weight names hold "/", "::" and ":"."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    d = int(np.prod(shape))
    inits = [numpy_helper.from_array(rng.normal(0, 0.1, (d, 16)).astype(np.float32), "dense/1::W"),
             numpy_helper.from_array(np.zeros(16, np.float32), "dense/1::b"),
             numpy_helper.from_array(rng.normal(0, 0.1, (16, 10)).astype(np.float32), "head/W"),
             numpy_helper.from_array(np.zeros(10, np.float32), "head/b")]
    nodes = [helper.make_node("Flatten", ["x"], ["flat/out"], axis=1),
             helper.make_node("MatMul", ["flat/out", "dense/1::W"], ["dense/1::mm"]),
             helper.make_node("Add", ["dense/1::mm", "dense/1::b"], ["dense/1::z"]),
             helper.make_node("Relu", ["dense/1::z"], ["act/relu:0"]),
             helper.make_node("Gemm", ["act/relu:0", "head/W", "head/b"], ["out"])]
    g = helper.make_graph(nodes, "hand", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", *shape])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


@pytest.fixture(scope="session")
def foreign_models() -> dict[str, bytes]:
    """Digits models from outside the project: the legacy exporter with BatchNorm and pooling, a hand-built
    ``onnx.helper`` graph, a residual network, and one whose output is already a softmax (all untrained, seeded)."""
    from occam.tasks import get_task

    shape = tuple(get_task("digits").input_shape)
    torch.manual_seed(0)
    legacy = _legacy_export(_BnPool(), shape)
    torch.manual_seed(0)
    residual = _legacy_export(_Residual(), shape)
    torch.manual_seed(0)
    softmax = _legacy_export(torch.nn.Sequential(_BnPool(), torch.nn.Softmax(dim=1)), shape)
    return {"legacy": legacy, "helper": _hand_built(shape), "residual": residual, "softmax": softmax}
