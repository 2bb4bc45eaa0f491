"""The on-disk format of a toy run, and the checkpoint schedule.

A run directory holds::

    run.json                      {"format": "occam-toy-run/1", "experiment", "kind", "model": {...config},
                                   "task": {...}, "train": {...}, "checkpoints": [{"step", "file", "metrics"}],
                                   "summary": {...}}
    checkpoints/step_000100.pt    the model's state dict at that step (torch.save, tensors only)
    *.png / *.html                plots written by the experiment

:func:`load_run` opens one and gives the config, a model builder and lazy access to each checkpoint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from occam.errors import OccamError

FORMAT = "occam-toy-run/1"


def schedule(total_steps: int, n: int = 60, kind: str = "log", every: int | None = None) -> list[int]:
    """Checkpoint steps in [0, total_steps]: ``n`` log-spaced ones (dense early, where things change fast), or every N."""
    if total_steps < 1:
        raise OccamError(f"the number of steps must be ≥ 1, got {total_steps}", "pass a positive step count")
    if kind == "every":
        every = every or max(1, total_steps // n)
        steps = set(range(0, total_steps + 1, every))
    elif kind == "log":
        steps = {int(round(s)) for s in np.geomspace(1, total_steps, n)} | {0}
    else:
        raise OccamError(f"unknown checkpoint schedule {kind!r}", "use 'log' or 'every'")
    steps.add(total_steps)
    return sorted(steps)


class RunWriter:
    """Writes a run directory as training goes; run.json is rewritten atomically after each checkpoint."""

    def __init__(self, path: str | Path, experiment: str, kind: str, model: dict, task: dict, train: dict):
        self.path = Path(path)
        (self.path / "checkpoints").mkdir(parents=True, exist_ok=True)
        self.meta: dict[str, Any] = {"format": FORMAT, "experiment": experiment, "kind": kind, "model": model,
                                     "task": task, "train": train, "checkpoints": [], "summary": {}}
        self._flush()

    def checkpoint(self, step: int, module: nn.Module, metrics: dict[str, Any]) -> None:
        name = f"checkpoints/step_{step:06d}.pt"
        torch.save({k: v.detach().clone() for k, v in module.state_dict().items()}, self.path / name)
        self.meta["checkpoints"].append({"step": step, "file": name, "metrics": _plain(metrics)})
        self._flush()

    def finish(self, summary: dict[str, Any]) -> None:
        self.meta["summary"] = _plain(summary)
        self._flush()

    def _flush(self) -> None:
        tmp = self.path / "run.json.tmp"
        tmp.write_text(json.dumps(self.meta, indent=1))
        os.replace(tmp, self.path / "run.json")


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray | torch.Tensor):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


@dataclass
class ToyRun:
    """An opened run directory. Checkpoints load lazily, one state dict at a time."""

    path: Path
    meta: dict[str, Any]
    _cache: dict[int, dict] = field(default_factory=dict, repr=False)

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    @property
    def config(self) -> dict[str, Any]:
        return self.meta["model"]

    @property
    def task(self) -> dict[str, Any]:
        return self.meta["task"]

    @property
    def steps(self) -> list[int]:
        return [c["step"] for c in self.meta["checkpoints"]]

    def metrics(self, name: str) -> np.ndarray:
        """One metric over the checkpoints, NaN where it was not recorded."""
        return np.array([c["metrics"].get(name, np.nan) for c in self.meta["checkpoints"]], dtype=float)

    def build_model(self) -> nn.Module:
        from occam.toy.models import build_model

        return build_model(self.kind, **self.config)

    def state_dict(self, step: int) -> dict:
        if step not in self._cache:
            entry = next((c for c in self.meta["checkpoints"] if c["step"] == step), None)
            if entry is None:
                raise OccamError(f"run {self.path} has no checkpoint at step {step}",
                                 f"choose one of its steps: {self.steps[:5]}…{self.steps[-3:]}")
            f = self.path / entry["file"]
            if not f.exists():
                raise OccamError(f"checkpoint file {f} is missing", "re-run the experiment to rewrite the run")
            self._cache = {step: torch.load(f, map_location="cpu", weights_only=True)}
        return self._cache[step]

    def model_at(self, step: int) -> nn.Module:
        model = self.build_model()
        model.load_state_dict(self.state_dict(step))
        return model.eval()

    def models(self) -> Iterator[tuple[int, nn.Module]]:
        for s in self.steps:
            yield s, self.model_at(s)


def load_run(path: str | Path) -> ToyRun:
    """Open a toy run directory (its ``run.json`` and ``checkpoints/``)."""
    path = Path(path)
    f = path / "run.json"
    if not f.exists():
        raise OccamError(f"{path} is not a toy run: it has no run.json", "pass a directory written by an `occam toy` experiment")
    try:
        meta = json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise OccamError(f"{f} is not valid JSON ({exc})", "re-run the experiment to rewrite the run") from None
    if meta.get("format") != FORMAT:
        raise OccamError(f"{f} has format {meta.get('format')!r}, expected {FORMAT!r}", "re-run the experiment")
    return ToyRun(path=path, meta=meta)
