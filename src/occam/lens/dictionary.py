"""Dictionary learning: a sparse autoencoder on one layer, swept to a target L0, with feature dashboards.

Samples are unit vectors: one per image for flat layers, one per (image, position) for
channel-first maps (vectors of channels) and token sequences (vectors of features).

The SAE (:class:`SparseAutoencoder`) is untied: ``z = relu((x − b_dec) W_enc + b_enc)``,
``x̂ = z W_dec + b_dec``, the rows of ``W_dec`` kept at unit norm (so the L1 penalty cannot be
dodged by shrinking codes and growing the decoder). Loss: ``‖x − x̂‖² + l1·‖z‖₁`` (Bricken et al.
2023, "Towards monosemanticity"). Features that fire on no sample for ``resample_every`` steps are
*resampled*: their decoder row is set to an input the SAE reconstructs badly (drawn with
probability ∝ loss²), their encoder column to that direction scaled to the alive features' norm
× 0.2, their bias to 0, and their Adam moments reset. :func:`sweep_l1` searches the penalty
geometrically until the mean L0 (active features per sample) is near a target.

:func:`loss_recovered`: with CE the model's validation loss, ``(CE_mean − CE_sae) / (CE_mean −
CE_clean)`` where ``CE_sae`` replaces the layer by the SAE's reconstruction and ``CE_mean`` by the
layer's mean vector (mean ablation): 1 for an exact dictionary, 0 for one no better than the mean.
:func:`feature_dashboard`: a feature's top images (with its activation at each spatial position on
channel-first layers), activation histogram, and effect on the logits (removing the feature's
contribution ``z_f·d_f`` from the layer on the images where it fires most).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from occam.errors import OccamError
from occam.lens.custom_data import sample_floats
from occam.lens.model import LensModel, fast_metrics

__all__ = ["SparseAutoencoder", "layer_vectors", "train_sae", "sweep_l1", "loss_recovered", "feature_dashboard",
           "sae_summary"]


class SparseAutoencoder(nn.Module):
    """Untied ReLU SAE with unit-norm decoder rows (see the module docstring)."""

    def __init__(self, d: int, m: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(m, d, generator=g)
        w = w / w.norm(dim=1, keepdim=True).clamp(min=1e-8)
        self.W_dec = nn.Parameter(w)
        self.W_enc = nn.Parameter(w.t().clone())
        self.b_enc = nn.Parameter(torch.zeros(m))
        self.b_dec = nn.Parameter(torch.zeros(d))

    @property
    def size(self) -> int:
        return self.W_dec.shape[0]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu((x - self.b_dec) @ self.W_enc + self.b_enc)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp(min=1e-8))

    @classmethod
    def identity(cls, d: int) -> SparseAutoencoder:
        """An exact dictionary: ``z = [relu(x), relu(−x)]``, ``x̂ = z₊ − z₋ = x`` (2d features)."""
        s = cls(d, 2 * d)
        eye = torch.eye(d)
        with torch.no_grad():
            s.W_enc.copy_(torch.cat([eye, -eye], dim=1))
            s.W_dec.copy_(torch.cat([eye, -eye], dim=0))
            s.b_enc.zero_()
            s.b_dec.zero_()
        return s

    @classmethod
    def constant(cls, mean: torch.Tensor, m: int = 1) -> SparseAutoencoder:
        """A dictionary that never fires and reconstructs ``mean`` (the mean ablation, as an SAE)."""
        s = cls(mean.shape[0], m)
        with torch.no_grad():
            s.W_enc.zero_()
            s.b_enc.fill_(-1.0)
            s.b_dec.copy_(mean)
        return s


def _to_vectors(v: torch.Tensor, axis: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    v = v.movedim(axis, -1)
    return v.reshape(-1, v.shape[-1]), tuple(v.shape)


def _from_vectors(s: torch.Tensor, shape: tuple[int, ...], axis: int) -> torch.Tensor:
    return s.reshape(shape).movedim(-1, axis)


@torch.no_grad()
def layer_vectors(lm: LensModel, layer: str, split: str = "train", n: int = 2000, seed: int = 0) -> torch.Tensor:
    """``[samples, units]`` vectors of ``layer`` on ``n`` images of ``split`` ("val": the Lens's val images)."""
    info = lm.layer(layer)
    if split == "val":
        v = lm.env()[layer]
    else:
        v = lm.module.run(torch.from_numpy(sample_floats(lm.task, split, n, seed)), stop_at=layer)[layer]
    return _to_vectors(v, info.axis)[0]


def _check(size: int, l1: float, steps: int) -> None:
    if not 1 <= size <= 65536:
        raise OccamError(f"dictionary size must be in 1..65536, got {size}", "4-8× the layer's width is typical")
    if not l1 >= 0:
        raise OccamError(f"the sparsity penalty must be non-negative, got {l1}", "try 1e-3")
    if not 1 <= steps <= 1_000_000:
        raise OccamError(f"steps must be in 1..1000000, got {steps}", "a few hundred is enough on small layers")


def train_sae(lm: LensModel, layer: str, size: int = 64, l1: float = 1e-3, steps: int = 500, lr: float = 3e-3,
              batch: int = 512, resample_every: int = 100, seed: int = 0, data: torch.Tensor | None = None,
              progress: Callable[[int, int, float], None] | None = None) -> tuple[SparseAutoencoder, dict[str, Any]]:
    """Train an SAE on ``layer``'s train-split vectors (or ``data``); returns it and training stats
    (``l0``, ``fvu`` on the training vectors, ``dead``, ``resampled`` per resampling round)."""
    _check(size, l1, steps)
    data = layer_vectors(lm, layer, seed=seed) if data is None else data
    torch.manual_seed(seed)
    sae = SparseAutoencoder(data.shape[1], size, seed=seed)
    with torch.no_grad():
        sae.b_dec.copy_(data.median(dim=0).values)  # the geometric-median-style start of the decoder bias
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    fired = torch.zeros(size, dtype=torch.long)
    resampled: list[int] = []
    bs = min(batch, len(data))
    for step in range(steps):
        xb = data[torch.randint(0, len(data), (bs,), generator=g)]
        z = sae.encode(xb)
        loss = (sae.decode(z) - xb).pow(2).sum(1).mean() + l1 * z.abs().sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sae.normalize_decoder()
        fired += (z.detach() > 0).sum(0)
        if resample_every and (step + 1) % resample_every == 0 and step + 1 < steps:
            dead = torch.nonzero(fired == 0).flatten()
            if len(dead):
                _resample(sae, opt, data, dead, g)
            resampled.append(int(len(dead)))
            fired.zero_()
        if progress is not None and (step % 10 == 0 or step == steps - 1):
            progress(step + 1, steps, float(loss.detach()))
    sae.eval().requires_grad_(False)
    stats = _stats(sae, data)
    stats.update({"l1": l1, "steps": steps, "size": size, "resampled": resampled})
    return sae, stats


@torch.no_grad()
def _resample(sae: SparseAutoencoder, opt: torch.optim.Optimizer, data: torch.Tensor, dead: torch.Tensor,
              g: torch.Generator) -> None:
    sample = data[torch.randint(0, len(data), (min(4096, len(data)),), generator=g)]
    err = (sae(sample) - sample).pow(2).sum(1)
    if float(err.sum()) <= 0:
        return
    pick = torch.multinomial(err.pow(2) / err.pow(2).sum(), len(dead), replacement=True, generator=g)
    dirs = sample[pick] - sae.b_dec
    dirs = dirs / dirs.norm(dim=1, keepdim=True).clamp(min=1e-8)
    alive = torch.ones(sae.size, dtype=torch.bool)
    alive[dead] = False
    enc_norm = float(sae.W_enc[:, alive].norm(dim=0).mean()) if alive.any() else 1.0
    sae.W_dec[dead] = dirs
    sae.W_enc[:, dead] = dirs.t() * enc_norm * 0.2
    sae.b_enc[dead] = 0.0
    for p, idx in ((sae.W_dec, (dead,)), (sae.W_enc, (slice(None), dead)), (sae.b_enc, (dead,))):
        state = opt.state.get(p)
        if state:
            state["exp_avg"][idx] = 0.0
            state["exp_avg_sq"][idx] = 0.0


@torch.no_grad()
def _stats(sae: SparseAutoencoder, data: torch.Tensor) -> dict[str, Any]:
    z = sae.encode(data)
    rec = sae.decode(z)
    var = float((data - data.mean(0)).pow(2).sum(1).mean()) or 1.0
    return {"l0": float((z > 0).float().sum(1).mean()), "fvu": float((rec - data).pow(2).sum(1).mean()) / var,
            "dead": int(((z > 0).sum(0) == 0).sum())}


def sweep_l1(lm: LensModel, layer: str, target_l0: float, size: int = 64, steps: int = 400, lo: float = 1e-5,
             hi: float = 10.0, rounds: int = 7, tolerance: float = 0.15, seed: int = 0,
             progress: Callable[[int, int], None] | None = None) -> tuple[SparseAutoencoder, dict[str, Any]]:
    """Bisect the L1 penalty (geometrically, in [lo, hi]) until the SAE's mean L0 is within
    ``tolerance`` (relative) of ``target_l0``; returns the closest SAE and the ``history`` of tries."""
    if not 0 < target_l0 <= size:
        raise OccamError(f"target L0 must be in (0, {size}] for a dictionary of {size} features, got {target_l0}",
                         "pick a small number of active features, e.g. 4")
    if not 0 < lo < hi:
        raise OccamError(f"the penalty range must satisfy 0 < lo < hi, got lo={lo}, hi={hi}", "e.g. lo=1e-5, hi=10")
    data = layer_vectors(lm, layer, seed=seed)
    best: tuple[float, SparseAutoencoder, dict[str, Any]] | None = None
    history = []
    a, b = np.log(lo), np.log(hi)
    for r in range(rounds):
        l1 = float(np.exp((a + b) / 2))
        sae, st = train_sae(lm, layer, size, l1, steps, seed=seed, data=data)
        history.append({"l1": l1, "l0": st["l0"], "fvu": st["fvu"], "dead": st["dead"]})
        gap = abs(st["l0"] - target_l0) / target_l0
        if best is None or gap < best[0]:
            best = (gap, sae, st)
        if progress is not None:
            progress(r + 1, rounds)
        if gap <= tolerance:
            break
        if st["l0"] > target_l0:
            a = np.log(l1)  # too dense: more penalty
        else:
            b = np.log(l1)
    assert best is not None
    stats = dict(best[2])
    stats.update({"target_l0": target_l0, "history": history, "reached": best[0] <= tolerance})
    return best[1], stats


@torch.no_grad()
def _ce_with(lm: LensModel, layer: str, fn: Callable[[torch.Tensor], torch.Tensor]) -> float:
    info = lm.layer(layer)
    env = lm.env()
    vec, shape = _to_vectors(env[layer], info.axis)
    patched = dict(env)
    patched[layer] = _from_vectors(fn(vec), shape, info.axis)
    z = lm.module.rerun(patched, {layer})[lm.module.output_name]
    return fast_metrics(z, lm.y, 0, lm.lam)["ce"]


def _check_width(lm: LensModel, layer: str, sae: SparseAutoencoder) -> None:
    if sae.W_dec.shape[1] != lm.layer(layer).units:
        raise OccamError(f"the dictionary reconstructs {sae.W_dec.shape[1]}-vectors, layer {layer!r} has "
                         f"{lm.layer(layer).units} units", "train the dictionary on this layer")


@torch.no_grad()
def loss_recovered(lm: LensModel, layer: str, sae: SparseAutoencoder) -> dict[str, float]:
    """``ce_clean``, ``ce_sae``, ``ce_mean_ablation`` and their ``fraction`` (see the module docstring)."""
    _check_width(lm, layer, sae)
    mean = layer_vectors(lm, layer, "val").mean(0)
    ce_clean = lm.metrics()["ce"]
    ce_sae = _ce_with(lm, layer, sae)
    ce_mean = _ce_with(lm, layer, lambda v: mean.expand_as(v))
    denom = ce_mean - ce_clean
    frac = (ce_mean - ce_sae) / denom if abs(denom) > 1e-12 else float("nan")
    return {"ce_clean": ce_clean, "ce_sae": ce_sae, "ce_mean_ablation": ce_mean, "fraction": frac}


@torch.no_grad()
def feature_dashboard(lm: LensModel, layer: str, sae: SparseAutoencoder, feature: int, top: int = 8,
                      bins: int = 20) -> dict[str, Any]:
    """One feature on the Lens's val images: ``top`` images (index, label, max activation and, on
    channel-first or sequence layers, ``heatmap``: the activation at each position), the
    ``histogram`` of its non-zero activations, ``freq`` (fraction of images where it fires),
    ``logit_effect`` [C] (mean logit change on the top images when its contribution is removed)
    and ``direct_logits`` [C] (its decoder direction through the final linear layer, when the
    layer feeds it)."""
    _check_width(lm, layer, sae)
    if not 0 <= feature < sae.size:
        raise OccamError(f"feature {feature} is out of range: the dictionary has {sae.size}",
                         f"pass 0..{sae.size - 1}")
    if not 1 <= top <= len(lm.x):
        raise OccamError(f"top must be in 1..{len(lm.x)}, got {top}", "8 is the default")
    info = lm.layer(layer)
    v = lm.env()[layer]
    vec, shape = _to_vectors(v, info.axis)
    z = sae.encode(vec)[:, feature].reshape(shape[:-1])  # [N, *positions]
    per_img = z.reshape(len(v), -1).amax(dim=1)
    order = torch.argsort(per_img, descending=True)[:top]
    positional = len(shape) > 2
    rows = []
    for i in order.tolist():
        row: dict[str, Any] = {"index": int(i), "label": int(lm.y[i]), "label_name": lm.task.class_names[int(lm.y[i])],
                               "act": float(per_img[i])}
        if positional:
            row["heatmap"] = z[i].numpy()
        rows.append(row)
    nz = z.reshape(-1)
    nz = nz[nz > 0].numpy()
    counts, edges = np.histogram(nz, bins=bins) if len(nz) else (np.zeros(bins, dtype=np.int64),
                                                                np.linspace(0, 1, bins + 1))
    d = sae.W_dec[feature]
    xs = lm.x[order]

    def remove(val: torch.Tensor) -> torch.Tensor:
        vv, sh = _to_vectors(val, info.axis)
        return _from_vectors(vv - sae.encode(vv)[:, feature:feature + 1] * d, sh, info.axis)

    effect = (lm.logits(xs, overrides={layer: remove}) - lm.logits(xs)).mean(0).numpy()
    direct = None
    head = lm.head()
    if head is not None and head[0] == layer:
        direct = (lm.apply_head(d[None]) - lm.apply_head(torch.zeros(1, d.shape[0])))[0].numpy()
    return {"layer": layer, "feature": feature, "top": rows, "freq": float((per_img > 0).float().mean()),
            "histogram": {"counts": counts, "edges": edges}, "logit_effect": effect, "direct_logits": direct,
            "class_names": list(lm.task.class_names)}


@torch.no_grad()
def sae_summary(lm: LensModel, layer: str, sae: SparseAutoencoder) -> dict[str, Any]:
    """On the val images: ``l0``, ``fvu``, ``dead`` features, loss recovered and features by frequency."""
    _check_width(lm, layer, sae)
    data = layer_vectors(lm, layer, "val")
    z = sae.encode(data)
    freq = (z > 0).float().mean(0)
    out = _stats(sae, data)
    out.update({"size": sae.size, "loss_recovered": loss_recovered(lm, layer, sae),
                "features_by_frequency": torch.argsort(freq, descending=True).tolist(), "freq": freq.numpy()})
    return out
