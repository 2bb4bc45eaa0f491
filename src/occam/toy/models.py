"""The toy model kinds, each built from a plain config dict by :func:`build_model`.

Modular-arithmetic models take ``(a, b)`` int64 tensors and return logits of shape (N, p):

* ``transformer``: the 1-layer transformer of Nanda et al. 2023 (d_model 128, 4 heads of 32, MLP 512, ReLU, no
  LayerNorm, inputs ``a b =``, read out at the last position). Its training forward uses the fact that the only
  query is at the ``=`` position: keys, values and scores per (token, position) are a small table computed once per
  step instead of once per example (:meth:`NandaTransformer.forward`); :meth:`NandaTransformer.run_tokens` is the
  plain forward over whole sequences (it also returns the attention patterns) and agrees with it to float precision.
* ``onehot_mlp``: an MLP on one-hot pairs (the first layer is two lookups, ``W_a[a] + W_b[b]``).
* ``embed_mlp``: an MLP whose two inputs share one narrow embedding.

Other kinds: ``tms`` (x' = ReLU(WᵀWx + b), many instances in one tensor with an instance axis) and
``attn_only`` (a 2-layer attention-only transformer for induction heads).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from occam.errors import OccamError


def _randn(*shape: int, std: float) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * std)


class NandaTransformer(nn.Module):
    """One attention layer + one ReLU MLP, no LayerNorm; vocabulary p + 1 (the last token is ``=``)."""

    def __init__(self, p: int, d_model: int = 128, n_heads: int = 4, d_head: int = 32, d_mlp: int = 512):
        super().__init__()
        self.p, self.n_heads, self.d_head = p, n_heads, d_head
        s = 1 / math.sqrt(d_model)
        self.W_E = _randn(p + 1, d_model, std=s)
        self.W_pos = _randn(3, d_model, std=s)
        self.W_Q = _randn(n_heads, d_model, d_head, std=s)
        self.W_K = _randn(n_heads, d_model, d_head, std=s)
        self.W_V = _randn(n_heads, d_model, d_head, std=s)
        self.W_O = _randn(n_heads, d_head, d_model, std=1 / math.sqrt(n_heads * d_head))
        self.W_in = _randn(d_model, d_mlp, std=s)
        self.b_in = nn.Parameter(torch.zeros(d_mlp))
        self.W_out = _randn(d_mlp, d_model, std=1 / math.sqrt(d_mlp))
        self.b_out = nn.Parameter(torch.zeros(d_model))
        self.W_U = _randn(d_model, p, std=1 / math.sqrt(d_model))

    def embedding(self) -> torch.Tensor:
        return self.W_E[: self.p]

    def _attn_out_last(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Residual at ``=`` before the attention, attention output there, and patterns (N, heads, 3)."""
        eq = self.p
        x = self.W_E.unsqueeze(0) + self.W_pos.unsqueeze(1)  # (3 positions, vocab, d_model): every (position, token)
        q = torch.einsum("d,hde->he", x[2, eq], self.W_Q)  # the only query: '=' at position 2
        k_tab = torch.einsum("pvd,hde->pvhe", x, self.W_K)
        scores = torch.einsum("pvhe,he->pvh", k_tab, q) / math.sqrt(self.d_head)  # (3, vocab, heads)
        vo_tab = torch.einsum("pvd,hde,hef->pvhf", x, self.W_V, self.W_O)  # value through W_O per head
        s = torch.stack([scores[0, a], scores[1, b], scores[2, eq].expand(a.shape[0], -1)], dim=-1)
        pattern = torch.softmax(s, dim=-1)  # (N, heads, 3)
        out = ((pattern[..., 0, None] * vo_tab[0, a]).sum(1) + (pattern[..., 1, None] * vo_tab[1, b]).sum(1)
               + pattern[..., 2] @ vo_tab[2, eq])
        return x[2, eq], out, pattern

    def neuron_acts(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x2, attn, _ = self._attn_out_last(a, b)
        return torch.relu((x2 + attn) @ self.W_in + self.b_in)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x2, attn, _ = self._attn_out_last(a, b)
        resid = x2 + attn
        resid = resid + torch.relu(resid @ self.W_in + self.b_in) @ self.W_out + self.b_out
        return resid @ self.W_U

    def run_tokens(self, tokens: torch.Tensor, head_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The plain forward over sequences (N, 3): logits at the last position and patterns (N, heads, 3, 3).

        ``head_mask`` (heads,) scales each head's output (0 ablates it)."""
        x = self.W_E[tokens] + self.W_pos
        q = torch.einsum("ntd,hde->nhte", x, self.W_Q)
        k = torch.einsum("ntd,hde->nhte", x, self.W_K)
        v = torch.einsum("ntd,hde->nhte", x, self.W_V)
        s = q @ k.transpose(-1, -2) / math.sqrt(self.d_head)
        s = s.masked_fill(torch.triu(torch.ones(3, 3, dtype=torch.bool), 1), float("-inf"))
        pattern = torch.softmax(s, dim=-1)
        z = pattern @ v if head_mask is None else (pattern @ v) * head_mask.view(1, -1, 1, 1)
        x = x + torch.einsum("nhte,hef->ntf", z, self.W_O)
        x = x + torch.relu(x @ self.W_in + self.b_in) @ self.W_out + self.b_out
        return x[:, -1] @ self.W_U, pattern


class OneHotMLP(nn.Module):
    """ReLU MLP on the concatenated one-hot codes of a and b."""

    def __init__(self, p: int, hidden: int = 256):
        super().__init__()
        self.p = p
        self.W_a = _randn(p, hidden, std=1 / math.sqrt(2 * p))
        self.W_b = _randn(p, hidden, std=1 / math.sqrt(2 * p))
        self.b_in = nn.Parameter(torch.zeros(hidden))
        self.W_out = _randn(hidden, p, std=1 / math.sqrt(hidden))
        self.b_out = nn.Parameter(torch.zeros(p))

    def embedding(self) -> torch.Tensor:
        """The input weights of both operands side by side, (p, 2·hidden): what the Fourier spectrum is taken of."""
        return torch.cat([self.W_a, self.W_b], dim=1)

    def neuron_acts(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.relu(F.embedding(a, self.W_a) + F.embedding(b, self.W_b) + self.b_in)  # lookups, not a matmul

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.neuron_acts(a, b) @ self.W_out + self.b_out


class EmbedMLP(nn.Module):
    """ReLU MLP over [E[a], E[b]] with one shared narrow embedding E (p × d_embed)."""

    def __init__(self, p: int, hidden: int = 256, d_embed: int = 32):
        super().__init__()
        self.p = p
        self.E = _randn(p, d_embed, std=1.0)
        self.W_a = _randn(d_embed, hidden, std=1 / math.sqrt(2 * d_embed))
        self.W_b = _randn(d_embed, hidden, std=1 / math.sqrt(2 * d_embed))
        self.b_in = nn.Parameter(torch.zeros(hidden))
        self.W_out = _randn(hidden, p, std=1 / math.sqrt(hidden))
        self.b_out = nn.Parameter(torch.zeros(p))

    def embedding(self) -> torch.Tensor:
        return self.E

    def neuron_acts(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ea, eb = self.E @ self.W_a, self.E @ self.W_b  # (p, hidden) tables: two lookups per example
        return torch.relu(ea[a] + eb[b] + self.b_in)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.neuron_acts(a, b) @ self.W_out + self.b_out


class TMSModel(nn.Module):
    """x' = ReLU(WᵀWx + b) for ``n_instances`` independent models at once: W (I, m, n), b (I, n)."""

    def __init__(self, n_features: int = 5, n_hidden: int = 2, n_instances: int = 10):
        super().__init__()
        self.W = nn.Parameter(torch.empty(n_instances, n_hidden, n_features))
        nn.init.xavier_normal_(self.W)
        self.b = nn.Parameter(torch.zeros(n_instances, n_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (I, batch, n)
        wtw = self.W.transpose(1, 2) @ self.W  # (I, n, n), symmetric: one batched matmul per step instead of two
        return torch.relu(torch.baddbmm(self.b.unsqueeze(1), x, wtw))


class AttnOnly(nn.Module):
    """An attention-only transformer (causal, learned positions, no LayerNorm, no MLP)."""

    def __init__(self, vocab: int, n_ctx: int, d_model: int = 64, n_heads: int = 4, n_layers: int = 2):
        super().__init__()
        d_head = d_model // n_heads
        self.n_heads, self.d_head, self.n_layers = n_heads, d_head, n_layers
        s = 1 / math.sqrt(d_model)
        self.W_E = _randn(vocab, d_model, std=s)
        self.W_pos = _randn(n_ctx, d_model, std=s)
        self.W_QKV = nn.ParameterList([_randn(3, n_heads, d_model, d_head, std=s) for _ in range(n_layers)])
        self.W_O = nn.ParameterList([_randn(n_heads, d_head, d_model, std=1 / math.sqrt(d_model)) for _ in range(n_layers)])
        self.W_U = _randn(d_model, vocab, std=s)

    def run(self, tokens: torch.Tensor, head_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (N, T, vocab) and attention patterns (layers, N, heads, T, T); ``head_mask`` (layers, heads)
        scales each head's output (0 ablates it)."""
        T = tokens.shape[1]
        x = self.W_E[tokens] + self.W_pos[:T]
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
        patterns = []
        for layer, (W, W_O) in enumerate(zip(self.W_QKV, self.W_O, strict=True)):
            q, k, v = torch.einsum("ntd,chde->cnhte", x, W)
            s = (q @ k.transpose(-1, -2) / math.sqrt(self.d_head)).masked_fill(mask, float("-inf"))
            pat = torch.softmax(s, dim=-1)
            z = pat @ v if head_mask is None else (pat @ v) * head_mask[layer].view(1, -1, 1, 1)
            x = x + torch.einsum("nhte,hef->ntf", z, W_O)
            patterns.append(pat)
        return x @ self.W_U, torch.stack(patterns)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.run(tokens)[0]


KINDS = {
    "transformer": NandaTransformer,
    "onehot_mlp": OneHotMLP,
    "embed_mlp": EmbedMLP,
    "tms": TMSModel,
    "attn_only": AttnOnly,
}

MODULAR_KINDS = ("transformer", "onehot_mlp", "embed_mlp")


def build_model(kind: str, **config: Any) -> nn.Module:
    """Build a fresh model of ``kind`` from its config (the ``model`` dict of a run's ``run.json``)."""
    if kind not in KINDS:
        raise OccamError(f"unknown toy model kind {kind!r}", f"choose one of {', '.join(KINDS)}")
    try:
        return KINDS[kind](**config)
    except TypeError as exc:
        raise OccamError(f"bad config for toy model kind {kind!r}: {exc}", "check the model settings in run.json") from None
