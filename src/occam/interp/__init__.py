"""One ONNX → PyTorch interpreter for every op the guard allows (used by the Lens and the audit).

``convert(model)`` gives an :class:`OnnxModule`; ``OPS`` is the dispatch table from op type to
implementation (its keys are exactly the guard's ``ALLOWED_OPS``).
"""

from occam.interp.module import SUPPORTED_OPS, OnnxModule, convert, readable_weight_names
from occam.interp.ops import OPS, Node

__all__ = ["OPS", "SUPPORTED_OPS", "Node", "OnnxModule", "convert", "readable_weight_names"]
