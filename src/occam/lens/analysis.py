"""The computations behind the views (no web code): overview, units, readouts, attribution,
adversarial examples, pruning, steering and clustering. Each returns data (numbers, records,
numpy arrays for images and maps), never PNGs: the views' renderers draw them
(:mod:`occam.lens.builtin_views`). All of them read the model's one activation cache."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from occam.errors import OccamError
from occam.lens.model import LensModel, bit_nnz, fast_metrics

__all__ = ["overview", "unit_detail", "units_summary", "readouts", "attribution", "adversarial", "predict",
           "prune", "steer", "steering_vector", "clusters", "weights_list", "weight_view", "image_list"]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


# ---- overview ---------------------------------------------------------------------------------
@torch.no_grad()
def overview(lm: LensModel) -> dict[str, Any]:
    env = lm.env()
    mod = lm.module
    nodes = []
    for i, n in enumerate(mod.nodes):
        v = env.get(n.outputs[0])
        ws = [{"name": w, "shape": list(mod.weight(w).shape), "nnz": lm.weight_nnz(w)} for w in lm.node_weights(i)]
        nodes.append({"i": i, "op": n.op, "name": n.name, "output": n.outputs[0],
                      "inputs": [x for x in n.inputs if x and x in env and x not in mod.weight_names],
                      "shape": list(v.shape[1:]) if v is not None and v.dim() > 0 else [],
                      "weights": ws, "nnz": sum(w["nnz"] for w in ws)})
    logits = lm.logits()
    pred = _np(logits.argmax(1))
    y = _np(lm.y)
    c = lm.task.num_classes
    conf = np.zeros((c, c), dtype=int)
    np.add.at(conf, (y, pred), 1)
    return {"name": lm.name, "hash": lm.hash, "task": lm.task.name, "info": lm.info.to_dict(),
            "metrics": lm.metrics(), "nodes": nodes, "input": mod.input_name, "output": mod.output_name,
            "layers": [layer.to_dict() for layer in lm.layers], "classes": list(lm.task.class_names),
            "confusion": conf.tolist(), "n_val": int(len(lm.y)),
            "checkpoints": [c[0] for c in lm.checkpoints], "checkpoint": lm.checkpoint,
            "output_probs": lm.output_is_probs,
            "output_note": ("the model's output is already a softmax (probabilities): its loss is computed on their log"
                            if lm.output_is_probs else None),
            "display_names": {w: mod.display_name(w) for w in mod.weight_names} if hasattr(mod, "display_name") else {}}


def image_list(lm: LensModel, n: int = 24) -> list[dict[str, Any]]:
    """A few validation images to pick from (index, label, image array)."""
    return [{"index": i, "label": int(lm.y[i]), "image": _np(lm.x[i])} for i in range(min(n, len(lm.x)))]


# ---- units --------------------------------------------------------------------------------------
def _ablate(lm: LensModel, layer: str, unit: int, value: float | torch.Tensor = 0.0) -> dict[str, Any]:
    ax = lm.layer(layer).axis

    def fn(v: torch.Tensor) -> torch.Tensor:
        v = v.clone()
        v.select(ax, unit).fill_(value) if not isinstance(value, torch.Tensor) else v.select(ax, unit).copy_(value)
        return v

    new = lm.cache.run_with_hooks({layer: fn})
    return lm.metrics(new[lm.module.output_name])


def units_summary(lm: LensModel, layer: str) -> dict[str, Any]:
    acts = _np(lm.unit_acts(layer))
    return {"layer": layer, "units": [{"unit": u, "mean": float(acts[:, u].mean()), "std": float(acts[:, u].std()),
                                       "frac_active": float((acts[:, u] > 0).mean())} for u in range(acts.shape[1])]}


@torch.no_grad()
def unit_detail(lm: LensModel, layer: str, unit: int, k: int = 6) -> dict[str, Any]:
    info = lm.layer(layer)
    if not 0 <= unit < info.units:
        raise OccamError(f"layer {layer} has {info.units} units, not {unit + 1}", f"pick a unit 0..{info.units - 1}")
    v = lm.env()[layer].movedim(info.axis, 1)[:, unit]  # [N, *positions]
    flat = v.reshape(len(v), -1)
    score = flat.amax(dim=1) if flat.shape[1] > 1 else flat[:, 0]
    order = torch.argsort(score, descending=True)
    spatial = info.axis == 1 and v.dim() == len(lm.task.input_shape) and len(lm.task.input_shape) == 3

    def card(i: int) -> dict[str, Any]:
        heat = None
        if spatial:
            m = v[i][None, None]
            m = F.interpolate(m, size=tuple(lm.task.input_shape[1:]), mode="bilinear", align_corners=False)[0, 0]
            top = float(v.max()) or 1.0
            heat = _np((m / top).clamp(0, 1))
        return {"index": int(i), "label": int(lm.y[i]), "act": float(score[i]), "image": _np(lm.x[i]), "heat": heat}

    base = lm.metrics()
    zero = _ablate(lm, layer, unit, 0.0)
    mean = _ablate(lm, layer, unit, v.mean(dim=0))
    hist, edges = np.histogram(_np(flat.reshape(-1)), bins=30)
    per_class = [float(score[lm.y == c].mean()) if bool((lm.y == c).any()) else 0.0 for c in range(lm.task.num_classes)]
    return {"layer": layer, "unit": unit, "units": info.units, "model": lm.hash,
            "url": f"/units/{lm.hash}/{layer}/{unit}",
            "top": [card(int(i)) for i in order[:k]], "bottom": [card(int(i)) for i in order.flip(0)[:k]],
            "hist": {"counts": hist.tolist(), "edges": edges.tolist()}, "per_class": per_class,
            "base": base, "ablate_zero": zero, "ablate_mean": mean,
            "d_ce_zero": zero["ce"] - base["ce"], "d_acc_zero": zero["accuracy"] - base["accuracy"],
            "d_ce_mean": mean["ce"] - base["ce"], "d_acc_mean": mean["accuracy"] - base["accuracy"]}


# ---- readouts (a logit lens for any network) ---------------------------------------------------
def _features(v: torch.Tensor, axis: int, max_dim: int = 512) -> np.ndarray:
    v = v.movedim(axis, 1)
    if v.dim() == 4 and v.shape[2] * v.shape[3] * v.shape[1] > max_dim:
        side = max(1, int(math.sqrt(max_dim / v.shape[1])))
        v = F.adaptive_avg_pool2d(v, (min(side, v.shape[2]), min(side, v.shape[3])))
    elif v.dim() == 3 and v.shape[1] * v.shape[2] > max_dim:
        v = F.adaptive_avg_pool1d(v, max(1, min(v.shape[2], max_dim // v.shape[1])))
    f = v.reshape(len(v), -1)
    if f.shape[1] > max_dim:
        f = f[:, :max_dim]
    return _np(f).astype(np.float64)


@torch.no_grad()
def readouts(lm: LensModel, n_train: int = 1500, seed: int = 0) -> dict[str, Any]:
    """Per layer: a logistic-regression probe's val accuracy (trained on a train subsample) and,
    where the layer's width matches the final layer's input, the direct projection through it."""
    xt = lm.task.floats("train")
    yt = lm.task.labels("train")
    rng = np.random.default_rng(seed)
    sel = np.sort(rng.choice(len(xt), size=min(n_train, len(xt)), replace=False))
    env_t = lm.module.run(torch.from_numpy(xt[sel]))
    env_v = lm.env()
    spec = lm.head()
    width = lm.module.weight(spec[1]).shape[1 if spec[3] else 0] if spec else None
    rows = []
    yv = _np(lm.y)
    for layer in lm.layers:
        ft, fv = _features(env_t[layer.name], layer.axis), _features(env_v[layer.name], layer.axis)
        acc = _probe(ft, yt[sel], fv, yv, lm.task.num_classes)
        row: dict[str, Any] = {"layer": layer.name, "op": layer.op, "units": layer.units, "probe_acc": acc,
                               "direct_acc": None}
        if width is not None and layer.units == width and layer.name != lm.module.output_name:
            h = lm.unit_acts(layer.name)
            z = lm.apply_head(h)
            row["direct_acc"] = float((z.argmax(1) == lm.y).double().mean())
            row["direct_ce"] = fast_metrics(z, lm.y, 1, lm.lam)["ce"]
        if layer.name == lm.module.output_name:
            row["direct_acc"] = float((env_v[layer.name].argmax(1) == lm.y).double().mean())
        rows.append(row)
    return {"layers": rows, "head_input": spec[0] if spec else None}


def _probe(ft: np.ndarray, yt: np.ndarray, fv: np.ndarray, yv: np.ndarray, c: int) -> float:
    """Val accuracy of an L2-regularized softmax regression (torch, full-batch L-BFGS)."""
    mu, sd = ft.mean(0), ft.std(0) + 1e-6
    a = torch.from_numpy(((ft - mu) / sd).astype(np.float32))
    b = torch.from_numpy(((fv - mu) / sd).astype(np.float32))
    y = torch.from_numpy(yt.astype(np.int64))
    lin = torch.nn.Linear(a.shape[1], c)
    torch.nn.init.zeros_(lin.weight)
    opt = torch.optim.LBFGS(lin.parameters(), lr=1.0, max_iter=60, history_size=10, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(lin(a), y) + 1e-3 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        return float((lin(b).argmax(1).numpy() == yv).mean())


def direct_projection(lm: LensModel, layer: str) -> torch.Tensor:
    """Logits from projecting ``layer``'s unit activations through the final linear layer."""
    with torch.no_grad():
        return lm.apply_head(lm.unit_acts(layer))


# ---- attribution --------------------------------------------------------------------------------
def _input(lm: LensModel, index: int) -> torch.Tensor:
    if not 0 <= index < len(lm.x):
        raise OccamError(f"no validation image {index}", f"pick 0..{len(lm.x) - 1}")
    return lm.x[index:index + 1].clone()


def _probs(lm: LensModel, x: torch.Tensor) -> list[float]:
    with torch.no_grad():
        return _np(torch.softmax(lm.module(x), dim=1)[0]).round(5).tolist()


def attribution(lm: LensModel, index: int, target: int | None = None) -> dict[str, Any]:
    from captum.attr import IntegratedGradients, Occlusion, Saliency

    x = _input(lm, index)
    probs = _probs(lm, x)
    target = int(np.argmax(probs)) if target is None else int(target)
    mod = lm.module
    x.requires_grad_(True)
    sal = Saliency(mod).attribute(x, target=target, abs=True)
    ig = IntegratedGradients(mod).attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=32)
    shape = tuple(lm.task.input_shape)
    win = tuple([1] + [max(1, s // 7) for s in shape[1:]]) if len(shape) == 3 else (max(1, shape[0] // 8),)
    occ = Occlusion(mod).attribute(x, target=target, sliding_window_shapes=win, strides=win, baselines=0.0)
    return {"index": index, "label": int(lm.y[index]), "target": target, "probs": probs,
            "image": _np(x[0]).copy(), "saliency": _np(sal[0]), "integrated_gradients": _np(ig[0].detach()),
            "occlusion": _np(occ[0]), "ig_sum": float(ig.detach().sum())}


# ---- adversarial examples ----------------------------------------------------------------------
def adversarial(lm: LensModel, index: int, eps: float = 0.1, method: str = "fgsm", steps: int = 10,
                target: int | None = None) -> dict[str, Any]:
    x0 = _input(lm, index)
    y = torch.tensor([int(lm.y[index]) if target is None else int(target)])
    sign = 1.0 if target is None else -1.0  # untargeted: increase loss; targeted: decrease it
    x = x0.clone()
    n = 1 if method == "fgsm" else max(1, steps)
    alpha = eps if method == "fgsm" else 2.5 * eps / n
    for _ in range(n):
        x.requires_grad_(True)
        loss = F.cross_entropy(lm.module(x), y)
        (g,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            x = x + sign * alpha * g.sign()
            x = (x0 + (x - x0).clamp(-eps, eps)).clamp(0, 1)
    x = x.detach()
    p0, p1 = _probs(lm, x0), _probs(lm, x)
    return {"index": index, "eps": eps, "method": method, "label": int(lm.y[index]),
            "pred_before": int(np.argmax(p0)), "pred_after": int(np.argmax(p1)), "probs_before": p0, "probs_after": p1,
            "image": _np(x0[0]), "adv": _np(x[0]), "perturbation": _np((x - x0)[0]),
            "linf": float((x - x0).abs().max()), "pixels": _np(x[0]).reshape(-1).round(4)}


def predict(lm: LensModel, pixels: list[float]) -> dict[str, Any]:
    shape = tuple(lm.task.input_shape)
    arr = np.asarray(pixels, dtype=np.float32)
    if arr.size != math.prod(shape):
        raise OccamError(f"expected {math.prod(shape)} pixels, got {arr.size}", "send the whole image")
    x = torch.from_numpy(np.clip(arr, 0, 1).reshape(1, *shape))
    p = _probs(lm, x)
    return {"probs": p, "pred": int(np.argmax(p))}


# ---- pruning ------------------------------------------------------------------------------------
def prunable(lm: LensModel) -> list[str]:
    """Weights worth pruning: float tensors with more than one element used by Conv/Gemm/MatMul."""
    out = []
    for i, n in enumerate(lm.module.nodes):
        if n.op in ("Conv", "Gemm", "MatMul", "ConvTranspose", "Einsum"):
            for w in lm.node_weights(i):
                if lm.module.weight(w).numel() > 1 and w not in out:
                    out.append(w)
    return out


@torch.no_grad()
def prune(lm: LensModel, threshold: float, scope: str = "global", layer: str | None = None,
          apply: bool = False) -> dict[str, Any]:
    """Zero every weight with ``|w| < threshold`` (all prunable weights, or one) and score it.

    The model is left unchanged unless ``apply``.
    """
    names = prunable(lm) if scope == "global" else [layer or prunable(lm)[0]]
    saved = {n: lm.module.weight(n).detach().clone() for n in names}
    removed = 0
    for n in names:
        w = lm.module.weight(n)
        mask = w.abs() < threshold
        removed += int(((w.view(torch.int32) != 0) & mask).sum())
        w.masked_fill_(mask, 0.0)
    m = lm.metrics(lm.module.run(lm.x, keep=set())[lm.module.output_name])
    per = [{"name": n, "nnz": bit_nnz(lm.module.weight(n)), "size": lm.module.weight(n).numel()} for n in names]
    if apply:
        lm.invalidate()  # the cached values (and the editor's) start over from the pruned weights
        if lm._editor is not None:
            lm._editor.sync()
    else:  # a preview: the weights, and so the activation cache, are as they were
        for n, w in saved.items():
            lm.module.weight(n).copy_(w)
    return {"threshold": threshold, "scope": scope, "layer": layer, "removed": removed, "metrics": m,
            "weights": per, "applied": apply}


# ---- steering -----------------------------------------------------------------------------------
@torch.no_grad()
def steering_vector(lm: LensModel, layer: str, kind: str = "classes", a: int = 0, b: int = 1,
                    unit: int = 0) -> torch.Tensor:
    """A per-example-shaped direction at ``layer``: mean(class a) − mean(class b), or a unit's direction."""
    v = lm.env()[layer]
    if kind == "classes":
        ma, mb = v[lm.y == a], v[lm.y == b]
        if len(ma) == 0 or len(mb) == 0:
            raise OccamError("a class has no validation images", "pick other classes")
        return ma.mean(0) - mb.mean(0)
    info = lm.layer(layer)
    d = torch.zeros(v.shape[1:])
    d.select(info.axis - 1, unit).fill_(float(v.movedim(info.axis, 1)[:, unit].std()) or 1.0)
    return d


@torch.no_grad()
def steer(lm: LensModel, layer: str, strength: float, kind: str = "classes", a: int = 0, b: int = 1,
          unit: int = 0) -> dict[str, Any]:
    vec = steering_vector(lm, layer, kind, a, b, unit)
    env = lm.env()
    z = lm.cache.run_with_hooks({layer: lambda v: v + strength * vec})[lm.module.output_name]
    c = lm.task.num_classes
    before = np.bincount(_np(env[lm.module.output_name].argmax(1)), minlength=c).tolist()
    after = np.bincount(_np(z.argmax(1)), minlength=c).tolist()
    return {"layer": layer, "strength": strength, "kind": kind, "a": a, "b": b, "unit": unit,
            "metrics": lm.metrics(z), "base": lm.metrics(), "pred_counts_before": before, "pred_counts_after": after,
            "mean_prob": _np(torch.softmax(z, 1).mean(0)).round(4).tolist()}


# ---- clustering ---------------------------------------------------------------------------------
@torch.no_grad()
def clusters(lm: LensModel, layer: str, k: int = 4, seed: int = 0) -> dict[str, Any]:
    from sklearn.cluster import KMeans

    acts = _np(lm.unit_acts(layer)).astype(np.float64)  # [N, U]
    u = acts.shape[1]
    k = max(1, min(k, u))
    prof = acts.T
    prof = (prof - prof.mean(1, keepdims=True)) / (prof.std(1, keepdims=True) + 1e-8)
    labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(prof)
    y = _np(lm.y)
    c = lm.task.num_classes
    cls_mean = np.stack([prof[:, y == j].mean(1) if (y == j).any() else np.zeros(u) for j in range(c)], 1)  # [U, C]
    out = []
    for j in range(k):
        members = np.flatnonzero(labels == j)
        resp = cls_mean[members].mean(0)
        top = np.argsort(-resp)[:2]
        out.append({"cluster": j, "units": members.tolist(), "top_classes": [int(t) for t in top],
                    "tags": [lm.task.class_names[t] for t in top], "class_response": resp.round(3).tolist()})
    return {"layer": layer, "k": k, "clusters": out, "assignment": labels.tolist()}


# ---- weights (editor) ---------------------------------------------------------------------------
def weights_list(lm: LensModel) -> list[dict[str, Any]]:
    out = []
    for n in lm.module.weight_names:
        w = lm.module.weight(n)
        if w.numel() <= 1:
            continue
        kind = "conv" if w.dim() >= 3 else "dense" if w.dim() == 2 else "vector"
        out.append({"name": n, "shape": list(w.shape), "kind": kind, "nnz": bit_nnz(w), "size": w.numel(),
                    "rows": int(w.shape[0]) if w.dim() >= 2 else 1})
    return out


def weight_view(lm: LensModel, name: str, row: int = 0) -> dict[str, Any]:
    """One filter (conv: ``[C, k, k]`` as grids) or one row (dense) of a weight, with flat indices."""
    w = lm.module.weight(name).detach()
    if w.dim() <= 1:
        vals, base, shape = w.reshape(-1), 0, [1, w.numel()]
    else:
        row = max(0, min(row, w.shape[0] - 1))
        per = w[0].numel()
        vals, base = w[row].reshape(-1), row * per
        shape = list(w.shape[1:]) if w.dim() >= 3 else [1, per]
        if w.dim() == 4:
            shape = [w.shape[1], w.shape[2], w.shape[3]]
        elif w.dim() == 3:
            shape = [w.shape[1], 1, w.shape[2]]
    amax = float(w.abs().max()) or 1.0
    return {"name": name, "row": row, "rows": int(w.shape[0]) if w.dim() >= 2 else 1, "shape": shape,
            "base": base, "values": _np(vals).tolist(), "absmax": amax}
