"""Strict tables: unknown sections and keys are refused with the known ones; wrong types name field and type."""

from __future__ import annotations

import tomllib

import pytest

from occam.arena.strict import DATETIME, NUMBER, check_table
from occam.errors import OccamError

SCHEMA = {"id": str, "lam": NUMBER, "start": DATETIME, "submission": {"daily_quota": int}}


def _check(text: str) -> None:
    check_table(tomllib.loads(text), SCHEMA, where="c.toml")


def test_good_table_passes() -> None:
    _check('id = "x"\nlam = 10\nstart = 2026-01-01T00:00:00Z\n[submission]\ndaily_quota = 3\n')


@pytest.mark.parametrize("text, problem, fix", [
    ('lam = "ten"', r"lam must be a number, got 'ten'", "write lam as a number"),
    ("lam = true", "lam must be a number", "number"),
    ('[submision]\ndaily_quota = 3', "unknown section 'submision'", "did you mean 'submission'"),
    ('idd = "x"', "unknown key 'idd'", "known sections and keys: id, lam, start, submission"),
    ("[submission]\ndaily_quota = 2.5", r"submission.daily_quota must be a whole number", "whole number"),
    ("[submission]\nquota = 2", r"unknown key \[submission\] 'quota'", r"keys in \[submission\]: daily_quota"),
    ("submission = 3", "submission must be a table", r"\[submission\] section"),
])
def test_bad_tables_name_the_problem_and_the_fix(text: str, problem: str, fix: str) -> None:
    with pytest.raises(OccamError, match=problem) as e:
        _check(text)
    import re

    assert re.search(fix, e.value.fix)
