"""Progress measures for modular arithmetic (Nanda et al. 2023), as pure functions returning NumPy data.

All of them work for any modular model kind (see :mod:`occam.toy.models`): they need ``model(a, b)`` logits,
``model.embedding()`` (p × d input weights) and ``model.neuron_acts(a, b)``. Frequencies are k = 1 … (p−1)/2 of the
real Fourier basis over Z_p.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from occam.errors import OccamError


def fourier_basis(p: int) -> tuple[torch.Tensor, np.ndarray]:
    """The orthonormal real Fourier basis over Z_p: rows [1, cos 1, sin 1, cos 2, sin 2, …] (p × p), and each row's frequency."""
    x = torch.arange(p, dtype=torch.float64)
    rows, freqs = [torch.full((p,), 1 / np.sqrt(p), dtype=torch.float64)], [0]
    for k in range(1, (p - 1) // 2 + 1):
        rows += [torch.cos(2 * np.pi * k * x / p), torch.sin(2 * np.pi * k * x / p)]
        freqs += [k, k]
    F = torch.stack(rows)
    F[1:] = F[1:] / F[1:].norm(dim=1, keepdim=True)
    return F, np.array(freqs)


def embedding_spectrum(model: nn.Module) -> np.ndarray:
    """Norm of the input weights per frequency, shape ((p−1)/2,): entry k−1 is ‖(cos k, sin k) components‖."""
    E = model.embedding().detach().double()
    F, freqs = fourier_basis(E.shape[0])
    sq = ((F @ E) ** 2).sum(dim=1).numpy()
    K = (E.shape[0] - 1) // 2
    return np.sqrt(np.array([sq[freqs == k].sum() for k in range(1, K + 1)]))


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values (0: all equal, → 1: all mass on one entry)."""
    v = np.sort(np.abs(np.asarray(values, dtype=float)))
    n = len(v)
    if n == 0 or v.sum() == 0:
        return 0.0
    return float((2 * np.arange(1, n + 1) - n - 1) @ v / (n * v.sum()))


def logit_spectrum(model: nn.Module, p: int) -> np.ndarray:
    """Share of the (centred) logits' variance along cos/sin(2πk(a+b)/p) for each frequency k, shape ((p−1)/2,)."""
    L = all_logits(model, p).reshape(p * p, p)
    L = L - L.mean(dim=0, keepdim=True)
    K = (p - 1) // 2
    D = _sum_directions(p, range(1, K + 1))
    e = ((D @ L) ** 2).sum(dim=1).reshape(K, 2).sum(dim=1)
    return (e / (L**2).sum().clamp_min(1e-30)).numpy()


def key_frequencies(spectrum: np.ndarray, coverage: float = 0.9) -> list[int]:
    """The fewest frequencies whose share of the squared spectrum reaches ``coverage``, strongest first.

    A grokked model gives a handful; a spectrum spread over every frequency gives most of them (no sparse set)."""
    sq = np.asarray(spectrum, dtype=float) ** 2
    if sq.sum() <= 0:
        return []
    order = np.argsort(-sq)
    n = int(np.searchsorted(np.cumsum(sq[order]) / sq.sum(), coverage) + 1)
    return [int(k + 1) for k in order[: min(n, len(sq))]]


def all_pairs(p: int) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    return a.reshape(-1), b.reshape(-1)


@torch.no_grad()
def all_logits(model: nn.Module, p: int) -> torch.Tensor:
    """Logits for every pair, shape (p, p, p) indexed [a, b, c]."""
    a, b = all_pairs(p)
    return model(a, b).double().reshape(p, p, p)


def _sum_directions(p: int, freqs: Sequence[int]) -> torch.Tensor:
    """Orthonormal directions cos(2πk(a+b)/p), sin(2πk(a+b)/p) over the p² pairs, one row each."""
    a, b = all_pairs(p)
    s = (a + b).double()
    rows = []
    for k in freqs:
        if not 1 <= k <= (p - 1) // 2:
            raise OccamError(f"frequency {k} is out of range for p = {p}", f"use frequencies 1 … {(p - 1) // 2}")
        rows += [torch.cos(2 * np.pi * k * s / p), torch.sin(2 * np.pi * k * s / p)]
    D = torch.stack(rows) if rows else torch.zeros(0, p * p, dtype=torch.float64)
    return D / D.norm(dim=1, keepdim=True).clamp_min(1e-30)


def ablate_frequencies(logits: torch.Tensor, freqs: Sequence[int], keep: bool) -> torch.Tensor:
    """Logits (p, p, p) with only the cos/sin(k(a+b)) components of ``freqs`` kept (plus each output's mean), or removed."""
    p = logits.shape[0]
    if len(set(freqs)) != len(freqs):
        raise OccamError(f"frequencies repeat: {list(freqs)}", "list each frequency once")
    L = logits.reshape(p * p, p)
    D = _sum_directions(p, freqs)
    proj = D.T @ (D @ L)
    if keep:
        return (L.mean(dim=0, keepdim=True) + proj).reshape(p, p, p)
    return (L - proj).reshape(p, p, p)


def loss_on(logits: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Cross-entropy of (p, p, p) logits against c = a + b mod p, over the pairs in ``mask`` (flat p² bool) or all."""
    p = logits.shape[0]
    a, b = all_pairs(p)
    y = (a + b) % p
    L = logits.reshape(p * p, p)
    if mask is not None:
        L, y = L[mask], y[mask]
    return float(torch.nn.functional.cross_entropy(L, y))


def restricted_loss(model: nn.Module, p: int, freqs: Sequence[int], mask: torch.Tensor | None = None) -> float:
    """Loss when only the key frequencies' components of the logits are kept (Nanda et al.'s restricted loss)."""
    return loss_on(ablate_frequencies(all_logits(model, p), freqs, keep=True), mask)


def excluded_loss(model: nn.Module, p: int, freqs: Sequence[int], mask: torch.Tensor | None = None) -> float:
    """Loss when the key frequencies' components are removed from the logits (Nanda et al.'s excluded loss)."""
    return loss_on(ablate_frequencies(all_logits(model, p), freqs, keep=False), mask)


def logits_fourier_2d(model: nn.Module, p: int) -> np.ndarray:
    """Norm over outputs of the logits' 2-D Fourier coefficients, (p, p) indexed by the basis rows of a and of b."""
    F, _ = fourier_basis(p)
    C = torch.einsum("ia,jb,abc->ijc", F, F, all_logits(model, p))
    return C.norm(dim=-1).numpy()


@torch.no_grad()
def neuron_frequency_shares(model: nn.Module, p: int) -> np.ndarray:
    """For each hidden neuron, the share of its activation variance (over all pairs) carried by each frequency.

    Shape (neurons, (p−1)/2). Frequency k's share counts the 2-D Fourier terms that involve only k (and the constant)
    on both axes: cos/sin(ka), cos/sin(kb) and their products. A single-frequency neuron has one share near 1.
    """
    a, b = all_pairs(p)
    acts = model.neuron_acts(a, b).float().reshape(p, p, -1)
    F, freqs = fourier_basis(p)
    F = F.float()
    n = acts.shape[-1]
    half = (F @ acts.reshape(p, p * n)).reshape(p, p, n).transpose(0, 1).reshape(p, p * n)  # [b, i·n]
    C2 = ((F @ half).reshape(p, p, n).transpose(0, 1).double()) ** 2  # [i, j, n]
    C2[0, 0] = 0
    total = C2.sum(dim=(0, 1)).clamp_min(1e-30)
    K = (p - 1) // 2
    shares = []
    for k in range(1, K + 1):
        rows = torch.from_numpy((freqs == 0) | (freqs == k))
        shares.append(C2[rows][:, rows].sum(dim=(0, 1)) / total)
    return torch.stack(shares, dim=1).numpy()


def neuron_clusters(shares: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each neuron's dominant frequency (1-based) and the share it carries (its single-frequency fraction)."""
    return shares.argmax(axis=1) + 1, shares.max(axis=1)
