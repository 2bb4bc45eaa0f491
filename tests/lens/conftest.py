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
