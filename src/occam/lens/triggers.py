"""Triggers: the reverse-engineered backdoor trigger of every class (Neural Cleanse), for the Lens.

For each class k the smallest mask ``m`` and pattern ``p`` that send clean validation images to k
when pasted as ``(1 − m)·x + m·p`` are optimized (:func:`occam.lens.cleanse.class_trigger_search`,
the same search as ``occam audit triggers`` and the Neural Cleanse baseline, which import it). A backdoored class
needs a much smaller mask than the others: the median-absolute-deviation anomaly index of the
smallest trigger above 2 flags the model, its class being the likely target.

The search takes seconds to minutes on a CPU, so it runs as a background :class:`TriggerJob`
(polled by the page) on a snapshot of the model's current weights; finished jobs are reused for
the same weights, steps and images (the cache lives in the caller's ``jobs`` dict, one per Lens
session). No web imports.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from occam.errors import OccamError
from occam.lens.cleanse import check_image_task, class_trigger_search
from occam.lens.images import to_png_uri
from occam.lens.jobs import run_job
from occam.lens.model import LensModel

__all__ = ["TriggerJob", "start_job", "trigger_search", "trigger_payload", "trigger_report", "weights_key", "MAX_STEPS",
           "MAX_IMAGES"]

MAX_STEPS = 5000
MAX_IMAGES = 200


def weights_key(lm: LensModel) -> str:
    """A fingerprint of the model's current (possibly edited) weights."""
    h = hashlib.sha256(lm.data)
    for n in lm.module.weight_names:
        h.update(lm.module.weight(n).detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _hot(mask: np.ndarray, scale: int) -> str:
    """A mask in [0, 1] as a PNG data URI, black → red → yellow → white (absolute scale)."""
    v = np.clip(np.asarray(mask, dtype=np.float32), 0, 1)
    rgb = np.stack([np.clip(3 * v, 0, 1), np.clip(3 * v - 1, 0, 1), np.clip(3 * v - 2, 0, 1)], axis=-1)
    img = Image.fromarray((rgb * 255).astype(np.uint8))
    buf = io.BytesIO()
    img.resize((img.width * scale, img.height * scale), Image.NEAREST).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@torch.no_grad()
def _check_on_val(module: torch.nn.Module, lm: LensModel, masks: np.ndarray, patterns: np.ndarray,
                  n: int = 500) -> tuple[list[float], list[np.ndarray], list[int]]:
    """Per class k, with k's trigger pasted: the fraction of (up to ``n``) Lens val images of other
    classes the model then assigns to k; and an example, pasted, with its prediction (the first
    image sent to k, or the first image when none is)."""
    y = lm.y.numpy()
    success, examples, preds = [], [], []
    for k in range(len(masks)):
        idx = np.flatnonzero(y != k)[:n]
        if len(idx) == 0:
            success.append(float("nan"))
            examples.append(lm.x[0].numpy())
            preds.append(int(module(lm.x[:1]).argmax(1)))
            continue
        m = torch.from_numpy(masks[k])[None]
        xs = ((1 - m) * lm.x[idx] + m * torch.from_numpy(patterns[k])).float()
        pred = torch.cat([module(xs[i:i + 256]).argmax(1) for i in range(0, len(xs), 256)])
        hit = (pred == k).numpy()
        success.append(round(float(hit.mean()), 4))
        j = int(np.argmax(hit)) if hit.any() else 0  # an image the trigger works on, if there is one
        examples.append(xs[j].numpy())
        preds.append(int(pred[j]))
    return success, examples, preds


def trigger_search(lm: LensModel, steps: int = 300, images: int = 40, *, module: torch.nn.Module | None = None,
                   progress: Any = None) -> dict[str, Any]:
    """Every class's reverse-engineered trigger, as data (see the module docstring).

    ``module``: the weights to search (default: a copy of ``lm``'s current ones). Adds to
    :func:`~occam.lens.cleanse.class_trigger_search`'s result, per class: ``val_success`` (the
    trigger pasted on up to 500 of the Lens's val images of other classes: the fraction sent to the
    class; ``success`` is on the search batch), ``example`` (the trigger pasted on the first of
    those val images it sends to the class, or the first one if it sends none, as an array) and
    ``example_pred`` (the model's class for it); and ``seconds``.
    """
    check_image_task(lm.task)
    module = copy.deepcopy(lm.module) if module is None else module
    t0 = time.perf_counter()
    res, _ = class_trigger_search(module, lm.task, steps=steps, images=images, progress=progress, name=lm.name)
    masks = np.array([c["mask"] for c in res["classes"]], dtype=np.float32)
    patterns = np.array([c["pattern"] for c in res["classes"]], dtype=np.float32)
    val_success, ex, pred = _check_on_val(module, lm, masks, patterns)
    for k, c in enumerate(res["classes"]):
        c["val_success"] = val_success[k]
        c["example"] = ex[k]
        c["example_pred"] = int(pred[k])
    res["seconds"] = round(time.perf_counter() - t0, 3)
    return res


def trigger_payload(res: dict[str, Any]) -> dict[str, Any]:
    """:func:`trigger_search`'s result drawn for the page: per class ``mask_src`` (the mask),
    ``stamp_src`` (mask × pattern) and ``example_src`` (the pasted example) as PNG data URIs."""
    out = {**res, "classes": []}
    masks = np.array([c["mask"] for c in res["classes"]], dtype=np.float32)
    h, w = masks.shape[1:]
    scale = max(1, 56 // max(h, w))
    for c in res["classes"]:
        m, p = np.asarray(c["mask"], dtype=np.float32), np.asarray(c["pattern"], dtype=np.float32)
        d = {k: v for k, v in c.items() if k != "example"}
        d["mask_src"] = _hot(m, scale)
        d["stamp_src"] = to_png_uri(m[None] * p, scale=scale)
        d["example_src"] = to_png_uri(np.asarray(c["example"]), scale=scale)
        out["classes"].append(d)
    return out


def trigger_report(lm: LensModel, steps: int = 300, images: int = 40, *, module: torch.nn.Module | None = None,
                   progress: Any = None) -> dict[str, Any]:
    """:func:`trigger_search` drawn by :func:`trigger_payload` (what the page and the jobs return)."""
    return trigger_payload(trigger_search(lm, steps, images, module=module, progress=progress))


@dataclass
class TriggerJob:
    id: str
    key: str  # weights fingerprint, steps, images: the cache key
    steps: int
    images: int
    step: int = 0
    state: str = "running"
    error: str | None = None
    result: dict[str, Any] | None = None
    started: float = field(default_factory=time.time)
    reused: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "steps": self.steps, "images": self.images, "step": self.step, "state": self.state,
                "error": self.error, "result": self.result, "cached": self.reused > 0}


def start_job(lm: LensModel, steps: int = 300, images: int = 40, *, jobs: dict[str, TriggerJob] | None = None,
              wait: bool = False, admit: Callable[[], None] | None = None) -> TriggerJob:
    """Start (or reuse) the trigger search on ``lm``'s current weights.

    ``jobs`` (id → job) is the per-session store: a running or finished job with the same
    weights, steps and images is returned instead of starting another. Bad input (a model
    without image inputs, steps or images out of range) raises :class:`~occam.errors.OccamError`
    here, before any thread starts. ``admit`` is called just before a *new* job starts (not for a
    reused one) and may raise to refuse it (the arena caps running jobs this way). Call it while
    holding the session's lock, so the weight snapshot is consistent.
    """
    check_image_task(lm.task)
    if not 1 <= steps <= MAX_STEPS:
        raise OccamError(f"steps must be between 1 and {MAX_STEPS}, got {steps}", "300 is Neural Cleanse's default here")
    if not 1 <= images <= MAX_IMAGES:
        raise OccamError(f"images must be between 1 and {MAX_IMAGES}, got {images}", "40 is the default")
    key = f"{weights_key(lm)}:{steps}:{images}"
    if jobs is not None:
        for j in jobs.values():
            if j.key == key and j.state != "error" and getattr(j, "view", "triggers") == "triggers":
                j.reused += 1
                return j
    if admit is not None:
        admit()
    job = TriggerJob(uuid.uuid4().hex[:10], key, steps, images)
    if jobs is not None:
        jobs[job.id] = job
    module = copy.deepcopy(lm.module)  # the weights as they are now; later edits do not reach the search

    def progress(step: int, total: int) -> None:
        job.step = step

    def compute() -> None:
        job.result = trigger_report(lm, steps, images, module=module, progress=progress)
        job.step = steps

    run_job(job, compute, wait=wait, name=f"lens-triggers-{job.id}")
    return job
