"""Grokking modular arithmetic, with Nanda et al. 2023's progress measures at every checkpoint.

:func:`train_grok` trains full-batch with AdamW, writes a run directory (:mod:`occam.toy.runs`) and, after training,
a second pass over the checkpoints adds the measures that need the final key frequencies (restricted and excluded
loss, as in the paper) and the neurons' single-frequency fractions.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from occam.errors import OccamError
from occam.toy import fourier
from occam.toy.data import modular_data
from occam.toy.models import MODULAR_KINDS, build_model
from occam.toy.runs import RunWriter, load_run, schedule


@dataclass
class GrokConfig:
    """One grokking run. The defaults are the fast setting; :meth:`canonical` is Nanda et al.'s."""

    p: int = 59
    op: str = "+"
    frac_train: float = 0.5
    kind: str = "onehot_mlp"
    model: dict[str, Any] = field(default_factory=lambda: {"hidden": 256})
    lr: float = 3e-3
    weight_decay: float = 1.0
    betas: tuple[float, float] = (0.9, 0.98)
    steps: int = 3000
    seed: int = 0
    eval_every: int = 10
    n_log_checkpoints: int = 40
    checkpoint_every: int = 250
    device: str = "cpu"

    @classmethod
    def canonical(cls, **over: Any) -> GrokConfig:
        cfg = cls(p=113, frac_train=0.3, kind="transformer", model={}, lr=1e-3, weight_decay=1.0, betas=(0.9, 0.98),
                  steps=20000, eval_every=100, n_log_checkpoints=30, checkpoint_every=250)
        for k, v in over.items():
            setattr(cfg, k, v)
        return cfg

    def validate(self) -> GrokConfig:
        if self.kind not in MODULAR_KINDS:
            raise OccamError(f"model kind {self.kind!r} cannot learn modular arithmetic",
                             f"choose one of {', '.join(MODULAR_KINDS)}")
        if self.steps < 1 or self.eval_every < 1:
            raise OccamError("steps and eval_every must be ≥ 1", "pass positive counts")
        if self.lr <= 0 or self.weight_decay < 0:
            raise OccamError(f"learning rate must be > 0 and weight decay ≥ 0 (got {self.lr}, {self.weight_decay})",
                             "pass e.g. lr 1e-3, weight decay 1")
        return self


@torch.no_grad()
def _eval(model: torch.nn.Module, a: torch.Tensor, b: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    logits = model(a, b)
    return float(F.cross_entropy(logits, y)), float((logits.argmax(-1) == y).float().mean())


def checkpoint_measures(model: torch.nn.Module) -> dict[str, Any]:
    """Measures that need only the checkpoint: the embedding's Fourier spectrum, its Gini coefficient, key frequencies."""
    spec = fourier.embedding_spectrum(model)
    return {"spectrum": spec, "gini": fourier.gini(spec), "key_freqs": fourier.key_frequencies(spec)}


@torch.no_grad()
def attention_patterns(model: torch.nn.Module, a: int, b: int) -> np.ndarray:
    """The transformer's attention patterns for the input ``a b =``, shape (heads, 3, 3)."""
    if not hasattr(model, "run_tokens"):
        raise OccamError(f"{type(model).__name__} has no attention", "use a run of model kind 'transformer'")
    p = model.p
    if not (0 <= a < p and 0 <= b < p):
        raise OccamError(f"inputs must lie in 0 … {p - 1}, got a = {a}, b = {b}", "pick residues mod p")
    return model.run_tokens(torch.tensor([[a, b, p]]))[1][0].numpy()


@torch.no_grad()
def head_ablation_loss(model: torch.nn.Module, data: Any, head: int, which: str = "test") -> float:
    """The transformer's loss on the train or test split with one attention head's output zeroed."""
    mask = torch.ones(model.n_heads)
    mask[head] = 0.0
    a, b, y = data.split(which)
    logits = model.run_tokens(torch.stack([a, b, torch.full_like(a, model.p)], dim=1), mask)[0]
    return float(F.cross_entropy(logits, y))


def train_grok(cfg: GrokConfig, out: str | Path, reporter: Any = None) -> dict[str, Any]:
    """Train, checkpoint, measure. Returns the summary (also stored in run.json)."""
    cfg.validate()
    torch.manual_seed(cfg.seed)
    dev = torch.device(cfg.device)
    data = modular_data(cfg.p, cfg.op, cfg.frac_train, cfg.seed)
    tr = [t.to(dev) for t in data.split("train")]
    te = [t.to(dev) for t in data.split("test")]
    model_cfg = {"p": cfg.p, **cfg.model}
    model = build_model(cfg.kind, **model_cfg).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas)
    ckpts = set(schedule(cfg.steps, cfg.n_log_checkpoints, "log")) | set(schedule(cfg.steps, kind="every",
                                                                                 every=cfg.checkpoint_every))
    task = {"name": "modular", "p": cfg.p, "op": cfg.op, "frac_train": cfg.frac_train, "seed": cfg.seed}
    train_meta = {k: v for k, v in asdict(cfg).items() if k not in ("p", "op", "frac_train", "model", "kind")}
    writer = RunWriter(out, "grok", cfg.kind, model_cfg, task, train_meta)
    curve: dict[str, list] = {"step": [], "train_loss": [], "train_acc": [], "test_loss": [], "test_acc": []}
    if reporter:
        reporter.start(cfg.steps, f"grok p={cfg.p} {cfg.kind}")
    t0 = time.perf_counter()
    eval_seconds, n_evals = 0.0, 0
    for step in range(cfg.steps + 1):
        if step % cfg.eval_every == 0 or step in ckpts:
            te0 = time.perf_counter()
            n_evals += 1
            model.eval()
            trl, tra = _eval(model, *tr)
            tel, tea = _eval(model, *te)
            model.train()
            for k, v in zip(curve, (step, trl, tra, tel, tea), strict=True):
                curve[k].append(v)
            if step in ckpts:
                m = {"train_loss": trl, "train_acc": tra, "test_loss": tel, "test_acc": tea}
                writer.checkpoint(step, model, m | checkpoint_measures(model.cpu()))
                model.to(dev)
            if reporter and step % (cfg.eval_every * 10) == 0:
                reporter.update(0, train=trl, test=tel, test_acc=tea)
            eval_seconds += time.perf_counter() - te0
        if step == cfg.steps:
            break
        loss = F.cross_entropy(model(tr[0], tr[1]), tr[2])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if reporter:
            reporter.update(1)
    train_seconds = time.perf_counter() - t0
    if reporter:
        reporter.finish()
    acc = np.array(curve["test_acc"])
    hit = np.flatnonzero(acc >= 0.99)
    mem = np.flatnonzero(np.array(curve["train_acc"]) >= 0.99)
    summary = {"train_seconds": train_seconds, "seconds_per_step": train_seconds / cfg.steps,
               "update_seconds_per_step": (train_seconds - eval_seconds) / cfg.steps,
               "eval_seconds_each": eval_seconds / max(n_evals, 1), "n_evals": n_evals,
               "step_test_acc_99": int(curve["step"][hit[0]]) if len(hit) else None,
               "step_train_acc_99": int(curve["step"][mem[0]]) if len(mem) else None,
               "final": {k: v[-1] for k, v in curve.items()}, "curve": curve}
    writer.finish(summary)
    summary |= add_frequency_measures(out)
    return summary


def add_frequency_measures(run_dir: str | Path, key_freqs: list[int] | None = None) -> dict[str, Any]:
    """Second pass: restricted loss (all pairs) and excluded loss (train pairs) with the final key frequencies at
    every checkpoint, and each checkpoint's mean single-frequency fraction of the neurons."""
    run = load_run(run_dir)
    p = run.task["p"]
    data = modular_data(p, run.task["op"], run.task["frac_train"], run.task["seed"])
    if run.task["op"] != "+":
        return {}  # the cos/sin(k(a+b)) directions describe addition only
    final = run.model_at(run.steps[-1])
    # key frequencies from the final logits (they coincide with the embedding's peaks when there is a narrow
    # embedding; a one-hot MLP spreads its input weights over every frequency but its logits need only a few)
    keys = key_freqs if key_freqs is not None else fourier.key_frequencies(np.sqrt(fourier.logit_spectrum(final, p)))
    for entry in run.meta["checkpoints"]:
        model = run.model_at(entry["step"])
        logits = fourier.all_logits(model, p)
        m = entry["metrics"]
        if keys:
            m["restricted_loss"] = fourier.loss_on(fourier.ablate_frequencies(logits, keys, keep=True))
            m["excluded_loss"] = fourier.loss_on(fourier.ablate_frequencies(logits, keys, keep=False), data.train)
        _, frac = fourier.neuron_clusters(fourier.neuron_frequency_shares(model, p))
        m["neuron_single_freq_mean"] = float(frac.mean())
    shares = fourier.neuron_frequency_shares(final, p)
    clusters, frac = fourier.neuron_clusters(shares)
    extra = {"final_key_freqs": keys, "neuron_cluster": clusters.tolist(), "neuron_single_freq": frac.tolist()}
    run.meta["summary"] |= extra
    writer_path = Path(run_dir) / "run.json"
    import json
    import os

    tmp = writer_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(run.meta, indent=1))
    os.replace(tmp, writer_path)
    return extra
