"""An object for tests/test_isolate.py to build in an isolated child (importable by name)."""

from __future__ import annotations

import os
import time

import numpy as np

from occam.errors import OccamError


class Worker:
    def __init__(self, tag: str):
        self.tag = tag

    def echo(self, x):
        return {"tag": self.tag, "x": x, "pid": os.getpid()}

    def allocate(self, mb: int) -> int:
        a = np.ones(mb * 2**20 // 8)
        return int(a.sum())

    def spin(self, seconds: float) -> float:
        end = time.process_time() + seconds
        x = 0.0
        while time.process_time() < end:
            x += 1.0
        return x

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def refuse(self) -> None:
        raise OccamError("that unit does not exist", "pick a unit from 0 to 9")


def make(tag: str) -> Worker:
    return Worker(tag)


def broken(tag: str) -> Worker:
    raise OccamError(f"cannot open {tag}", "check the file")
