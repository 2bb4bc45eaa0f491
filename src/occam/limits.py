"""Process limits for untrusted work: drop the network, cap the address space and CPU time.

Used by the scoring child (:mod:`occam.scoring._child`) and by :mod:`occam.isolate` (the Lens's model processes).
Imports nothing beyond the standard library.
"""

from __future__ import annotations

import ctypes
import os
import resource
from typing import Any

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000


def drop_network() -> str:
    """Move this process into a fresh, empty network namespace. Returns what happened."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) == 0:
            return "dropped (new network namespace)"
        first = ctypes.get_errno()
        if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0:
            return "dropped (new user and network namespace)"
        return f"not dropped: unshare failed ({os.strerror(first)})"
    except Exception as exc:  # no libc.unshare (non-Linux)
        return f"not dropped: {type(exc).__name__}"


def _vm_size_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def apply_limits(memory_mb: int | None, cpu_seconds: int | None) -> dict[str, Any]:
    """RLIMIT_AS = the address space at start + ``memory_mb``; RLIMIT_CPU = ``cpu_seconds``."""
    applied: dict[str, Any] = {}
    if memory_mb:
        limit = _vm_size_bytes() + int(memory_mb) * 2**20
        try:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            applied["address_space_bytes"] = limit
        except (ValueError, OSError) as exc:
            applied["address_space_bytes"] = f"not set: {exc}"
    if cpu_seconds:
        try:
            resource.setrlimit(resource.RLIMIT_CPU, (int(cpu_seconds), int(cpu_seconds) + 2))
            applied["cpu_seconds"] = int(cpu_seconds)
        except (ValueError, OSError) as exc:
            applied["cpu_seconds"] = f"not set: {exc}"
    return applied
