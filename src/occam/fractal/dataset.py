"""A PyTorch ``Dataset`` that renders FractalDB images on the fly (no disk).

Item ``i`` is instance ``i % instances`` of category ``i // instances``; it is rendered
from a seed derived from ``(seed, category, weight variant, render index)``, so the same
index gives the same image in any worker, in any order, in any process. Category IFS
codes are searched once at construction (or read from the Occam cache, keyed by the
search settings) so that workers only render.

``__getitems__`` renders a whole batch with one kernel call; ``DataLoader`` uses it
automatically (PyTorch >= 2.0), which matters at small image sizes where the per-item
Python overhead would otherwise exceed the rendering itself.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from occam.fractal.fractaldb import FractalConfig, category_ifs
from occam.fractal.ifs import IFS, render_instances
from occam.paths import cache_dir


def _ifs_cache_path(config: FractalConfig) -> Path:
    key = json.dumps({k: getattr(config, k) for k in ("seed", "sampler", "threshold", "search_size",
                                                       "search_points")}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / "fractal" / "ifs" / f"{digest}.json"


def category_codes(config: FractalConfig, *, use_cache: bool = True) -> list[IFS]:
    """The IFS codes of categories ``0..config.categories-1`` (searched once, then cached)."""
    path = _ifs_cache_path(config)
    known: dict[str, dict] = {}
    if use_cache and path.exists():
        try:
            known = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            known = {}
    codes: list[IFS] = []
    changed = False
    for c in range(config.categories):
        entry = known.get(str(c))
        if entry is None:
            ifs, _, _ = category_ifs(config, c)
            known[str(c)] = entry = ifs.to_json()
            changed = True
        codes.append(IFS.from_json(entry))
    if use_cache and changed:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(known))
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only cache only costs a new search next time
    return codes


class FractalDataset(Dataset):
    """Fractal images as float32 tensors ``[C, H, W]`` in [0, 1] with int64 category labels.

    ``config.size`` is the image side; ``channels`` 1 renders grayscale, 3 colour.
    """

    def __init__(self, config: FractalConfig, *, channels: int = 1, codes: list[IFS] | None = None):
        if channels not in (1, 3):
            raise ValueError("channels must be 1 or 3")
        if (channels == 3) != config.colour:
            config = FractalConfig(**{**config.to_json(), "colour": channels == 3})
        self.config = config.validate()
        self.channels = channels
        self.codes = codes if codes is not None else category_codes(config)
        if len(self.codes) < config.categories:
            raise ValueError("fewer IFS codes than categories")

    @property
    def num_classes(self) -> int:
        return self.config.categories

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.config.size, self.config.size)

    def __len__(self) -> int:
        return self.config.categories * self.config.instances

    def _check(self, idx: int) -> int:
        idx = int(idx)
        if idx < 0:
            idx += len(self)
        if not 0 <= idx < len(self):
            raise IndexError(f"index {idx} out of range for {len(self)} fractal images")
        return idx

    def render(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """uint8 images ``[N, C, H, W]`` and int64 labels for ``indices`` (batched per category)."""
        indices = [self._check(i) for i in indices]
        cfg = self.config
        n_inst = cfg.instances
        out = np.empty((len(indices), self.channels, cfg.size, cfg.size), dtype=np.uint8)
        labels = np.array([i // n_inst for i in indices], dtype=np.int64)
        by_cat: dict[int, list[int]] = {}
        for pos, i in enumerate(indices):
            by_cat.setdefault(i // n_inst, []).append(pos)
        for cat, positions in by_cat.items():
            imgs = render_instances(self.codes[cat], [indices[p] % n_inst for p in positions], seed=cfg.seed,
                                    category=cat, size=cfg.size, n_points=cfg.points, patch=cfg.patch,
                                    colour=cfg.colour, pad=cfg.effective_pad, intensity=cfg.intensity)
            if cfg.colour:
                imgs = imgs.transpose(0, 3, 1, 2)
            else:
                imgs = imgs[:, None]
            out[positions] = imgs
        return out, labels

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, int]:
        x, y = self.render([idx])
        return torch.from_numpy(x[0]).float().div_(255.0), int(y[0])

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        x, y = self.render(list(indices))
        xt = torch.from_numpy(x).float().div_(255.0)
        return [(xt[j], int(y[j])) for j in range(len(y))]


def worker_init(_: int) -> None:
    """DataLoader ``worker_init_fn``: one thread per worker (rendering is single-threaded)."""
    torch.set_num_threads(1)
