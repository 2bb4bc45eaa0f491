"""Feature visualization with objectives, diversity and Lucent's transforms.

Objectives (Olah et al. 2017, "Feature Visualization"; Lucent's ``objectives``): a **unit** (one
neuron: a unit at one spatial position, the centre by default, or a unit of a flat layer), a
**channel** (a unit's mean over all positions), a **class** logit, and the **negative** of any of
them (what turns it off most). Objectives add: ``channel("relu_1", 3) - 0.5 * channel("relu_1", 4)``.

Several images per objective are optimized together; the **diversity** term (Lucent's
``diversity``) subtracts the mean pairwise cosine similarity of the images' Gram matrices at a layer
(for flat layers, of their activation vectors), pushing the batch towards different solutions.

Each step applies random **transforms** (Lucent's ``standard_transforms``): ``pad`` (constant 0.5),
``jitter`` (a random shift), ``scale`` and ``rotate`` (one random affine warp), then crops back, so
that the image cannot rely on exact pixel positions. The image parameterization (Fourier domain with
1/f scaling, then a sigmoid) is the one in :mod:`occam.lens.featvis`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from occam.errors import OccamError
from occam.lens.featvis import _freq_scale, _image
from occam.lens.model import LensModel

__all__ = ["Objective", "unit", "channel", "class_logit", "negative", "objective_values", "visualize_objective",
           "TRANSFORMS"]

TRANSFORMS = ("pad", "jitter", "scale", "rotate")


@dataclass(frozen=True)
class Term:
    kind: str  # unit | channel | class
    layer: str | None
    index: int
    position: tuple[int, ...] | None
    weight: float


@dataclass(frozen=True)
class Objective:
    """A weighted sum of terms; maximized by :func:`visualize_objective`."""

    terms: tuple[Term, ...] = field(default_factory=tuple)

    def __add__(self, other: Objective) -> Objective:
        return Objective(self.terms + other.terms)

    def __sub__(self, other: Objective) -> Objective:
        return self + (-1.0) * other

    def __rmul__(self, k: float) -> Objective:
        return Objective(tuple(Term(t.kind, t.layer, t.index, t.position, t.weight * float(k)) for t in self.terms))

    def __neg__(self) -> Objective:
        return (-1.0) * self

    def describe(self) -> str:
        parts = []
        for t in self.terms:
            what = f"class {t.index}" if t.kind == "class" else f"{t.kind} {t.layer}[{t.index}]"
            if t.position is not None:
                what += f"@{list(t.position)}"
            parts.append(what if t.weight == 1 else f"{t.weight:g}·{what}")
        return " + ".join(parts)


def unit(layer: str, index: int, position: tuple[int, ...] | None = None) -> Objective:
    """One neuron: unit ``index`` of ``layer`` at ``position`` (default: the centre) on a map."""
    return Objective((Term("unit", layer, int(index), tuple(position) if position is not None else None, 1.0),))


def channel(layer: str, index: int) -> Objective:
    """Unit ``index`` of ``layer`` averaged over all positions."""
    return Objective((Term("channel", layer, int(index), None, 1.0),))


def class_logit(cls: int) -> Objective:
    """The logit of class ``cls``."""
    return Objective((Term("class", None, int(cls), None, 1.0),))


def negative(obj: Objective) -> Objective:
    """What minimizes ``obj``."""
    return -obj


def _check(lm: LensModel, obj: Objective) -> list[str]:
    if not obj.terms:
        raise OccamError("the objective is empty", "use unit(), channel(), class_logit() or a sum of them")
    layers = []
    for t in obj.terms:
        if t.kind == "class":
            n = lm.task.num_classes
            if not 0 <= t.index < n:
                raise OccamError(f"class {t.index} is out of range: the task has {n} classes", f"pass 0..{n - 1}")
            layers.append(lm.module.output_name)
            continue
        info = lm.layer(t.layer or "")
        if not 0 <= t.index < info.units:
            raise OccamError(f"unit {t.index} is out of range: layer {t.layer!r} has {info.units} units",
                             f"pass 0..{info.units - 1}")
        if t.position is not None:
            pos = [s for i, s in enumerate(info.shape) if i != info.axis - 1]
            if len(t.position) != len(pos) or any(not 0 <= p < s for p, s in zip(t.position, pos, strict=False)):
                raise OccamError(f"position {list(t.position)} does not fit layer {t.layer!r}'s positions {pos}",
                                 "pass one index per spatial axis, within range, or leave it out")
        layers.append(info.name)
    return layers


def _term_value(lm: LensModel, t: Term, env: dict[str, torch.Tensor]) -> torch.Tensor:
    if t.kind == "class":
        return env[lm.module.output_name][:, t.index]
    info = lm.layer(t.layer or "")
    v = env[info.name].movedim(info.axis, 1)[:, t.index]  # [B, *positions]
    if t.kind == "channel" or v.dim() == 1:
        return v.reshape(v.shape[0], -1).mean(1)
    pos = t.position if t.position is not None else tuple(s // 2 for s in v.shape[1:])
    return v[(slice(None), *pos)]


def objective_values(lm: LensModel, obj: Objective, x: torch.Tensor) -> torch.Tensor:
    """``[B]``: the objective on a batch of inputs (differentiable)."""
    _check(lm, obj)
    env = lm.module.run(x, stop_at=_last(lm, obj))
    return sum((t.weight * _term_value(lm, t, env) for t in obj.terms), torch.zeros(len(x)))


def _last(lm: LensModel, obj: Objective) -> str:
    names = _check(lm, obj)
    idx = {n: lm.module.producer.get(n, -1) for n in names}
    return max(names, key=lambda n: idx[n])


def _transform(x: torch.Tensor, transforms: tuple[str, ...], g: torch.Generator, pad: int, jitter: int,
               scale: tuple[float, float], degrees: float) -> torch.Tensor:
    spatial = x.dim() - 2
    size = x.shape[2:]
    if "pad" in transforms and pad > 0:
        x = F.pad(x, [pad] * (2 * spatial), value=0.5)
    if "jitter" in transforms and jitter > 0:
        shifts = [int(v) for v in torch.randint(-jitter, jitter + 1, (spatial,), generator=g)]
        x = torch.roll(x, shifts=shifts, dims=tuple(range(2, 2 + spatial)))
    if spatial == 2 and ("scale" in transforms or "rotate" in transforms):
        s = 1.0
        if "scale" in transforms:
            s = scale[0] + (scale[1] - scale[0]) * float(torch.rand((), generator=g))
        a = 0.0
        if "rotate" in transforms:
            a = math.radians(degrees * (2 * float(torch.rand((), generator=g)) - 1))
        theta = torch.tensor([[math.cos(a) / s, -math.sin(a) / s, 0.0], [math.sin(a) / s, math.cos(a) / s, 0.0]])
        grid = F.affine_grid(theta[None].expand(len(x), 2, 3), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # crop back to the model's input size (the centre)
    for d, n in enumerate(size):
        start = (x.shape[2 + d] - n) // 2
        x = x.narrow(2 + d, start, n)
    return x


def _gram_similarity(v: torch.Tensor, axis: int) -> torch.Tensor:
    """Mean pairwise cosine similarity of the batch's Gram matrices (activation vectors for flat layers)."""
    if len(v) < 2:
        return torch.zeros(())
    if v.dim() > 2:
        v = v.movedim(axis, 1)
        v = v.reshape(v.shape[0], v.shape[1], -1)
        feats = (v @ v.transpose(1, 2)).reshape(len(v), -1)
    else:
        feats = v
    f = F.normalize(feats, dim=1)
    sim = f @ f.t()
    n = len(v)
    return (sim.sum() - sim.diagonal().sum()) / (n * (n - 1))


def visualize_objective(lm: LensModel, objective: Objective, n: int = 1, steps: int = 128, lr: float = 0.05,
                        diversity: float = 0.0, diversity_layer: str | None = None,
                        transforms: tuple[str, ...] = TRANSFORMS, pad: int = 2, jitter: int = 1,
                        scale: tuple[float, float] = (0.9, 1.1), degrees: float = 10.0, tv: float = 0.05,
                        fourier: bool = True, seed: int = 0) -> dict[str, Any]:
    """Optimize ``n`` inputs to maximize ``objective`` (plus ``diversity`` × the diversity term).

    Returns ``images`` [n, *input_shape] in [0, 1], ``values`` (the objective on each, untransformed),
    ``similarity`` (the final mean pairwise Gram cosine similarity at ``diversity_layer``), the
    ``trace`` of the mean objective, and the settings.
    """
    _check(lm, objective)
    if not 1 <= n <= 64:
        raise OccamError(f"n must be in 1..64, got {n}", "a handful of images per objective is typical")
    if not 1 <= steps <= 10_000:
        raise OccamError(f"steps must be in 1..10000, got {steps}", "128 is the default")
    bad = [t for t in transforms if t not in TRANSFORMS]
    if bad:
        raise OccamError(f"unknown transform {bad[0]!r}", f"use some of: {', '.join(TRANSFORMS)}")
    if diversity < 0:
        raise OccamError(f"diversity must be non-negative, got {diversity}", "try 1.0 with n > 1")
    shape = tuple(lm.task.input_shape)
    div_layer = diversity_layer
    if div_layer is None:
        first = next((t.layer for t in objective.terms if t.layer), None)
        div_layer = first or lm.module.output_name
    div_info = lm.layer(div_layer)
    stop = max([_last(lm, objective), div_layer], key=lambda v: lm.module.producer.get(v, -1))
    g = torch.Generator().manual_seed(seed)
    if fourier:
        fshape = (*shape[:-1], shape[-1] // 2 + 1)
        spec = (torch.randn(n, *fshape, 2, generator=g) * 0.01).requires_grad_(True)
    else:
        spec = (torch.randn(n, *shape, generator=g) * 0.1).requires_grad_(True)
    fscale = _freq_scale(shape)
    opt = torch.optim.Adam([spec], lr=lr)
    trace = []
    for step in range(steps):
        x = _image(spec, fscale, shape, fourier).reshape(n, *shape)
        xt = _transform(x, transforms, g, pad, jitter, scale, degrees) if len(shape) >= 2 else x
        env = lm.module.run(xt, stop_at=stop)
        val = sum((t.weight * _term_value(lm, t, env) for t in objective.terms), torch.zeros(n))
        loss = -val.mean()
        if diversity > 0 and n > 1:
            loss = loss + diversity * _gram_similarity(env[div_layer], div_info.axis)
        if tv > 0 and len(shape) >= 2:
            loss = loss + tv * ((x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., 1:] - x[..., :-1]).abs().mean())
        elif tv > 0:
            loss = loss + tv * (x[..., 1:] - x[..., :-1]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 8 == 0 or step == steps - 1:
            trace.append(float(val.detach().mean()))
    with torch.no_grad():
        imgs = _image(spec, fscale, shape, fourier).reshape(n, *shape)
        env = lm.module.run(imgs, stop_at=stop)
        vals = sum((t.weight * _term_value(lm, t, env) for t in objective.terms), torch.zeros(n))
        sim = float(_gram_similarity(env[div_layer], div_info.axis))
    return {"objective": objective.describe(), "images": imgs.numpy(), "values": vals.numpy().astype(np.float64),
            "similarity": sim, "trace": trace, "diversity": diversity, "diversity_layer": div_layer,
            "transforms": list(transforms), "steps": steps, "seed": seed}
