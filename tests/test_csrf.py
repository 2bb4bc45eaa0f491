"""The CSRF rule on its own (the browser test with a real cross-origin form is in tests/arena)."""

from __future__ import annotations

import pytest

from occam.web.csrf import csrf_problem

OWN = "http://127.0.0.1:8000"


@pytest.mark.parametrize("method, headers, ok", [
    ("GET", {"sec-fetch-site": "cross-site"}, True),
    ("POST", {"sec-fetch-site": "same-origin"}, True),
    ("POST", {"sec-fetch-site": "none"}, True),
    ("POST", {"sec-fetch-site": "same-site", "origin": "http://127.0.0.1:9000"}, False),
    ("POST", {"sec-fetch-site": "cross-site"}, False),
    ("POST", {"origin": "http://127.0.0.1:8000"}, True),
    ("POST", {"origin": "http://127.0.0.1:9000"}, False),
    ("POST", {"origin": "http://localhost:8000"}, False),
    ("POST", {"origin": "null"}, False),
    ("POST", {"referer": "http://127.0.0.1:8000/challenges/x"}, True),
    ("POST", {"referer": "http://127.0.0.1:9000/evil"}, False),
    ("POST", {}, False),
    ("POST", {"authorization": "Bearer abc"}, True),
    ("DELETE", {"x-occam-token": "abc", "sec-fetch-site": "cross-site"}, True),
])
def test_csrf_rule(method: str, headers: dict[str, str], ok: bool) -> None:
    assert (csrf_problem(method, headers, OWN) is None) is ok


def test_default_ports_and_trusted_origins() -> None:
    assert csrf_problem("POST", {"origin": "https://arena.example"}, "https://arena.example:443") is None
    assert csrf_problem("POST", {"origin": "https://proxy.example"}, OWN, ["https://proxy.example"]) is None
