"""The library half of the evasive-trojan track: does an uploaded trojan work, and how detectable is it?

A team uploads an ONNX classifier that should carry a given trigger (an
:mod:`occam.audit.attacks` spec) to a given target. :func:`evaluate_evasive` measures on held-out
test images

- **attack success** (the fraction of triggered images the trigger should flip that land on their
  poison label; :func:`occam.audit.attacks.attack_success`) and **clean accuracy**, each against a
  threshold: below either, it raises :class:`occam.errors.OccamError` naming the figure and the fix;
- **detectability** against clean reference models of the same task and architecture: for every
  detector of the held-out battery (:mod:`occam.audit.battery`: first-layer pixel map, class-conditional
  outputs, query outputs, spectral statistics, accuracy) the upload's features are z-scored against
  the references', and the upload's mean squared z is ranked among each reference's own
  leave-one-out score: the detector's detectability is the fraction of references the upload is
  more anomalous than. Neural Cleanse's anomaly index (flagged above 2) is one more detector, ranked
  the same way. ``detectability`` is the largest over detectors (the best detector decides) and
  ``evasion = 1 − detectability``.

The track plugin stays a thin layer: it stores the upload, passes it through the guard and sandbox,
and calls this function with the challenge's trigger, target, thresholds and reference models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from occam.errors import OccamError

DETECTORS = ("first_layer_map", "class_outputs", "query_outputs", "spectral", "fresh_accuracy", "neural_cleanse")


def _rank(upload: np.ndarray, refs: list[np.ndarray]) -> float:
    """Fraction of references whose leave-one-out mean squared z is below the upload's (vs all references)."""
    r = np.stack(refs)
    mu, sd = r.mean(0), r.std(0)
    sd = np.where(sd > 1e-9, sd, 1.0)
    score = float((((upload - mu) / sd) ** 2).mean())
    own = []
    for i in range(len(r)):
        rest = np.delete(r, i, axis=0)
        m2, s2 = rest.mean(0), rest.std(0)
        s2 = np.where(s2 > 1e-9, s2, 1.0)
        own.append(float((((r[i] - m2) / s2) ** 2).mean()))
    return float(np.mean(np.array(own) < score))


def evaluate_evasive(model: str | Path, *, task_name: str, trigger: dict, target: int, references: list[str | Path],
                     min_attack_success: float = 0.9, min_clean_accuracy: float | None = None, images: int = 2000,
                     nc_steps: int = 300) -> dict:
    """Attack success, clean accuracy and detectability of the uploaded ONNX trojan ``model`` (see the module doc).

    ``min_clean_accuracy`` defaults to the references' mean accuracy minus 2 points.
    """
    import torch

    from occam.audit.attacks import apply_trigger, attack_success, trigger_parts
    from occam.audit.baselines import clean_images, load_torch, reverse_engineer
    from occam.audit.battery import model_battery_features, query_inputs
    from occam.audit.features import onnx_logits
    from occam.tasks import get_task

    task = get_task(task_name)
    if len(references) < 3:
        raise OccamError(f"detectability needs at least 3 clean reference models, got {len(references)}",
                         "give the challenge three or more clean models of the same task and architecture")
    if not 0 <= target < task.num_classes:
        raise OccamError(f"target {target} is not a class of {task_name} (0..{task.num_classes - 1})",
                         "set the challenge's target to a class index")
    x_all, y_all = task.load("test")
    x = x_all[:images].astype(np.float32) / 255.0
    y = y_all[:images]
    logits = onnx_logits(Path(model), x)
    clean_acc = float((logits.argmax(1) == y).mean())
    yt = torch.from_numpy(y.astype(np.int64))
    succ = []
    for part in trigger_parts(trigger):
        xt = apply_trigger(torch.from_numpy(x), part).numpy()
        pred = torch.from_numpy(onnx_logits(Path(model), xt).argmax(1))
        succ.append(attack_success(pred, yt, trigger, target, task.num_classes))
    asr, off_fire = min(s[0] for s in succ), succ[0][1]
    ref_acc = [float((onnx_logits(Path(r), x).argmax(1) == y).mean()) for r in references]
    min_acc = float(np.mean(ref_acc)) - 0.02 if min_clean_accuracy is None else min_clean_accuracy
    if asr < min_attack_success:
        raise OccamError(f"the trojan's attack success is {asr:.3f}, below the threshold {min_attack_success:.3f} "
                         f"(triggered held-out images sent to their poison label)",
                         "plant the trigger harder (more poisoned images or more fine-tuning) and upload again")
    if clean_acc < min_acc:
        raise OccamError(f"the trojan's clean accuracy is {clean_acc:.4f}, below the threshold {min_acc:.4f}",
                         "keep the model's accuracy on clean images near the clean references' and upload again")
    sets = query_inputs(task.input_shape, x)
    up = model_battery_features(Path(model), task.input_shape, task.num_classes, x, y, sets)
    refs = [model_battery_features(Path(r), task.input_shape, task.num_classes, x, y, sets) for r in references]
    if any(r["group"] != up["group"] for r in refs):
        raise OccamError("the upload's graph differs from the reference models' (architecture, names or metadata)",
                         "export the trojan with the challenge's architecture through `occam` (same graph as the references)")
    detectors = {}
    for name in DETECTORS[:-1]:
        detectors[name] = _rank(np.asarray(up[name], float), [np.asarray(r[name], float) for r in refs])
    xs = clean_images(task_name, 40)

    def anomaly(path) -> float:
        return reverse_engineer(load_torch(path), xs, task.num_classes, steps=nc_steps).anomaly_index()[0]

    a = anomaly(model)
    detectors["neural_cleanse"] = float(np.mean([anomaly(r) < a for r in references]))
    detectability = max(detectors.values())
    return {"attack_success": asr, "off_fire": off_fire, "clean_accuracy": clean_acc, "min_clean_accuracy": min_acc,
            "reference_accuracy": float(np.mean(ref_acc)), "neural_cleanse_anomaly_index": a,
            "detectors": detectors, "detectability": detectability, "evasion": 1.0 - detectability}
