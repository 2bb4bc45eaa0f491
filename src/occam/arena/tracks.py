"""How each track checks an upload (stage one) and scores it (stage two): the dispatch point.

A track is two functions. ``check`` runs in the web request: it must be fast, never raise on
bad bytes, and say why a file is refused. ``score`` runs in a worker: it runs the model in a
sandboxed child (``occam.scoring.run_logits``: no labels, no network, one thread, rlimits) and
computes the metrics in the worker on the public and private parts of the test set.

Other parts add tracks with :func:`register_track` (e.g. the ``audit`` track, whose uploads are
prediction files rather than models, whose score is higher-is-better, and which validates its own
challenge settings when a challenge is added: ``Track.register``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from occam.arena.challenges import ChallengeSpec, public_mask
from occam.arena.schema import Challenge
from occam.errors import OccamError


@dataclass
class CheckOutcome:
    ok: bool
    reason: str = ""
    fix: str = ""
    nnz: int | None = None
    stored_values: int | None = None
    report: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChallengeInfo:
    """The parts of a Challenge row a track needs (a plain value, safe to pass between threads)."""

    id: str
    track: str
    task: str
    lam: float
    split_seed: int
    public_fraction: float
    limits: dict[str, Any]
    audit: AuditInfo | None = None

    @classmethod
    def of(cls, c: Challenge) -> ChallengeInfo:
        audit = None
        if c.track == "audit" and c.audit_zoo_dir:
            audit = AuditInfo(zoo_dir=c.audit_zoo_dir, key_path=c.audit_key_path or "", zoo_id=c.audit_zoo_id or "",
                              public_models=tuple(json.loads(c.audit_public_models or "[]")),
                              private_models=tuple(json.loads(c.audit_private_models or "[]")))
        return cls(c.id, c.track, c.task, c.lam, c.split_seed, c.public_fraction, json.loads(c.limits_json or "{}"),
                   audit)


@dataclass(frozen=True)
class AuditInfo:
    """An audit challenge's registered zoo. Server-side only: the key path and the two halves are never served."""

    zoo_dir: str
    key_path: str
    zoo_id: str
    public_models: tuple[str, ...]
    private_models: tuple[str, ...]


@dataclass
class Track:
    name: str
    check: Callable[[bytes, ChallengeInfo], CheckOutcome]
    score: Callable[[bytes, ChallengeInfo, dict[str, Any]], dict[str, Any]]
    policy: str = ""  # a sentence for the challenge page
    higher_is_better: bool = False  # how leaderboards order the score (sparse: lower is better)
    uploads_models: bool = True  # uploads are ONNX models (the Lens opens them; the Pareto view plots them)
    accept: str = ".onnx"  # the upload form's file filter
    # validate a new challenge's track settings; returns extra Challenge columns (or raises OccamError)
    register: Callable[[ChallengeSpec], dict[str, Any]] | None = None


TRACKS: dict[str, Track] = {}


def register_track(track: Track) -> Track:
    TRACKS[track.name] = track
    return track


def get_track(name: str) -> Track:
    if name == "audit" and name not in TRACKS:
        try:  # the audit part registers its track on import, when it exists
            import occam.audit.arena  # noqa: F401
        except ImportError:
            pass
    try:
        return TRACKS[name]
    except KeyError:
        raise OccamError(f"track {name!r} has no scorer installed here",
                         f"use one of: {', '.join(sorted(TRACKS))}") from None


def higher_is_better(name: str) -> bool:
    """Whether a higher score ranks first on ``name``'s leaderboards (False for unknown tracks)."""
    try:
        return get_track(name).higher_is_better
    except OccamError:
        return False


# ---- the sparse track ------------------------------------------------------------------------

@lru_cache(maxsize=8)
def _test_set(task_name: str) -> tuple[np.ndarray, np.ndarray]:
    from occam.tasks import get_task

    images, labels = get_task(task_name).load("test")
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def sparse_check(data: bytes, info: ChallengeInfo, *, cross_check: bool = False) -> CheckOutcome:
    """The guard. In the request it runs its static checks (under a millisecond for small models);
    the worker runs it again with the onnxruntime cross-check before scoring."""
    from occam.scoring import inspect_model
    from occam.tasks import get_task

    report = inspect_model(data, get_task(info.task), cross_check=cross_check)
    rep = report.to_dict()
    if not report.ok:
        return CheckOutcome(False, report.reason or "the guard refused this file", report.fix or "", report=rep)
    return CheckOutcome(True, nnz=int(report.nnz), stored_values=int(report.stored_values or 0), report=rep)


def make_limits(limits: dict[str, Any]):  # noqa: ANN201 - occam.scoring.Limits
    from occam.scoring import Limits

    if not limits:
        return None
    try:
        return Limits(**limits)
    except TypeError as exc:
        raise OccamError(f"the challenge's [limits] are not understood: {exc}",
                         "use the field names of occam.scoring.Limits") from exc


def sparse_score(data: bytes, info: ChallengeInfo, options: dict[str, Any]) -> dict[str, Any]:
    """Re-run the guard, run the model in a sandboxed child, and compute public/private metrics."""
    from occam.errors import ModelRejected
    from occam.scoring import SCORER_VERSION, compute_metrics, run_logits
    from occam.tasks import get_task

    task = get_task(info.task)
    outcome = sparse_check(data, info, cross_check=True)
    if not outcome.ok:
        raise ModelRejected(outcome.reason, outcome.fix)
    nnz = int(outcome.nnz or 0)
    images, labels = _test_set(task.name)
    logits = run_logits(data, images, limits=make_limits(info.limits),
                        start_method=options.get("start_method", "forkserver"), threads=1)
    mask = public_mask(len(labels), info.split_seed, info.public_fraction)
    pub = compute_metrics(logits[mask], labels[mask], num_classes=task.num_classes, nnz=nnz, lam=info.lam)
    priv = compute_metrics(logits[~mask], labels[~mask], num_classes=task.num_classes, nnz=nnz, lam=info.lam)
    return {
        "nnz": nnz, "scorer_version": str(SCORER_VERSION),
        "public_score": float(pub["score"]), "public_ce": float(pub["ce"]), "public_accuracy": float(pub["accuracy"]),
        "private_score": float(priv["score"]), "private_ce": float(priv["ce"]),
        "private_accuracy": float(priv["accuracy"]),
        "metrics": {"public": _plain(pub), "private": _plain(priv)},
    }


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, np.ndarray):
            out[k] = v.tolist()
        elif isinstance(v, np.generic):
            out[k] = v.item()
        elif isinstance(v, list | tuple):
            out[k] = [x.item() if isinstance(x, np.generic) else x for x in v]
        else:
            out[k] = v
    return out


register_track(Track(
    name="sparse", check=sparse_check, score=sparse_score,
    policy="score = CE + log10(max(1, nnz)) / λ, lower is better; CE in nats over the scored images; "
           "nnz counts the non-zero numbers the ONNX file stores.",
))
