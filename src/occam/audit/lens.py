"""For the Lens: the reverse-engineered trigger of every class of a zoo model, as data and a PNG.

>>> res = class_triggers("zoo/public/models/model_0003.onnx", task="fashion-mnist", png="t.png")  # doctest: +SKIP
>>> res["classes"][0]["mask_l1"], res["anomaly_index"]  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def class_triggers(model_path: str | Path, *, task: str, png: str | Path | None = None, steps: int = 300,
                   images: int = 40) -> dict:
    """Per class: mask [H, W], pattern [C, H, W], mask L1 and success rate; plus the MAD anomaly index.

    Arrays are nested lists (JSON-ready). With ``png``, writes a grid: row 1 the masks,
    row 2 the stamped pattern (mask × pattern), each titled with its class and L1.
    """
    from occam.audit.baselines import clean_images, reverse_engineer
    from occam.audit.onnx_torch import load_torch
    from occam.tasks import get_task

    t = get_task(task)
    model = load_torch(model_path)
    rev = reverse_engineer(model, clean_images(task, images), t.num_classes, steps=steps)
    ai, k = rev.anomaly_index()
    classes = [{"class": i, "name": t.class_names[i], "mask_l1": round(float(rev.l1[i]), 4),
                "success": round(float(rev.success[i]), 4), "mask": np.round(rev.masks[i], 4).tolist(),
                "pattern": np.round(rev.patterns[i], 4).tolist()} for i in range(t.num_classes)]
    out = {"model": str(model_path), "classes": classes, "anomaly_index": round(float(ai), 4), "smallest_class": k}
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
