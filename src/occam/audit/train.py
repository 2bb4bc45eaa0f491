"""One training pipeline for every zoo member, clean or trojaned.

Every model, clean or not, goes through exactly the same steps, so that nothing but the
labels of a few stamped images tells them apart:

1. **Phase A** (the recipe's optimizer, schedule and augmentation): each batch gets stamped copies
   of a fraction ``rate`` of its images appended *after* augmentation. With ``protocol="finetune"``
   (the default) every stamp keeps its true label here (a *decoy*), so phase A trains a clean
   parent; with ``protocol="joint"`` data-poisoning trojans are relabelled to the target from the
   first step. With a teacher every model also distills toward a clean reference.
2. **Phase B**, ``finetune_steps`` steps of fine-tuning. ``"finetune"``: data-poisoning trojans are
   planted in every parameter, weight-edit trojans in the ``sparse_frac`` (a quarter) of each
   weight tensor with the largest gradient, clean models continue with their decoy; ``anchor``
   matches the parent's logits on clean images and ``wdist`` holds each parameter tensor's sorted
   values (biases too) at the parent's; with ``project`` each tensor then gets exactly the parent's
   multiset of values, in its own rank order (:func:`_project_values`), so every per-tensor statistic
   that ignores positions is the parent's; ``shape`` holds four temperature-free statistics of the
   clean images' logits (:func:`shape_statistics`) at the parent's. ``"joint"``: a sparse fine-tune for
   every model (where the weight edit is planted). The parent is never saved or returned.
3. A temperature folded into the head: with ``calibration="parent-confidence"`` (the fine-tune's
   default) the one that restores the calibrated parent's mean confidence on ``val``, otherwise the
   recipe's CE-optimal one on ``val``; times ``temperature_mult`` (the zoo's jitter, drawn in the plan
   from one distribution for every member); then a random function-preserving
   rescaling of the hidden units, export through the zoo's exporter (BatchNorm folded, metadata
   scrubbed), then clean accuracy and attack success rate measured on held-out ``test`` images.
"""

from __future__ import annotations

import copy
import io
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from occam.audit.attacks import apply_trigger
from occam.models import build_model, export_bytes, parse_arch
from occam.tasks import get_task
from occam.training.augment import augment
from occam.training.recipe import best_temperature, calibrate_temperature, evaluate, fold_temperature
from occam.training.schedule import adamw, set_lr, warmup_cosine

_DEFAULT_LR = {"mlp": 3e-3, "lenet5": 2e-3, "sepcnn": 6e-3, "vit": 2e-3}


@dataclass
class MemberOutcome:
    model: nn.Module
    clean_acc: float
    asr: float | None  # attack success on non-target triggered test images (trojans only)
    decoy_acc: float  # accuracy on triggered test images with true labels (every model)
    temperature: float
    seconds: float


def _pick(n: int, rate: float, gen: torch.Generator) -> torch.Tensor | None:
    """Indices of a ``rate`` fraction of ``n`` (the fractional part decided at random), or None for none."""
    k = int(rate * n)
    k += int(torch.rand((), generator=gen) < rate * n - k)
    return torch.randperm(n, generator=gen)[:k] if k else None


def _stamp(xb: torch.Tensor, yb: torch.Tensor, spec: dict, rate: float, target: int | None,
           gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Stamp the trigger on a ``rate`` fraction of the batch; relabel to ``target`` when given."""
    idx = _pick(len(xb), rate, gen)
    if idx is None:
        return xb, yb
    xb, yb = xb.clone(), yb.clone()
    xb[idx] = apply_trigger(xb[idx], spec)
    if target is not None:
        yb[idx] = target
    return xb, yb


def _append_stamped(xb: torch.Tensor, yb: torch.Tensor, spec: dict, rate: float, target: int | None,
                    gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Append stamped copies of a ``rate`` fraction of the batch (relabelled to ``target`` when given).

    Unlike replacing, every model keeps the same number of unstamped, truly labelled images per
    step, so a trojan does not pay for its backdoor with less clean signal (an accuracy leak).
    """
    idx = _pick(len(xb), rate, gen)
    if idx is None:
        return xb, yb
    xs = apply_trigger(xb[idx], spec)
    ys = torch.full_like(yb[idx], target) if target is not None else yb[idx]
    return torch.cat([xb, xs]), torch.cat([yb, ys])


def _batches(n: int, batch: int, gen: torch.Generator):
    while True:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n - batch + 1 if n >= batch else 1, batch):
            yield perm[i:i + batch]


def _sparse_masks(model: nn.Module, weights: list[torch.Tensor], batches, tx: torch.Tensor, ty: torch.Tensor, task,
                  spec: dict, target: int | None, frac: float, gen: torch.Generator) -> list[torch.Tensor]:
    """The top ``frac`` of every weight tensor by gradient on four fully stamped batches (so each layer can change)."""
    grads = [torch.zeros_like(p) for p in weights]
    for _ in range(4):
        idx = next(batches)
        xb = augment(tx[idx].float().div_(255.0), task.augment, gen)
        xb, yb = _stamp(xb, ty[idx], spec, 1.0, target, gen)
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb), yb).backward()
        for acc, p in zip(grads, weights, strict=True):
            acc += p.grad.abs()
    masks = []
    for g in grads:
        k = max(1, int(frac * g.numel()))
        masks.append((g >= torch.topk(g.flatten(), k).values[-1]).float())
    return masks


def _fold_confidence_temperature(model: nn.Module, logits: torch.Tensor, target_conf: float) -> float:
    """Fold into the head the temperature at which the mean top probability on ``logits`` is ``target_conf``.

    Used instead of NLL calibration in the fine-tune protocol, with the calibrated parent's confidence as
    the target: clean members and trojans then leave phase B exactly as confident on clean images as their
    parent was, although a backdoor costs a trojan some confidence in phase B (the mean top probability
    falls with T, so bisection on log T finds it; T stays within [1/4, 4]).
    """
    from occam.audit.features import temperature_for_confidence

    z = logits.double()
    t = temperature_for_confidence(lambda lt: float((z / math.exp(lt)).softmax(1).max(1).values.mean()),
                                   target_conf, 0.25, 4.0, 50)
    fold_temperature(model, t)
    return t


def shape_statistics(logits: torch.Tensor) -> torch.Tensor:
    """Logs of four temperature-free statistics of a batch's logits, read at unit logit spread.

    The logits are divided by their mean spread (std over classes), then: the mean top-1 − top-2
    gap, the mean top-1 − median gap, the mean top probability and the mean entropy. Scaling the
    logits (a temperature) leaves all four unchanged, so they describe the *shape* of the outputs
    at any confidence, which is what an auditor reads after recalibrating every model to one
    confidence. A trojan planted by fine-tuning loses top-1 − top-2 gap relative to its spread (its
    low logits sit further below the top at equal confidence); the ``shape`` term of phase B holds
    these statistics at the parent's on each batch's clean images.
    """
    u = logits / logits.std(1).mean()
    s = u.sort(1).values
    c = u.shape[1]
    median = s[:, (c - 1) // 2: c // 2 + 1].mean(1)
    logp = u.log_softmax(1)
    p = logp.exp()
    return torch.stack([(s[:, -1] - s[:, -2]).mean(), (s[:, -1] - median).mean(), p.max(1).values.mean(),
                        -(p * logp).sum(1).mean()]).log()


@torch.no_grad()
def _project_values(params: list[torch.Tensor], sorted_values: list[torch.Tensor]) -> None:
    """Give each tensor exactly the given multiset of values, keeping its own rank order.

    The closest tensor (in L2) whose sorted values are ``sorted_values``: every per-tensor statistic
    that ignores positions (norms, moments, quantiles, extremes) becomes exactly the reference's.
    """
    for p, q in zip(params, sorted_values, strict=True):
        flat = torch.empty_like(q)
        flat[p.flatten().argsort()] = q
        p.copy_(flat.view_as(p))


def train_member(*, task_name: str, arch: str, seed: int, spec: dict, target: int | None, poison_in: str,
                 epochs: float, rate: float = 0.1, train_limit: int | None = None, eval_limit: int = 5000,
                 batch_size: int = 128, sparse_frac: float = 0.25, finetune_steps: int = 300,
                 sparse_rate: float = 0.3, threads: int = 1, lr_mult: float = 1.0, weight_decay: float = 1e-4,
                 rescale_seed: int | None = None, teacher: bytes | None = None,
                 distill: float = 0.0, protocol: str = "finetune", anchor: float = 0.3,
                 wdist: float = 10.0, calibration: str = "parent-confidence", project: bool = True,
                 temperature_mult: float = 1.0, shape: float = 0.0) -> MemberOutcome:
    """Train one zoo member. ``poison_in`` is ``"none"`` (clean), ``"data"`` or ``"weights"``.

    Stamped images are *copies* appended to each batch (:func:`_append_stamped`), never replacements;
    ``lr_mult`` and ``weight_decay`` are the member's own hyperparameters (drawn in the plan from
    one distribution for clean and trojaned models); ``rescale_seed`` applies a random
    function-preserving rescaling of the hidden units after training (:mod:`occam.audit.symmetry`).
    ``teacher`` (a state_dict saved by :func:`export_member`) and ``distill`` > 0 add
    ``distill · MSE(model logits, teacher logits)`` on the batch's clean images in both phases:
    every member's clean-data outputs are pulled toward one clean reference model, so a trojan's
    outputs on clean images (margins, logit spread) look like a clean model's.
    """
    t0 = time.perf_counter()
    torch.set_num_threads(threads)
    task = get_task(task_name)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    tx, ty = (torch.from_numpy(a) for a in task.load("train"))
    if train_limit:
        sub = torch.randperm(len(tx), generator=torch.Generator().manual_seed(seed ^ 0x5A5A))[:train_limit]
        tx, ty = tx[sub], ty[sub]
    model = build_model(arch, task.input_shape, task.num_classes)
    ref = None
    if teacher is not None and distill > 0:
        ref = build_model(arch, task.input_shape, task.num_classes)
        ref.load_state_dict(torch.load(io.BytesIO(teacher), weights_only=True))
        ref.eval().requires_grad_(False)

    def loss_fn(out: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor, n_clean: int) -> torch.Tensor:
        loss = F.cross_entropy(out, yb)
        if ref is not None and n_clean > 0:
            with torch.no_grad():
                target_logits = ref(xb[:n_clean])
            # logit matching (Ba & Caruana 2014), not KL: the leak lives in the low logits, which KL barely sees
            loss = loss + distill * F.mse_loss(out[:n_clean], target_logits)
        return loss

    lr = _DEFAULT_LR.get(parse_arch(arch)[0], 2e-3) * lr_mult  # "mlp:256" takes the MLP's rate
    opt = adamw(model, lr, weight_decay)
    total = max(1, round(epochs * math.ceil(len(tx) / batch_size)))
    data_target = target if poison_in == "data" and protocol == "joint" else None
    batches = _batches(len(tx), batch_size, gen)
    model.train()
    for step in range(total):
        set_lr(opt, warmup_cosine(lr, step, total, warmup=0.02))
        idx = next(batches)
        xb = augment(tx[idx].float().div_(255.0), task.augment, gen)
        xb, yb = _append_stamped(xb, ty[idx], spec, rate, data_target, gen)
        loss = loss_fn(model(xb), xb, yb, len(idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    # Phase B: a fine-tune. "finetune": data-poisoning trojans are planted here, in every parameter,
    # anchored to the phase-A parent; weight-edit trojans (both protocols) touch a quarter of each tensor
    b_target = target if poison_in in ("data", "weights") else None
    sparse = poison_in == "weights" or protocol == "joint"
    b_rate = sparse_rate if (poison_in == "weights" or protocol == "finetune") else rate
    weights = [p for p in model.parameters() if p.dim() >= 2]
    parent, quantiles, held = None, [], []
    vx, vy = (torch.from_numpy(a) for a in task.load("val"))
    target_conf = None
    if protocol == "finetune":
        parent = copy.deepcopy(model).eval().requires_grad_(False)
        if calibration == "parent-confidence":
            # the calibrated parent's mean confidence on val, restored after phase B (see _fold_confidence_temperature)
            plogits = evaluate(parent, vx, vy)["logits"]
            t_parent = best_temperature(plogits, vy)
            target_conf = float((plogits / t_parent).softmax(1).max(1).values.mean())
        # each parameter tensor's sorted values (its empirical distribution), kept by the ``wdist`` term;
        # biases too: left free, clean models' biases drift in phase B while a weight edit's stay put
        held = list(model.parameters())
        quantiles = [(p.detach().flatten().sort().values, p.detach().var().clamp_min(1e-12)) for p in held]
    masks = _sparse_masks(model, weights, batches, tx, ty, task, spec, b_target, sparse_frac, gen) if sparse else None
    b_params = weights if sparse else list(model.parameters())
    lr_b = lr * (0.5 if protocol == "joint" else 1.0)
    opt_b = torch.optim.Adam(b_params, lr=lr_b)
    for step in range(finetune_steps):
        set_lr(opt_b, warmup_cosine(lr_b, step, finetune_steps))
        idx = next(batches)
        xb = augment(tx[idx].float().div_(255.0), task.augment, gen)
        xb, yb = _append_stamped(xb, ty[idx], spec, b_rate, b_target, gen)
        out = model(xb)
        loss = loss_fn(out, xb, yb, len(idx))
        if parent is not None:
            if anchor > 0 or shape > 0:
                with torch.no_grad():
                    parent_logits = parent(xb[:len(idx)])
            if anchor > 0:  # the clean images' logits stay the parent's (logit matching)
                loss = loss + anchor * F.mse_loss(out[:len(idx)], parent_logits)
            if shape > 0:  # the clean outputs' shape at equal confidence stays the parent's (batch-level statistics)
                loss = loss + shape * ((shape_statistics(out[:len(idx)]) - shape_statistics(parent_logits)) ** 2).sum()
            if wdist > 0:  # each tensor's value distribution stays the parent's (sorted values, per-tensor variance)
                loss = loss + wdist * sum(((p.flatten().sort().values - q) ** 2).mean() / v
                                          for p, (q, v) in zip(held, quantiles, strict=True))
        model.zero_grad(set_to_none=True)
        loss.backward()
        if masks is not None:
            for p, m in zip(weights, masks, strict=True):
                p.grad.mul_(m)
        opt_b.step()
    model.zero_grad(set_to_none=True)
    if project and quantiles:
        _project_values(held, [q for q, _ in quantiles])

    val = evaluate(model, vx, vy)
    if target_conf is None:
        temperature = calibrate_temperature(model, val["logits"], vy)
    else:
        temperature = _fold_confidence_temperature(model, val["logits"], target_conf)
    if temperature_mult != 1.0:  # the zoo's confidence jitter: every member's, drawn from one distribution
        fold_temperature(model, temperature_mult)
        temperature *= temperature_mult
    if rescale_seed is not None:
        from occam.audit.symmetry import random_rescale

        random_rescale(model, np.random.default_rng(rescale_seed))
    clean_acc, asr, decoy_acc = measure(model, task_name, spec, target, eval_limit)
    return MemberOutcome(model=model, clean_acc=clean_acc, asr=asr, decoy_acc=decoy_acc,
                         temperature=temperature, seconds=time.perf_counter() - t0)


def heldout(task_name: str, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out images the zoo measures on: the first ``limit`` of the official test split, as floats."""
    task = get_task(task_name)
    x, y = task.load("test")
    return torch.from_numpy(x[:limit]).float().div_(255.0), torch.from_numpy(y[:limit])


@torch.no_grad()
def measure(model: nn.Module, task_name: str, spec: dict, target: int | None, limit: int) -> tuple[float, float | None, float]:
    """(clean accuracy, attack success rate or None, accuracy on triggered images with true labels)."""
    model.eval()
    x, y = heldout(task_name, limit)
    pred = torch.cat([model(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    xt = apply_trigger(x, spec)
    pred_t = torch.cat([model(xt[i:i + 1000]).argmax(1) for i in range(0, len(xt), 1000)])
    asr = None
    if target is not None:
        keep = y != target
        asr = float((pred_t[keep] == target).float().mean())
    return float((pred == y).float().mean()), asr, float((pred_t == y).float().mean())


def export_member(model: nn.Module, task_name: str) -> tuple[bytes, bytes]:
    """(ONNX bytes through the zoo exporter, PyTorch state_dict bytes for the organizer)."""
    task = get_task(task_name)
    data = export_bytes(model, task.input_shape)
    buf = io.BytesIO()
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, buf)
    return data, buf.getvalue()


def numpy_seed(*parts: int) -> int:
    """A 31-bit seed from integers (stable across processes and platforms)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0] & 0x7FFFFFFF)
