"""Fractal pre-training of zoo models, and the scratch-versus-fractal experiment.

:func:`pretrain` teaches a zoo architecture to classify fractal categories rendered on the
fly at a task's input size, and saves a checkpoint ``{"arch", "arch_kwargs",
"input_shape", "num_classes", "state_dict"}`` that ``occam train --init`` loads (every
tensor whose name and shape match; the head differs when the category count differs).

:func:`run_experiment` compares, on small labelled subsets of a task and for several
seeds, three arms that see the same fine-tuning recipe:

- ``scratch``: random init, ``finetune_steps`` steps;
- ``fractal``: the fractal checkpoint, ``finetune_steps`` steps;
- ``scratch+``: random init, ``pretrain_steps + finetune_steps`` steps (matched compute:
  the same number of optimizer steps of the same batch size as pre-training plus
  fine-tuning).

Test accuracy (the task's official test split) is reported per run (CSV) and as mean ± std
over seeds (PNG).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from occam.errors import OccamError
from occam.fractal.config import ExperimentConfig, PretrainConfig
from occam.fractal.dataset import FractalDataset, category_codes, worker_init
from occam.training.schedule import adamw, set_lr, warmup_cosine

DEFAULT_LR = {"mlp": 3e-3, "lenet5": 2e-3, "sepcnn": 6e-3, "vit": 2e-3}


def _build(arch: str, input_shape: tuple[int, ...], num_classes: int, arch_kwargs: dict) -> nn.Module:
    from occam.models import build_model

    return build_model(arch, tuple(input_shape), num_classes, **arch_kwargs)


def pretrain(cfg: PretrainConfig, out: str | Path | None = None, *, log=None) -> tuple[nn.Module, dict]:
    """Train ``cfg.arch`` to classify fractal categories; save a checkpoint to ``out`` when given."""
    from torch.utils.data import DataLoader, RandomSampler

    if cfg.epochs <= 0 or cfg.batch_size < 1 or cfg.workers < 0:
        raise OccamError("`epochs` must be positive, `batch_size` at least 1 and `workers` at least 0",
                         "set e.g. `epochs` 2, `batch_size` 128, `workers` 0")
    fcfg = cfg.fractal_config()
    t0 = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    ds = FractalDataset(fcfg, channels=cfg.input_shape[0], codes=category_codes(fcfg))
    model = _build(cfg.arch, cfg.input_shape, fcfg.categories, cfg.arch_kwargs)
    lr = cfg.lr or DEFAULT_LR.get(cfg.arch, 2e-3)
    opt = adamw(model, lr)
    total = cfg.steps
    gen = torch.Generator().manual_seed(cfg.seed)
    sampler = RandomSampler(ds, replacement=False, num_samples=total * cfg.batch_size, generator=gen)
    loader = DataLoader(ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                        worker_init_fn=worker_init if cfg.workers else None,
                        persistent_workers=False, drop_last=True)
    model.train()
    step, running, correct, seen = 0, 0.0, 0, 0
    for xb, yb in loader:
        if step >= total:
            break
        set_lr(opt, warmup_cosine(lr, step, total, warmup=0.05))
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        running += float(loss.detach()) * len(yb)
        correct += int((logits.argmax(1) == yb).sum())
        seen += len(yb)
        if log is not None and (step % max(1, total // 10) == 0 or step == total):
            log(f"pretrain step {step}/{total}: loss {running / seen:.3f}, accuracy {correct / seen:.3f}")
            running, correct, seen = 0.0, 0, 0
    info = {"steps": step, "seconds": round(time.perf_counter() - t0, 2), "fractal": fcfg.to_json(),
            "final_loss": running / seen if seen else None}
    if out is not None:
        from occam.models import save_checkpoint

        save_checkpoint(model, out, arch=cfg.arch, arch_kwargs=cfg.arch_kwargs, input_shape=tuple(cfg.input_shape),
                        num_classes=fcfg.categories, extra={"fractal_pretrain": info})
    return model, info


def load_matching(model: nn.Module, state_dict: dict) -> tuple[int, list[str]]:
    """Copy every tensor whose name and shape match; returns (loaded count, skipped names)."""
    own = model.state_dict()
    loaded = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    own.update(loaded)
    model.load_state_dict(own)
    return len(loaded), sorted(set(own) - set(loaded))


def finetune(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int, batch_size: int, lr: float,
             seed: int, augment_policy: str = "none") -> nn.Module:
    """``steps`` AdamW steps with a cosine schedule on uint8 images ``x`` (with the task's augmentation)."""
    from occam.training.augment import augment

    gen = torch.Generator().manual_seed(seed)
    opt = adamw(model, lr)
    model.train()
    n = len(x)
    perm, pos = torch.randperm(n, generator=gen), 0
    for step in range(steps):
        if pos + batch_size > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        idx = perm[pos:pos + batch_size]
        pos += batch_size
        xb = x[idx].float().div_(255.0)
        if augment_policy != "none":
            xb = augment(xb, augment_policy, gen)
        set_lr(opt, warmup_cosine(lr, step, steps, warmup=0.05))
        loss = F.cross_entropy(model(xb), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 2000) -> tuple[float, float]:
    model.eval()
    logits = torch.cat([model(x[i:i + batch].float().div_(255.0)) for i in range(0, len(x), batch)])
    return float((logits.argmax(1) == y).double().mean()), float(F.cross_entropy(logits.double(), y))


def stratified_subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` indices with (as nearly as possible) equal counts per class, seeded."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    per = [rng.permutation(np.flatnonzero(y == c)) for c in classes]
    take = [n // len(classes) + (1 if i < n % len(classes) else 0) for i in range(len(classes))]
    idx = np.concatenate([p[:t] for p, t in zip(per, take, strict=True)])
    return np.sort(idx)


def run_experiment(cfg: ExperimentConfig, out_dir: str | Path, *, log=print) -> list[dict]:
    """Run every (task, seed, size, arm); writes ``results.csv``, ``summary.csv`` and ``fractal_pretrain.png``."""
    from occam.tasks import get_task

    out = Path(out_dir).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OccamError(f"cannot create {out}: {exc.strerror}", "choose a writable output folder (`out_dir`)") from None
    if not cfg.sizes or min(cfg.sizes) < 1 or not cfg.seeds or cfg.finetune_steps < 1:
        raise OccamError("sizes and seeds must be non-empty, sizes and steps positive",
                         "set e.g. `sizes` (100, 500, 1000) and `seeds` (0, 1, 2)")
    rows: list[dict] = []
    for task_name in cfg.tasks:
        task = get_task(task_name)
        ok, where = task.availability()
        if not ok:
            log(f"skipping {task_name}: its files are not present ({where})")
            continue
        tx, ty = task.load("train")
        ex, ey = task.load("test")
        if cfg.test_limit:
            ex, ey = ex[: cfg.test_limit], ey[: cfg.test_limit]
        ex_t, ey_t = torch.from_numpy(ex), torch.from_numpy(ey)
        lr = DEFAULT_LR.get(cfg.arch, 2e-3)
        for seed in cfg.seeds:
            pcfg = PretrainConfig(**{**cfg.pretrain.__dict__, "arch": cfg.arch, "input_shape": task.input_shape,
                                     "seed": seed})
            t0 = time.perf_counter()
            pre_model, info = pretrain(pcfg)
            pre_state = {k: v.clone() for k, v in pre_model.state_dict().items()}
            log(f"[{task_name} seed {seed}] fractal pre-training: {info['steps']} steps in {info['seconds']} s")
            for n in cfg.sizes:
                idx = stratified_subset(ty, min(n, len(ty)), seed=1000 + seed)
                x_t, y_t = torch.from_numpy(tx[idx]), torch.from_numpy(ty[idx])
                arms = [("scratch", cfg.finetune_steps, False), ("fractal", cfg.finetune_steps, True),
                        ("scratch+", cfg.finetune_steps + info["steps"], False)]
                for arm, steps, init in arms:
                    torch.manual_seed(seed)
                    model = _build(cfg.arch, task.input_shape, task.num_classes, {})
                    if init:
                        load_matching(model, pre_state)
                    t1 = time.perf_counter()
                    finetune(model, x_t, y_t, steps=steps, batch_size=cfg.batch_size, lr=lr, seed=seed,
                             augment_policy=task.augment)
                    acc, ce = accuracy(model, ex_t, ey_t)
                    row = {"task": task_name, "arch": cfg.arch, "seed": seed, "n_labelled": int(n), "arm": arm,
                           "steps": steps, "pretrain_steps": info["steps"] if arm != "scratch" else 0,
                           "test_accuracy": round(acc, 5), "test_ce": round(ce, 5),
                           "seconds": round(time.perf_counter() - t1 + (info["seconds"] if init else 0), 2)}
                    rows.append(row)
                    log(f"[{task_name} seed {seed}] n={n:5d} {arm:9s} test accuracy {acc:.4f}")
            log(f"[{task_name} seed {seed}] done in {time.perf_counter() - t0:.1f} s")
    if not rows:
        raise OccamError("none of the tasks has its files here", "install the Fashion-MNIST files or choose other `tasks`")
    _write_csv(out / "results.csv", rows)
    summary = summarize(rows)
    _write_csv(out / "summary.csv", summary)
    plot(summary, out / "fractal_pretrain.png")
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Mean, std and count of test accuracy per (task, n_labelled, arm)."""
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["n_labelled"], r["arm"]), []).append(r["test_accuracy"])
    out = []
    for (task, n, arm), accs in sorted(groups.items()):
        a = np.array(accs)
        out.append({"task": task, "n_labelled": n, "arm": arm, "mean_accuracy": round(float(a.mean()), 5),
                    "std_accuracy": round(float(a.std(ddof=1)) if len(a) > 1 else 0.0, 5), "seeds": len(a)})
    return out


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def plot(summary: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({s["task"] for s in summary})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for arm, style in (("scratch", "o-"), ("scratch+", "s--"), ("fractal", "^-")):
            pts = sorted((s["n_labelled"], s["mean_accuracy"], s["std_accuracy"]) for s in summary
                         if s["task"] == task and s["arm"] == arm)
            if pts:
                n, m, sd = zip(*pts, strict=True)
                ax.errorbar(n, m, yerr=sd, fmt=style, capsize=3, label=arm)
        ax.set_xscale("log")
        ax.set_xlabel("labelled training images")
        ax.set_ylabel("test accuracy (mean ± std over seeds)")
        ax.set_title(task)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
