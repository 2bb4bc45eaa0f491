"""Named training recipes: the settings behind a published figure, reachable by name.

A preset is a set of :class:`~occam.training.config.TrainConfig` values (fields not named keep
their defaults). ``occam train TASK --preset NAME`` starts from them, and any option given on the
command line overrides them; ``occam train --list-presets`` lists them. The benchmark that
produces a preset's figure builds its config with :func:`preset_config`, so the documented
command and the benchmark cannot drift apart (a test checks it).

A light module (no PyTorch).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from occam.errors import OccamError
from occam.training.config import TrainConfig

__all__ = ["PRESETS", "Preset", "get_preset", "preset_config"]


@dataclass(frozen=True)
class Preset:
    name: str
    task: str  # the task the figure was measured on (a preset runs on any task)
    description: str
    values: dict[str, Any] = field(default_factory=dict)
    figure: str = ""  # what it reached, where, measured how

    def config(self, task: str | None = None, **overrides: Any) -> TrainConfig:
        """The TrainConfig of this preset on ``task`` (default: the preset's own), with ``overrides``."""
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise OccamError(f"TrainConfig has no field(s) {', '.join(unknown)}",
                             f"use fields of TrainConfig: {', '.join(sorted(names))}")
        values = {**self.values, **overrides}
        if "arch_kwargs" in values:
            values["arch_kwargs"] = dict(values["arch_kwargs"])
        return TrainConfig(task=task or self.task, **values)


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset(
        name="headline",
        task="fashion-mnist",
        description="The README's Fashion-MNIST recipe: separable CNN (stem 16, width 32), gradual LAMP pruning to "
                    "1,500 non-zeros, calibration; 60 epochs capped at 5 minutes.",
        values={"arch": "sepcnn", "arch_kwargs": {"stem": 16, "width": 32}, "epochs": 60.0, "minutes": 5.0,
                "prune": "gradual", "target_nnz": 1500},
        figure="test score 0.627 at 1,494 non-zeros (88.8 % accuracy), 5 minutes on 2 CPU cores "
               "(benchmarks/fmnist_quality.py)",
    ),
    Preset(
        name="quick",
        task="fashion-mnist",
        description="A one-minute version of the headline recipe (for a first try; scores lower).",
        values={"arch": "sepcnn", "arch_kwargs": {"stem": 16, "width": 32}, "epochs": 60.0, "minutes": 1.0,
                "prune": "gradual", "target_nnz": 1500},
    ),
)}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; an OccamError listing the presets otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise OccamError(f"unknown preset {name!r}", f"use one of: {', '.join(PRESETS)}") from None


def preset_config(name: str, task: str | None = None, **overrides: Any) -> TrainConfig:
    """``get_preset(name).config(task, **overrides)``."""
    return get_preset(name).config(task, **overrides)
