"""IsolatedObject: untrusted work in a limited child; errors are clear and the parent stays small."""

from __future__ import annotations

import os
import resource

import numpy as np
import pytest

from isolate_helpers import broken, make  # noqa: I001
from occam.errors import OccamError
from occam.isolate import IsolatedObject, IsolationLimits


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture
def iso():
    obj = IsolatedObject(make, "m1", limits=IsolationLimits(memory_mb=300, cpu_seconds=2, wall_seconds=5))
    yield obj
    obj.close()


def test_calls_run_in_one_long_lived_child(iso) -> None:
    a = iso.call("echo", [1, 2])
    b = iso.call("echo", np.arange(3))
    assert a["tag"] == "m1" and a["x"] == [1, 2] and a["pid"] != os.getpid()
    assert b["pid"] == a["pid"] and iso.restarts == 0  # the same child serves every call
    np.testing.assert_array_equal(b["x"], np.arange(3))


def test_memory_bomb_is_refused_and_the_parent_stays_flat(iso) -> None:
    before = _rss_mb()
    with pytest.raises(OccamError, match="memory"):
        iso.call("allocate", 2000)
    assert _rss_mb() - before < 50
    assert iso.call("allocate", 10) > 0  # a fresh child serves the next call
    assert iso.restarts == 1


def test_cpu_and_wall_budgets_stop_runaway_calls(iso) -> None:
    with pytest.raises(OccamError, match="CPU-seconds|longer than"):
        iso.call("spin", 30)
    with pytest.raises(OccamError, match="longer than 1 s"):
        iso.call("sleep", 10, wall_seconds=1)
    assert iso.call("spin", 0.5) > 0  # budgets are per call: a long-lived child is not starved
    assert iso.call("spin", 0.5) > 0
    assert iso.call("spin", 0.5) > 0
    assert iso.call("spin", 0.5) > 0


def test_library_errors_pass_through_with_their_fix(iso) -> None:
    with pytest.raises(OccamError, match="does not exist") as e:
        iso.call("refuse")
    assert e.value.fix == "pick a unit from 0 to 9"
    assert iso.call("echo", 1)["x"] == 1 and iso.restarts == 0  # the child survives a refused request


def test_a_factory_that_fails_reports_its_error() -> None:
    obj = IsolatedObject(broken, "x.onnx")
    with pytest.raises(OccamError, match="cannot open x.onnx"):
        obj.call("echo", 1)
    obj.close()


def test_the_child_has_limits_the_parent_does_not(iso) -> None:
    pid = iso.call("echo", 0)["pid"]
    limits = open(f"/proc/{pid}/limits").read()
    line = next(ln for ln in limits.splitlines() if ln.startswith("Max address space"))
    assert "unlimited" not in line.split("Max address space")[1].split()[0]
    assert resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY
