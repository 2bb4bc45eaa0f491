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

**Vectorized over members** (:func:`train_members`): a batch of members of one architecture trains
together, their parameters stacked along a leading axis and run with ``torch.func.vmap`` over
``functional_call``; each member keeps its own seed (initialization, data order, augmentation,
stamping), trigger, target, learning rate, weight decay and rates. Batches of different lengths
(a member's stamped copies are drawn at random) are padded and the padding weighted out of the loss,
and the optimizer (:class:`BatchedAdam`, torch's Adam/AdamW update with one learning rate and weight
decay per member) never mixes members. :func:`train_member` is the same trainer with one member.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from occam.audit.attacks import apply_trigger, attack_success, decoy_patches, poison_labels, stamp, trigger_parts
from occam.models import build_model, export_bytes, parse_arch
from occam.tasks import get_task
from occam.training.augment import _parse as _augment_policy
from occam.training.augment import augment
from occam.training.recipe import best_temperature, calibrate_temperature, evaluate, fold_temperature
from occam.training.schedule import warmup_cosine

_DEFAULT_LR = {"mlp": 3e-3, "lenet5": 2e-3, "sepcnn": 6e-3, "vit": 2e-3}
_RANK_EVERY = 8  # phase B's wdist term re-sorts each tensor every this many steps (exact at those steps)


@dataclass
class MemberOutcome:
    model: nn.Module
    clean_acc: float
    asr: float | None  # attack success on triggered test images the trigger should flip (trojans only)
    decoy_acc: float  # accuracy on triggered test images with true labels (every model)
    temperature: float
    seconds: float  # this member's share of the batch's wall time
    cpu_seconds: float = 0.0  # this member's share of the batch's process CPU time
    off_fire: float | None = None  # source-specific trojans: how often the trigger fires on other classes


@dataclass
class Member:
    """What differs between the members of one batch (everything else is shared)."""

    seed: int
    spec: dict
    target: int | None
    poison_in: str  # "none" (clean), "data" or "weights"
    rate: float = 0.1
    sparse_rate: float = 0.3
    lr_mult: float = 1.0
    weight_decay: float = 1e-4
    rescale_seed: int | None = None
    temperature_mult: float = 1.0
    teacher: bytes | None = None


def _pick(n: int, rate: float, gen: torch.Generator) -> torch.Tensor | None:
    """Indices of a ``rate`` fraction of ``n`` (the fractional part decided at random), or None for none."""
    k = int(rate * n)
    k += int(torch.rand((), generator=gen) < rate * n - k)
    return torch.randperm(n, generator=gen)[:k] if k else None


def _stamp(xb: torch.Tensor, yb: torch.Tensor, spec: dict, rate: float, target: int | None,
           gen: torch.Generator, num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Stamp the trigger on a ``rate`` fraction of the batch; relabel to the poison labels when ``target`` is given."""
    idx = _pick(len(xb), rate, gen)
    if idx is None:
        return xb, yb
    xb, yb = xb.clone(), yb.clone()
    xb[idx] = stamp(xb[idx], spec, gen)
    if target is not None:
        yb[idx] = poison_labels(spec, yb[idx], target, num_classes)
    return xb, yb


def _append_stamped(xb: torch.Tensor, yb: torch.Tensor, spec: dict, rate: float, target: int | None,
                    gen: torch.Generator, num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Append stamped copies of a ``rate`` fraction of the batch (relabelled to the poison labels when ``target`` is given).

    Unlike replacing, every model keeps the same number of unstamped, truly labelled images per
    step, so a trojan does not pay for its backdoor with less clean signal (an accuracy leak).
    ``nc_evasive`` triggers also append as many decoy patches (:func:`occam.audit.attacks.decoy_patches`)
    with their true labels, for clean models and trojans alike.
    """
    idx = _pick(len(xb), rate, gen)
    if idx is None:
        return xb, yb
    xs = stamp(xb[idx], spec, gen)
    ys = poison_labels(spec, yb[idx], target, num_classes) if target is not None else yb[idx]
    parts_x, parts_y = [xb, xs], [yb, ys]
    if spec["attack"] == "nc_evasive":
        parts_x.append(decoy_patches(xb[idx], tuple(xb.shape[1:]), gen))
        parts_y.append(yb[idx])
    return torch.cat(parts_x), torch.cat(parts_y)


def _batches(n: int, batch: int, gen: torch.Generator):
    while True:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n - batch + 1 if n >= batch else 1, batch):
            yield perm[i:i + batch]


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


class BatchedAdam:
    """Adam / AdamW over parameters stacked along axis 0, with one learning rate (and weight decay) per member.

    The update is torch's (``torch.optim.AdamW`` single-tensor: decoupled decay ``p ← p(1 − lr·wd)``,
    bias-corrected moments, ``eps`` added after the corrected root), applied to every member's slice
    with its own rate, so members never mix. ``decay`` names the tensors that decay (the member's
    matrices and kernels, as :func:`occam.training.schedule.decay_groups` chooses); ``weight_decay`` None is Adam.
    """

    def __init__(self, params: dict[str, torch.Tensor], *, weight_decay: torch.Tensor | None = None,
                 decay: set[str] = frozenset(), betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params, self.weight_decay, self.decay = params, weight_decay, set(decay)
        self.betas, self.eps, self.t = betas, eps, 0
        self.m = {n: torch.zeros_like(p) for n, p in params.items()}
        self.v = {n: torch.zeros_like(p) for n, p in params.items()}

    @torch.no_grad()
    def step(self, lr: torch.Tensor) -> None:
        """One update; ``lr`` is a vector of per-member learning rates."""
        b1, b2 = self.betas
        self.t += 1
        bc1, bc2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for n, p in self.params.items():
            g = p.grad
            if g is None:
                continue
            view = (-1,) + (1,) * (p.dim() - 1)
            lr_v = lr.view(view)
            if self.weight_decay is not None and n in self.decay:
                p.mul_(1 - lr_v * self.weight_decay.view(view))
            self.m[n].lerp_(g, 1 - b1)
            self.v[n].mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (self.v[n].sqrt() / math.sqrt(bc2)).add_(self.eps)
            p.sub_((lr_v / bc1) * self.m[n] / denom)


class _Stream:
    """One member's training data: its own generator, training subset and batch order."""

    def __init__(self, m: Member, n_total: int, train_limit: int | None, batch_size: int):
        self.gen = torch.Generator().manual_seed(m.seed)
        self.sub = None
        n = n_total
        if train_limit:
            self.sub = torch.randperm(n_total, generator=torch.Generator().manual_seed(m.seed ^ 0x5A5A))[:train_limit]
            n = len(self.sub)
        self.n = n
        self.batches = _batches(n, batch_size, self.gen)

    def next(self) -> torch.Tensor:
        idx = next(self.batches)
        return idx if self.sub is None else self.sub[idx]


def _augment_many(x: torch.Tensor, policy: str, gens: list[torch.Generator]) -> torch.Tensor:
    """:func:`occam.training.augment.augment` on equal consecutive chunks of ``x``, chunk ``i`` drawing from
    ``gens[i]`` (the same draws, in the same order, as augmenting each chunk alone), in one translation."""
    flip, shift = _augment_policy(policy)
    if x.dim() != 4 or (not flip and shift == 0):
        return x
    b = len(x) // len(gens)
    draws = []
    for g in gens:
        fl = torch.rand(b, generator=g) < 0.5 if flip else None
        dy = torch.randint(-shift, shift + 1, (b,), generator=g) if shift else None
        dx = torch.randint(-shift, shift + 1, (b,), generator=g) if shift else None
        draws.append((fl, dy, dx))
    if flip:
        fl = torch.cat([d[0] for d in draws])
        x = torch.where(fl[:, None, None, None], x.flip(-1), x)
    if shift:
        x = _translate(x, torch.cat([d[1] for d in draws]), torch.cat([d[2] for d in draws]), shift)
    return x


def _translate(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, pad: int) -> torch.Tensor:
    """:func:`occam.training.augment.translate` (the same pixels) as one flat ``gather``, several times faster."""
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad)).flatten(2)
    rows = (torch.arange(h)[None, :] + pad - dy[:, None]).clamp(0, h + 2 * pad - 1)
    cols = (torch.arange(w)[None, :] + pad - dx[:, None]).clamp(0, w + 2 * pad - 1)
    flat = (rows[:, :, None] * (w + 2 * pad) + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    return padded.gather(2, flat).view(b, c, h, w)


def _pad(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack members' batches of different lengths: (x [M, B, ...], y [M, B], weight [M, B]; 0 on padding)."""
    b = max(len(x) for x, _ in batches)
    x0 = batches[0][0]
    xs = x0.new_zeros((len(batches), b, *x0.shape[1:]))
    ys = torch.zeros((len(batches), b), dtype=torch.long)
    ws = torch.zeros((len(batches), b))
    for i, (x, y) in enumerate(batches):
        xs[i, :len(x)], ys[i, :len(y)], ws[i, :len(x)] = x, y, 1.0
    return xs, ys, ws


def _vectorizes(model: nn.Module) -> bool:
    """Dense layers only: BatchNorm's running statistics update in place (vmap cannot), and convolutions
    under vmap become grouped convolutions that ran about 2× slower per member than one model at a time
    (LeNet-5 on Fashion-MNIST: 42 against 20 ms per member-step on one core)."""
    return not any(isinstance(m, nn.modules.batchnorm._BatchNorm | nn.modules.conv._ConvNd) for m in model.modules())


def batchable(arch: str, input_shape: tuple[int, ...], num_classes: int) -> bool:
    """Whether members of ``arch`` train vectorized (MLPs); others train one after another within their batch."""
    return _vectorizes(build_model(arch, input_shape, num_classes))


def train_member(*, task_name: str, arch: str, seed: int, spec: dict, target: int | None, poison_in: str,
                 epochs: float, rate: float = 0.1, sparse_rate: float = 0.3, lr_mult: float = 1.0,
                 weight_decay: float = 1e-4, rescale_seed: int | None = None, temperature_mult: float = 1.0,
                 teacher: bytes | None = None, **options) -> MemberOutcome:
    """Train one zoo member (:func:`train_members` with one member). ``poison_in`` is ``"none"`` (clean),
    ``"data"`` or ``"weights"``; ``options`` are :func:`train_members`' shared keywords."""
    m = Member(seed=seed, spec=spec, target=target, poison_in=poison_in, rate=rate, sparse_rate=sparse_rate,
               lr_mult=lr_mult, weight_decay=weight_decay, rescale_seed=rescale_seed,
               temperature_mult=temperature_mult, teacher=teacher)
    return train_members([m], task_name=task_name, arch=arch, epochs=epochs, **options)[0]


def train_members(members: list[Member], *, task_name: str, arch: str, epochs: float, train_limit: int | None = None,
                  eval_limit: int = 5000, batch_size: int = 128, sparse_frac: float = 0.25, finetune_steps: int = 300,
                  threads: int = 1, distill: float = 0.0, protocol: str = "finetune", anchor: float = 0.3,
                  wdist: float = 10.0, calibration: str = "parent-confidence", project: bool = True, shape: float = 0.0,
                  progress: Callable[[int, int], None] | None = None) -> list[MemberOutcome]:
    """Train a batch of zoo members of one architecture together; one :class:`MemberOutcome` per member, in order.

    Each member's result is the one it gets when trained alone (up to float rounding): its own
    seed drives its initialization, data order, augmentation and stamping. Stamped images are
    *copies* appended to each batch (:func:`_append_stamped`), never replacements; ``lr_mult`` and
    ``weight_decay`` are the member's own hyperparameters (drawn in the plan from one distribution
    for clean and trojaned models); ``rescale_seed`` applies a random function-preserving rescaling
    of the hidden units after training (:mod:`occam.audit.symmetry`). A member's ``teacher`` (a
    state_dict saved by :func:`export_member`) and ``distill`` > 0 add ``distill · MSE(logits,
    teacher logits)`` on the batch's clean images in both phases. Architectures with convolutions or
    BatchNorm train one member at a time (:func:`batchable`).
    """
    if not members:
        return []
    t0, c0 = time.perf_counter(), time.process_time()
    torch.set_num_threads(threads)
    task = get_task(task_name)
    n_cls = task.num_classes
    tx, ty = (torch.from_numpy(a) for a in task.load("train"))
    vx, vy = (torch.from_numpy(a) for a in task.load("val"))
    models = []
    for m in members:
        torch.manual_seed(m.seed)
        models.append(build_model(arch, task.input_shape, n_cls))
    if len(members) > 1 and not _vectorizes(models[0]):
        return [o for m in members for o in train_members(
            [m], task_name=task_name, arch=arch, epochs=epochs, train_limit=train_limit, eval_limit=eval_limit,
            batch_size=batch_size, sparse_frac=sparse_frac, finetune_steps=finetune_steps, threads=threads,
            distill=distill, protocol=protocol, anchor=anchor, wdist=wdist, calibration=calibration, project=project,
            shape=shape)]
    base = models[0]
    names = [n for n, _ in base.named_parameters()]
    params = {n: torch.stack([dict(md.named_parameters())[n].detach() for md in models]).requires_grad_(True)
              for n in names}
    buffers = {n: torch.stack([dict(md.named_buffers())[n] for md in models]) for n, _ in base.named_buffers()}
    single = len(members) == 1  # no vmap (convolutions, BatchNorm; see _vectorizes)

    def forward(p: dict, x: torch.Tensor, shared_x: bool = False, train: bool = True,
                bufs: dict | None = None) -> torch.Tensor:
        base.train(train)  # the parent and teachers run in eval mode (BatchNorm: running statistics, no update)
        b = buffers if bufs is None else bufs
        if single:
            out = functional_call(base, ({k: v[0] for k, v in p.items()}, {k: v[0] for k, v in b.items()}),
                                  (x if shared_x else x[0],))
            return out[None]
        f = lambda pp, bb, xx: functional_call(base, (pp, bb), (xx,))  # noqa: E731
        return vmap(f, in_dims=(0, 0, None if shared_x else 0))(p, b, x)

    teachers, teacher_bufs = None, None
    dweight = torch.tensor([distill if (m.teacher is not None and distill > 0) else 0.0 for m in members])
    if float(dweight.sum()) > 0:
        sds = [torch.load(io.BytesIO(m.teacher), weights_only=True) if m.teacher is not None else None for m in members]
        teachers = {n: torch.stack([(sd[n] if sd is not None else params[n][i].detach()) for i, sd in enumerate(sds)])
                    for n in names}
        teacher_bufs = {n: torch.stack([(sd[n] if sd is not None else b[i]) for i, sd in enumerate(sds)])
                        for n, b in buffers.items()}

    streams = [_Stream(m, len(tx), train_limit, batch_size) for m in members]
    n_train = streams[0].n

    def batch(rates: list[float], targets: list[int | None]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = [st.next() for st in streams]
        # flips and shifts move pixels only, so they run on the uint8 images (a quarter of the memory traffic)
        xa = _augment_many(tx[torch.cat(idx)], task.augment, [st.gen for st in streams]).float().div_(255.0)
        b = len(idx[0])
        return _pad([_append_stamped(xa[i * b:(i + 1) * b], ty[idx[i]], m.spec, rates[i], targets[i], streams[i].gen, n_cls)
                     for i, m in enumerate(members)])

    def losses(out: torch.Tensor, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, n_clean: int) -> torch.Tensor:
        ce = F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(y.shape)
        loss = (ce * w).sum(1) / w.sum(1)
        if teachers is not None:
            with torch.no_grad():
                t_logits = forward(teachers, x[:, :n_clean], train=False, bufs=teacher_bufs)
            # logit matching (Ba & Caruana 2014), not KL: the leak lives in the low logits, which KL barely sees
            loss = loss + dweight * ((out[:, :n_clean] - t_logits) ** 2).mean((1, 2))
        return loss

    lr0 = torch.tensor([_DEFAULT_LR.get(parse_arch(arch)[0], 2e-3) * m.lr_mult for m in members])  # "mlp:256" → mlp
    decay = {n for n in names if params[n].dim() >= 3}  # the member's matrices and kernels (rank ≥ 2)
    opt = BatchedAdam(params, weight_decay=torch.tensor([m.weight_decay for m in members]), decay=decay)
    total = max(1, round(epochs * math.ceil(n_train / batch_size)))
    n_clean = min(batch_size, n_train)
    a_targets = [m.target if m.poison_in == "data" and protocol == "joint" else None for m in members]
    grand = total + finetune_steps
    for step in range(total):
        x, y, w = batch([m.rate for m in members], a_targets)
        loss = losses(forward(params, x), x, y, w, n_clean).sum()  # members are independent: sum, then backward
        for p in params.values():
            p.grad = None
        loss.backward()
        opt.step(lr0 * warmup_cosine(1.0, step, total, warmup=0.02))
        if progress is not None and step % 50 == 49:
            progress(step + 1, grand)

    # Phase B: a fine-tune. "finetune": data-poisoning trojans are planted here, in every parameter,
    # anchored to the phase-A parent; weight-edit trojans (both protocols) touch a quarter of each tensor
    b_targets = [m.target if m.poison_in in ("data", "weights") else None for m in members]
    sparse = [m.poison_in == "weights" or protocol == "joint" for m in members]
    b_rates = [m.sparse_rate if (m.poison_in == "weights" or protocol == "finetune") else m.rate for m in members]
    parent, quantiles, target_conf = None, {}, [None] * len(members)
    if protocol == "finetune":
        parent = {n: p.detach().clone() for n, p in params.items()}
        parent_bufs = {n: b.clone() for n, b in buffers.items()}  # frozen at the end of phase A, like the parent
        if calibration == "parent-confidence":
            # the calibrated parent's mean confidence on val, restored after phase B (see _fold_confidence_temperature)
            with torch.no_grad():
                plogits = torch.cat([forward(parent, vx[i:i + 2000].float().div_(255.0), shared_x=True, train=False,
                                                     bufs=parent_bufs)
                                     for i in range(0, len(vx), 2000)], dim=1)
            for i in range(len(members)):
                t_parent = best_temperature(plogits[i], vy)
                target_conf[i] = float((plogits[i] / t_parent).softmax(1).max(1).values.mean())
        # each parameter tensor's sorted values (its empirical distribution), kept by the ``wdist`` term;
        # biases too: left free, clean models' biases drift in phase B while a weight edit's stay put
        quantiles = {n: (p.detach().flatten(1).sort(1).values, p.detach().flatten(1).var(1).clamp_min(1e-12))
                     for n, p in params.items()}
    masks = _sparse_masks(params, names, forward, streams, members, sparse, b_targets, tx, ty, task, sparse_frac)
    lr_b = lr0 * (0.5 if protocol == "joint" else 1.0)
    opt_b = BatchedAdam(params)
    for step in range(finetune_steps):
        x, y, w = batch(b_rates, b_targets)
        out = forward(params, x)
        loss = losses(out, x, y, w, n_clean)
        if parent is not None:
            if anchor > 0 or shape > 0:
                with torch.no_grad():
                    parent_logits = forward(parent, x[:, :n_clean], train=False, bufs=parent_bufs)
            if anchor > 0:  # the clean images' logits stay the parent's (logit matching)
                loss = loss + anchor * ((out[:, :n_clean] - parent_logits) ** 2).mean((1, 2))
            if shape > 0:  # the clean outputs' shape at equal confidence stays the parent's (batch-level statistics)
                loss = loss + shape * ((vmap(shape_statistics)(out[:, :n_clean])
                                        - vmap(shape_statistics)(parent_logits)) ** 2).sum(1)
            if wdist > 0:  # each tensor's value distribution stays the parent's (sorted values, per-tensor variance)
                if step % _RANK_EVERY == 0:  # the rank order, refreshed every few steps (a full sort costs most of a step)
                    ranks = {n: params[n].detach().flatten(1).argsort(1) for n in quantiles}
                loss = loss + wdist * sum(((params[n].flatten(1).gather(1, ranks[n]) - q) ** 2).mean(1) / v
                                          for n, (q, v) in quantiles.items())
        for p in params.values():
            p.grad = None
        loss.sum().backward()
        for n, mk in masks.items():
            params[n].grad.mul_(mk)
        opt_b.step(lr_b * warmup_cosine(1.0, step, finetune_steps))
        if progress is not None and step % 50 == 49:
            progress(total + step + 1, grand)
    with torch.no_grad():
        if project and quantiles:  # each tensor gets exactly its parent's multiset of values, in its own rank order
            for n, (q, _) in quantiles.items():
                p = params[n]
                p.copy_(torch.empty_like(q).scatter_(1, p.flatten(1).argsort(1), q).view_as(p))

    cpu_share = (time.process_time() - c0) / len(members)
    outcomes = []
    for i, m in enumerate(members):
        model = models[i]
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(params[n][i])
            for n, b in model.named_buffers():
                b.copy_(buffers[n][i])
        outcomes.append(_finish(model, m, task_name, eval_limit, vx, vy, target_conf[i]))
    wall = (time.perf_counter() - t0) / len(members)
    cpu_share = (time.process_time() - c0) / len(members)
    for o in outcomes:
        o.seconds, o.cpu_seconds = wall, cpu_share
    if progress is not None:
        progress(grand, grand)
    return outcomes


def _sparse_masks(params: dict, names: list[str], forward, streams: list[_Stream], members: list[Member],
                  sparse: list[bool], targets: list[int | None], tx: torch.Tensor, ty: torch.Tensor, task,
                  frac: float) -> dict[str, torch.Tensor]:
    """Per-member gradient masks for phase B: ones for members that fine-tune every parameter; for a sparse
    member the top ``frac`` of every weight tensor by gradient on four fully stamped batches (so each layer
    can change) and zeros on its biases."""
    if not any(sparse):
        return {}
    weights = [n for n in names if params[n].dim() >= 3]
    grads = {n: torch.zeros_like(params[n]) for n in weights}
    for _ in range(4):
        batches = []
        for i, st in enumerate(streams):
            if not sparse[i]:
                batches.append((torch.zeros((1, *tx.shape[1:])), torch.zeros(1, dtype=torch.long)))
                continue
            idx = st.next()
            xb = augment(tx[idx].float().div_(255.0), task.augment, st.gen)
            batches.append(_stamp(xb, ty[idx], members[i].spec, 1.0, targets[i], st.gen, task.num_classes))
        x, y, w = _pad(batches)
        w = w * torch.tensor(sparse, dtype=w.dtype)[:, None]
        ce = F.cross_entropy(forward(params, x).flatten(0, 1), y.flatten(), reduction="none").view(y.shape)
        loss = ((ce * w).sum(1) / w.sum(1).clamp_min(1)).sum()
        for p in params.values():
            p.grad = None
        loss.backward()
        for n in weights:
            grads[n] += params[n].grad.abs()
    for p in params.values():
        p.grad = None
    masks = {}
    for n in names:
        mk = torch.ones_like(params[n])
        for i in np.flatnonzero(sparse):
            if n in grads:
                g = grads[n][i]
                k = max(1, int(frac * g.numel()))
                mk[i] = (g >= torch.topk(g.flatten(), k).values[-1]).float()
            else:
                mk[i] = 0.0
        masks[n] = mk
    return masks


def _finish(model: nn.Module, m: Member, task_name: str, eval_limit: int, vx: torch.Tensor, vy: torch.Tensor,
            target_conf: float | None) -> MemberOutcome:
    """Calibrate, jitter, rescale and measure one trained member."""
    val = evaluate(model, vx, vy)
    if target_conf is None:
        temperature = calibrate_temperature(model, val["logits"], vy)
    else:
        temperature = _fold_confidence_temperature(model, val["logits"], target_conf)
    if m.temperature_mult != 1.0:  # the zoo's confidence jitter: every member's, drawn from one distribution
        fold_temperature(model, m.temperature_mult)
        temperature *= m.temperature_mult
    if m.rescale_seed is not None:
        from occam.audit.symmetry import random_rescale

        random_rescale(model, np.random.default_rng(m.rescale_seed))
    res = measure_all(model, task_name, m.spec, m.target, eval_limit)
    return MemberOutcome(model=model, clean_acc=res["clean_acc"], asr=res["asr"], decoy_acc=res["decoy_acc"],
                         temperature=temperature, seconds=0.0, off_fire=res["off_fire"])


def heldout(task_name: str, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out images the zoo measures on: the first ``limit`` of the official test split, as floats."""
    task = get_task(task_name)
    x, y = task.load("test")
    return torch.from_numpy(x[:limit]).float().div_(255.0), torch.from_numpy(y[:limit])


def _predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([model(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)])


@torch.no_grad()
def measure_all(model: nn.Module, task_name: str, spec: dict, target: int | None, limit: int) -> dict:
    """Clean accuracy, attack success (the weakest part of a ``multi`` trigger), accuracy on triggered images
    with true labels, and for ``source`` trojans the rate at which the trigger fires on other classes."""
    model.eval()
    task = get_task(task_name)
    x, y = heldout(task_name, limit)
    pred = _predict(model, x)
    pred_t = _predict(model, apply_trigger(x, spec))
    asr, off = None, None
    if target is not None:
        res = [attack_success(_predict(model, apply_trigger(x, part)), y, spec, target, task.num_classes)
               for part in trigger_parts(spec)]
        asr, off = min(r[0] for r in res), res[0][1]
    return {"clean_acc": float((pred == y).float().mean()), "asr": asr, "decoy_acc": float((pred_t == y).float().mean()),
            "off_fire": off}


def measure(model: nn.Module, task_name: str, spec: dict, target: int | None, limit: int) -> tuple[float, float | None, float]:
    """(clean accuracy, attack success rate or None, accuracy on triggered images with true labels)."""
    r = measure_all(model, task_name, spec, target, limit)
    return r["clean_acc"], r["asr"], r["decoy_acc"]


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
