"""Neural Cleanse (Wang et al., 2019): the smallest trigger that sends clean images to each class.

Shared by the Lens's Triggers view (:mod:`occam.lens.triggers`) and the audit track
(:mod:`occam.audit.baselines`, :mod:`occam.audit.lens`, which import it from here): the audit
part depends on the Lens, never the other way round. No web imports.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from occam.errors import OccamError

__all__ = ["ANOMALY_THRESHOLD", "ReversedTriggers", "clean_images", "reverse_engineer", "check_image_task",
           "class_trigger_search"]

ANOMALY_THRESHOLD = 2.0  # Neural Cleanse's MAD rule: flag a model whose smallest trigger's index exceeds this


@dataclass
class ReversedTriggers:
    masks: np.ndarray  # [K, H, W]
    patterns: np.ndarray  # [K, C, H, W]
    l1: np.ndarray  # [K] mask L1 of the smallest trigger found per class
    success: np.ndarray  # [K] fraction of the images it sends to the class

    def anomaly_index(self) -> tuple[float, int]:
        """(anomaly index of the smallest trigger by the MAD rule, its class)."""
        l1 = self.l1
        med = float(np.median(l1))
        mad = float(np.median(np.abs(l1 - med))) * 1.4826
        k = int(np.argmin(l1))
        return (med - float(l1[k])) / max(mad, 1e-6), k


def clean_images(task_name: str, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` clean validation images (float [0, 1]), balanced over classes as far as possible."""
    from occam.tasks import get_task

    task = get_task(task_name)
    x, y = task.load("val")
    rng = np.random.default_rng(seed)
    per = max(1, n // task.num_classes)
    idx = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per] for c in range(task.num_classes)])
    idx = rng.permutation(idx)[:n]
    return torch.from_numpy(x[idx]).float() / 255.0


def reverse_engineer(model: torch.nn.Module, x: torch.Tensor, num_classes: int, *, steps: int = 300,
                     lam: float = 1e-2, lr: float = 0.1, target_success: float = 0.95, seed: int = 0,
                     progress: Callable[[int, int], None] | None = None) -> ReversedTriggers:
    """Neural Cleanse's trigger search for every class at once.

    Per class k: minimize CE(f((1 - m) x + m p), k) + λ_k |m|_1 over m = σ(a), p = σ(b). λ_k
    adapts as in the paper: raised when the trigger succeeds on ``target_success`` of the batch,
    lowered otherwise. The smallest successful mask per class is kept. ``progress(step, steps)``
    is called every 10 steps and at the end.
    """
    torch.manual_seed(seed)
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    n, c, h, w = x.shape
    k = num_classes
    a = torch.full((k, 1, h, w), -2.0, requires_grad=True)
    b = (torch.randn(k, c, h, w) * 0.1).requires_grad_(True)
    opt = torch.optim.Adam([a, b], lr=lr)
    lam_k = torch.full((k,), lam * 10 / (h * w))
    labels = torch.arange(k).repeat_interleave(n)
    best_l1 = np.full(k, np.inf)
    best_m = np.zeros((k, h, w), np.float32)
    best_p = np.zeros((k, c, h, w), np.float32)
    best_s = np.zeros(k)
    for step in range(steps):
        m, pat = torch.sigmoid(a), torch.sigmoid(b)
        xt = ((1 - m[:, None]) * x[None] + (m * pat)[:, None]).reshape(k * n, c, h, w)
        logits = model(xt)
        ce = F.cross_entropy(logits, labels, reduction="none").view(k, n).mean(1)
        l1 = m.view(k, -1).sum(1)
        loss = (ce + lam_k * l1).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            succ = (logits.argmax(1) == labels).float().view(k, n).mean(1)
            ok = succ >= target_success
            l1n = l1.detach().numpy()
            for j in np.flatnonzero(ok.numpy()):
                if l1n[j] < best_l1[j]:
                    best_l1[j], best_s[j] = l1n[j], float(succ[j])
                    best_m[j], best_p[j] = m[j, 0].numpy(), pat[j].numpy()
            if step % 10 == 9:
                lam_k = torch.where(ok, lam_k * 1.5, lam_k / 1.5)
        if progress is not None and (step % 10 == 9 or step == steps - 1):
            progress(step + 1, steps)
    # classes never reached: report the final mask (its size is an upper bound)
    with torch.no_grad():
        m, pat = torch.sigmoid(a), torch.sigmoid(b)
        for j in np.flatnonzero(~np.isfinite(best_l1)):
            best_l1[j] = float(m[j].sum())
            best_m[j], best_p[j] = m[j, 0].numpy(), pat[j].numpy()
    return ReversedTriggers(masks=best_m, patterns=best_p, l1=best_l1, success=best_s)


def check_image_task(task: Any) -> None:
    """Trigger search needs image inputs ``[C, H, W]``; anything else is refused with a clear error."""
    shape = tuple(task.input_shape)
    if len(shape) != 3:
        raise OccamError(f"trigger reverse-engineering needs image inputs [C, H, W]; task {task.name!r} takes "
                         f"inputs of shape [{', '.join(map(str, shape))}]",
                         "use a model of an image task (fashion-mnist, mnist, digits or cifar10)")


def class_trigger_search(model: torch.nn.Module, task: Any, *, steps: int = 300, images: int = 40,
                         progress: Callable[[int, int], None] | None = None,
                         name: str = "model") -> tuple[dict[str, Any], ReversedTriggers]:
    """Neural Cleanse on every class of ``model`` (a differentiable module taking ``[N, C, H, W]`` in [0, 1]).

    Returns (result, raw search): ``classes`` (per class: ``class``, ``name``, ``mask_l1``,
    ``success``, ``anomaly`` = its own MAD index, ``mask``, ``pattern``), ``anomaly_index`` and
    ``smallest_class`` (the smallest trigger), ``flagged`` (index > 2), ``p_trojan`` = σ(index − 2)
    as in the baseline, the median and MAD of the sizes.
    """
    from occam.tasks import get_task

    t = get_task(task) if isinstance(task, str) else task
    check_image_task(t)
    if steps < 1 or images < 1:
        raise OccamError(f"steps and images must be at least 1 (got steps={steps}, images={images})")
    rev = reverse_engineer(model, clean_images(t.name, images), t.num_classes, steps=steps, progress=progress)
    ai, k = rev.anomaly_index()
    med = float(np.median(rev.l1))
    mad = float(np.median(np.abs(rev.l1 - med))) * 1.4826
    classes = [{"class": i, "name": t.class_names[i], "mask_l1": round(float(rev.l1[i]), 4),
                "success": round(float(rev.success[i]), 4),
                "anomaly": round((med - float(rev.l1[i])) / max(mad, 1e-6), 4),
                "mask": np.round(rev.masks[i], 4).tolist(),
                "pattern": np.round(rev.patterns[i], 4).tolist()} for i in range(t.num_classes)]
    out = {"model": name, "classes": classes, "anomaly_index": round(float(ai), 4), "smallest_class": k,
           "flagged": bool(ai > ANOMALY_THRESHOLD), "threshold": ANOMALY_THRESHOLD,
           "p_trojan": round(1 / (1 + math.exp(-(ai - ANOMALY_THRESHOLD))), 6),
           "median_l1": round(med, 4), "mad": round(mad, 4), "input_shape": list(t.input_shape), "steps": steps,
           "images": images}
    return out, rev
