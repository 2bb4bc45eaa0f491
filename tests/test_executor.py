"""The shared executor: local processes and a local Ray instance."""

from __future__ import annotations

import os
import time

import pytest

from occam.errors import OccamError
from occam.executor import run_jobs


def slow_square(x: int, marker: str = "", last: int = -1) -> tuple[int, int]:
    """Job 0 waits until job ``last`` has run (on the other worker), so it finishes last whatever the timing."""
    if x == last and marker:
        open(marker, "w").close()
    if x == 0 and marker:
        deadline = time.monotonic() + 60
        while not os.path.exists(marker) and time.monotonic() < deadline:
            time.sleep(0.01)
    return x * x, os.getpid()


def fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x


def test_local_processes_stream_results_in_completion_order(tmp_path):
    order: list[int] = []
    jobs = [(x, str(tmp_path / "done"), 4) for x in range(5)]
    res = run_jobs(slow_square, jobs, workers=2, star=True, progress=False, on_result=lambda i, r: order.append(i))
    assert [r[0] for r in res] == [0, 1, 4, 9, 16]
    assert {r[1] for r in res} != {os.getpid()}  # ran in worker processes
    assert sorted(order) == [0, 1, 2, 3, 4] and order[-1] == 0


def test_inline_mode_and_errors():
    assert run_jobs(pow, [(2, 3), (3, 2)], workers=1, star=True, progress=False) == [8, 9]
    with pytest.raises(ValueError, match="three"):
        run_jobs(fails_on_three, list(range(5)), workers=2, progress=False)
    with pytest.raises(OccamError):
        run_jobs(pow, [(1, 1)], workers=0, star=True)


def test_local_ray_instance(monkeypatch, tmp_path):
    pytest.importorskip("ray", reason="ray is not installed")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    seen: list[int] = []
    try:
        res = run_jobs(slow_square, [(x, str(tmp_path / "done"), 2) for x in range(3)], workers=2, star=True,
                       ray_address="local", progress=False, on_result=lambda i, r: seen.append(i))
    except OccamError as exc:
        if "could not start" in exc.problem:
            pytest.skip(f"ray cannot start here: {exc.problem}")
        raise
    assert [r[0] for r in res] == [0, 1, 4]
    assert sorted(seen) == [0, 1, 2] and seen[-1] == 0
    import ray

    assert not ray.is_initialized()  # the private instance was stopped
