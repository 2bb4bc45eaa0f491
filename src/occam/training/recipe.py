"""The training recipe: seeded, augmented, optionally sparse, calibrated, exported with a JSON card."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from occam import __version__
from occam.errors import OccamError
from occam.models import build_model, export_bytes, load_checkpoint
from occam.tasks import Task, get_task
from occam.training.augment import augment
from occam.training.config import TrainConfig
from occam.training.prune import Pruner, gradual_schedule
from occam.training.schedule import adamw, set_lr, warmup_cosine


class Reporter(Protocol):
    def start(self, total: int, description: str) -> None: ...
    def update(self, advance: int, **fields: float) -> None: ...
    def finish(self) -> None: ...


class NullReporter:
    def start(self, total: int, description: str) -> None:
        pass

    def update(self, advance: int, **fields: float) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass
class TrainResult:
    model: nn.Module
    onnx_bytes: bytes
    card: dict
    onnx_path: Path | None = None
    card_path: Path | None = None


_DEFAULT_LR = {"mlp": 3e-3, "lenet5": 2e-3, "sepcnn": 6e-3, "vit": 2e-3}


def _seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    return torch.Generator().manual_seed(seed)


def _to_float(x_uint8: torch.Tensor) -> torch.Tensor:
    return x_uint8.float().div_(255.0)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 2000) -> dict:
    """CE (mean, float64), accuracy and logits of ``model`` on uint8 inputs ``x``."""
    model.eval()
    logits = torch.cat([model(_to_float(x[i:i + batch])) for i in range(0, len(x), batch)])
    ce = float(F.cross_entropy(logits.double(), y, reduction="mean"))
    acc = float((logits.argmax(1) == y).double().mean())
    return {"ce": ce, "accuracy": acc, "logits": logits}


def fold_temperature(model: nn.Module, t: float) -> None:
    """Divide the head's weights and bias by ``t``: the model then outputs its logits / ``t``."""
    with torch.no_grad():
        model.head.weight.div_(t)
        if model.head.bias is not None:
            model.head.bias.div_(t)


def calibrate_temperature(model: nn.Module, logits: torch.Tensor, y: torch.Tensor) -> float:
    """Fold the CE-minimizing temperature T into the head (:func:`fold_temperature`). Returns T."""
    t = best_temperature(logits, y)
    if t != 1.0:
        fold_temperature(model, t)
    return t


def best_temperature(logits: torch.Tensor, y: torch.Tensor) -> float:
    """The temperature in [1/4, 4] minimizing cross-entropy of ``logits / T`` (1.0 when none beats it)."""
    lo, hi = math.log(0.25), math.log(4.0)
    f = lambda lt: float(F.cross_entropy(logits.double() / math.exp(lt), y))  # noqa: E731
    for _ in range(40):  # golden-section search on log T; CE(T) is unimodal in practice
        a, b = lo + (hi - lo) * 0.382, lo + (hi - lo) * 0.618
        if f(a) < f(b):
            hi = b
        else:
            lo = a
    t = math.exp((lo + hi) / 2)
    return 1.0 if f(math.log(t)) >= f(0.0) else t


def _onnx_nnz(data: bytes) -> tuple[int, int]:
    """(nnz, stored values) of ONNX bytes, by the contest's counter."""
    import onnx

    from occam.scoring import count_model

    report = count_model(onnx.load_from_string(data))
    return report.nnz, report.stored_values


def build_from_config(cfg: TrainConfig, task: Task) -> tuple[nn.Module, dict]:
    """The model for a config, initialized from ``cfg.init`` when given (matching names and shapes only)."""
    model = build_model(cfg.arch, task.input_shape, task.num_classes, **cfg.arch_kwargs)
    info: dict = {}
    if cfg.init:
        ckpt = load_checkpoint(cfg.init)
        if ckpt["arch"] != cfg.arch:
            raise OccamError(f"checkpoint {cfg.init} is a {ckpt['arch']!r} model, not {cfg.arch!r}",
                             f"set `arch` to {ckpt['arch']!r} (and the same `arch_kwargs`) to fine-tune it")
        own = model.state_dict()
        loaded = {k: v for k, v in ckpt["state_dict"].items() if k in own and own[k].shape == v.shape}
        skipped = sorted(set(own) - set(loaded))
        own.update(loaded)
        model.load_state_dict(own)
        info = {"init": str(cfg.init), "loaded_tensors": len(loaded), "skipped_tensors": skipped}
    return model, info


def train(cfg: TrainConfig, out: str | Path | None = None, reporter: Reporter | None = None) -> TrainResult:
    """Train ``cfg.arch`` on ``cfg.task``; write ``out`` (ONNX) and ``out``.json (the card) when given."""
    cfg.validate()
    reporter = reporter or NullReporter()
    task = get_task(cfg.task)
    t0 = time.perf_counter()
    torch.set_num_threads(cfg.threads or max(1, os.cpu_count() or 1))
    gen = _seed_everything(cfg.seed)

    tx, ty = (torch.from_numpy(a) for a in task.load("train"))
    if cfg.train_limit:
        tx, ty = tx[: cfg.train_limit], ty[: cfg.train_limit]
    vx, vy = (torch.from_numpy(a) for a in task.load("val"))
    model, init_info = build_from_config(cfg, task)

    lr = cfg.lr or _DEFAULT_LR.get(cfg.arch, 2e-3)
    opt = adamw(model, lr, cfg.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(tx) / cfg.batch_size))
    total_steps = max(1, round(cfg.epochs * steps_per_epoch))
    budget = cfg.minutes * 60 if cfg.minutes else None

    pruner = Pruner(model) if (cfg.prune != "none" or cfg.l1 > 0) else None
    keep_goal: int | None = None
    if pruner is not None and cfg.prune != "none":
        if cfg.target_nnz is not None:
            from occam.models import fuse_for_export

            # Everything outside the prunable weights is assumed non-zero once trained (biases, folded
            # BatchNorm shifts, normalization constants); the exporter adds a few shape constants.
            fused = fuse_for_export(model)
            stored = {id(t): t.numel() for t in list(fused.parameters()) + [b for b in fused.buffers() if b.is_floating_point()]}
            overhead = sum(stored.values()) - pruner.total
            keep_goal = cfg.target_nnz - overhead - 8  # a few shape constants the exporter stores
            if keep_goal < 1:
                raise OccamError(f"`target_nnz` {cfg.target_nnz} is below the {overhead} numbers this architecture "
                                 "stores outside its prunable weights",
                                 "raise `target_nnz` or choose a smaller architecture (e.g. a smaller width in `arch_kwargs`)")
        else:
            keep_goal = round(pruner.total * (1.0 - cfg.sparsity))
    final_sparsity = 0.0 if keep_goal is None or pruner is None else 1.0 - keep_goal / pruner.total

    reporter.start(total_steps, f"{cfg.arch} on {task.name}")
    step, last_prune = 0, -1.0
    history: list[dict] = []
    stopped_by_budget = False
    while step < total_steps:
        model.train()
        perm = torch.randperm(len(tx), generator=gen)
        running, seen = 0.0, 0
        for i in range(0, len(tx), cfg.batch_size):
            if step >= total_steps:
                break
            frac = step / total_steps
            if budget is not None:
                frac = max(frac, (time.perf_counter() - t0) / budget)
                if frac >= 1.0:
                    stopped_by_budget = True
                    break
            set_lr(opt, warmup_cosine(lr, step, total_steps, warmup=0.02, progress=frac))
            idx = perm[i:i + cfg.batch_size]
            xb = _to_float(tx[idx])
            if cfg.augment:
                xb = augment(xb, task.augment, gen)
            loss = F.cross_entropy(model(xb), ty[idx], label_smoothing=cfg.label_smoothing)
            if cfg.l1 > 0 and pruner is not None:
                loss = loss + cfg.l1 * pruner.l1()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if pruner is not None and keep_goal is not None:
                if cfg.prune == "gradual" and frac - last_prune >= 0.01:
                    pruner.prune_to_sparsity(gradual_schedule(frac, final_sparsity))
                    last_prune = frac
                elif cfg.prune == "oneshot" and frac >= 0.5 and last_prune < 0:
                    pruner.prune_to_keep(keep_goal)
                    last_prune = frac
                else:
                    pruner.apply()
            running += float(loss.detach()) * len(idx)
            seen += len(idx)
            step += 1
            reporter.update(1, loss=running / max(1, seen))
        if stopped_by_budget:
            break
        history.append({"step": step, "train_loss": running / max(1, seen)})
    if pruner is not None and keep_goal is not None and pruner.kept() > keep_goal:
        pruner.prune_to_keep(keep_goal)  # a run cut short by its time budget still meets its goal
    reporter.finish()

    val = evaluate(model, vx, vy)
    temperature = 1.0
    if cfg.calibrate:
        temperature = calibrate_temperature(model, val["logits"], vy)
        val = evaluate(model, vx, vy)
    data = export_bytes(model, task.input_shape)
    nnz, stored = _onnx_nnz(data)
    if cfg.target_nnz is not None and pruner is not None and nnz > cfg.target_nnz:
        if pruner.kept() - (nnz - cfg.target_nnz) < 1:
            raise OccamError(f"cannot reach `target_nnz` {cfg.target_nnz}: the model stores {nnz - pruner.kept()} numbers "
                             "outside its prunable weights", "raise `target_nnz` or choose a smaller architecture")
        pruner.prune_to_keep(pruner.kept() - (nnz - cfg.target_nnz))
        val = evaluate(model, vx, vy)
        data = export_bytes(model, task.input_shape)
        nnz, stored = _onnx_nnz(data)
    lam = task.default_lam
    card = {
        "occam_version": __version__, "torch_version": torch.__version__,
        "task": task.name, "arch": cfg.arch, "seed": cfg.seed, "epochs": cfg.epochs,
        "steps": step, "stopped_by_budget": stopped_by_budget,
        "nnz": nnz, "stored_values": stored, "temperature": temperature,
        "val": {"ce": val["ce"], "accuracy": val["accuracy"], "lam": lam,
                "score": val["ce"] + math.log10(max(1, nnz)) / lam},
        "wall_seconds": round(time.perf_counter() - t0, 2),
        "config": asdict(cfg), "history": history, **({"init_info": init_info} if init_info else {}),
    }
    result = TrainResult(model=model, onnx_bytes=data, card=card)
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        card_path = out.with_suffix(".json")
        card_path.write_text(json.dumps(card, indent=2))
        result.onnx_path, result.card_path = out, card_path
    return result
