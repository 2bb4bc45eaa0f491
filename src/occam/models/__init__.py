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


def parse_arch(arch: str) -> tuple[str, dict]:
    """An architecture name, optionally with MLP widths: ``"mlp:256"`` or ``"mlp:256x128"``.

    Returns the registered name and its constructor options (``{"hidden": (256,)}``); raises
    :class:`occam.errors.OccamError` naming the problem for anything else.
    """
    from occam.errors import OccamError

    name, sep, widths = arch.partition(":")
    if name not in ARCHS:
        raise OccamError(f"unknown architecture {arch!r}", f"use one of: {', '.join(ARCHS)} (mlp:W for a W-unit MLP)")
    if not sep:
        return name, {}
    if name != "mlp":
        raise OccamError(f"architecture {arch!r}: only mlp takes widths", f"use {name} alone, or mlp:W")
    try:
        hidden = tuple(int(w) for w in widths.split("x"))
    except ValueError:
        hidden = ()
    if not hidden or min(hidden) < 1:
        raise OccamError(f"bad MLP widths in {arch!r}", "use mlp:W or mlp:W1xW2 with positive integers, e.g. mlp:256")
    return name, {"hidden": hidden}


def build_model(arch: str, input_shape: tuple[int, ...], num_classes: int, **kwargs):
    """Instantiate a zoo architecture (``parse_arch`` syntax) for an input shape and class count."""
    from occam.errors import OccamError

    name, options = parse_arch(arch)
    try:
        return ARCHS[name](tuple(input_shape), num_classes, **{**options, **kwargs})
    except TypeError as exc:
        raise OccamError(f"bad options for {arch}: {exc}",
                         f"see the constructor of occam.models.zoo.{ARCHS[name].__name__} for its options") from exc


__all__ = ["ARCHS", "MLP", "LeNet5", "SepCNN", "TinyViT", "build_model", "parse_arch", "export_onnx", "export_bytes",
           "fuse_for_export",
           "count_nonzero", "save_checkpoint", "load_checkpoint"]
