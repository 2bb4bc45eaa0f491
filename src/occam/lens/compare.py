"""Two models side by side on the same validation images: weights, predictions, per-class accuracy.

``a`` and ``b`` are :class:`LensModel` s of the same task: two submissions, a model and its pruned
or edited copy (``open_model(lm.to_onnx_bytes(), lm.task)`` snapshots an edited one), or two
checkpoints (:func:`checkpoint_model`). Weights are paired by name, then (for names only one side
has, e.g. another exporter's) in graph order among tensors of the same shape.

:func:`diff_results` diffs any two results of the same compute function (two views' data):
numbers and arrays get their differences, everything else an equality flag.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from occam.errors import OccamError
from occam.lens.model import LensModel, bit_nnz

__all__ = ["compare_models", "weight_differences", "prediction_differences", "checkpoint_model", "diff_results"]


def checkpoint_model(lm: LensModel, index: int) -> LensModel:
    """Checkpoint ``index`` of ``lm`` (see ``lm.checkpoints``) opened on the same task and val images."""
    n = len(lm.checkpoints)
    if not 0 <= index < n:
        raise OccamError(f"checkpoint {index} is out of range: this model has {n}", f"pass 0..{n - 1}")
    label, data = lm.checkpoints[index]
    return LensModel(data, lm.task, name=f"{lm.name}@{label}", n_view=len(lm.x))


def _check_same_data(a: LensModel, b: LensModel) -> None:
    if tuple(a.task.input_shape) != tuple(b.task.input_shape) or a.task.num_classes != b.task.num_classes:
        raise OccamError(f"the models take different data: {a.task.name} {list(a.task.input_shape)} vs "
                         f"{b.task.name} {list(b.task.input_shape)}", "compare two models of the same task")
    if a.x.shape != b.x.shape or not torch.equal(a.y, b.y) or not torch.equal(a.x, b.x):
        raise OccamError("the two models were opened on different validation images",
                         "open both with the same task and the same n_view")


def _consumer(lm: LensModel, weight: str) -> str:
    idx = lm.module.consumers.get(weight, [])
    return lm.module.nodes[idx[0]].name if idx else ""


@torch.no_grad()
def weight_differences(a: LensModel, b: LensModel) -> dict[str, Any]:
    """Per paired weight tensor: names, shape, node, ``l2`` (‖b − a‖), ``relative`` (‖b − a‖ / ‖a‖),
    ``max_abs``, ``changed`` (elements that differ) and both nnz; plus ``unpaired`` names of each side."""
    wa, wb = a.module.weight_names, b.module.weight_names
    pairs = [(n, n) for n in wa if n in set(wb) and a.module.weight(n).shape == b.module.weight(n).shape]
    paired_a, paired_b = {p[0] for p in pairs}, {p[1] for p in pairs}
    rest_b = [n for n in wb if n not in paired_b]
    for n in wa:
        if n in paired_a:
            continue
        shape = a.module.weight(n).shape
        m = next((k for k in rest_b if b.module.weight(k).shape == shape), None)
        if m is not None:
            pairs.append((n, m))
            rest_b.remove(m)
            paired_a.add(n)
    order = {n: i for i, n in enumerate(wa)}
    pairs.sort(key=lambda p: order[p[0]])
    rows = []
    for na, nb in pairs:
        x, y = a.module.weight(na).detach(), b.module.weight(nb).detach()
        d = (y - x).double()
        norm = float(x.double().norm())
        l2 = float(d.norm())
        rows.append({"a": na, "b": nb, "shape": list(x.shape), "node": _consumer(a, na), "l2": l2,
                     "relative": l2 / norm if norm > 0 else (0.0 if l2 == 0 else math.inf),
                     "max_abs": float(d.abs().max()) if d.numel() else 0.0,
                     "changed": int((x.view(torch.int32) != y.contiguous().view(torch.int32)).sum()),
                     "nnz_a": bit_nnz(x), "nnz_b": bit_nnz(y), "size": int(x.numel())})
    return {"weights": rows, "unpaired_a": [n for n in wa if n not in paired_a], "unpaired_b": rest_b,
            "nnz_a": a.nnz(), "nnz_b": b.nnz()}


@torch.no_grad()
def prediction_differences(a: LensModel, b: LensModel, max_examples: int = 50) -> dict[str, Any]:
    """On the shared val images: ``agreement``, both metrics, per-class accuracy of each and the
    ``delta`` (b − a), ``disagreements`` [C, C] (a's class × b's class where they differ), the
    first ``max_examples`` disagreeing image indices and the mean ``kl`` (a ‖ b, nats)."""
    _check_same_data(a, b)
    za, zb = a.logits(), b.logits()
    pa, pb = za.argmax(1), zb.argmax(1)
    y = a.y
    c = a.task.num_classes
    acc_a = np.full(c, np.nan)
    acc_b = np.full(c, np.nan)
    counts = np.bincount(y.numpy(), minlength=c)
    for k in range(c):
        m = y == k
        if m.any():
            acc_a[k] = float((pa[m] == k).float().mean())
            acc_b[k] = float((pb[m] == k).float().mean())
    dis = np.zeros((c, c), dtype=np.int64)
    diff = (pa != pb).numpy()
    np.add.at(dis, (pa.numpy()[diff], pb.numpy()[diff]), 1)
    kl = float(F.kl_div(F.log_softmax(zb.double(), 1), F.log_softmax(za.double(), 1), log_target=True,
                        reduction="batchmean"))
    return {"n": int(len(y)), "agreement": float((pa == pb).float().mean()), "metrics_a": a.metrics(),
            "metrics_b": b.metrics(), "per_class_accuracy_a": acc_a, "per_class_accuracy_b": acc_b,
            "per_class_delta": acc_b - acc_a, "class_counts": counts, "class_names": list(a.task.class_names),
            "disagreements": dis, "disagreeing": np.flatnonzero(diff)[:max_examples].tolist(), "kl": kl}


def compare_models(a: LensModel, b: LensModel, max_examples: int = 50) -> dict[str, Any]:
    """:func:`weight_differences` and :func:`prediction_differences` together, with both names."""
    _check_same_data(a, b)
    return {"a": a.name, "b": b.name, "weights": weight_differences(a, b),
            "predictions": prediction_differences(a, b, max_examples)}


def _num(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)


def _array(v: Any) -> np.ndarray | None:
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    if isinstance(v, np.ndarray) and v.dtype.kind in "iuf":
        return v
    if isinstance(v, list) and v and all(_num(e) for e in v):
        return np.asarray(v, dtype=np.float64)
    if isinstance(v, list) and v and all(isinstance(e, list) for e in v):
        try:
            arr = np.asarray(v, dtype=np.float64)
        except (ValueError, TypeError):
            return None
        return arr if arr.dtype.kind == "f" else None
    return None


def diff_results(r1: Any, r2: Any, path: str = "") -> dict[str, Any]:
    """Diff two compute results (nested dicts, lists, arrays, numbers).

    Returns ``tree`` (the same nesting; numbers become ``{"a", "b", "delta"}``, same-shape
    arrays ``{"a", "b", "delta"}`` with an array delta, other leaves ``{"a", "b", "equal"}``),
    ``changed`` (the paths that differ) and ``max_abs`` (path → largest |delta|).
    """
    changed: list[str] = []
    max_abs: dict[str, float] = {}

    def go(x: Any, y: Any, p: str) -> Any:
        if isinstance(x, dict) and isinstance(y, dict):
            out = {}
            for k in list(x) + [k for k in y if k not in x]:
                q = f"{p}.{k}" if p else str(k)
                if k not in x or k not in y:
                    changed.append(q)
                    out[k] = {"a": x.get(k), "b": y.get(k), "equal": False, "missing": "a" if k not in x else "b"}
                else:
                    out[k] = go(x[k], y[k], q)
            return out
        if _num(x) and _num(y):
            d = float(y) - float(x)
            if d != 0 or (math.isnan(float(x)) != math.isnan(float(y))):
                changed.append(p)
                max_abs[p] = abs(d)
            return {"a": x, "b": y, "delta": d}
        ax, ay = _array(x), _array(y)
        if ax is not None and ay is not None and ax.shape == ay.shape:
            d = ay.astype(np.float64) - ax.astype(np.float64)
            m = float(np.nanmax(np.abs(d))) if d.size else 0.0
            if m != 0:
                changed.append(p)
                max_abs[p] = m
            return {"a": ax, "b": ay, "delta": d}
        if isinstance(x, list | tuple) and isinstance(y, list | tuple) and len(x) == len(y):
            return [go(u, v, f"{p}[{i}]") for i, (u, v) in enumerate(zip(x, y, strict=True))]
        eq = _equal(x, y)
        if not eq:
            changed.append(p)
        return {"a": x, "b": y, "equal": eq}

    tree = go(r1, r2, path)
    return {"tree": tree, "changed": changed, "max_abs": max_abs}


def _equal(x: Any, y: Any) -> bool:
    try:
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            return bool(np.array_equal(np.asarray(x), np.asarray(y)))
        return bool(x == y)
    except (ValueError, TypeError):
        return False
