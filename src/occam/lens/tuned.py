"""A logit lens for any network: per-layer affine translators, trained tuned-lens style.

For every layer ℓ, a translator ``T_ℓ(h) = W_ℓ·f(h) + b_ℓ`` maps the layer's activation to class
logits. ``f`` flattens the activation, or averages it over positions (one number per unit) when the
flat vector would have more than ``max_features`` numbers. Translators are trained on (a sample of)
the task's *train* split to match the model's own final distribution: the loss is
``KL(softmax(z_final) ‖ softmax(T_ℓ(h_ℓ)))`` (Belrose et al. 2023, "Eliciting latent predictions
from transformers with the tuned lens"), so a translator reads out what the model will conclude,
not the labels.

Initialization makes the ends exact: the output layer's translator is the identity, and the
final linear layer's input (when the model ends in one) starts as that layer itself, so its
translator is the model's own head. Both are exact (KL 0, the minimum) and are not trained; the
other translators start at zero (the uniform distribution) and are.

:func:`layer_distributions` gives each layer's class distribution for one image;
:func:`translator_quality` each layer's agreement with the model's prediction, accuracy and KL on
the Lens's val images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from occam.errors import OccamError
from occam.lens.custom_data import as_inputs, sample_floats
from occam.lens.model import LensModel

__all__ = ["Translators", "fit_translators", "layer_distributions", "translator_quality"]


@dataclass
class Translators:
    """Fitted translators: ``maps[layer]`` (an ``nn.Linear``), ``pooled[layer]`` (features averaged over
    positions?), ``init[layer]`` ("identity", "head" or "zero") and the training settings."""

    layers: list[str]
    maps: dict[str, nn.Linear]
    pooled: dict[str, bool]
    init: dict[str, str]
    settings: dict[str, Any] = field(default_factory=dict)
    final_loss: dict[str, float] = field(default_factory=dict)

    def features(self, lm: LensModel, layer: str, value: torch.Tensor) -> torch.Tensor:
        return _features(lm, layer, value, self.pooled[layer])

    @torch.no_grad()
    def logits(self, lm: LensModel, layer: str, value: torch.Tensor) -> torch.Tensor:
        if layer not in self.maps:
            raise OccamError(f"no translator for layer {layer!r}", "fit translators for it: fit_translators(lm, layers=[...])")
        return self.maps[layer](self.features(lm, layer, value))


def _features(lm: LensModel, layer: str, v: torch.Tensor, pooled: bool) -> torch.Tensor:
    if pooled:
        info = lm.layer(layer)
        v = v.movedim(info.axis, 1)
        return v.reshape(v.shape[0], v.shape[1], -1).mean(dim=2)
    return v.reshape(v.shape[0], -1)


@torch.no_grad()
def _values(lm: LensModel, x: torch.Tensor, layers: list[str], batch: int = 512) -> dict[str, torch.Tensor]:
    keep = set(layers)
    parts: dict[str, list[torch.Tensor]] = {n: [] for n in [*layers, lm.module.output_name]}
    for s in range(0, len(x), batch):
        env = lm.module.run(x[s:s + batch], keep=keep)
        for n in parts:
            parts[n].append(env[n])
    return {n: torch.cat(p) for n, p in parts.items()}


def fit_translators(lm: LensModel, layers: list[str] | None = None, *, steps: int = 300, lr: float = 5e-3,
                    n_train: int = 2000, batch: int = 256, max_features: int = 8192, seed: int = 0,
                    progress: Callable[[int, int], None] | None = None) -> Translators:
    """Train one translator per layer (default: every Lens layer) on ``n_train`` train images."""
    if not 1 <= steps <= 100_000:
        raise OccamError(f"steps must be in 1..100000, got {steps}", "a few hundred is enough for small models")
    if not 1 <= n_train:
        raise OccamError(f"n_train must be at least 1, got {n_train}", "2000 is the default")
    if not lr > 0:
        raise OccamError(f"lr must be positive, got {lr}", "5e-3 is the default")
    out_name = lm.module.output_name
    layers = [x.name for x in lm.layers] if layers is None else list(layers)
    for n in layers:
        lm.layer(n)
    xt = sample_floats(lm.task, "train", n_train, seed)
    vals = _values(lm, torch.from_numpy(xt), layers)
    target = F.log_softmax(vals[out_name], dim=1)
    head = lm.head()
    head_in = head[0] if head is not None else None
    torch.manual_seed(seed)
    maps: dict[str, nn.Linear] = {}
    pooled: dict[str, bool] = {}
    init: dict[str, str] = {}
    feats: dict[str, torch.Tensor] = {}
    c = lm.task.num_classes
    for n in layers:
        flat = int(np.prod(lm.layer(n).shape))
        pooled[n] = flat > max_features
        f = _features(lm, n, vals[n], pooled[n])
        feats[n] = f
        lin = nn.Linear(f.shape[1], c)
        with torch.no_grad():
            lin.weight.zero_()
            lin.bias.zero_()
            if n == out_name and f.shape[1] == c:
                lin.weight.copy_(torch.eye(c))
                init[n] = "identity"
            elif n == head_in and not pooled[n]:
                zero = lm.apply_head(torch.zeros(1, f.shape[1]))
                lin.weight.copy_((lm.apply_head(torch.eye(f.shape[1])) - zero).t())
                lin.bias.copy_(zero[0])
                init[n] = "head"
            else:
                init[n] = "zero"
        maps[n] = lin
    # exact translators (identity, the head itself) already reach KL 0, the minimum; Adam would turn
    # their rounding-level gradients into lr-sized steps, so they are not trained
    trained = [n for n in layers if init[n] == "zero"]
    trainable = [p for n in trained for p in maps[n].parameters()]
    g = torch.Generator().manual_seed(seed)
    if trainable:
        opt = torch.optim.Adam(trainable, lr=lr)
        for step in range(steps):
            idx = torch.randint(0, len(target), (min(batch, len(target)),), generator=g)
            loss = torch.zeros(())
            for n in trained:
                logq = F.log_softmax(maps[n](feats[n][idx]), dim=1)
                loss = loss + F.kl_div(logq, target[idx], log_target=True, reduction="batchmean")
            opt.zero_grad()
            loss.backward()
            opt.step()
            if progress is not None and (step % 10 == 0 or step == steps - 1):
                progress(step + 1, steps)
    final: dict[str, float] = {}
    with torch.no_grad():
        for n in layers:
            logq = F.log_softmax(maps[n](feats[n]), dim=1)
            final[n] = float(F.kl_div(logq, target, log_target=True, reduction="batchmean"))
            maps[n].requires_grad_(False)
    return Translators(layers, maps, pooled, init, {"steps": steps, "lr": lr, "n_train": int(len(xt)), "seed": seed,
                                                    "max_features": max_features}, final)


@torch.no_grad()
def layer_distributions(lm: LensModel, tr: Translators, image: Any) -> dict[str, Any]:
    """Per layer, the translator's class distribution for one image (a val index or an array).

    Returns ``layers`` (records: ``layer``, ``probs`` [C], ``top`` class, ``top_name``, ``pooled``),
    the model's own ``probs`` and, for a val index, its ``label``.
    """
    x = as_inputs(lm, image, "image")
    if len(x) != 1:
        raise OccamError(f"pass one image, got {len(x)}", "pass one val index or one array")
    vals = _values(lm, x, tr.layers)
    rows = []
    for n in tr.layers:
        p = torch.softmax(tr.logits(lm, n, vals[n]), dim=1)[0].double().numpy()
        rows.append({"layer": n, "probs": p, "top": int(p.argmax()), "top_name": lm.task.class_names[int(p.argmax())],
                     "pooled": tr.pooled[n], "init": tr.init[n]})
    model_p = torch.softmax(vals[lm.module.output_name], dim=1)[0].double().numpy()
    out = {"layers": rows, "probs": model_p, "class_names": list(lm.task.class_names)}
    if isinstance(image, int | np.integer):
        out["label"] = int(lm.y[int(image)])
    return out


@torch.no_grad()
def translator_quality(lm: LensModel, tr: Translators) -> dict[str, Any]:
    """Per layer on the Lens's val images: ``agreement`` (top-1 equal to the model's), ``accuracy``
    (against the labels) and ``kl`` (mean KL from the model's distribution, nats)."""
    vals = _values(lm, lm.x, tr.layers)
    z = vals[lm.module.output_name]
    pred = z.argmax(1)
    logp = F.log_softmax(z, dim=1)
    rows = []
    for n in tr.layers:
        q = tr.logits(lm, n, vals[n])
        rows.append({"layer": n, "agreement": float((q.argmax(1) == pred).float().mean()),
                     "accuracy": float((q.argmax(1) == lm.y).float().mean()),
                     "kl": float(F.kl_div(F.log_softmax(q, dim=1), logp, log_target=True, reduction="batchmean")),
                     "pooled": tr.pooled[n], "init": tr.init[n]})
    return {"layers": rows, "model_accuracy": float((pred == lm.y).float().mean()), "n": int(len(lm.y))}
