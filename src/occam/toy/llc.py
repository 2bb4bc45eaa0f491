"""The local learning coefficient (LLC, Lau et al. 2023) estimated with SGLD, written here rather than pulling in
devinterp (see docs/decisions.md).

λ̂(w*) = nβ (E_w[L_n(w)] − L_n(w*)), β = 1 / log n, where w is sampled by SGLD from the tempered posterior localized
at w*: Δw = −(ε/2)(nβ ∇L_m(w) + γ (w − w*)) + N(0, ε). For a regular model with d parameters λ = d / 2.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from occam.errors import OccamError

FRESH_N = 10_000  # the nominal data size n for tasks that draw fresh samples every step (TMS, induction)

LossFn = Callable[[nn.Module, torch.Generator], torch.Tensor]


@dataclass
class SGLDConfig:
    epsilon: float = 1e-4
    gamma: float = 100.0
    chains: int = 4
    steps: int = 400
    burn_in: int = 100
    seed: int = 0

    def validate(self) -> SGLDConfig:
        if self.epsilon <= 0 or self.gamma < 0 or self.chains < 1 or not 0 <= self.burn_in < self.steps:
            raise OccamError("SGLD needs epsilon > 0, gamma ≥ 0, chains ≥ 1 and 0 ≤ burn_in < steps",
                             "pass e.g. epsilon 1e-4, gamma 100, 4 chains, 400 steps with 100 burn-in")
        return self


def estimate_llc(model: nn.Module, loss_fn: LossFn, n: int, cfg: SGLDConfig | None = None,
                 init_loss: float | None = None) -> dict[str, Any]:
    """Estimate the LLC of ``model`` at its current weights w*.

    ``loss_fn(model, generator)`` returns the mean loss on a minibatch it draws with the generator (or on all the
    data); ``n`` is the number of training samples; ``init_loss`` is L_n(w*) (default: the mean of a few minibatch
    losses at w*). Returns the mean estimate, its standard deviation over chains and each chain's loss trace.
    """
    cfg = (cfg or SGLDConfig()).validate()
    if n < 2:
        raise OccamError(f"the LLC needs at least 2 training samples, got n = {n}", "pass the training-set size")
    nbeta = n / math.log(n)
    gen = torch.Generator().manual_seed(cfg.seed)
    if init_loss is None:
        with torch.no_grad():
            init_loss = float(np.mean([float(loss_fn(model, gen)) for _ in range(8)]))
    estimates, traces = [], []
    for _ in range(cfg.chains):
        m = copy.deepcopy(model)
        params = [q for q in m.parameters() if q.requires_grad]
        anchor = [q.detach().clone() for q in params]
        trace = []
        for _step in range(cfg.steps):
            loss = loss_fn(m, gen)
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for q, g, w0 in zip(params, grads, anchor, strict=True):
                    noise = torch.randn(q.shape, generator=gen, dtype=q.dtype) * math.sqrt(cfg.epsilon)
                    q.add_(-(cfg.epsilon / 2) * (nbeta * g + cfg.gamma * (q - w0)) + noise)
            trace.append(float(loss.detach()))
        trace_arr = np.array(trace)
        if not np.isfinite(trace_arr).all():
            raise OccamError("SGLD diverged (the loss became NaN or infinite)", "lower epsilon or raise gamma")
        traces.append(trace_arr)
        estimates.append(nbeta * (trace_arr[cfg.burn_in:].mean() - init_loss))
    return {"llc": float(np.mean(estimates)), "llc_std": float(np.std(estimates)), "per_chain": estimates,
            "traces": np.stack(traces), "init_loss": init_loss, "n": n}


def run_objective(run: Any, batch: int = 512) -> tuple[LossFn, int]:
    """The training loss of a toy run as a minibatch loss function, and its training-set size."""
    exp = run.meta["experiment"]
    t = run.task
    if exp == "grok":
        from occam.toy.data import modular_data

        a, b, y = modular_data(t["p"], t["op"], t["frac_train"], t["seed"]).split("train")

        def grok_loss(model: nn.Module, gen: torch.Generator) -> torch.Tensor:
            i = torch.randint(0, len(y), (min(batch, len(y)),), generator=gen)
            return F.cross_entropy(model(a[i], b[i]), y[i])

        return grok_loss, len(y)
    if exp in ("tms", "tms_dims"):
        from occam.toy.data import tms_batch

        probs, imp = torch.tensor(t["feature_probs"]), torch.tensor(t["importance"])

        def tms_loss(model: nn.Module, gen: torch.Generator) -> torch.Tensor:  # summed over instances
            x = tms_batch(probs, len(imp), batch, gen)
            return (imp * (model(x) - x) ** 2).mean(dim=(1, 2)).sum()

        return tms_loss, FRESH_N
    if exp == "induction":
        from occam.toy.data import induction_batch

        def ind_loss(model: nn.Module, gen: torch.Generator) -> torch.Tensor:
            tok = induction_batch(t["vocab"], t["half"], min(batch, 64), gen)
            return F.cross_entropy(model(tok)[:, :-1].reshape(-1, t["vocab"]), tok[:, 1:].reshape(-1))

        return ind_loss, FRESH_N
    raise OccamError(f"no training objective known for experiment {exp!r}", "run the LLC on a grok, tms or induction run")


def llc_over_checkpoints(run_dir: str | Path, cfg: SGLDConfig | None = None, every: int = 1,
                         reporter: Any = None) -> dict[str, list]:
    """LLC estimate at every ``every``-th checkpoint of a run (fresh-sample tasks use n = FRESH_N)."""
    from occam.toy.runs import load_run

    run = load_run(run_dir)
    loss_fn, n = run_objective(run)
    steps = run.steps[::every]
    out: dict[str, list] = {"step": [], "llc": [], "llc_std": []}
    if reporter:
        reporter.start(len(steps), "LLC (SGLD)")
    for s in steps:
        r = estimate_llc(run.model_at(s), loss_fn, n, cfg)
        out["step"].append(s)
        out["llc"].append(r["llc"])
        out["llc_std"].append(r["llc_std"])
        if reporter:
            reporter.update(1, llc=r["llc"])
    if reporter:
        reporter.finish()
    return out
