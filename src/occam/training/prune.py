"""Sparsity: global magnitude pruning with masks, one-shot or gradual (Zhu & Gupta 2017), and L1.

A :class:`Pruner` owns a binary mask per prunable weight (every parameter with two or more
dimensions: conv kernels, linear weights, position embeddings). Biases and normalization
parameters stay dense; they are few. After every optimizer step the masks are re-applied,
so pruned weights stay exactly zero and the exported file stores fewer non-zero numbers.
"""

from __future__ import annotations

import torch
from torch import nn


def prunable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    seen: set[int] = set()
    out = []
    for name, p in model.named_parameters():
        if p.dim() >= 2 and id(p) not in seen:
            seen.add(id(p))
            out.append((name, p))
    return out


def gradual_schedule(fraction: float, final: float, start: float = 0.1, end: float = 0.6) -> float:
    """Sparsity at training ``fraction`` (Zhu & Gupta's cubic ramp from ``start`` to ``end``)."""
    if fraction <= start:
        return 0.0
    if fraction >= end:
        return final
    t = (fraction - start) / (end - start)
    return final * (1.0 - (1.0 - t) ** 3)


class Pruner:
    def __init__(self, model: nn.Module):
        self.params = prunable_parameters(model)
        self.masks = {name: torch.ones_like(p, dtype=torch.bool) for name, p in self.params}

    @property
    def total(self) -> int:
        return sum(p.numel() for _, p in self.params)

    def kept(self) -> int:
        return int(sum(int(m.sum()) for m in self.masks.values()))

    def prune_to_keep(self, keep: int) -> None:
        """Keep the ``keep`` largest-magnitude weights across all prunable tensors (global magnitude)."""
        keep = max(0, min(int(keep), self.total))
        with torch.no_grad():
            scores = torch.cat([(p.detach().abs() * self.masks[n]).flatten() for n, p in self.params])
            if keep >= self.total:
                threshold_idx = None
            else:
                order = torch.argsort(scores, descending=True, stable=True)
                chosen = torch.zeros_like(scores, dtype=torch.bool)
                chosen[order[:keep]] = True
                threshold_idx = chosen
            offset = 0
            for name, p in self.params:
                n = p.numel()
                if threshold_idx is not None:
                    self.masks[name] = threshold_idx[offset:offset + n].reshape(p.shape) & self.masks[name]
                offset += n
        self.apply()

    def prune_to_sparsity(self, sparsity: float) -> None:
        self.prune_to_keep(round(self.total * (1.0 - sparsity)))

    def apply(self) -> None:
        with torch.no_grad():
            for name, p in self.params:
                # masked_fill writes +0.0; multiplying by the mask would leave -0.0, which counts as stored
                p.masked_fill_(~self.masks[name], 0.0)

    def l1(self) -> torch.Tensor:
        return sum((p.abs() * self.masks[n]).sum() for n, p in self.params)
