"""Where Occam reads user data and keeps its caches.

- ``OCCAM_DATA``: datasets a user places by hand (MNIST, CIFAR-10, Fashion-MNIST copies).
  Default ``~/.local/share/occam/data``.
- ``OCCAM_CACHE``: generated, re-creatable files (materialized task splits, feature
  visualizations, fractal shards). Default ``~/.cache/occam``.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    env = os.environ.get("OCCAM_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "occam" / "data"


def cache_dir() -> Path:
    env = os.environ.get("OCCAM_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "occam"
