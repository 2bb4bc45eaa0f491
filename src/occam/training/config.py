"""``TrainConfig``: everything that determines a training run, declared once.

A light module (no PyTorch): the CLI builds ``occam train``'s options from these fields (type,
default, help text, choices), and presets (:mod:`occam.training.presets`) are sets of values for
them. Errors name fields in backticks (```target_nnz```); the CLI shows them as flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from occam.errors import OccamError

PRUNE_MODES = ("none", "oneshot", "gradual")
PruneMode = Literal["none", "oneshot", "gradual"]


def _help(text: str, **extra: float) -> dict:
    return {"help": text, **extra}


@dataclass
class TrainConfig:
    """Everything that determines a training run (written into the card)."""

    task: str = field(metadata=_help("Task name (see `occam data list`)."))
    arch: str = field(default="sepcnn", metadata=_help("mlp, lenet5, sepcnn or vit; mlp:W is a W-unit MLP."))
    arch_kwargs: dict = field(default_factory=dict, metadata=_help("Architecture options, e.g. {'width': 24}."))
    epochs: float = field(default=10.0, metadata=_help("Passes over the training split (an upper bound with a time budget)."))
    batch_size: int = field(default=128, metadata=_help("Examples per optimizer step."))
    lr: float | None = field(default=None, metadata=_help("Peak learning rate (default per architecture)."))
    weight_decay: float = field(default=1e-4, metadata=_help("AdamW weight decay."))
    seed: int = field(default=0, metadata=_help("Random seed (runs with the same seed and no time budget are identical)."))
    augment: bool = field(default=True, metadata=_help("Use the task's augmentation."))
    prune: PruneMode = field(default="none", metadata=_help(
        "none, oneshot (prune at half-time, then fine-tune) or gradual (Zhu & Gupta)."))
    target_nnz: int | None = field(default=None, metadata=_help(
        "Non-zero stored numbers to end with (implies gradual pruning)."))
    sparsity: float | None = field(default=None, metadata=_help("Fraction of prunable weights to zero instead of a target nnz."))
    l1: float = field(default=0.0, metadata=_help("L1 penalty on prunable weights."))
    minutes: float | None = field(default=None, metadata=_help("Wall-clock budget; the LR and pruning schedules follow it."))
    calibrate: bool = field(default=True, metadata=_help("Fold the CE-minimizing temperature into the head."))
    init: str | None = field(default=None, metadata=_help("Checkpoint (.pt) to start from, e.g. from `occam fractal pretrain`."))
    threads: int | None = field(default=None, metadata=_help("PyTorch threads (default: all cores)."))
    train_limit: int | None = field(default=None, metadata=_help("Use only the first N training examples."))
    label_smoothing: float = field(default=0.0, metadata=_help("Label smoothing of the training loss."))

    def validate(self) -> None:
        """Raise an OccamError naming the first bad field and a value that works."""
        if self.prune not in PRUNE_MODES:
            raise OccamError(f"unknown pruning mode {self.prune!r}", f"set `prune` to one of: {', '.join(PRUNE_MODES)}")
        if self.epochs <= 0:
            raise OccamError(f"`epochs` must be positive, got {self.epochs}", "set `epochs` to e.g. 5")
        if self.minutes is not None and self.minutes <= 0:
            raise OccamError(f"`minutes` must be positive, got {self.minutes}", "set `minutes` to e.g. 2")
        if self.target_nnz is not None and self.target_nnz < 1:
            raise OccamError(f"`target_nnz` must be at least 1, got {self.target_nnz}", "set `target_nnz` to e.g. 2000")
        if self.sparsity is not None and not 0.0 <= self.sparsity < 1.0:
            raise OccamError(f"`sparsity` must be in [0, 1), got {self.sparsity}", "set `sparsity` to e.g. 0.9")
        if self.batch_size < 1:
            raise OccamError(f"`batch_size` must be positive, got {self.batch_size}", "set `batch_size` to e.g. 128")
        if self.label_smoothing < 0 or self.label_smoothing >= 1:
            raise OccamError(f"`label_smoothing` must be in [0, 1), got {self.label_smoothing}",
                             "set `label_smoothing` to e.g. 0.1")
        if self.prune != "none" and self.target_nnz is None and self.sparsity is None:
            raise OccamError(f"pruning mode {self.prune!r} needs a goal", "set `target_nnz` (e.g. 2000) or `sparsity` (e.g. 0.9)")
