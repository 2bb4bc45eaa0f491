"""Sparsity: global magnitude pruning with masks, one-shot or gradual (Zhu & Gupta 2017), and L1.

The global ranking uses layer-adaptive magnitude scores (LAMP, Lee et al. 2021) by default:
each weight's squared magnitude divided by the sum of the squared magnitudes of the weights in
its tensor that are at least as large. Raw magnitudes are not comparable across tensors when a
normalization layer follows (the layer's output does not depend on its weights' scale, and
weight decay shrinks them), so plain global magnitude pruning can empty a whole layer; LAMP keeps
every tensor's largest weight and ranks the rest by their share of their own layer.

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


def lamp_scores(w: torch.Tensor) -> torch.Tensor:
    """LAMP score of every element of ``w``: w_u² / Σ_{v: |w_v| ≥ |w_u|} w_v²; the largest weight scores 1."""
    flat = w.detach().flatten().double() ** 2
    sorted_vals, order = torch.sort(flat)
    suffix = torch.flip(torch.cumsum(torch.flip(sorted_vals, [0]), 0), [0])
    scores = torch.empty_like(flat)
    scores[order] = sorted_vals / suffix.clamp_min(1e-300)
    return scores.reshape(w.shape)


CRITERIA = ("lamp", "magnitude")


class Pruner:
    def __init__(self, model: nn.Module, criterion: str = "lamp"):
        if criterion not in CRITERIA:
            raise ValueError(f"unknown pruning criterion {criterion!r}; use one of {CRITERIA}")
        self.criterion = criterion
        self.params = prunable_parameters(model)
        self.masks = {name: torch.ones_like(p, dtype=torch.bool) for name, p in self.params}

    @property
    def total(self) -> int:
        return sum(p.numel() for _, p in self.params)

    def kept(self) -> int:
        return int(sum(int(m.sum()) for m in self.masks.values()))

    def prune_to_keep(self, keep: int) -> None:
        """Keep the ``keep`` highest-scoring weights across all prunable tensors (global ranking)."""
        keep = max(0, min(int(keep), self.total))
        with torch.no_grad():
            if self.criterion == "lamp":
                parts = [lamp_scores(p.detach() * self.masks[n]) * self.masks[n] for n, p in self.params]
            else:
                parts = [p.detach().abs().double() * self.masks[n] for n, p in self.params]
            scores = torch.cat([t.flatten() for t in parts])
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
