"""FractalDB synthetic pre-training data (Kataoka et al. 2020), rendered fast with Numba.

>>> from occam.fractal import FractalConfig, make_fractaldb
>>> make_fractaldb(FractalConfig(categories=10, instances=100, size=64, points=5000), "out/fdb")  # doctest: +SKIP

- :mod:`occam.fractal.config`: the configs (light: no Numba, no PyTorch).
- :mod:`occam.fractal.render`: the chaos-game kernels (batched, uint8 arrays).
- :mod:`occam.fractal.ifs`: category search (filling rate >= 20 %), contractive sampler,
  weight variants, flips, instances.
- :mod:`occam.fractal.fractaldb`: sharded, resumable generation on disk and contact sheets.
- :mod:`occam.fractal.dataset`: an on-the-fly PyTorch ``Dataset`` (imports torch).
- :mod:`occam.fractal.pretrain`: pre-training and the scratch-versus-fractal experiment.

Names other than the configs are loaded on first use (so that the configs stay light).
"""

from __future__ import annotations

import importlib
from typing import Any

from occam.fractal.config import ExperimentConfig, FractalConfig, PretrainConfig

_WHERE = {
    "contact_sheet": "fractaldb", "load_fractaldb": "fractaldb", "make_fractaldb": "fractaldb",
    "render_category": "fractaldb",
    **{n: "ifs" for n in ("IFS", "contractive_ifs", "flip", "instance_spec", "random_ifs", "render_instances",
                          "search_category", "weight_variant")},
    "filling_rate": "render", "render_batch": "render",
}

__all__ = ["ExperimentConfig", "FractalConfig", "PretrainConfig", *sorted(_WHERE)]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"occam.fractal.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'occam.fractal' has no attribute {name!r}")
