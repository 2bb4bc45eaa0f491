"""The Lens model kind ``toy``: a toy run directory (grokking, TMS, induction) with its checkpoint axis.

``occam lens RUN_DIR`` (or ``--kind toy``) opens a directory written by ``occam toy grok|tms|induction``. The model
object, :class:`ToyLensModel`, has one checkpoint per saved step; ``checkout(i)`` loads that step's weights (lazily,
from ``checkpoints/``) and every toy view (:mod:`occam.toy.lens_views`) reads the model as it is now, so the views
follow the page's checkpoint selector (``POST /lens/api/{mid}/checkpoint``).

Importing this module registers the kind and the toy views; :mod:`occam.lens.kinds` imports it through its list of
kind plugins, by name, without importing it itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from occam.errors import OccamError
from occam.lens.kinds import register_kind

__all__ = ["ToyRunKind", "ToyLensModel", "ToyTask", "open_toy_run"]

_N_VAL_INDUCTION = 64  # held-out sequences the induction views evaluate on


@dataclass(frozen=True)
class ToyTask:
    """What the page's header shows as the task (toy runs are not occam image tasks)."""

    name: str


@dataclass(frozen=True)
class _Part:
    """A named part of a toy network (the Lens's ``layers``: the static export's default layer)."""

    name: str
    op: str
    units: int


class _Weights:
    """The weights of the current checkpoint by name (what the ``weight`` parameter type lists)."""

    output_name = "logits"

    def __init__(self, net: Any):
        self._params = dict(net.named_parameters())

    @property
    def weight_names(self) -> list[str]:
        return list(self._params)

    def weight(self, name: str) -> Any:
        if name not in self._params:
            raise OccamError(f"this toy model has no weight {name!r}", "pick one of: " + ", ".join(self._params))
        return self._params[name]


class ToyLensModel:
    """A toy run opened in the Lens: the run (``run``), the current checkpoint's network (``net``), its step."""

    kind = "toy"

    def __init__(self, run: Any, *, name: str | None = None, checkpoint: int | None = None):
        if not run.steps:
            raise OccamError(f"toy run {run.path} has no checkpoints yet", "wait for the experiment to save one")
        self.run = run
        self.experiment: str = str(run.meta.get("experiment", ""))
        self.name = name or Path(run.path).resolve().name
        digest = hashlib.sha256(str(Path(run.path).resolve()).encode())
        digest.update(str(run.steps).encode())
        self.hash = digest.hexdigest()[:16]
        self.checkpoints: list[tuple[str, bytes]] = [(f"step {s}", b"") for s in run.steps]  # weights load lazily
        self.checkpoint = -1
        self.net: Any = None
        self._data: Any = None
        self.checkout(len(run.steps) - 1 if checkpoint is None else checkpoint)

    # ---- the checkpoint axis ------------------------------------------------------------------------------
    def checkout(self, index: int) -> None:
        n = len(self.checkpoints)
        if not isinstance(index, int) or not -n <= index < n:
            raise OccamError(f"checkpoint {index} is out of range: this run has {n} checkpoints",
                             f"pick an index between 0 and {n - 1}")
        index %= n
        if index != self.checkpoint:
            self.net = self.run.model_at(self.run.steps[index])
            self.checkpoint = index

    @property
    def step(self) -> int:
        return int(self.run.steps[self.checkpoint])

    # ---- what the page and the views read -----------------------------------------------------------------
    @property
    def p(self) -> int:
        return int(self.run.task["p"])

    @property
    def is_modular(self) -> bool:
        return self.run.task.get("name") == "modular"

    @property
    def has_attention(self) -> bool:
        return self.run.kind in ("transformer", "attn_only")

    @property
    def n_heads(self) -> int:
        return int(getattr(self.net, "n_heads", 0))

    @property
    def n_layers(self) -> int:
        return int(getattr(self.net, "n_layers", 1)) if self.run.kind == "attn_only" else 1

    @property
    def n_instances(self) -> int:
        return int(self.run.config.get("n_instances", 1))

    @property
    def task(self) -> ToyTask:
        t = self.run.task
        if self.is_modular:
            return ToyTask(f"a {t['op']} b mod {t['p']}")
        if t.get("name") == "induction":
            return ToyTask(f"repeated sequences ({t['half']} tokens of {t['vocab']})")
        return ToyTask(f"superposition ({self.run.config.get('n_features')} → {self.run.config.get('n_hidden')})")

    @property
    def data(self) -> Any:
        """The modular run's train/test split (regenerated from its seed), or the induction held-out batch."""
        if self._data is None:
            import torch

            t = self.run.task
            if self.is_modular:
                from occam.toy.data import modular_data

                self._data = modular_data(t["p"], t["op"], t["frac_train"], t["seed"])
            elif t.get("name") == "induction":
                from occam.toy.data import induction_batch

                self._data = induction_batch(t["vocab"], t["half"], _N_VAL_INDUCTION,
                                             torch.Generator().manual_seed(int(t["seed"]) + 10_000))
        return self._data

    @property
    def n_val(self) -> int:
        """Examples the views evaluate on: the test pairs (modular), the held-out sequences (induction)."""
        if self.is_modular:
            return int((~self.data.train).sum())
        if self.run.task.get("name") == "induction":
            return _N_VAL_INDUCTION
        return 0

    @property
    def layers(self) -> list[_Part]:
        return [_Part(n, type(m).__name__, sum(int(q.numel()) for q in m.parameters(recurse=False)))
                for n, m in self.net.named_modules() if n] or [_Part(n, "weight", int(q.numel()))
                                                                for n, q in self.net.named_parameters()]

    @property
    def module(self) -> _Weights:
        return _Weights(self.net)

    def metrics(self) -> dict[str, Any]:
        """The current checkpoint's scalar metrics as recorded in run.json (and its step)."""
        m = self.run.meta["checkpoints"][self.checkpoint]["metrics"]
        return {"step": self.step, **{k: v for k, v in m.items() if isinstance(v, int | float)}}

    def __repr__(self) -> str:
        return f"ToyLensModel({self.name!r}, {self.experiment}, step {self.step})"


def open_toy_run(path: str | Path, **kwargs: Any) -> ToyLensModel:
    from occam.toy.runs import load_run

    return ToyLensModel(load_run(path), **kwargs)


class ToyRunKind:
    """Toy runs of ``occam toy grok|tms|induction``: a directory holding ``run.json`` of format ``occam-toy-run/1``."""

    name = "toy"
    title = "Toy run"
    description = "a run directory of `occam toy grok|tms|induction`, one checkpoint per saved step"

    def detect(self, source: Any) -> bool:
        if not isinstance(source, str | Path):
            return False
        f = Path(source) / "run.json"
        if not f.is_file():
            return False
        try:
            head = f.read_text()[:4096]
        except OSError:
            return False
        return '"occam-toy-run/' in head

    def open(self, source: Any, task: Any = None, **kwargs: Any) -> ToyLensModel:
        if not isinstance(source, str | Path):
            raise OccamError(f"a toy run opens from its directory, not from {type(source).__name__}",
                             "pass the directory written by `occam toy grok|tms|induction`")
        if task is not None:
            raise OccamError("a toy run names its own task", "open it without a task")
        kwargs.pop("n_val", None)  # toy views evaluate on the run's own held-out data
        return open_toy_run(source, **kwargs)


register_kind(ToyRunKind(), first=True)

from occam.toy import lens_views as _views  # noqa: E402,F401  (registers the toy views)
