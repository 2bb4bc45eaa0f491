"""Calibrated trigger evidence: a model's Neural Cleanse statistics against clean models like it.

Neural Cleanse's rule (anomaly index of the smallest trigger > 2) assumes that the mask sizes of a
clean model's classes are spread like a normal sample; small, briefly trained models often break
that, and clean models get flagged. Here the statistic is compared with a **reference
distribution**: the same statistic on ``n_models`` clean models of the same architecture and task,
trained with the project's recipe (:func:`occam.training.train`, seeds 1000, 1001, …) and searched
with the same steps and images. References are computed on first use and cached as JSON under
``OCCAM_CACHE/lens/calibration`` (one file per task, architecture and settings; more models are
added to it when asked for).

The result is a probability with its basis, worded as evidence: ``p_value`` is the (add-one)
fraction of clean references whose statistic is at least as extreme as the model's, i.e. how often
a clean model of this kind looks at least this suspicious; ``p_normal`` the same from a normal fit
to the references. With ``n`` references the smallest reportable ``p_value`` is ``1 / (n + 1)``.

Statistics (:data:`STATISTICS`): ``anomaly_index`` (the MAD index of the smallest trigger; larger
is more suspicious) and ``min_l1_ratio`` (smallest mask L1 / median mask L1; smaller is more
suspicious).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from occam.errors import OccamError
from occam.lens.model import LensModel
from occam.paths import cache_dir

__all__ = ["STATISTICS", "trigger_statistics", "reference_statistics", "calibrate", "calibrated_verdict", "infer_arch"]

STATISTICS = {"anomaly_index": "greater", "min_l1_ratio": "less"}


def trigger_statistics(result: dict[str, Any]) -> dict[str, float]:
    """The calibrated statistics from a trigger result (``occam.lens.cleanse.class_trigger_search`` / ``trigger_report``)."""
    try:
        l1 = np.array([c["mask_l1"] for c in result["classes"]], dtype=np.float64)
        ai = float(result["anomaly_index"])
    except (KeyError, TypeError) as exc:
        raise OccamError("this is not a trigger result (no classes' mask_l1 or anomaly_index)",
                         "pass the output of occam.lens.triggers.trigger_report or "
                         "occam.lens.cleanse.class_trigger_search") from exc
    med = float(np.median(l1))
    return {"anomaly_index": ai, "min_l1_ratio": float(l1.min() / med) if med > 0 else 0.0}


def _key(task: str, arch: str, arch_kwargs: dict, epochs: float, steps: int, images: int) -> str:
    blob = json.dumps({"task": task, "arch": arch, "kw": arch_kwargs, "epochs": epochs, "steps": steps,
                       "images": images, "v": 1}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def reference_statistics(task: str, arch: str, *, n_models: int = 8, epochs: float = 10.0, steps: int = 300,
                         images: int = 40, arch_kwargs: dict | None = None,
                         progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Trigger statistics of ``n_models`` clean ``arch`` models on ``task`` (cached; see the module docstring)."""
    import torch

    from occam.interp import convert
    from occam.lens.cleanse import check_image_task, class_trigger_search
    from occam.models import parse_arch
    from occam.tasks import get_task
    from occam.training import TrainConfig, train

    t = get_task(task)
    check_image_task(t)
    parse_arch(arch)
    if not 1 <= n_models <= 200:
        raise OccamError(f"n_models must be in 1..200, got {n_models}", "8 is the default; more gives finer p-values")
    if epochs <= 0 or steps < 1 or images < 1:
        raise OccamError(f"epochs, steps and images must be positive (got {epochs}, {steps}, {images})")
    kw = dict(arch_kwargs or {})
    key = _key(task, arch, kw, epochs, steps, images)
    path = cache_dir() / "lens" / "calibration" / task / f"{arch.replace(':', '_')}-{key}.json"
    data: dict[str, Any] = {"task": task, "arch": arch, "arch_kwargs": kw, "epochs": epochs, "steps": steps,
                            "images": images, "models": []}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            pass  # a corrupt cache file is recomputed
    have = len(data["models"])
    threads = torch.get_num_threads()
    try:
        for i in range(have, n_models):
            seed = 1000 + i
            res = train(TrainConfig(task=task, arch=arch, arch_kwargs=kw, epochs=epochs, seed=seed, threads=1))
            trig, _ = class_trigger_search(convert(res.onnx_bytes), t, steps=steps, images=images, name=f"reference-{seed}")
            data["models"].append({"seed": seed, **trigger_statistics(trig),
                                   "val_accuracy": float(res.card["val"]["accuracy"])})
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=1))
            tmp.replace(path)
            if progress is not None:
                progress(i + 1, n_models)
    finally:
        torch.set_num_threads(threads)
    out = dict(data)
    out["models"] = data["models"][:n_models]
    out["cached"] = have >= n_models
    out["path"] = str(path)
    return out


def _phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def calibrate(stats: dict[str, float], reference: dict[str, Any], statistic: str = "anomaly_index",
              alpha: float = 0.05) -> dict[str, Any]:
    """Compare a model's ``stats`` (:func:`trigger_statistics`) with a ``reference`` (:func:`reference_statistics`).

    ``flagged`` needs both probabilities below ``alpha``; ``evidence`` is one of "consistent with
    clean models", "somewhat unusual for a clean model" and "unusual for a clean model".
    """
    if statistic not in STATISTICS:
        raise OccamError(f"unknown statistic {statistic!r}", f"use one of: {', '.join(STATISTICS)}")
    if not 0 < alpha < 1:
        raise OccamError(f"alpha must be in (0, 1), got {alpha}", "0.05 is the default")
    refs = np.array([m[statistic] for m in reference["models"]], dtype=np.float64)
    if len(refs) == 0:
        raise OccamError("the reference distribution is empty", "compute it with n_models >= 1")
    x = float(stats[statistic])
    larger = STATISTICS[statistic] == "greater"
    n_ext = int((refs >= x).sum() if larger else (refs <= x).sum())
    p_emp = (1 + n_ext) / (len(refs) + 1)
    mean = float(refs.mean())
    sd = max(float(refs.std(ddof=1)) if len(refs) > 1 else 0.0, 1e-3 * max(1.0, abs(mean)))
    z = (x - mean) / sd
    p_norm = 1 - _phi(z) if larger else _phi(z)
    p = max(p_emp, p_norm)
    evidence = ("unusual for a clean model" if p < alpha else
                "somewhat unusual for a clean model" if p < 2 * alpha else "consistent with clean models")
    arch, task = reference.get("arch", "?"), reference.get("task", "?")
    side = "at least" if larger else "at most"
    wording = (f"In {n_ext} of {len(refs)} clean {arch} models trained on {task} the {statistic.replace('_', ' ')} is "
               f"{side} this model's ({x:.3g}); probability that a clean model looks this extreme: "
               f"{p_emp:.2f} (empirical), {p_norm:.2g} (normal fit). This is {evidence}; it is evidence, not proof.")
    if p_emp > alpha and n_ext == 0:
        wording += f" With {len(refs)} references the smallest reportable probability is {1 / (len(refs) + 1):.2f}."
    return {"statistic": statistic, "value": x, "p_value": p_emp, "p_normal": p_norm, "z": z,
            "flagged": bool(p_emp < alpha and p_norm < alpha), "evidence": evidence, "wording": wording,
            "basis": {"n_models": int(len(refs)), "arch": arch, "task": task, "epochs": reference.get("epochs"),
                      "steps": reference.get("steps"), "images": reference.get("images"),
                      "values": refs.tolist(), "mean": mean, "sd": sd, "alpha": alpha}}


def infer_arch(lm: LensModel) -> str:
    """The zoo architecture (default options) whose weight matrices have ``lm``'s shapes, if exactly one does."""
    import torch

    from occam.models import ARCHS, build_model

    def sig(shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        return sorted(tuple(sorted(s)) for s in shapes if len(s) >= 2)

    mine = sig([tuple(lm.module.weight(n).shape) for n in lm.module.weight_names])
    hits = []
    for name in ARCHS:
        try:
            net = build_model(name, tuple(lm.task.input_shape), lm.task.num_classes)
        except (OccamError, TypeError, ValueError, RuntimeError):
            continue
        shapes = [tuple(p.shape) for p in net.parameters() if isinstance(p, torch.nn.Parameter)]
        if sig(shapes) == mine:
            hits.append(name)
    if len(hits) != 1:
        found = f"it matches {', '.join(hits)}" if hits else "no zoo architecture with default options matches it"
        raise OccamError(f"cannot tell this model's architecture from its weights: {found}",
                         "name the architecture the references should use (arch='lenet5', 'mlp:64', ...)")
    return hits[0]


def calibrated_verdict(lm: LensModel, result: dict[str, Any] | None = None, *, arch: str | None = None,
                       n_models: int = 8, epochs: float = 10.0, steps: int | None = None, images: int | None = None,
                       statistic: str = "anomaly_index", alpha: float = 0.05,
                       progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """The model's trigger statistics (from ``result``, or a new search) against clean references.

    ``steps``/``images`` default to ``result``'s (so both searches match) or 300/40. ``arch``
    defaults to :func:`infer_arch`.
    """
    from occam.lens.triggers import trigger_report

    steps = steps or (int(result["steps"]) if result and "steps" in result else 300)
    images = images or (int(result["images"]) if result and "images" in result else 40)
    if result is not None and (result.get("steps", steps), result.get("images", images)) != (steps, images):
        raise OccamError(f"the trigger result used steps={result.get('steps')}, images={result.get('images')}, "
                         f"the references steps={steps}, images={images}", "use the same search settings for both")
    arch = arch or infer_arch(lm)
    ref = reference_statistics(lm.task.name, arch, n_models=n_models, epochs=epochs, steps=steps, images=images,
                               progress=progress)
    if result is None:
        result = trigger_report(lm, steps, images)
    out = calibrate(trigger_statistics(result), ref, statistic, alpha)
    out["model"] = lm.name
    out["smallest_class"] = result.get("smallest_class")
    out["mad_rule_flagged"] = bool(result.get("flagged"))
    return out
