"""Models: the zoo (MLP, LeNet-5, a tiny separable-conv CNN, a tiny ViT) and ONNX export.

>>> from occam.models import build_model, export_onnx
>>> model = build_model("sepcnn", (1, 28, 28), 10)
>>> export_onnx(model, (1, 28, 28), "model.onnx")
"""

from __future__ import annotations

from occam.models.export import (
    count_nonzero,
    export_bytes,
    export_onnx,
    fuse_for_export,
    load_checkpoint,
    save_checkpoint,
)
from occam.models.zoo import ARCHS, MLP, LeNet5, SepCNN, TinyViT


def build_model(arch: str, input_shape: tuple[int, ...], num_classes: int, **kwargs):
    """Instantiate a zoo architecture for an input shape and class count."""
    from occam.errors import OccamError

    if arch not in ARCHS:
        raise OccamError(f"unknown architecture {arch!r}", f"use one of: {', '.join(ARCHS)}")
    try:
        return ARCHS[arch](tuple(input_shape), num_classes, **kwargs)
    except TypeError as exc:
        raise OccamError(f"bad options for {arch}: {exc}",
                         f"see the constructor of occam.models.zoo.{ARCHS[arch].__name__} for its options") from exc


__all__ = ["ARCHS", "MLP", "LeNet5", "SepCNN", "TinyViT", "build_model", "export_onnx", "export_bytes", "fuse_for_export",
           "count_nonzero", "save_checkpoint", "load_checkpoint"]
