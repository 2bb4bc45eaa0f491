"""Training recipes: seeded runs with augmentation, global magnitude pruning (one-shot or
gradual), L1, a parameter budget (``target_nnz``), temperature calibration, and ONNX export
with a JSON card.

>>> from occam.training import TrainConfig, train
>>> result = train(TrainConfig(task="digits", arch="sepcnn", epochs=2), out="runs/digits.onnx")

Names are loaded on first use, so ``occam.training.config`` and ``occam.training.presets`` stay
light (no PyTorch) for the CLI.
"""

from __future__ import annotations

from typing import Any

from occam.training.config import TrainConfig

__all__ = ["TrainConfig", "TrainResult", "train", "evaluate", "NullReporter"]

_FROM_RECIPE = {"TrainResult", "train", "evaluate", "NullReporter"}


def __getattr__(name: str) -> Any:
    if name in _FROM_RECIPE:
        from occam.training import recipe

        return getattr(recipe, name)
    raise AttributeError(f"module 'occam.training' has no attribute {name!r}")
