"""Strict reading of organizer-written tables (challenge TOML): unknown sections and keys are refused with the
list of known ones, and a value of the wrong type names the field and the type expected.

A schema maps each key to a type, a tuple of types, or a nested schema (a dict) for a section::

    SCHEMA = {"id": str, "lam": (int, float), "split": {"seed": int, "public_fraction": (int, float)}}
    check_table(raw, SCHEMA, where="challenge.toml")
"""

from __future__ import annotations

import datetime as dt
import difflib
from typing import Any

from occam.errors import OccamError

__all__ = ["check_table", "DATETIME", "NUMBER"]

NUMBER = (int, float)
DATETIME = (dt.datetime, dt.date, str, int, float)
_NAMES = {str: "text (a quoted string)", int: "a whole number", float: "a number", bool: "true or false",
          dict: "a table", list: "a list", dt.datetime: "a date-time", dt.date: "a date"}


def _type_name(t: Any) -> str:
    if isinstance(t, tuple):
        if t == NUMBER:
            return "a number"
        if t == DATETIME:
            return "a date-time (e.g. 2026-11-27T09:00:00Z)"
        return " or ".join(_type_name(x) for x in t)
    return _NAMES.get(t, getattr(t, "__name__", str(t)))


def _matches(value: Any, t: Any) -> bool:
    types = t if isinstance(t, tuple) else (t,)
    if isinstance(value, bool) and bool not in types:
        return False  # TOML true is not the number 1
    return isinstance(value, types)


def check_table(raw: dict[str, Any], schema: dict[str, Any], *, where: str, section: str = "") -> None:
    """Raise OccamError for the first unknown key or wrongly typed value in ``raw`` (recursing into sections)."""
    prefix = f"[{section}] " if section else ""
    for key, value in raw.items():
        if key not in schema:
            known = sorted(schema)
            close = difflib.get_close_matches(key, known, n=1)
            kind = "section" if isinstance(value, dict) else "key"
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise OccamError(f"{where}: unknown {kind} {prefix}{key!r}",
                             f"{hint}known {'sections and keys' if not section else 'keys'}"
                             f"{' in [' + section + ']' if section else ''}: {', '.join(known)}")
        want = schema[key]
        name = f"{section}.{key}" if section else key
        if isinstance(want, dict):
            if not isinstance(value, dict):
                raise OccamError(f"{where}: {name} must be a table [{name}], got {value!r}",
                                 f"write it as a [{name}] section")
            check_table(value, want, where=where, section=name)
        elif not _matches(value, want):
            raise OccamError(f"{where}: {name} must be {_type_name(want)}, got {value!r} ({type(value).__name__})",
                             f"write {name} as {_type_name(want)}")
