"""Seeded, locally generated data for the toy experiments (nothing is downloaded).

* :func:`modular_data`: every pair (a, b) of a∘b mod p for ∘ in +, −, ×, ÷, split into train and test.
* :func:`tms_batch`: sparse synthetic features for Toy Models of Superposition, one batch per instance.
* :func:`induction_batch`: sequences of random tokens repeated once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from occam.errors import OccamError

OPS = ("+", "-", "*", "/")


@dataclass(frozen=True)
class ModularData:
    """All pairs of a modular-arithmetic task: ``a``, ``b``, ``y`` are int64 tensors; ``train`` is a bool mask."""

    p: int
    op: str
    a: torch.Tensor
    b: torch.Tensor
    y: torch.Tensor
    train: torch.Tensor

    def split(self, which: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        m = self.train if which == "train" else ~self.train
        return self.a[m], self.b[m], self.y[m]


def _check_prime(p: int) -> None:
    if p < 3 or any(p % k == 0 for k in range(2, int(p**0.5) + 1)):
        raise OccamError(f"the modulus must be a prime ≥ 3 (division needs it), got {p}", "choose e.g. p = 59 or 113")


def modular_data(p: int = 59, op: str = "+", frac_train: float = 0.5, seed: int = 0) -> ModularData:
    """All pairs a∘b mod p (for ÷ only b ≠ 0) with a seeded random train/test split of ``frac_train``."""
    _check_prime(p)
    if op not in OPS:
        raise OccamError(f"unknown operation {op!r}", f"choose one of {', '.join(OPS)}")
    if not 0.0 < frac_train < 1.0:
        raise OccamError(f"the train fraction must lie strictly between 0 and 1, got {frac_train}", "use e.g. 0.3 or 0.5")
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    if op == "/":
        keep = b != 0
        a, b = a[keep], b[keep]
    if op == "+":
        y = (a + b) % p
    elif op == "-":
        y = (a - b) % p
    elif op == "*":
        y = (a * b) % p
    else:
        inv = torch.tensor([pow(int(v), p - 2, p) if v else 0 for v in range(p)])
        y = (a * inv[b]) % p
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(a), generator=g)
    train = torch.zeros(len(a), dtype=torch.bool)
    train[perm[: int(round(frac_train * len(a)))]] = True
    return ModularData(p=p, op=op, a=a, b=b, y=y, train=train)


def tms_batch(feature_prob: torch.Tensor, n_features: int, batch: int, generator: torch.Generator) -> torch.Tensor:
    """Sparse features of shape (instances, batch, features): each is U[0, 1] with probability ``feature_prob[i]``, else 0."""
    n_inst = feature_prob.shape[0]
    u = torch.rand(n_inst, batch, n_features, generator=generator)
    prob = feature_prob.view(-1, 1, 1)
    return torch.where(u < prob, u / prob, 0.0)  # given u < prob, u / prob is uniform on [0, 1): one draw, not two


def induction_batch(vocab: int, half: int, batch: int, generator: torch.Generator) -> torch.Tensor:
    """Random token sequences of length ``half`` repeated once: shape (batch, 2·half), tokens in [0, vocab)."""
    first = torch.randint(0, vocab, (batch, half), generator=generator)
    return torch.cat([first, first], dim=1)
