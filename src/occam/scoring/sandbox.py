"""``run_logits``: run a model on images in a child process that never holds the labels.

The parent forks (or asks the forkserver for) a child, which drops its network, applies
``Limits`` with ``setrlimit`` (address space, CPU seconds), converts uint8 pixels to float32
in [0, 1], runs onnxruntime on CPU in batches and sends back float32 logits. The parent
enforces the wall-clock limit and turns every failure into ``ScoringError``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from occam.errors import ScoringError

__all__ = ["Limits", "run_logits", "start_inference", "Inference", "default_threads", "CHILD_MODULE"]

CHILD_MODULE = "occam.scoring._child"


@dataclass(frozen=True)
class Limits:
    """Resource limits of the inference child.

    ``memory_mb``: how much the child may grow its address space beyond what it has when it
    starts (interpreter, NumPy, onnxruntime); ``cpu_seconds``: CPU time (all threads);
    ``wall_seconds``: wall-clock time, enforced by the parent, which kills the child.
    """

    memory_mb: int = 2048
    cpu_seconds: int = 120
    wall_seconds: float = 300.0


DEFAULT_LIMITS = Limits()


def default_threads() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        n = os.cpu_count() or 1
    return max(1, min(4, n))


@dataclass
class Inference:
    """A running inference child. ``result()`` waits and returns the logits."""

    process: Any
    conn: Any
    limits: Limits
    n: int
    started: float
    info: dict[str, Any] = field(default_factory=dict)

    def result(self) -> np.ndarray:
        try:
            remaining = self.limits.wall_seconds - (time.monotonic() - self.started)
            if not self.conn.poll(max(0.0, remaining)):
                self.kill()
                raise ScoringError(f"the model took longer than the {self.limits.wall_seconds:g} s wall-clock "
                                   "limit", "make the model cheaper to run")
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                msg = None
            self.process.join(5)
            if msg is None:
                raise ScoringError(self._death_message(), self._death_fix())
        finally:
            self.close()
        if msg[0] == "ok":
            logits, self.info = msg[1], msg[2]
            return _validate(logits, self.n)
        _, kind, text, self.info = msg
        fixes = {
            "memory": f"make the model need less memory (limit: {self.limits.memory_mb} MiB)",
            "shape": "return logits of shape [batch, classes] for any batch size",
            "load": "check that the model runs with onnxruntime on CPU",
        }
        raise ScoringError(text, fixes.get(kind, "check that the model runs with onnxruntime on CPU"))

    def _death_message(self) -> str:
        code = self.process.exitcode
        if code is None:
            self.kill()
            return "the inference process stopped answering"
        if code < 0:
            sig = -code
            if sig == getattr(signal, "SIGXCPU", -1):
                return f"the model used more than the {self.limits.cpu_seconds} s CPU-time limit"
            if sig == signal.SIGKILL:
                return ("the inference process was killed (likely out of memory; limit "
                        f"{self.limits.memory_mb} MiB)")
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
            return f"the inference process crashed (signal {name})"
        return f"the inference process exited with status {code} without an answer"

    def _death_fix(self) -> str:
        return "make the model smaller or cheaper, and check that it runs with onnxruntime on CPU"

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:
            pass
        if self.process.is_alive():
            self.kill()
        try:
            self.process.close()
        except Exception:
            pass


def _validate(logits: np.ndarray, n: int) -> np.ndarray:
    if not isinstance(logits, np.ndarray) or logits.ndim != 2 or logits.shape[0] != n:
        shape = list(getattr(logits, "shape", []))
        raise ScoringError(f"the model returned logits of shape {shape}; expected [{n}, classes]",
                           "return logits of shape [batch, classes]")
    finite = np.isfinite(logits)
    if not finite.all():
        bad_rows = int((~finite).any(axis=1).sum())
        kinds = []
        if np.isnan(logits).any():
            kinds.append("NaN")
        if np.isinf(logits).any():
            kinds.append("Inf")
        raise ScoringError(f"the model returned {' and '.join(kinds)} logits for {bad_rows} of {n} images",
                           "make the model numerically stable (no division by zero, no overflow)")
    return logits


def _context(start_method: str):
    if start_method == "forkserver":
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload([CHILD_MODULE])
        return ctx
    if start_method in ("fork", "spawn"):
        return mp.get_context(start_method)
    raise ValueError(f"start_method must be 'fork' or 'forkserver', not {start_method!r}")


def start_inference(model_bytes: bytes, images_uint8: np.ndarray, *, limits: Limits | None = None,
                    start_method: str = "fork", threads: int | None = None,
                    batch_size: int | None = None) -> Inference:
    """Start the inference child and return at once (the caller may work meanwhile)."""
    from occam.scoring import _child

    images = np.asarray(images_uint8)
    if images.dtype != np.uint8:
        raise ScoringError(f"images must be uint8, got {images.dtype}", "pass the task's uint8 images")
    limits = limits or DEFAULT_LIMITS
    ctx = _context(start_method)
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child.run, name="occam-inference", daemon=True,
                       args=(child_conn, bytes(model_bytes), images, threads or default_threads(),
                             limits.memory_mb, limits.cpu_seconds, batch_size))
    started = time.monotonic()
    proc.start()
    child_conn.close()
    return Inference(process=proc, conn=parent_conn, limits=limits, n=len(images), started=started)


def run_logits(model_bytes: bytes, images_uint8: np.ndarray, *, limits: Limits | None = None,
               start_method: str = "fork", threads: int | None = None,
               batch_size: int | None = None) -> np.ndarray:
    """Float32 logits [N, classes] of the model on ``images_uint8`` (uint8 [N, *shape]).

    Runs in a child process with ``limits``; raises ``ScoringError`` on crashes, timeouts,
    memory blow-ups, NaN/Inf logits or a wrong output shape.
    """
    return start_inference(model_bytes, images_uint8, limits=limits, start_method=start_method,
                           threads=threads, batch_size=batch_size).result()
