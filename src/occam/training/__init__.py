"""Training recipes: seeded runs with augmentation, global magnitude pruning (one-shot or
gradual), L1, a parameter budget (``target_nnz``), temperature calibration, and ONNX export
with a JSON card.

>>> from occam.training import TrainConfig, train
>>> result = train(TrainConfig(task="digits", arch="sepcnn", epochs=2), out="runs/digits.onnx")
"""

from occam.training.recipe import NullReporter, TrainConfig, TrainResult, evaluate, train

__all__ = ["TrainConfig", "TrainResult", "train", "evaluate", "NullReporter"]
