"""Export to one ONNX file (opset 20, dynamic batch), with BatchNorm folded and metadata scrubbed."""

from __future__ import annotations

import copy
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from occam import __version__
from occam.errors import OccamError

OPSET = 20


def _fold(conv: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> nn.Module:
    """A convolution equal to ``bn(conv(x))`` in eval mode. Zero weights stay zero."""
    fused = copy.deepcopy(conv)
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    shape = (-1,) + (1,) * (conv.weight.dim() - 1)
    fused.weight = nn.Parameter(conv.weight.detach() * scale.reshape(shape))
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias = nn.Parameter(bn.bias.detach() + (bias - bn.running_mean) * scale)
    return fused


def fuse_for_export(model: nn.Module) -> nn.Module:
    """An eval-mode copy with every (conv, BatchNorm) pair the zoo uses folded into the conv.

    Other BatchNorms become a per-channel affine (:class:`occam.models.zoo.ChannelAffine`).

    The zoo names its pairs: ``stem``/``stem_bn`` and ``pw``/``bn`` inside separable blocks.
    Shared blocks stay shared (one module, folded once).
    """
    from occam.models.zoo import ChannelAffine

    model = copy.deepcopy(model).eval()
    pairs = (("stem", "stem_bn"), ("pw", "bn"))
    for module in list(model.modules()):
        for conv_name, bn_name in pairs:
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if isinstance(conv, nn.modules.conv._ConvNd) and isinstance(bn, nn.modules.batchnorm._BatchNorm):
                setattr(module, conv_name, _fold(conv, bn))
                setattr(module, bn_name, nn.Identity())
    # Any BatchNorm left (e.g. one per use of a shared block) becomes a per-channel scale and shift.
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                scale = child.weight.detach() / torch.sqrt(child.running_var + child.eps)
                shift = child.bias.detach() - child.running_mean * scale
                rank = 1 if isinstance(child, nn.BatchNorm1d) else 2
                setattr(module, name, ChannelAffine(scale, shift, rank))
    return model


def count_nonzero(model: nn.Module) -> int:
    """Non-zero numbers in the parameters and buffers of the *fused* model (bit pattern: -0.0 counts).

    This is what the exported file stores, up to the few shape constants the exporter adds.
    """
    fused = fuse_for_export(model)
    total = 0
    seen: set[int] = set()
    for t in list(fused.parameters()) + [b for b in fused.buffers() if b.is_floating_point()]:
        if id(t) in seen:
            continue
        seen.add(id(t))
        total += int((t.detach().float().view(torch.int32) != 0).sum())
    return total


def _scrub(proto) -> None:
    """Remove exporter metadata (stack traces, file paths, graph signatures) from a ModelProto."""
    del proto.metadata_props[:]
    proto.doc_string = ""
    proto.producer_name = "occam"
    proto.producer_version = __version__
    graph = proto.graph
    graph.doc_string = ""
    for coll in (graph.node, graph.input, graph.output, graph.value_info, graph.initializer):
        for item in coll:
            if hasattr(item, "metadata_props"):
                del item.metadata_props[:]
            if hasattr(item, "doc_string"):
                item.doc_string = ""
    if hasattr(graph, "metadata_props"):
        del graph.metadata_props[:]


def export_bytes(model: nn.Module, input_shape: tuple[int, ...], *, verify: bool = True, atol: float = 1e-4) -> bytes:
    """Serialize ``model`` to ONNX bytes (one file, dynamic batch, BN folded, metadata scrubbed)."""
    import onnx

    fused = fuse_for_export(model)
    example = torch.rand(2, *input_shape)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                fused, (example,), dynamo=True, opset_version=OPSET, external_data=False, verbose=False,
                dynamic_shapes=({0: torch.export.Dim("batch")},), input_names=["x"], output_names=["logits"],
            )
        except Exception as exc:
            raise OccamError(f"ONNX export failed: {exc}",
                             "use layers from torch.nn that export at opset 20 (see docs/models.md)") from exc
    proto = program.model_proto
    _scrub(proto)
    buf = io.BytesIO()
    onnx.save_model(proto, buf)
    data = buf.getvalue()
    if verify:
        verify_export(fused, data, input_shape, atol=atol)
    return data


def verify_export(model: nn.Module, data: bytes, input_shape: tuple[int, ...], *, atol: float = 1e-4,
                  batch: int = 7) -> float:
    """Max |ONNX − PyTorch| on a random batch; raises when above ``atol``."""
    import onnxruntime as ort

    x = torch.rand(batch, *input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model.eval()(x).numpy()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    err = float(np.max(np.abs(out - ref)))
    if not err <= atol:
        raise OccamError(f"exported ONNX differs from PyTorch by {err:.3g} (> {atol})",
                         "report this model as a bug; the export is not faithful")
    return err


def export_onnx(model: nn.Module, input_shape: tuple[int, ...], path: str | Path, **kwargs) -> Path:
    """Write ``model`` to ``path`` as one ONNX file; see :func:`export_bytes`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = export_bytes(model, input_shape, **kwargs)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def save_checkpoint(model: nn.Module, path: str | Path, *, arch: str, arch_kwargs: dict,
                    input_shape: tuple[int, ...], num_classes: int, extra: dict | None = None) -> Path:
    """A PyTorch checkpoint that ``occam train --init`` and the Lens can load."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"arch": arch, "arch_kwargs": dict(arch_kwargs), "input_shape": tuple(input_shape),
                "num_classes": int(num_classes), "state_dict": model.state_dict(), **(extra or {})}, path)
    return path


def load_checkpoint(path: str | Path) -> dict:
    try:
        ckpt = torch.load(Path(path), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise OccamError(f"cannot read checkpoint {path}: {exc}", "pass a .pt file written by occam") from exc
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "arch" not in ckpt:
        raise OccamError(f"{path} is not an occam checkpoint (no arch/state_dict)",
                         "pass a .pt file written by `occam train` or `occam fractal pretrain`")
    return ckpt
