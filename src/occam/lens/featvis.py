"""Feature visualization: activation maximization for a unit or a class logit.

The image is parameterized in the Fourier domain (frequencies scaled by 1/f, so that gradient
steps favour smooth images), passed through a sigmoid into [0, 1], randomly jittered each step,
and penalized by total variation. Results (the image as an array) are cached on disk under ``cache_dir()/lens/featvis``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import torch

from occam.lens.model import LensModel
from occam.paths import cache_dir

__all__ = ["visualize"]


def _freq_scale(shape: tuple[int, ...]) -> torch.Tensor:
    if len(shape) == 1:
        f = torch.fft.rfftfreq(shape[0])
    else:
        fy = torch.fft.fftfreq(shape[-2])[:, None]
        fx = torch.fft.rfftfreq(shape[-1])[None, :]
        f = torch.sqrt(fx * fx + fy * fy)
    return 1.0 / torch.clamp(f, min=1.0 / max(shape[-2:]))


def _image(spec: torch.Tensor, scale: torch.Tensor, shape: tuple[int, ...], fourier: bool) -> torch.Tensor:
    if not fourier:
        return torch.sigmoid(spec)
    s = torch.view_as_complex(spec) * scale
    x = torch.fft.irfft(s, n=shape[-1]) if len(shape) == 1 else torch.fft.irfft2(s, s=tuple(shape[-2:]))
    return torch.sigmoid(x * 4.0)


def visualize(lm: LensModel, layer: str | None = None, unit: int | None = None, cls: int | None = None,
              steps: int = 128, lr: float = 0.05, tv: float = 0.05, jitter: int = 1, fourier: bool = True,
              seed: int = 0, use_cache: bool = True) -> dict[str, Any]:
    """Maximize ``layer``'s ``unit`` (mean over positions) or class ``cls``'s logit."""
    shape = tuple(lm.task.input_shape)
    params = {"model": lm.hash, "layer": layer, "unit": unit, "cls": cls, "steps": steps, "lr": lr, "tv": tv,
              "jitter": jitter, "fourier": fourier, "seed": seed, "v": 2}
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:20]
    path = cache_dir() / "lens" / "featvis" / lm.hash / f"{key}.json"
    if use_cache and path.exists():
        d = json.loads(path.read_text())
        return {**d, "image": np.asarray(d["image"], dtype=np.float32), "cached": True}
    target_layer = lm.module.output_name if cls is not None else layer
    info = lm.layer(target_layer)
    idx = cls if cls is not None else int(unit or 0)
    g = torch.Generator().manual_seed(seed)
    if fourier:
        fshape = (shape[0], shape[1], shape[2] // 2 + 1) if len(shape) == 3 else (shape[0] // 2 + 1,)
        spec = (torch.randn(*fshape, 2, generator=g) * 0.01).requires_grad_(True)
    else:
        spec = (torch.randn(*shape, generator=g) * 0.1).requires_grad_(True)
    scale = _freq_scale(shape)
    opt = torch.optim.Adam([spec], lr=lr)
    trace = []
    for step in range(steps):
        x = _image(spec, scale, shape, fourier).reshape(1, *shape)
        if jitter and len(shape) == 3:
            dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=g))
            x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        env = lm.module.run(x, stop_at=target_layer)
        act = env[target_layer].movedim(info.axis, 1)[:, idx].mean()
        tvl = 0.0
        if len(shape) == 3:
            tvl = (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., 1:] - x[..., :-1]).abs().mean()
        else:
            tvl = (x[..., 1:] - x[..., :-1]).abs().mean()
        loss = -act + tv * tvl
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 8 == 0 or step == steps - 1:
            trace.append(float(act.detach()))
    with torch.no_grad():
        img = _image(spec, scale, shape, fourier).reshape(shape).numpy()
    out = {"params": params, "activation": trace[-1], "trace": trace, "image": img.round(5).tolist(),
           "target": f"class {lm.task.class_names[cls]}" if cls is not None else f"{layer}[{unit}]"}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out))
    tmp.replace(path)
    return {**out, "image": np.asarray(out["image"], dtype=np.float32), "cached": False}
