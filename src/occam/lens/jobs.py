"""Run a Lens background job (SAE training, trigger search) in a thread, or inline when ``wait``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def run_job(job: Any, compute: Callable[[], None], *, wait: bool, name: str) -> None:
    """Call ``compute`` (which fills ``job.result``); set ``job.state`` to ``done`` or ``error`` with the message."""

    def work() -> None:
        try:
            compute()
            job.state = "done"
        except Exception as exc:  # reported to the page
            job.state, job.error = "error", f"{type(exc).__name__}: {exc}"

    if wait:
        work()
    else:
        threading.Thread(target=work, daemon=True, name=name).start()
