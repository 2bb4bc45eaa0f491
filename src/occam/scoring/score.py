"""``score_model``: guard, count, run in a sandboxed child, then compute the score.

Order (the child never holds labels, and the parent loads them only after the fork):

1. read the bytes; 2. static guard checks and counting; 3. load the images and start the
inference child; 4. while it runs, the parent does the onnxruntime cross-check; 5. wait for
the logits; 6. load the labels and compute the metrics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from occam.errors import ModelRejected
from occam.scoring.guard import (
    DEFAULT_POLICY,
    GuardPolicy,
    GuardReport,
    _Reject,
    inspect_bytes,
    ort_cross_check,
    read_source,
)
from occam.scoring.metrics import compute_metrics
from occam.scoring.sandbox import Limits, start_inference

__all__ = ["SCORER_VERSION", "ScoreResult", "score_model"]

# Bump when anything that changes a score changes (counting rule, guard, metrics).
SCORER_VERSION = "1.0"


@dataclass
class ScoreResult:
    task: str
    split: str
    lam: float
    score: float
    ce: float
    accuracy: float
    nnz: int
    stored_values: int
    per_class_accuracy: list[float | None]
    n: int
    seconds: float
    scorer_version: str = SCORER_VERSION
    guard: GuardReport | None = field(default=None, repr=False)
    sandbox: dict[str, Any] = field(default_factory=dict, repr=False)
    timings: dict[str, float] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "split": self.split, "lam": self.lam, "score": self.score, "ce": self.ce,
            "accuracy": self.accuracy, "nnz": self.nnz, "stored_values": self.stored_values,
            "per_class_accuracy": list(self.per_class_accuracy), "n": self.n, "seconds": self.seconds,
            "scorer_version": self.scorer_version, "sandbox": dict(self.sandbox),
            "timings": {k: round(v, 6) for k, v in self.timings.items()},
        }


def score_model(source: str | Path | bytes, task, *, split: str = "test", lam: float | None = None,
                limits: Limits | None = None, threads: int | None = None, indices: np.ndarray | None = None,
                policy: GuardPolicy = DEFAULT_POLICY, start_method: str = "fork",
                batch_size: int | None = None) -> ScoreResult:
    """Score an ONNX model (path or bytes) on ``task``'s ``split`` (optionally a subset ``indices``).

    Raises ``ModelRejected`` when the guard refuses the model, ``ScoringError`` when it cannot
    be run or its logits cannot be scored, ``DataError`` when the task's data is missing.
    """
    from occam.tasks import Task, get_task

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    task_obj: Task = get_task(task) if isinstance(task, str) else task
    lam_value = float(lam) if lam is not None else float(task_obj.default_lam)
    if lam_value <= 0:
        raise ModelRejected(f"λ must be positive, got {lam_value}", "pass a positive λ")

    # 1-2. bytes, static checks, counting.
    try:
        data = read_source(source, policy.max_bytes)
    except _Reject as rej:
        raise ModelRejected(rej.reason, rej.fix) from None
    report, _model = inspect_bytes(data, task_obj, policy=policy, cross_check=False)
    report.raise_if_rejected()
    # a batch fixed at 1 that the guard made dynamic: run the guard's rewritten model
    data = _model.SerializeToString() if report.batch_made_dynamic and _model is not None else data
    timings["guard"] = time.perf_counter() - t0

    # 3. images only, then fork.
    images = task_obj.images(split)
    if indices is not None:
        images = images[np.asarray(indices)]
    timings["images"] = time.perf_counter() - t0
    job = start_inference(data, images, limits=limits, start_method=start_method, threads=threads,
                          batch_size=batch_size)
    timings["forked"] = time.perf_counter() - t0

    # 4. cross-check while the child runs.
    try:
        report.ort_nnz = ort_cross_check(data, _counts(report))
        report.cross_checked = True
    except _Reject as rej:
        job.kill()
        job.close()
        report.ok, report.reason, report.fix = False, rej.reason, rej.fix
        raise ModelRejected(rej.reason, rej.fix) from None
    timings["cross_check"] = time.perf_counter() - t0

    # 5. logits.
    logits = job.result()
    timings["inference"] = time.perf_counter() - t0

    # 6. labels, only now.
    labels = task_obj.labels(split)
    if indices is not None:
        labels = labels[np.asarray(indices)]
    timings["labels"] = time.perf_counter() - t0
    m = compute_metrics(logits, labels, num_classes=task_obj.num_classes, nnz=report.nnz or 0, lam=lam_value)
    seconds = time.perf_counter() - t0
    timings["total"] = seconds
    return ScoreResult(task=task_obj.name, split=split, lam=lam_value, score=m["score"], ce=m["ce"],
                       accuracy=m["accuracy"], nnz=int(report.nnz or 0),
                       stored_values=int(report.stored_values or 0), per_class_accuracy=m["per_class_accuracy"],
                       n=m["n"], seconds=seconds, guard=report, sandbox=dict(job.info), timings=timings)


def _counts(report: GuardReport):
    from occam.scoring.count import CountReport

    return CountReport(nnz=report.nnz or 0, stored_values=report.stored_values or 0, tensors=report.tensors)
