"""Activation patching: how much of a clean input's answer comes back when one place of the network
gets the clean activation while the network runs on a corrupted input.

For a clean input ``c`` (class ``a`` = the model's prediction on it, unless given) and a corrupted
input ``k`` (class ``b``, its prediction, or the runner-up on ``c`` when both agree), the *logit
difference* is ``LD(x) = z_a(x) − z_b(x)``. Patching a set of activations of a layer with their
clean values while running ``k`` gives ``LD_patched``, and the **restored fraction**

    (LD_patched − LD(k)) / (LD(c) − LD(k))

is 0 when the patch changes nothing and 1 when it restores the clean answer (it can leave
[0, 1]). Places are *positions* (every spatial position of a channel-first map, or every token
of a sequence, all units there at once; for a flat layer, every unit) or *units* (one channel
at all its positions). Every place of a layer is patched in one batched run.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from occam.errors import OccamError
from occam.lens.custom_data import as_inputs
from occam.lens.model import Layer, LensModel

__all__ = ["logit_diff_setup", "patch_logits", "patch_layer", "patching_map"]

Granularity = Literal["position", "unit"]
_BATCH = 256


def _one(lm: LensModel, v: Any, what: str) -> torch.Tensor:
    x = as_inputs(lm, v, what)
    if len(x) != 1:
        raise OccamError(f"the {what} input must be one example, got {len(x)}", "pass one val index or one array")
    return x


def _class(lm: LensModel, c: int | None, what: str) -> int | None:
    if c is None:
        return None
    n = lm.task.num_classes
    if not 0 <= int(c) < n:
        raise OccamError(f"{what} {c} is out of range: the task has {n} classes", f"pass a class in 0..{n - 1}")
    return int(c)


@torch.no_grad()
def logit_diff_setup(lm: LensModel, clean: Any, corrupted: Any, clean_class: int | None = None,
                     corrupted_class: int | None = None) -> dict[str, Any]:
    """The two inputs as tensors, the two classes and both logit differences (see the module docstring)."""
    xc, xk = _one(lm, clean, "clean"), _one(lm, corrupted, "corrupted")
    zc, zk = lm.logits(xc)[0], lm.logits(xk)[0]
    a = _class(lm, clean_class, "clean class")
    b = _class(lm, corrupted_class, "corrupted class")
    a = int(zc.argmax()) if a is None else a
    if b is None:
        b = int(zk.argmax())
        if b == a:  # same prediction: measure against the clean input's runner-up
            b = int(torch.topk(zc, 2).indices[1])
    if a == b:
        raise OccamError(f"the clean and corrupted classes are both {a}", "pick two different classes")
    ld_c, ld_k = float(zc[a] - zc[b]), float(zk[a] - zk[b])
    return {"x_clean": xc, "x_corrupted": xk, "clean_class": a, "corrupted_class": b, "ld_clean": ld_c,
            "ld_corrupted": ld_k, "logits_clean": zc, "logits_corrupted": zk}


def _positions(layer: Layer) -> tuple[int, ...]:
    """Per-example shape of the non-unit axes (empty for a flat layer)."""
    shape = list(layer.shape)
    del shape[layer.axis - 1]
    return tuple(shape)


def _mask(layer: Layer, granularity: Granularity, sel: torch.Tensor) -> torch.Tensor:
    """[P, *shape] boolean masks, one per place; ``sel`` the places' flat indices."""
    shape = layer.shape
    unit_ax = layer.axis - 1
    pos = _positions(layer)
    if granularity == "unit" or not pos:
        m = torch.zeros(len(sel), layer.units, dtype=torch.bool)
        m[torch.arange(len(sel)), sel] = True
        view = [len(sel)] + [1] * len(shape)
        view[unit_ax + 1] = layer.units
        return m.reshape(view).expand(len(sel), *shape)
    npos = int(np.prod(pos))
    m = torch.zeros(len(sel), npos, dtype=torch.bool)
    m[torch.arange(len(sel)), sel] = True
    m = m.reshape(len(sel), *pos).unsqueeze(unit_ax + 1)
    return m.expand(len(sel), *shape)


def _places(layer: Layer, granularity: Granularity) -> tuple[int, tuple[int, ...]]:
    """(number of places, the shape the restored fractions are reported in)."""
    if granularity not in ("position", "unit"):
        raise OccamError(f"unknown granularity {granularity!r}", "use 'position' or 'unit'")
    pos = _positions(layer)
    if granularity == "unit" or not pos:
        return layer.units, (layer.units,)
    return int(np.prod(pos)), pos


@torch.no_grad()
def patch_logits(lm: LensModel, clean: Any, corrupted: Any, layer: str,
                 where: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
    """Logits ``[C]`` of the corrupted input with ``layer``'s clean activation put in (where ``where``,
    a boolean mask of the layer's per-example shape, is true; everywhere when ``None``)."""
    info = lm.layer(layer)
    xc, xk = _one(lm, clean, "clean"), _one(lm, corrupted, "corrupted")
    act = lm.module.run(xc, stop_at=layer)[layer]
    if where is None:
        def fn(v: torch.Tensor) -> torch.Tensor:
            return act
    else:
        m = torch.as_tensor(np.asarray(where), dtype=torch.bool)
        if tuple(m.shape) != info.shape:
            raise OccamError(f"the patch mask has shape {list(m.shape)}, but layer {layer!r} has {list(info.shape)}",
                             "pass a boolean mask of the layer's per-example shape")

        def fn(v: torch.Tensor) -> torch.Tensor:
            return torch.where(m[None], act, v)
    return lm.logits(xk, overrides={layer: fn})[0]


@torch.no_grad()
def patch_layer(lm: LensModel, setup: dict[str, Any], layer: str, granularity: Granularity = "position") -> dict[str, Any]:
    """Restored fractions for every place of one layer, and for the whole layer."""
    info = lm.layer(layer)
    n, shape = _places(info, granularity)
    xc, xk = setup["x_clean"], setup["x_corrupted"]
    a, b = setup["clean_class"], setup["corrupted_class"]
    ld_c, ld_k = setup["ld_clean"], setup["ld_corrupted"]
    denom = ld_c - ld_k
    act = lm.module.run(xc, stop_at=layer)[layer]
    out = np.empty(n, dtype=np.float64)
    for s in range(0, n, _BATCH):
        sel = torch.arange(s, min(n, s + _BATCH))
        m = _mask(info, granularity, sel)
        z = lm.logits(xk.expand(len(sel), *xk.shape[1:]), overrides={layer: lambda v, m=m: torch.where(m, act, v)})
        out[s:s + len(sel)] = (z[:, a] - z[:, b]).double().numpy()
    zf = lm.logits(xk, overrides={layer: lambda v: act})[0]
    whole = float(zf[a] - zf[b])
    frac = (out - ld_k) / denom if abs(denom) > 1e-12 else np.full(n, np.nan)
    gran = "unit" if granularity == "unit" or not _positions(info) else "position"
    return {"layer": layer, "op": info.op, "granularity": gran,
            "shape": list(shape), "restored": frac.reshape(shape), "logit_diff": out.reshape(shape),
            "whole_layer": (whole - ld_k) / denom if abs(denom) > 1e-12 else float("nan")}


def patching_map(lm: LensModel, clean: Any, corrupted: Any, layers: list[str] | None = None,
                 granularity: Granularity = "position", clean_class: int | None = None,
                 corrupted_class: int | None = None) -> dict[str, Any]:
    """The layer × position map: :func:`patch_layer` for every layer (default: all but the output).

    Returns ``clean_class``, ``corrupted_class``, both logit differences, and ``layers``: one record
    per layer with ``restored`` (an array shaped like the layer's positions, or ``[units]``),
    ``logit_diff`` and ``whole_layer`` (the fraction restored by patching the whole layer).
    """
    setup = logit_diff_setup(lm, clean, corrupted, clean_class, corrupted_class)
    if layers is None:
        layers = [x.name for x in lm.layers if x.name != lm.module.output_name]
    rows = [patch_layer(lm, setup, name, granularity) for name in layers]
    return {"clean_class": setup["clean_class"], "corrupted_class": setup["corrupted_class"],
            "class_names": [lm.task.class_names[setup["clean_class"]], lm.task.class_names[setup["corrupted_class"]]],
            "ld_clean": setup["ld_clean"], "ld_corrupted": setup["ld_corrupted"], "layers": rows}
