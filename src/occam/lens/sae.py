"""Dictionary learning: a sparse autoencoder on one layer's activations.

Samples are unit vectors: per image for flat layers, per (image, position) for channel-first
maps (vectors of channels) and token sequences (vectors of features). ``z = relu(W_e (x − b_d)
+ b_e)``, ``x̂ = W_d z + b_d``; loss ``‖x − x̂‖² + l1 · ‖z‖₁`` (decoder columns kept at unit norm).
Splicing puts ``x̂`` in place of the layer and reruns the rest of the network.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from occam.lens.model import LensModel

__all__ = ["SAE", "train_sae", "sae_report", "splice_metrics"]


class SAE(nn.Module):
    def __init__(self, d: int, m: int):
        super().__init__()
        self.enc = nn.Linear(d, m)
        self.dec = nn.Linear(m, d)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.enc(x - self.dec.bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec(self.encode(x))

    @classmethod
    def identity(cls, d: int) -> SAE:
        """An SAE that reconstructs exactly: z = [relu(x), relu(−x)], x̂ = z₊ − z₋ (for tests)."""
        s = cls(d, 2 * d)
        with torch.no_grad():
            eye = torch.eye(d)
            s.enc.weight.copy_(torch.cat([eye, -eye]))
            s.enc.bias.zero_()
            s.dec.weight.copy_(torch.cat([eye, -eye], dim=1))
            s.dec.bias.zero_()
        return s


def _vectors(v: torch.Tensor, axis: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    """[N, ..] → [samples, units] and the shape to undo it."""
    v = v.movedim(axis, -1)
    return v.reshape(-1, v.shape[-1]), tuple(v.shape)


def _unvectors(s: torch.Tensor, shape: tuple[int, ...], axis: int) -> torch.Tensor:
    return s.reshape(shape).movedim(-1, axis)


def train_sae(lm: LensModel, layer: str, size: int = 64, l1: float = 1e-3, steps: int = 300, lr: float = 3e-3,
              seed: int = 0, progress: Any = None) -> SAE:
    info = lm.layer(layer)
    xt = lm.task.floats("train")
    rng = np.random.default_rng(seed)
    sel = np.sort(rng.choice(len(xt), size=min(2000, len(xt)), replace=False))
    with torch.no_grad():
        v = lm.module.run(torch.from_numpy(xt[sel]), stop_at=layer)[layer]
    data, _ = _vectors(v, info.axis)
    torch.manual_seed(seed)
    sae = SAE(data.shape[1], size)
    with torch.no_grad():
        sae.dec.bias.copy_(data.mean(0))
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        batch = data[torch.randint(0, len(data), (min(512, len(data)),), generator=g)]
        z = sae.encode(batch)
        loss = (sae.dec(z) - batch).pow(2).sum(1).mean() + l1 * z.abs().sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            sae.dec.weight.div_(sae.dec.weight.norm(dim=0, keepdim=True).clamp(min=1e-8))
        if progress is not None and (step % 10 == 0 or step == steps - 1):
            progress(step + 1, steps, float(loss.detach()))
    return sae.eval()


@torch.no_grad()
def splice_metrics(lm: LensModel, layer: str, sae: SAE) -> dict[str, Any]:
    """Val metrics with the SAE's reconstruction in place of ``layer``."""
    info = lm.layer(layer)
    def splice(v: torch.Tensor) -> torch.Tensor:
        vec, shape = _vectors(v, info.axis)
        return _unvectors(sae(vec), shape, info.axis)

    z = lm.cache.run_with_hooks({layer: splice})[lm.module.output_name]
    return lm.metrics(z)


@torch.no_grad()
def sae_report(lm: LensModel, layer: str, sae: SAE, top: int = 5, max_features: int = 24) -> dict[str, Any]:
    info = lm.layer(layer)
    v = lm.env()[layer]
    vec, shape = _vectors(v, info.axis)
    z = sae.encode(vec)
    rec = sae(vec)
    mse = float((rec - vec).pow(2).sum(1).mean())
    var = float((vec - vec.mean(0)).pow(2).sum(1).mean()) or 1.0
    per_img = z.reshape(shape[0], -1, z.shape[1]).amax(dim=1)  # [N, m]
    alive = (per_img > 0).float().mean(0)
    order = torch.argsort(per_img.mean(0), descending=True)
    feats = []
    for f in order[:max_features].tolist():
        idx = torch.argsort(per_img[:, f], descending=True)[:top]
        feats.append({"feature": f, "freq": float(alive[f]), "mean": float(per_img[:, f].mean()),
                      "top": [{"index": int(i), "label": int(lm.y[i]), "act": float(per_img[i, f]),
                               "image": lm.x[i].numpy()} for i in idx.tolist()]})
    return {"layer": layer, "size": z.shape[1], "mse": mse, "fvu": mse / var, "l0": float((z > 0).float().sum(1).mean()),
            "dead": int((alive == 0).sum()), "features": feats, "spliced": splice_metrics(lm, layer, sae),
            "base": lm.metrics()}
