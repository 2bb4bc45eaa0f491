"""For the Lens: the reverse-engineered trigger of every class of a zoo model, as data and a PNG.

>>> res = class_triggers("zoo/public/models/model_0003.onnx", task="fashion-mnist", png="t.png")  # doctest: +SKIP
>>> res["classes"][0]["mask_l1"], res["anomaly_index"], res["flagged"]  # doctest: +SKIP

:func:`module_triggers` does the same for a PyTorch module (the Lens's Triggers panel runs it on
the model it has open, see :mod:`occam.lens.triggers`). No web imports here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

# The search lives in the Lens (occam.lens.cleanse): the audit part depends on the Lens, not the other way round.
from occam.lens.cleanse import ANOMALY_THRESHOLD, check_image_task

if TYPE_CHECKING:
    from torch import nn

    from occam.tasks import Task

__all__ = ["ANOMALY_THRESHOLD", "class_triggers", "module_triggers", "check_image_task", "trigger_png"]


def class_triggers(model_path: str | Path, *, task: str, png: str | Path | None = None, steps: int = 300,
                   images: int = 40, progress: Callable[[int, int], None] | None = None) -> dict:
    """Per class: mask [H, W], pattern [C, H, W], mask L1 and success rate; plus the MAD anomaly index.

    Arrays are nested lists (JSON-ready). With ``png``, writes a grid: row 1 the masks,
    row 2 the stamped pattern (mask × pattern), each titled with its class and L1.
    """
    from occam.interp import convert as load_torch
    from occam.tasks import get_task

    t = get_task(task)
    check_image_task(t)
    return module_triggers(load_torch(model_path), t, png=png, steps=steps, images=images, progress=progress,
                           name=str(model_path))


def module_triggers(model: nn.Module, task: str | Task, *, steps: int = 300, images: int = 40,
                    png: str | Path | None = None, progress: Callable[[int, int], None] | None = None,
                    name: str = "model") -> dict:
    """Neural Cleanse on every class of ``model`` (a differentiable module taking ``[N, C, H, W]`` in [0, 1]).

    Returns ``classes`` (per class: ``class``, ``name``, ``mask_l1``, ``success``, ``anomaly`` = its
    own MAD index, ``mask``, ``pattern``), ``anomaly_index`` and ``smallest_class`` (the smallest
    trigger), ``flagged`` (index > 2), ``p_trojan`` = σ(index − 2) as in the baseline, the median
    and MAD of the sizes, and the submission budget.
    """
    from occam.audit.scoring import default_budget
    from occam.lens.cleanse import class_trigger_search
    from occam.tasks import get_task

    t = get_task(task) if isinstance(task, str) else task
    out, rev = class_trigger_search(model, t, steps=steps, images=images, progress=progress, name=name)
    out["budget"] = default_budget(tuple(t.input_shape))
    k = out["smallest_class"]
    if png is not None:
        out["png"] = str(trigger_png(rev.masks, rev.patterns, rev.l1, t.class_names, png, highlight=k))
    return out


def trigger_png(masks: np.ndarray, patterns: np.ndarray, l1: np.ndarray, names, path: str | Path,
                highlight: int | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(masks)
    fig, axes = plt.subplots(2, k, figsize=(1.3 * k, 3.0))
    for i in range(k):
        stamp = masks[i][None] * patterns[i]
        stamp = stamp[0] if stamp.shape[0] == 1 else stamp.transpose(1, 2, 0)
        axes[0, i].imshow(masks[i], cmap="magma", vmin=0, vmax=1)
        axes[1, i].imshow(stamp, cmap="gray", vmin=0, vmax=1)
        color = "red" if i == highlight else "black"
        axes[0, i].set_title(f"{names[i]}\nL1 {l1[i]:.1f}", fontsize=7, color=color)
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("mask", fontsize=8)
    axes[1, 0].set_ylabel("mask × pattern", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
