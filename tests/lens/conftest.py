from __future__ import annotations

import pytest
import torch


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
