"""Occam Arena: a contest platform and workbench for small, interpretable neural networks.

Importing this package is cheap on purpose (no PyTorch, no onnxruntime): the CLI's
``occam score`` must not pay for importing PyTorch.
"""

__version__ = "0.1.0"
