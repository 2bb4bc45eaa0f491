"""Batch augmentation on tensors (no torchvision): random flips and translations with zero padding.

Policies are named per task (``Task.augment``): ``none``, ``shift1``, ``shift2``,
``flip-shift2`` (Fashion-MNIST), ``flip-shift4`` (CIFAR-10).
"""

from __future__ import annotations

import torch

POLICIES = ("none", "shift1", "shift2", "flip-shift2", "flip-shift4")


def _parse(policy: str) -> tuple[bool, int]:
    if policy not in POLICIES:
        raise ValueError(f"unknown augmentation policy {policy!r}; use one of {POLICIES}")
    flip = policy.startswith("flip")
    shift = int(policy[-1]) if "shift" in policy else 0
    return flip, shift


def translate(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, pad: int) -> torch.Tensor:
    """Shift each image of ``x`` [B, C, H, W] by (dy, dx) pixels, filling with zeros."""
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = (torch.arange(h)[None, :] + pad - dy[:, None]).clamp(0, h + 2 * pad - 1)
    cols = (torch.arange(w)[None, :] + pad - dx[:, None]).clamp(0, w + 2 * pad - 1)
    bi = torch.arange(b)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def augment(x: torch.Tensor, policy: str, gen: torch.Generator) -> torch.Tensor:
    """Augment a float batch according to ``policy``; 1-D inputs ([B, L]) are returned unchanged."""
    flip, shift = _parse(policy)
    if x.dim() != 4 or (not flip and shift == 0):
        return x
    if flip:
        mask = torch.rand(x.shape[0], generator=gen) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(-1), x)
    if shift:
        dy = torch.randint(-shift, shift + 1, (x.shape[0],), generator=gen)
        dx = torch.randint(-shift, shift + 1, (x.shape[0],), generator=gen)
        x = translate(x, dy, dx, shift)
    return x
