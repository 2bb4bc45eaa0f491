"""Attribution maps with Captum: which input pixels (or a conv layer's positions) a class's logit depends on.

Methods (:data:`METHODS`): ``saliency`` (|gradient|), ``input_x_gradient``, ``integrated_gradients``
(with its completeness gap), ``deeplift`` (rescale rule, with its gap), ``gradient_shap``,
``guided_backprop``, ``occlusion`` (a sliding patch set to the baseline) and ``grad_cam`` (Layer
Grad-CAM on a chosen channel-first layer, upsampled to the input).

Captum's DeepLift and Guided Backprop change the backward pass of ``nn.ReLU``-style *modules*;
the Lens's ONNX interpreter calls functional ops, so attributions run on :class:`GraphModule`, a
re-wiring of the same graph (same weights, same node functions) in which every ``Relu``,
``Sigmoid``, ``Tanh`` and plain 2-D ``MaxPool`` node is its own module and any value can be tapped by a named
``nn.Identity`` (Grad-CAM hooks it).

Every result carries a symmetric colour scale ``vmax`` (the 99th percentile of |attribution|),
so maps of one image under different methods or classes can be shown side by side.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from occam.errors import OccamError
from occam.lens.custom_data import as_inputs
from occam.lens.model import LensModel

__all__ = ["METHODS", "GraphModule", "attribute", "attribute_all", "colour_scale"]

METHODS = ("saliency", "input_x_gradient", "integrated_gradients", "deeplift", "gradient_shap", "guided_backprop",
           "occlusion", "grad_cam")
_ACTS = {"Relu": nn.ReLU, "Sigmoid": nn.Sigmoid, "Tanh": nn.Tanh}


class GraphModule(nn.Module):
    """``lm.module``'s graph with its nonlinearities as modules and ``taps[value]`` identity hooks."""

    def __init__(self, lm: LensModel, taps: tuple[str, ...] = ()):
        super().__init__()
        self.graph = lm.module
        acts: dict[str, nn.Module] = {}
        for i, n in enumerate(lm.module.nodes):
            if n.op in _ACTS:
                acts[str(i)] = _ACTS[n.op]()
            elif n.op == "MaxPool" and (pool := _max_pool(n.attrs, len(n.outputs))) is not None:
                acts[str(i)] = pool
        self.acts = nn.ModuleDict(acts)
        self.taps = nn.ModuleDict({f"t{i}": nn.Identity() for i in range(len(taps))})
        self.tap_of = {name: f"t{i}" for i, name in enumerate(taps)}

    def tap(self, value: str) -> nn.Module:
        return self.taps[self.tap_of[value]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.graph
        env: dict[str, torch.Tensor] = {g.input_name: x}
        for i, node in enumerate(g.nodes):
            key = str(i)
            if key in self.acts:
                outs = [self.acts[key](env[node.inputs[0]])]
            else:
                outs = g.run_node(node, env)
            for name, val in zip(node.outputs, outs, strict=False):
                env[name] = self.taps[self.tap_of[name]](val) if name in self.tap_of else val
        return env[g.output_name]


def _max_pool(attrs: dict, outputs: int) -> nn.Module | None:
    """An ``nn.MaxPool2d`` for a plain 2-D ONNX MaxPool (DeepLift has a rule for that module), else None."""
    kernel = list(attrs.get("kernel_shape") or [])
    if len(kernel) != 2 or outputs != 1 or attrs.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
        return None
    pads = list(attrs.get("pads") or [0, 0, 0, 0])
    if pads[:2] != pads[2:]:
        return None
    return nn.MaxPool2d(kernel, list(attrs.get("strides") or [1, 1]), pads[:2], list(attrs.get("dilations") or [1, 1]),
                        ceil_mode=bool(attrs.get("ceil_mode", 0)))


def colour_scale(maps: np.ndarray, q: float = 99.0) -> float:
    """A symmetric colour limit: the ``q``-th percentile of |maps| (1.0 for an all-zero map)."""
    v = float(np.percentile(np.abs(maps), q)) if maps.size else 0.0
    if v <= 0:
        v = float(np.abs(maps).max()) if maps.size else 0.0
    return v if v > 0 else 1.0


def _targets(lm: LensModel, x: torch.Tensor, target: int | list[int] | None) -> torch.Tensor:
    n = lm.task.num_classes
    if target is None:
        with torch.no_grad():
            return lm.logits(x).argmax(1)
    t = torch.as_tensor([target] * len(x) if isinstance(target, int | np.integer) else list(target), dtype=torch.long)
    if t.shape != (len(x),):
        raise OccamError(f"{len(t)} targets for {len(x)} images", "pass one class, or one per image")
    if (t < 0).any() or (t >= n).any():
        raise OccamError(f"target class out of range: the task has {n} classes", f"pass classes in 0..{n - 1}")
    return t


def attribute(lm: LensModel, images: Any, method: str = "integrated_gradients", target: int | list[int] | None = None,
              *, layer: str | None = None, baseline: float = 0.0, steps: int = 32, samples: int = 16,
              window: int = 2, seed: int = 0) -> dict[str, Any]:
    """Attributions of the ``target`` logit (default: the predicted class) for ``images``.

    ``images``: a val index, indices, or an array. ``baseline``: the reference pixel value (IG,
    DeepLift, occlusion; GradientShap samples around it). ``steps``: IG's path steps; ``samples``:
    GradientShap's samples; ``window``: the occlusion patch side; ``layer``: Grad-CAM's layer (default:
    the last channel-first map). Returns ``maps`` [N, *input_shape] (Grad-CAM: [N, 1, *spatial]),
    ``vmax``, ``targets``, ``logits`` and, for IG and DeepLift, ``delta`` (their completeness gap
    per image: attributions' sum minus the logit change from the baseline).
    """
    from captum import attr as ca

    if method not in METHODS:
        raise OccamError(f"unknown attribution method {method!r}", f"use one of: {', '.join(METHODS)}")
    if not 1 <= steps <= 1024:
        raise OccamError(f"steps must be in 1..1024, got {steps}", "32 is usually enough")
    if not 1 <= samples <= 1024:
        raise OccamError(f"samples must be in 1..1024, got {samples}", "16 is the default")
    x = as_inputs(lm, images)
    shape = tuple(lm.task.input_shape)
    if method == "occlusion" and not 1 <= window <= min(shape[1:] or shape):
        raise OccamError(f"occlusion window {window} does not fit inputs of shape {list(shape)}",
                         "pass a window between 1 and the input's side")
    tgt = _targets(lm, x, target)
    cam_layer = None
    if method == "grad_cam":
        cam_layer = layer or _last_map(lm)
        info = lm.layer(cam_layer)
        if not info.spatial:
            raise OccamError(f"Grad-CAM needs a channel-first map; layer {cam_layer!r} has shape {list(info.shape)}",
                             "pick a conv or pooling layer")
    torch.manual_seed(seed)
    gm = GraphModule(lm, (cam_layer,) if cam_layer else ()).eval()
    base = torch.full_like(x, float(baseline))
    x = x.clone().requires_grad_(True)
    with warnings.catch_warnings():
        # Captum announces that it hooks the ReLU modules, which is what GraphModule is for
        warnings.filterwarnings("ignore", message=".*hooks.*", category=UserWarning)
        delta = None
        if method == "saliency":
            a = ca.Saliency(gm).attribute(x, target=tgt, abs=True)
        elif method == "input_x_gradient":
            a = ca.InputXGradient(gm).attribute(x, target=tgt)
        elif method == "integrated_gradients":
            a, delta = ca.IntegratedGradients(gm).attribute(x, baselines=base, target=tgt, n_steps=steps,
                                                            return_convergence_delta=True)
        elif method == "deeplift":
            a, delta = ca.DeepLift(gm).attribute(x, baselines=base, target=tgt, return_convergence_delta=True)
        elif method == "gradient_shap":
            g = torch.Generator().manual_seed(seed)
            dist = (base[:1] + 0.1 * torch.randn((8, *shape), generator=g)).clamp(0, 1)
            a = ca.GradientShap(gm).attribute(x, baselines=dist, target=tgt, n_samples=samples, stdevs=0.05)
        elif method == "guided_backprop":
            a = ca.GuidedBackprop(gm).attribute(x, target=tgt)
        elif method == "occlusion":
            win = (shape[0], window, window) if len(shape) == 3 else (window,) * len(shape)
            stride = (shape[0], max(1, window // 2), max(1, window // 2)) if len(shape) == 3 else (max(1, window // 2),)
            a = ca.Occlusion(gm).attribute(x, sliding_window_shapes=win, strides=stride, baselines=float(baseline),
                                           target=tgt)
        else:
            a = ca.LayerGradCam(gm, gm.tap(cam_layer)).attribute(x, target=tgt, relu_attributions=False)
            size = tuple(shape[1:]) if len(shape) == 3 else tuple(shape[-1:])  # [C, H, W] or a 1-D signal
            a = F.interpolate(a, size=size, mode="bilinear" if len(size) == 2 else "linear", align_corners=False)
    maps = a.detach().float().numpy()
    with torch.no_grad():
        logits = lm.logits(x.detach()).numpy()
    out: dict[str, Any] = {"method": method, "maps": maps, "vmax": colour_scale(maps), "targets": tgt.tolist(),
                           "target_names": [lm.task.class_names[int(t)] for t in tgt], "logits": logits,
                           "layer": cam_layer}
    if delta is not None:
        out["delta"] = delta.detach().double().numpy().reshape(-1)
    return out


def _last_map(lm: LensModel) -> str:
    maps = [x.name for x in lm.layers if x.spatial]
    if not maps:
        raise OccamError("this model has no channel-first layer for Grad-CAM", "use a pixel-level method instead")
    return maps[-1]


def attribute_all(lm: LensModel, image: Any, target: int | None = None,
                  methods: tuple[str, ...] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Every method (or ``methods``) on one image, with one shared colour scale for the signed maps."""
    methods = methods or tuple(m for m in METHODS if m != "grad_cam" or any(x.spatial for x in lm.layers))
    res = {m: attribute(lm, image, m, target, **kwargs) for m in methods}
    signed = [r["maps"] for m, r in res.items() if m not in ("saliency", "grad_cam")]
    shared = colour_scale(np.concatenate([s.reshape(-1) for s in signed])) if signed else 1.0
    return {"methods": res, "vmax_shared": shared}
