"""Cross-entropy, accuracy and the Occam score: ``score = CE + log10(max(1, nnz)) / λ``."""

from __future__ import annotations

import math

import numpy as np

from occam.errors import ScoringError

__all__ = ["cross_entropy", "score_value", "compute_metrics", "per_sample_nll"]


def _check(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(logits)
    y = np.asarray(labels)
    if z.ndim != 2:
        raise ScoringError(f"logits must be [N, classes], got shape {list(z.shape)}",
                           "return logits of shape [batch, classes]")
    if y.ndim != 1 or len(y) != len(z):
        raise ScoringError(f"{len(z)} logits rows but labels of shape {list(y.shape)}",
                           "score the model on the task's own images")
    if len(y) == 0:
        raise ScoringError("nothing to score (0 images)", "score on a non-empty split")
    if not np.issubdtype(y.dtype, np.integer):
        raise ScoringError(f"labels must be integers, got {y.dtype}", "pass the task's int64 labels")
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise ScoringError(f"labels range over {int(y.min())}..{int(y.max())} but the model gives "
                           f"{z.shape[1]} logits per image", "make the model output one logit per class")
    z64 = z.astype(np.float64)
    if not np.isfinite(z64).all():
        raise ScoringError("the logits contain NaN or Inf", "make the model numerically stable")
    return z64, y.astype(np.int64)


def per_sample_nll(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """−log softmax(logits)[label] per image, float64, via a stable log-sum-exp."""
    z, y = _check(logits, labels)
    m = z.max(axis=1)
    lse = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
    return lse - z[np.arange(len(y)), y]


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy (natural log) of softmax(logits) against labels, in float64."""
    return float(per_sample_nll(logits, labels).mean())


def score_value(ce: float, nnz: int, lam: float) -> float:
    """``ce + log10(max(1, nnz)) / lam`` (lower is better)."""
    if not lam or lam <= 0 or not math.isfinite(lam):
        raise ScoringError(f"λ must be a positive number, got {lam}", "pass a positive λ (`lam`)")
    return float(ce) + math.log10(max(1, int(nnz))) / float(lam)


def compute_metrics(logits: np.ndarray, labels: np.ndarray, *, num_classes: int, nnz: int,
                    lam: float) -> dict:
    """score, ce, accuracy, per-class accuracy (None for a class with no images), n, nnz, lam."""
    z = np.asarray(logits)
    if z.ndim == 2 and z.shape[1] != num_classes:
        raise ScoringError(f"the model gives {z.shape[1]} logits per image; the task has {num_classes} classes",
                           f"make the last layer produce {num_classes} logits")
    nll = per_sample_nll(z, labels)
    y = np.asarray(labels).astype(np.int64)
    pred = np.asarray(z).argmax(axis=1)
    correct = pred == y
    per_class: list[float | None] = []
    for c in range(num_classes):
        mask = y == c
        per_class.append(float(correct[mask].mean()) if mask.any() else None)
    ce = float(nll.mean())
    return {
        "score": score_value(ce, nnz, lam),
        "ce": ce,
        "accuracy": float(correct.mean()),
        "per_class_accuracy": per_class,
        "n": int(len(y)),
        "nnz": int(nnz),
        "lam": float(lam),
    }
