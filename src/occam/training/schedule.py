"""The optimizer and learning-rate schedule every trainer in Occam Arena uses, written once.

Training (:mod:`occam.training.recipe`), the audit zoo (:mod:`occam.audit.train`) and FractalDB
pre-training (:mod:`occam.fractal.pretrain`) all use AdamW with weight decay on matrices and
kernels only (biases and normalization scales are not decayed) and a linear warm-up followed by a
cosine decay to zero.

>>> opt = adamw(model, lr=2e-3, weight_decay=1e-4)
>>> for step in range(total):
...     set_lr(opt, warmup_cosine(2e-3, step, total, warmup=0.02))
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["decay_groups", "adamw", "warmup_cosine", "set_lr"]


def decay_groups(params: nn.Module | Iterable[torch.nn.Parameter], weight_decay: float) -> list[dict]:
    """Two parameter groups: tensors of rank ≥ 2 decay at ``weight_decay``, the rest (biases, scales) do not."""
    ps = list(params.parameters() if isinstance(params, nn.Module) else params)
    return [{"params": [p for p in ps if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in ps if p.dim() < 2], "weight_decay": 0.0}]


def adamw(params: nn.Module | Iterable[torch.nn.Parameter], lr: float, weight_decay: float = 1e-4,
          betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.AdamW:
    """AdamW over :func:`decay_groups`."""
    return torch.optim.AdamW(decay_groups(params, weight_decay), lr=lr, betas=betas)


def warmup_cosine(lr: float, step: int, total: int, *, warmup: float = 0.0, progress: float | None = None) -> float:
    """The learning rate at ``step`` of ``total``: a linear warm-up over the first ``warmup`` fraction of
    the steps (at least one step when ``warmup`` > 0), then a half cosine from ``lr`` to zero.

    ``progress`` (0..1) replaces ``step / total`` for the cosine when training stops on a time budget.
    """
    total = max(1, total)
    warm = min(1.0, (step + 1) / max(1, int(total * warmup + 1e-9))) if warmup > 0 else 1.0
    frac = min(1.0, step / total if progress is None else progress)
    return lr * warm * 0.5 * (1.0 + math.cos(math.pi * frac))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate."""
    for g in opt.param_groups:
        g["lr"] = lr
