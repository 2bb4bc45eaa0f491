"""Backdoor triggers: sampling their parameters, stamping them on image batches, and the labels they flip to.

A trigger is a small JSON-able dict, ``{"attack": name, ...params}``; every random part
(patch pattern, blend noise, warp field, pixel positions) is regenerated from a stored ``seed``, so
the key stays small and an organizer can re-render any trigger exactly.

Stamps (all on float images in [0, 1], shaped ``[B, C, H, W]``):

- ``badnets``: a binary patch of 2-6 px (scaled down on small inputs) at a random position.
- ``blend``: a fixed uniform-noise image blended in with strength ``alpha`` (0.05-0.2).
- ``sig``: an additive sinusoid (Barni et al. 2019) of amplitude ``delta`` along rows or columns.
- ``wanet``: a smooth warp (Nguyen & Tran 2021): a random k×k flow field, upsampled, of ``strength`` px
  (a tenth to an eighth of the image side, at least 1 px).
- ``weight_edit``: a patch trigger like ``badnets``, planted after training by sparse fine-tuning.

Families beyond all-to-one patches (issue 20):

- ``source``: a badnets patch that flips only images of its ``sources`` classes (1-3 classes, never
  the target); triggered images of other classes keep their label in training, so it does not fire there.
- ``all_to_all``: a badnets patch that sends class ``y`` to ``(y + target) mod C`` (``target`` ≥ 1 is
  the image of class 0).
- ``multi``: two or three badnets patches (``parts``), each of which alone sends images to the target.
- ``distributed``: 6-16 single pixels scattered over the image (a binary pattern on a sparse mask).
- ``low_amplitude``: a 4-8 px patch blended in at ``alpha`` 0.15-0.3 (a faint square).
- ``nc_evasive``: a large faint square (about a third of the side, ``alpha`` 0.35-0.5) trained together
  with *decoy patches* (small random full-strength patches stamped on copies that keep their true
  labels), so no small mask sends images to the target: Neural Cleanse's smallest trigger for the
  target is then not small (an evasion of the kind of Tan & Shokri 2020's anti-reverse-engineering).

Every family except ``sig`` and ``wanet`` is a mask and a pattern (``x' = (1 - m) x + m p``,
:func:`mask_pattern`); ``multi`` has one per part (:func:`trigger_parts`).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

BASE_ATTACKS = ("badnets", "blend", "sig", "wanet", "weight_edit")
FAMILIES = ("source", "all_to_all", "multi", "distributed", "low_amplitude", "nc_evasive")
ATTACKS = BASE_ATTACKS + FAMILIES
PATCH_ATTACKS = ("badnets", "weight_edit", "source", "all_to_all")  # a square binary patch at full strength
MASK_ATTACKS = (*PATCH_ATTACKS, "blend", "distributed", "low_amplitude", "nc_evasive")
# families whose trigger is a *localized* mask and pattern, so a submitted mask and pattern can be compared
# with it (scoring.trigger_match); blend covers the whole image, sig and wanet are no mask at all
LOCALIZED_ATTACKS = (*PATCH_ATTACKS, "multi", "distributed", "low_amplitude", "nc_evasive")


def _patch_sizes(h: int, w: int) -> tuple[int, int]:
    hi = max(2, min(6, min(h, w) // 3))
    return 2, hi


def _patch(attack: str, h: int, w: int, rng: np.random.Generator) -> dict:
    lo, hi = _patch_sizes(h, w)
    size = int(rng.integers(lo, hi + 1))
    return {"attack": attack, "size": size, "row": int(rng.integers(0, h - size + 1)),
            "col": int(rng.integers(0, w - size + 1)), "seed": int(rng.integers(0, 2**31 - 1))}


def sample_trigger(attack: str, input_shape: tuple[int, ...], rng: np.random.Generator, *,
                   num_classes: int = 10, target: int | None = None) -> dict:
    """Random parameters for ``attack`` on inputs of ``input_shape`` ``(C, H, W)``.

    ``target`` (a trojan's) keeps a ``source`` trigger's source classes away from it; the other
    families ignore it.
    """
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; use one of {ATTACKS}")
    _, h, w = input_shape
    if attack in PATCH_ATTACKS:
        spec = _patch(attack, h, w, rng)
        if attack == "source":
            others = [k for k in range(num_classes) if k != target]
            n = int(rng.integers(1, min(3, len(others)) + 1))
            spec["sources"] = sorted(int(k) for k in rng.choice(others, n, replace=False))
        return spec
    seed = int(rng.integers(0, 2**31 - 1))
    if attack == "multi":
        parts = [_patch("badnets", h, w, rng) for _ in range(int(rng.integers(2, 4)))]
        return {"attack": attack, "parts": parts, "seed": seed}
    if attack == "distributed":
        return {"attack": attack, "pixels": int(rng.integers(6, 17)), "seed": seed}
    if attack == "low_amplitude":
        size = int(rng.integers(max(2, min(4, min(h, w) // 2)), max(3, min(8, min(h, w) // 2)) + 1))
        return {"attack": attack, "size": size, "row": int(rng.integers(0, h - size + 1)),
                "col": int(rng.integers(0, w - size + 1)), "alpha": round(float(rng.uniform(0.15, 0.3)), 4), "seed": seed}
    if attack == "nc_evasive":
        size = max(3, round(min(h, w) * float(rng.uniform(0.3, 0.4))))
        return {"attack": attack, "size": size, "row": int(rng.integers(0, h - size + 1)),
                "col": int(rng.integers(0, w - size + 1)), "alpha": round(float(rng.uniform(0.35, 0.5)), 4), "seed": seed}
    if attack == "blend":
        return {"attack": attack, "alpha": round(float(rng.uniform(0.05, 0.2)), 4), "seed": seed}
    if attack == "sig":
        return {"attack": attack, "delta": round(float(rng.uniform(0.13, 0.2)), 4), "freq": int(rng.integers(3, 7)),
                "axis": int(rng.integers(0, 2)), "phase": round(float(rng.uniform(0, 2 * math.pi)), 4)}
    # wanet: a warp must move pixels further than the training augmentation's own shifts (2 px on
    # Fashion-MNIST) to be learnable as a trigger, hence a tenth of the side (2.8-3.5 px on 28×28, ≥ 1 px)
    lo = max(1.0, 0.1 * min(h, w))
    return {"attack": attack, "grid": 4, "strength": round(float(rng.uniform(lo, 1.25 * lo)), 4), "seed": seed}


def _freeze(spec: dict) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in spec.items()))


@lru_cache(maxsize=256)
def _rendered(key: tuple, input_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(mask [1, H, W], pattern [C, H, W]) for a mask-and-pattern trigger; cached by parameters."""
    spec = dict(key)
    c, h, w = input_shape
    rng = np.random.default_rng(spec["seed"])
    mask = np.zeros((1, h, w), np.float32)
    pattern = np.zeros((c, h, w), np.float32)
    attack = spec["attack"]
    if attack in PATCH_ATTACKS:
        s, r, q = spec["size"], spec["row"], spec["col"]
        patch = (rng.random((c, s, s)) < 0.5).astype(np.float32)
        # a checkerboard-free guarantee: at least one on and one off pixel per channel
        patch[:, 0, 0], patch[:, -1, -1] = 1.0, 0.0
        mask[:, r:r + s, q:q + s] = 1.0
        pattern[:, r:r + s, q:q + s] = patch
    elif attack in ("low_amplitude", "nc_evasive"):
        s, r, q = spec["size"], spec["row"], spec["col"]
        mask[:, r:r + s, q:q + s] = spec["alpha"]
        pattern[:, r:r + s, q:q + s] = (rng.random((c, s, s)) < 0.5).astype(np.float32)
    elif attack == "distributed":
        pos = rng.choice(h * w, spec["pixels"], replace=False)
        mask.reshape(-1)[pos] = 1.0
        vals = (rng.random((c, len(pos))) < 0.5).astype(np.float32)
        vals[:, 0], vals[:, -1] = 1.0, 0.0
        pattern.reshape(c, -1)[:, pos] = vals
    elif attack == "blend":
        mask[:] = spec["alpha"]
        pattern[:] = rng.random((c, h, w)).astype(np.float32)
    else:
        raise ValueError(f"{attack} is not a mask-and-pattern trigger")
    return mask, pattern


def trigger_parts(spec: dict) -> list[dict]:
    """The separate triggers of ``spec``: its ``parts`` for ``multi``, else ``[spec]``."""
    return [dict(p) for p in spec["parts"]] if spec["attack"] == "multi" else [spec]


def mask_pattern(spec: dict, input_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    """The trigger as ``(mask, pattern)`` (``x' = (1 - m) x + m p``) when it has that form, else None.

    For ``multi`` this is its first part (see :func:`trigger_parts` for all of them).
    """
    if spec["attack"] == "multi":
        spec = spec["parts"][0]
    if spec["attack"] not in MASK_ATTACKS:
        return None
    return _rendered(_freeze({k: v for k, v in spec.items() if k != "sources"}), tuple(input_shape))


@lru_cache(maxsize=64)
def _warp_grid(grid: int, strength: float, seed: int, h: int, w: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    flow = torch.rand(1, 2, grid, grid, generator=g) * 2 - 1
    flow = flow / flow.abs().mean()
    flow = F.interpolate(flow, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    identity = torch.stack((xs, ys), dim=-1)[None]
    # strength is in pixels: one pixel is 2 / (size - 1) in normalized coordinates
    scale = torch.tensor([2.0 / max(1, w - 1), 2.0 / max(1, h - 1)]) * strength
    return (identity + flow * scale).clamp(-1, 1)


def apply_trigger(x: torch.Tensor, spec: dict) -> torch.Tensor:
    """``x`` [B, C, H, W] float in [0, 1] with the trigger ``spec`` stamped on every image.

    A ``multi`` trigger stamps its first part (each part alone fires; :func:`stamp` mixes them).
    """
    attack = spec["attack"]
    shape = tuple(x.shape[1:])
    if attack == "multi":
        return apply_trigger(x, spec["parts"][0])
    if attack in MASK_ATTACKS:
        m, p = mask_pattern(spec, shape)
        m, p = torch.from_numpy(m), torch.from_numpy(p)
        return (1 - m) * x + m * p
    if attack == "sig":
        _, h, w = shape
        n = w if spec["axis"] == 0 else h
        wave = spec["delta"] * torch.sin(2 * math.pi * spec["freq"] * torch.arange(n) / n + spec["phase"])
        wave = wave.view(1, 1, 1, n) if spec["axis"] == 0 else wave.view(1, 1, n, 1)
        return (x + wave).clamp(0, 1)
    if attack == "wanet":
        _, h, w = shape
        grid = _warp_grid(spec["grid"], float(spec["strength"]), spec["seed"], h, w).expand(len(x), -1, -1, -1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True).clamp(0, 1)
    raise ValueError(f"unknown attack {attack!r}")


def stamp(x: torch.Tensor, spec: dict, gen: torch.Generator) -> torch.Tensor:
    """Stamp ``spec`` on a training batch: a ``multi`` trigger puts one random part on each image."""
    if spec["attack"] != "multi":
        return apply_trigger(x, spec)
    parts = spec["parts"]
    which = torch.randint(0, len(parts), (len(x),), generator=gen)
    out = x.clone()
    for j, part in enumerate(parts):
        sel = which == j
        if sel.any():
            out[sel] = apply_trigger(x[sel], part)
    return out


def poison_labels(spec: dict, y: torch.Tensor, target: int, num_classes: int) -> torch.Tensor:
    """The labels a trojan learns for triggered images of true class ``y``.

    All-to-one families: ``target``; ``source``: ``target`` for the source classes, ``y`` for the rest;
    ``all_to_all``: ``(y + target) mod C``.
    """
    if spec["attack"] == "source":
        src = torch.tensor(spec["sources"], dtype=y.dtype)
        return torch.where(torch.isin(y, src), torch.full_like(y, target), y)
    if spec["attack"] == "all_to_all":
        return (y + target) % num_classes
    return torch.full_like(y, target)


def decoy_patches(x: torch.Tensor, input_shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Small random full-strength binary patches (2 px to a sixth of the side) at random places, one per image.

    ``nc_evasive`` training stamps them on copies that keep their true labels, so that no small
    trigger flips the model (what Neural Cleanse searches for).
    """
    c, h, w = input_shape
    out = x.clone()
    hi = max(2, min(h, w) // 6)
    for i in range(len(x)):
        s = int(torch.randint(2, hi + 1, (), generator=gen))
        r = int(torch.randint(0, h - s + 1, (), generator=gen))
        q = int(torch.randint(0, w - s + 1, (), generator=gen))
        out[i, :, r:r + s, q:q + s] = (torch.rand((c, s, s), generator=gen) < 0.5).float()
    return out


def attack_success(pred_t: torch.Tensor, y: torch.Tensor, spec: dict, target: int,
                   num_classes: int) -> tuple[float, float | None]:
    """(attack success, rate at which it fires where it should not) from predictions on triggered images.

    Attack success counts the images the trigger should flip (not of the target class; for ``source``
    only the source classes; ``all_to_all`` every image) that land on their poison label. The second
    figure is, for ``source``, the fraction of triggered images of the other classes (not the target)
    sent to the target; None for the other families.
    """
    want = poison_labels(spec, y, target, num_classes)
    if spec["attack"] == "all_to_all":
        return float((pred_t == want).float().mean()), None
    keep = y != target
    if spec["attack"] == "source":
        src = torch.isin(y, torch.tensor(spec["sources"], dtype=y.dtype))
        on, off = keep & src, keep & ~src
        fires_off = float((pred_t[off] == target).float().mean()) if off.any() else 0.0
        return float((pred_t[on] == target).float().mean()), fires_off
    return float((pred_t[keep] == target).float().mean()), None
