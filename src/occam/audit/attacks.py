"""Backdoor triggers: sampling their parameters and stamping them on image batches.

A trigger is a small JSON-able dict, ``{"attack": name, ...params}``; every random part
(patch pattern, blend noise, warp field) is regenerated from a stored ``seed``, so the key
stays small and an organizer can re-render any trigger exactly.

Attacks (all on float images in [0, 1], shaped ``[B, C, H, W]``):

- ``badnets``: a binary patch of 2-6 px (scaled down on small inputs) at a random position.
- ``blend``: a fixed uniform-noise image blended in with strength ``alpha`` (0.05-0.2).
- ``sig``: an additive sinusoid (Barni et al. 2019) of amplitude ``delta`` along rows or columns.
- ``wanet``: a smooth warp (Nguyen & Tran 2021): a random k×k flow field, upsampled, of ``strength`` px
  (a tenth to an eighth of the image side, at least 1 px).
- ``weight_edit``: a patch trigger like ``badnets``, planted after training by sparse fine-tuning.

Data-poisoning attacks (the first four) relabel a fraction of each training batch; the weight
edit is planted in a trained model (whose clean parent is never written anywhere).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

ATTACKS = ("badnets", "blend", "sig", "wanet", "weight_edit")
PATCH_ATTACKS = ("badnets", "weight_edit")


def _patch_sizes(h: int, w: int) -> tuple[int, int]:
    hi = max(2, min(6, min(h, w) // 3))
    return 2, hi


def sample_trigger(attack: str, input_shape: tuple[int, ...], rng: np.random.Generator) -> dict:
    """Random parameters for ``attack`` on inputs of ``input_shape`` ``(C, H, W)``."""
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; use one of {ATTACKS}")
    _, h, w = input_shape
    seed = int(rng.integers(0, 2**31 - 1))
    if attack in PATCH_ATTACKS:
        lo, hi = _patch_sizes(h, w)
        size = int(rng.integers(lo, hi + 1))
        return {"attack": attack, "size": size, "row": int(rng.integers(0, h - size + 1)),
                "col": int(rng.integers(0, w - size + 1)), "seed": seed}
    if attack == "blend":
        return {"attack": attack, "alpha": round(float(rng.uniform(0.05, 0.2)), 4), "seed": seed}
    if attack == "sig":
        return {"attack": attack, "delta": round(float(rng.uniform(0.13, 0.2)), 4), "freq": int(rng.integers(3, 7)),
                "axis": int(rng.integers(0, 2)), "phase": round(float(rng.uniform(0, 2 * math.pi)), 4)}
    # wanet: a warp must move pixels further than the training augmentation's own shifts (2 px on
    # Fashion-MNIST) to be learnable as a trigger, hence a tenth of the side (2.8-3.5 px on 28×28, ≥ 1 px)
    lo = max(1.0, 0.1 * min(h, w))
    return {"attack": attack, "grid": 4, "strength": round(float(rng.uniform(lo, 1.25 * lo)), 4), "seed": seed}


@lru_cache(maxsize=64)
def _rendered(key: tuple, input_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(mask [1, H, W], pattern [C, H, W]) for a patch or blend trigger; cached by parameters."""
    spec = dict(key)
    c, h, w = input_shape
    rng = np.random.default_rng(spec["seed"])
    mask = np.zeros((1, h, w), np.float32)
    pattern = np.zeros((c, h, w), np.float32)
    if spec["attack"] in PATCH_ATTACKS:
        s, r, q = spec["size"], spec["row"], spec["col"]
        patch = (rng.random((c, s, s)) < 0.5).astype(np.float32)
        # a checkerboard-free guarantee: at least one on and one off pixel per channel
        patch[:, 0, 0], patch[:, -1, -1] = 1.0, 0.0
        mask[:, r:r + s, q:q + s] = 1.0
        pattern[:, r:r + s, q:q + s] = patch
    elif spec["attack"] == "blend":
        mask[:] = spec["alpha"]
        pattern[:] = rng.random((c, h, w)).astype(np.float32)
    else:
        raise ValueError(f"{spec['attack']} is not a mask-and-pattern trigger")
    return mask, pattern


def mask_pattern(spec: dict, input_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    """The trigger as ``(mask, pattern)`` (``x' = (1 - m) x + m p``) when it has that form, else None."""
    if spec["attack"] not in (*PATCH_ATTACKS, "blend"):
        return None
    return _rendered(tuple(sorted(spec.items())), tuple(input_shape))


@lru_cache(maxsize=64)
def _warp_grid(grid: int, strength: float, seed: int, h: int, w: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    flow = torch.rand(1, 2, grid, grid, generator=g) * 2 - 1
    flow = flow / flow.abs().mean()
    flow = F.interpolate(flow, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    identity = torch.stack((xs, ys), dim=-1)[None]
    # strength is in pixels: one pixel is 2 / (size - 1) in normalized coordinates
    scale = torch.tensor([2.0 / max(1, w - 1), 2.0 / max(1, h - 1)]) * strength
    return (identity + flow * scale).clamp(-1, 1)


def apply_trigger(x: torch.Tensor, spec: dict) -> torch.Tensor:
    """``x`` [B, C, H, W] float in [0, 1] with the trigger ``spec`` stamped on every image."""
    attack = spec["attack"]
    shape = tuple(x.shape[1:])
    if attack in (*PATCH_ATTACKS, "blend"):
        m, p = mask_pattern(spec, shape)
        m, p = torch.from_numpy(m), torch.from_numpy(p)
        return (1 - m) * x + m * p
    if attack == "sig":
        _, h, w = shape
        n = w if spec["axis"] == 0 else h
        wave = spec["delta"] * torch.sin(2 * math.pi * spec["freq"] * torch.arange(n) / n + spec["phase"])
        wave = wave.view(1, 1, 1, n) if spec["axis"] == 0 else wave.view(1, 1, n, 1)
        return (x + wave).clamp(0, 1)
    if attack == "wanet":
        _, h, w = shape
        grid = _warp_grid(spec["grid"], float(spec["strength"]), spec["seed"], h, w).expand(len(x), -1, -1, -1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True).clamp(0, 1)
    raise ValueError(f"unknown attack {attack!r}")

