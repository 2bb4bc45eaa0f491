"""Tie a process's life to its parent's: worker processes end with ``occam arena serve``, however it ends.

Two mechanisms, both needed:

- ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` (Linux): the kernel sends SIGTERM when the parent dies, even
  by ``kill -9``. It fires when the *thread* that started the child ends, so it is armed by the child
  itself and backed by:
- a watchdog thread that polls ``os.getppid()``: when the parent is gone the process is re-parented,
  the id changes, and the watchdog sends SIGTERM to its own process (the worker then finishes or
  releases its job), then exits hard after a grace period.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
import time

log = logging.getLogger("occam.arena.lifeline")

PR_SET_PDEATHSIG = 1


def _arm_pdeathsig(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0
    except OSError:
        return False


PARENT_ENV = "OCCAM_ARENA_PARENT_PID"


def exit_with_parent(*, poll_seconds: float = 0.5, grace_seconds: float = 20.0, parent: int | None = None) -> int:
    """Arrange for this process to receive SIGTERM when its parent dies; returns the parent's pid.

    Call it first thing in a child process. ``parent``: the pid the parent had (default: ``$OCCAM_ARENA_PARENT_PID``,
    set by the supervisor, else the current parent): if the parent died while this process was still starting
    (its imports take seconds), the process has been re-parented already, and SIGTERM is sent at once.
    """
    if parent is None:
        raw = os.environ.get(PARENT_ENV, "")
        parent = int(raw) if raw.isdigit() else os.getppid()
    _arm_pdeathsig(signal.SIGTERM)

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                log.warning("parent %d is gone; stopping", parent)
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(grace_seconds)
                os._exit(0)  # the job's lease expires and another worker re-queues it
            time.sleep(poll_seconds)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()
    if os.getppid() != parent:  # the parent died before the signal was armed
        os.kill(os.getpid(), signal.SIGTERM)
    return parent
