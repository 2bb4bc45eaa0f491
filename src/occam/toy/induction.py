"""Induction heads (Olsson et al. 2022) in a 2-layer attention-only transformer on sequences repeated once.

Measures: the loss on the repeated half (where an induction head can predict every token) against the loss on
the first half (random, ln V at best), and per head an induction score (mean attention from each position t of the
repeat to t − half + 1, the token after the earlier copy of the current one) and a previous-token score.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from occam.errors import OccamError
from occam.toy.data import induction_batch
from occam.toy.models import AttnOnly
from occam.toy.runs import RunWriter, schedule


@dataclass
class InductionConfig:
    vocab: int = 64
    half: int = 12
    d_model: int = 64
    n_heads: int = 4
    steps: int = 1000  # the phase change is over by step ~400 at these settings
    batch: int = 64
    lr: float = 1e-3
    seed: int = 0
    n_checkpoints: int = 40
    eval_batch: int = 256

    def validate(self) -> InductionConfig:
        if self.vocab < 2 or self.half < 2:
            raise OccamError("the vocabulary and the half length must be ≥ 2", "use e.g. vocab 64, half 12")
        if self.d_model % self.n_heads:
            raise OccamError(f"d_model {self.d_model} is not a multiple of the {self.n_heads} heads", "change one of them")
        return self


def split_losses(logits: torch.Tensor, tokens: torch.Tensor, half: int) -> tuple[float, float]:
    """Mean next-token loss on the first half (positions 1 … half−1) and on the repeat (half+1 … 2·half−1)."""
    lp = F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none").mean(0)  # per target pos − 1
    return float(lp[: half - 1].mean()), float(lp[half:].mean())


def head_scores(patterns: torch.Tensor, half: int) -> dict[str, np.ndarray]:
    """Induction and previous-token scores per (layer, head) from patterns (layers, N, heads, T, T)."""
    t = torch.arange(half, 2 * half)
    induction = patterns[:, :, :, t, t - half + 1].mean(dim=(1, 3))
    t1 = torch.arange(1, 2 * half)
    prev = patterns[:, :, :, t1, t1 - 1].mean(dim=(1, 3))
    return {"induction": induction.numpy(), "previous": prev.numpy()}


@torch.no_grad()
def evaluate(model: AttnOnly, tokens: torch.Tensor, half: int) -> dict[str, Any]:
    logits, pats = model.run(tokens)
    first, rep = split_losses(logits, tokens, half)
    return {"loss_first_half": first, "loss_repeat": rep} | head_scores(pats, half)


def attention_patterns(model: AttnOnly, tokens: torch.Tensor) -> np.ndarray:
    """Attention patterns for one input, shape (layers, heads, T, T)."""
    with torch.no_grad():
        return model.run(tokens.view(1, -1))[1][:, 0].numpy()


@torch.no_grad()
def head_ablation_losses(model: AttnOnly, tokens: torch.Tensor, half: int) -> np.ndarray:
    """Loss on the repeated half with each head ablated in turn, shape (layers, heads)."""
    out = np.zeros((model.n_layers, model.n_heads))
    for layer in range(model.n_layers):
        for head in range(model.n_heads):
            mask = torch.ones(model.n_layers, model.n_heads)
            mask[layer, head] = 0.0
            out[layer, head] = split_losses(model.run(tokens, mask)[0], tokens, half)[1]
    return out


def train_induction(cfg: InductionConfig, out: str | Path, reporter: Any = None) -> dict[str, Any]:
    cfg.validate()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    held_out = induction_batch(cfg.vocab, cfg.half, cfg.eval_batch, torch.Generator().manual_seed(cfg.seed + 10_000))
    model_cfg = {"vocab": cfg.vocab, "n_ctx": 2 * cfg.half, "d_model": cfg.d_model, "n_heads": cfg.n_heads, "n_layers": 2}
    model = AttnOnly(**model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    task = {"name": "induction", "vocab": cfg.vocab, "half": cfg.half, "seed": cfg.seed}
    writer = RunWriter(out, "induction", "attn_only", model_cfg, task, asdict(cfg))
    ckpts = set(schedule(cfg.steps, cfg.n_checkpoints, "log")) | set(schedule(cfg.steps, kind="every", every=50))
    if reporter:
        reporter.start(cfg.steps, "induction")
    t0 = time.perf_counter()
    for step in range(cfg.steps + 1):
        if step in ckpts:
            m = evaluate(model, held_out, cfg.half)
            m["max_induction"] = float(m["induction"][1].max())
            writer.checkpoint(step, model, m)
            if reporter:
                reporter.update(0, repeat_loss=m["loss_repeat"], ind=m["max_induction"])
        if step == cfg.steps:
            break
        tokens = induction_batch(cfg.vocab, cfg.half, cfg.batch, gen)
        logits = model(tokens)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, cfg.vocab), tokens[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if reporter:
            reporter.update(1)
    seconds = time.perf_counter() - t0
    if reporter:
        reporter.finish()
    final = evaluate(model, held_out, cfg.half)
    steps = [c["step"] for c in writer.meta["checkpoints"]]
    rep = np.array([c["metrics"]["loss_repeat"] for c in writer.meta["checkpoints"]])
    start, end = phase_change(steps, rep, math.log(cfg.vocab))
    summary = {"train_seconds": seconds, "final": final, "phase_start": start, "phase_end": end,
               "uniform_loss": math.log(cfg.vocab)}
    writer.finish(summary)
    return summary


def phase_change(steps: list[int], loss_repeat: np.ndarray, uniform: float) -> tuple[int | None, int | None]:
    """First checkpoint where the repeat loss is below 90 % of its plateau (≈ ln V), and first below 10 % of it."""
    below = lambda frac: next((s for s, v in zip(steps, loss_repeat, strict=True) if v < frac * uniform), None)  # noqa: E731
    return below(0.9), below(0.1)
