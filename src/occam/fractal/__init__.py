"""FractalDB synthetic pre-training data (Kataoka et al. 2020), rendered fast with Numba.

>>> from occam.fractal import FractalConfig, make_fractaldb
>>> make_fractaldb(FractalConfig(categories=10, instances=100, size=64, points=5000), "out/fdb")  # doctest: +SKIP

- :mod:`occam.fractal.render`: the chaos-game kernels (batched, uint8 arrays).
- :mod:`occam.fractal.ifs`: category search (filling rate >= 20 %), contractive sampler,
  weight variants, flips, instances.
- :mod:`occam.fractal.fractaldb`: sharded, resumable generation on disk and contact sheets.
- :mod:`occam.fractal.dataset`: an on-the-fly PyTorch ``Dataset`` (imports torch).
- :mod:`occam.fractal.pretrain`: pre-training and the scratch-versus-fractal experiment.
"""

from occam.fractal.fractaldb import FractalConfig, contact_sheet, load_fractaldb, make_fractaldb, render_category
from occam.fractal.ifs import (
    IFS,
    contractive_ifs,
    flip,
    instance_spec,
    random_ifs,
    render_instances,
    search_category,
    weight_variant,
)
from occam.fractal.render import filling_rate, render_batch

__all__ = ["FractalConfig", "IFS", "contact_sheet", "contractive_ifs", "filling_rate", "flip", "instance_spec",
           "load_fractaldb", "make_fractaldb", "random_ifs", "render_batch", "render_category", "render_instances",
           "search_category", "weight_variant"]
