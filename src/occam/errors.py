"""Errors that reach users: each names the problem and the fix."""

from __future__ import annotations


class OccamError(Exception):
    """An error a user can act on.

    ``problem`` says what is wrong, ``fix`` says what to do about it. The CLI prints
    both and exits with status 2 instead of a traceback.
    """

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if not fix else f"{problem}\nFix: {fix}")


class DataError(OccamError):
    """A dataset is missing, incomplete or corrupt."""


class ModelRejected(OccamError):
    """The guard refused an ONNX file."""


class ScoringError(OccamError):
    """The model ran but its output cannot be scored (NaN, wrong shape, crash, limits)."""
