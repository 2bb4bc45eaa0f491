"""Toy Models of Superposition (Elhage et al. 2022): many instances of x' = ReLU(WᵀWx + b) trained at once.

Each instance has its own feature probability (1 − sparsity). Measures: D* = m / ‖W‖²_F per instance, each
feature's dimensionality D_i = ‖W_i‖² / Σ_j (Ŵ_i·W_j)², the number of represented features and WᵀW.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from occam.errors import OccamError
from occam.toy.data import tms_batch
from occam.toy.models import TMSModel
from occam.toy.runs import RunWriter, schedule


@dataclass
class TMSConfig:
    n_features: int = 5
    n_hidden: int = 2
    n_instances: int = 10
    importance_decay: float = 0.9  # importance of feature i is decay**i (1.0: uniform)
    prob_min: float = 0.02  # feature probabilities go log-spaced from 1 (dense) down to prob_min (sparse)
    feature_probs: list[float] = field(default_factory=list)  # explicit per-instance probabilities override the sweep
    steps: int = 10_000
    batch: int = 1024
    lr: float = 1e-3
    seed: int = 0
    n_checkpoints: int = 30

    def probs(self) -> torch.Tensor:
        if self.feature_probs:
            if len(self.feature_probs) != self.n_instances:
                raise OccamError(f"{len(self.feature_probs)} feature probabilities for {self.n_instances} instances",
                                 "give one probability per instance")
            return torch.tensor(self.feature_probs, dtype=torch.float32)
        return torch.from_numpy(np.geomspace(1.0, self.prob_min, self.n_instances)).float()

    def validate(self) -> TMSConfig:
        if self.n_hidden < 1 or self.n_features <= 0 or self.n_instances < 1:
            raise OccamError("features, hidden dimensions and instances must be ≥ 1", "pass positive sizes")
        if not 0 < self.prob_min <= 1:
            raise OccamError(f"the smallest feature probability must be in (0, 1], got {self.prob_min}", "use e.g. 0.02")
        return self


def dimensionality(W: torch.Tensor) -> dict[str, np.ndarray]:
    """For W of shape (instances, m, n): D* per instance, D_i per (instance, feature), feature norms and WᵀW."""
    W = W.detach().double()
    m = W.shape[1]
    norms = W.norm(dim=1)  # (I, n)
    unit = W / norms.unsqueeze(1).clamp_min(1e-12)
    overlap = torch.einsum("imn,imk->ink", unit, W)  # overlap[i, a, b] = Ŵ_a·W_b
    d_i = norms**2 / (overlap**2).sum(dim=-1).clamp_min(1e-12)
    return {"d_star": (m / (W**2).sum(dim=(1, 2))).numpy(), "d_i": d_i.numpy(), "norms": norms.numpy(),
            "wtw": torch.einsum("imn,imk->ink", W, W).numpy(), "n_represented": (norms > 0.5).sum(dim=1).numpy()}


def train_tms(cfg: TMSConfig, out: str | Path, reporter: Any = None, name: str = "tms") -> dict[str, Any]:
    """Train every instance at once (one tensor with an instance axis) and checkpoint on a log schedule."""
    cfg.validate()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    probs = cfg.probs()
    importance = cfg.importance_decay ** torch.arange(cfg.n_features, dtype=torch.float32)
    model_cfg = {"n_features": cfg.n_features, "n_hidden": cfg.n_hidden, "n_instances": cfg.n_instances}
    model = TMSModel(**model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    task = {"name": "tms", "feature_probs": probs.tolist(), "importance": importance.tolist(), "seed": cfg.seed}
    writer = RunWriter(out, name, "tms", model_cfg, task, asdict(cfg))
    ckpts = set(schedule(cfg.steps, cfg.n_checkpoints, "log"))
    if reporter:
        reporter.start(cfg.steps, f"tms {cfg.n_features}→{cfg.n_hidden} ×{cfg.n_instances}")
    t0 = time.perf_counter()
    for step in range(cfg.steps + 1):
        x = tms_batch(probs, cfg.n_features, cfg.batch, gen)
        per_inst = (importance * (model(x) - x) ** 2).mean(dim=(1, 2))
        if step in ckpts:
            d = dimensionality(model.W)
            writer.checkpoint(step, model, {"loss": per_inst.detach(), "d_star": d["d_star"], "d_i": d["d_i"],
                                            "n_represented": d["n_represented"]})
            if reporter:
                reporter.update(0, loss=float(per_inst.mean()))
        if step == cfg.steps:
            break
        opt.zero_grad(set_to_none=True)
        per_inst.sum().backward()
        opt.step()
        if reporter:
            reporter.update(1)
    seconds = time.perf_counter() - t0
    if reporter:
        reporter.finish()
    d = dimensionality(model.W)
    summary = {"train_seconds": seconds, "feature_probs": probs.tolist(), "sparsity": (1 - probs).tolist(),
               "d_star": d["d_star"], "n_represented": d["n_represented"], "d_i": d["d_i"], "norms": d["norms"]}
    writer.finish(summary)
    return summary
