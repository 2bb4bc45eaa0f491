"""Images as PNG data URIs (Pillow), with optional heat-map overlays; 1-D signals as line plots."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["to_png_uri", "heat_uri"]


def _to_rgb(x: np.ndarray) -> np.ndarray:
    """[C,H,W] or [L] floats in [0,1] (or any range for ``norm``) → HxWx3 uint8."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        h, w = 32, max(40, x.shape[0] * 2)
        img = Image.new("RGB", (w, h), "white")
        d = ImageDraw.Draw(img)
        lo, hi = float(x.min()), float(x.max())
        span = hi - lo or 1.0
        pts = [(i * (w - 1) / max(1, len(x) - 1), h - 1 - (v - lo) / span * (h - 1)) for i, v in enumerate(x)]
        d.line(pts, fill=(30, 30, 30), width=1)
        return np.asarray(img)
    if x.shape[0] == 1:
        x = np.repeat(x, 3, axis=0)
    return (np.clip(x[:3].transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)


def to_png_uri(x: np.ndarray, scale: int = 4, heat: np.ndarray | None = None, norm: bool = False) -> str:
    """A PNG data URI of an image ``[C,H,W]`` (or signal ``[L]``); ``heat`` [H,W] in [0,1] overlays red."""
    x = np.asarray(x, dtype=np.float32)
    if norm:
        lo, hi = float(x.min()), float(x.max())
        x = (x - lo) / ((hi - lo) or 1.0)
    rgb = _to_rgb(x).astype(np.float32)
    if heat is not None and x.ndim == 3:
        h = np.clip(np.asarray(heat, dtype=np.float32), 0, 1)[..., None]
        rgb = rgb * (1 - 0.6 * h) + np.array([255, 40, 40], dtype=np.float32) * 0.6 * h
    img = Image.fromarray(rgb.astype(np.uint8))
    if x.ndim == 3 and scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def heat_uri(m: np.ndarray, scale: int = 4, vmax: float | None = None) -> str:
    """A signed map (e.g. an attribution) as blue (−) / red (+) PNG data URI; ``vmax``: the symmetric colour
    limit (default: the map's own largest magnitude)."""
    m = np.asarray(m, dtype=np.float32)
    if m.ndim == 3:
        m = m.sum(axis=0)
    if m.ndim == 1:
        m = m[None, :]
    a = float(vmax) if vmax else (float(np.abs(m).max()) or 1.0)
    v = m / a
    rgb = np.ones((*v.shape, 3), dtype=np.float32) * 255
    pos, neg = np.clip(v, 0, 1)[..., None], np.clip(-v, 0, 1)[..., None]
    rgb = rgb * (1 - pos) + np.array([220, 30, 30]) * pos
    rgb = rgb * (1 - neg) + np.array([30, 60, 220]) * neg
    img = Image.fromarray(rgb.astype(np.uint8))
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
