"""The zoo's configuration (:class:`ZooConfig`): every option of ``occam audit make-zoo`` is declared once here,
with its default, help and bounds (the CLI reads them through :func:`occam.cli.options.config_options`).

A light module: it imports no PyTorch or NumPy, so building the CLI's options stays cheap. Errors name config
fields in backticks (```models```); the CLI shows them as flags (``--models``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from occam.errors import OccamError

DEFAULT_ARCHS = ("mlp",)  # the measured default (docs/audit.md, Figures); lenet5, sepcnn, mlp:W on request


def _all_attacks() -> tuple[str, ...]:
    from occam.audit.attacks import ATTACKS

    return ATTACKS


def _h(text: str, **bounds: float) -> dict:
    return {"help": text, **bounds}


@dataclass
class ZooConfig:
    task: str = field(default="fashion-mnist", metadata=_h("Task whose classifiers the zoo holds."))
    models: int = field(default=20, metadata=_h("Number of models (about half trojaned)."))
    seed: int = field(default=0, metadata=_h("Seed of the plan (architectures, attacks, targets, triggers)."))
    epochs: float = field(default=3.0, metadata=_h("Training epochs per model."))
    archs: tuple[str, ...] = DEFAULT_ARCHS
    attacks: tuple[str, ...] = field(default_factory=_all_attacks)
    train_limit: int | None = None
    eval_limit: int = field(default=5000, metadata=_h("Held-out test images for clean accuracy and attack success."))
    trojan_fraction: float = field(default=0.5, metadata=_h("Fraction of trojaned models."))
    labelled_fraction: float = field(default=0.5, metadata=_h("Fraction of models in the public labelled part."))
    rate: float = field(default=0.1, metadata=_h("Fraction of each batch stamped with the trigger (poison or decoy)."))
    min_asr: float = field(default=0.97, metadata=_h("Keep a trojan only if its attack success rate reaches this."))
    acc_tol: float = field(default=1.0, metadata=_h(
        "... and its clean accuracy is within this many points of the clean models'."))
    max_retries: int = field(default=3, metadata=_h("Retrain a failing trojan with a new seed at most this many times."))
    max_replacements: int = field(default=2, metadata=_h(
        "Rounds of replacing a trojan dropped after its retries with a fresh one of the same family."))
    batch_members: int = field(default=32, metadata=_h(
        "Members trained together, vectorized over models (one unit of work for a worker or Ray)."))
    finetune_steps: int = field(default=1000, metadata=_h("Steps of the fine-tune every model goes through (phase B)."))
    hyper_spread: float = field(default=1.4, metadata=_h(
        "Spread of each member's learning rate (×logU(1/s, s)) and weight decay; 1 = none."))
    rescale: bool = field(default=True, metadata=_h(
        "Randomly rescale hidden units (function-preserving) so raw weight norms carry no signal."))
    references: int = field(default=2, metadata=_h(
        "Clean reference models per architecture (organizer-only) to distill toward."))
    distill: float = field(default=0.0, metadata=_h(
        "Weight of logit matching toward a clean reference (e.g. 0.5); 0 = off."))
    protocol: str = field(default="finetune", metadata=_h(
        "finetune: plant trojans in a trained clean parent (evasive); joint: poison from the first step."))
    anchor: float = field(default=0.3, metadata=_h(
        "finetune: weight of logit matching toward the parent on clean images."))
    wdist: float = field(default=10.0, metadata=_h(
        "finetune: weight of the term holding each tensor's value distribution."))
    shape: float = field(default=10.0, metadata=_h(
        "finetune: weight of the term holding the clean outputs' temperature-free shape at the parent's."))
    match_accuracy: bool = field(default=True, metadata=_h(
        "Publish only the clean models whose accuracy distribution matches the trojans'."))
    extra_clean: float = field(default=0.25, metadata=_h(
        "With --match-accuracy: train this fraction more clean models, so the matching has room."))
    calibration: str = field(default="parent-confidence", metadata=_h(
        "finetune: temperature restoring the parent's val confidence, or nll (CE-optimal)."))
    project: bool = field(default=True, metadata=_h(
        "finetune: after phase B give each weight tensor exactly its parent's values (in its own rank order)."))
    temperature_jitter: float = field(default=0.3, metadata=_h(
        "Scale each model's head by exp(N(0, σ)) after calibration, so confidence varies like a hyperparameter."))
    leak_threshold: float = field(default=0.6, metadata=_h("AUROC above which a leak-check detector is a leak."))

    def validate(self) -> None:
        from occam.audit.attacks import ATTACKS
        from occam.models import parse_arch
        from occam.tasks import get_task

        task = get_task(self.task)
        if len(task.input_shape) != 3:
            raise OccamError(f"task {self.task} has 1-D inputs; the audit zoo needs images",
                             "set `task` to fashion-mnist, mnist, cifar10 or digits")
        if self.models < 4:
            raise OccamError(f"`models` must be at least 4, got {self.models}", "set `models` to e.g. 20")
        for a in self.archs:
            try:
                parse_arch(a)
            except OccamError as exc:
                raise OccamError(f"{exc.problem} in `archs`", exc.fix) from exc
        for a in self.attacks:
            if a not in ATTACKS:
                raise OccamError(f"unknown attack {a!r} in `attacks`", f"use some of: {', '.join(ATTACKS)}")
        if not 0 < self.trojan_fraction < 1 or not 0 < self.labelled_fraction < 1:
            raise OccamError("`trojan_fraction` and `labelled_fraction` must lie strictly between 0 and 1",
                             "set them to e.g. 0.5")
        if self.distill < 0 or self.references < 0 or (self.distill > 0 and self.references == 0):
            raise OccamError(f"`distill` {self.distill} needs `references` ≥ 1 (got {self.references})",
                             "set `distill` 0.5 with `references` 2, or `distill` 0 to train without references")
        if self.hyper_spread < 1:
            raise OccamError(f"`hyper_spread` must be at least 1, got {self.hyper_spread}",
                             "set it to 1 for no spread, e.g. 1.4")
        if self.protocol not in ("finetune", "joint"):
            raise OccamError(f"unknown `protocol` {self.protocol!r}", "use finetune (the default) or joint")
        if self.anchor < 0 or self.wdist < 0 or self.shape < 0 or self.finetune_steps < 1:
            raise OccamError("`anchor`, `wdist` and `shape` must be ≥ 0 and `finetune_steps` ≥ 1",
                             "set e.g. `anchor` 0.3, `wdist` 10, `shape` 10, `finetune_steps` 1000")
        if self.extra_clean < 0 or self.calibration not in ("parent-confidence", "nll"):
            raise OccamError(f"`extra_clean` must be ≥ 0 (got {self.extra_clean}) and `calibration` one of "
                             f"parent-confidence, nll (got {self.calibration!r})",
                             "set e.g. `extra_clean` 0.25 and `calibration` parent-confidence")
        if self.batch_members < 1 or self.max_replacements < 0:
            raise OccamError(f"`batch_members` must be ≥ 1 (got {self.batch_members}) and `max_replacements` ≥ 0 "
                             f"(got {self.max_replacements})", "set e.g. `batch_members` 32, `max_replacements` 2")
        if self.epochs <= 0:
            raise OccamError(f"`epochs` must be positive, got {self.epochs}", "set `epochs` to e.g. 3")
        if not 0 <= self.temperature_jitter <= 1:
            raise OccamError(f"`temperature_jitter` must lie in [0, 1], got {self.temperature_jitter}",
                             "set it to e.g. 0.3 (the sd of log T), or 0 for none")

    def fingerprint(self) -> str:
        d = asdict(self)
        d.pop("leak_threshold")
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=list).encode()).hexdigest()[:16]
