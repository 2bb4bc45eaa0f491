"""Shared test setup: caches go to a per-session temporary folder, never the user's home."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config):
    import tempfile

    if not os.environ.get("OCCAM_TEST_KEEP_CACHE"):
        os.environ["OCCAM_CACHE"] = tempfile.mkdtemp(prefix="occam-test-cache-")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    """An empty OCCAM_DATA folder for tests that place dataset files by hand."""
    home = tmp_path / "data"
    home.mkdir()
    monkeypatch.setenv("OCCAM_DATA", str(home))
    return home
