"""Toy models for mechanistic interpretability: grokking, superposition, induction heads, training dynamics.

Plain PyTorch, no web imports. Every measure a Lens view or a track needs is a pure function here that takes a
model (or a run directory's checkpoint) plus data and returns NumPy arrays. Runs are stored in a documented
on-disk format (see :mod:`occam.toy.runs` and docs/toy.md) that :func:`load_run` opens.
"""

from __future__ import annotations

from occam.toy.runs import ToyRun, load_run

__all__ = ["ToyRun", "load_run"]
