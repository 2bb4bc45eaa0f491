"""The shared executor: local processes and a local Ray instance."""

from __future__ import annotations

import os
import time

import pytest

from occam.errors import OccamError
from occam.executor import run_jobs


def slow_square(x: int) -> tuple[int, int]:
    time.sleep(0.3 if x == 0 else 0.0)  # job 0 finishes last
    return x * x, os.getpid()


def fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x


def test_local_processes_stream_results_in_completion_order():
    order: list[int] = []
    res = run_jobs(slow_square, list(range(5)), workers=2, progress=False, on_result=lambda i, r: order.append(i))
    assert [r[0] for r in res] == [0, 1, 4, 9, 16]
    assert {r[1] for r in res} != {os.getpid()}  # ran in worker processes
    assert sorted(order) == [0, 1, 2, 3, 4] and order[-1] == 0


def test_inline_mode_and_errors():
    assert run_jobs(pow, [(2, 3), (3, 2)], workers=1, star=True, progress=False) == [8, 9]
    with pytest.raises(ValueError, match="three"):
        run_jobs(fails_on_three, list(range(5)), workers=2, progress=False)
    with pytest.raises(OccamError):
        run_jobs(pow, [(1, 1)], workers=0, star=True)


def test_local_ray_instance(monkeypatch):
    pytest.importorskip("ray", reason="ray is not installed")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    seen: list[int] = []
    try:
        res = run_jobs(slow_square, [0, 1, 2], workers=2, ray_address="local", progress=False,
                       on_result=lambda i, r: seen.append(i))
    except OccamError as exc:
        if "could not start" in exc.problem:
            pytest.skip(f"ray cannot start here: {exc.problem}")
        raise
    assert [r[0] for r in res] == [0, 1, 4]
    assert sorted(seen) == [0, 1, 2] and seen[-1] == 0
    import ray

    assert not ray.is_initialized()  # the private instance was stopped
