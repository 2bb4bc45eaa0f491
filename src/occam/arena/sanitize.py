"""Untrusted text made safe: team names that cannot impersonate, CSV cells that cannot run formulas."""

from __future__ import annotations

import unicodedata

from occam.errors import OccamError

__all__ = ["team_name", "team_key", "csv_cell"]

MAX_TEAM_NAME = 64
# Unicode categories refused in names: controls, format characters (bidirectional overrides, zero-width
# joiners), unassigned, private use and surrogates.
_BAD_CATEGORIES = {"Cc", "Cf", "Cn", "Co", "Cs"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def team_name(raw: str) -> str:
    """The display form of a team name (NFC, trimmed), or an OccamError naming the character refused."""
    if not isinstance(raw, str):
        raise OccamError("a team name must be text", "give a name such as 'blue-herons'")
    name = unicodedata.normalize("NFC", raw).strip()
    if not name:
        raise OccamError("the team name is empty", "give a name of 1-64 characters")
    if len(name) > MAX_TEAM_NAME:
        raise OccamError(f"the team name has {len(name)} characters", f"use at most {MAX_TEAM_NAME}")
    for ch in name:
        cat = unicodedata.category(ch)
        if cat in _BAD_CATEGORIES or (cat.startswith("Z") and ch != " "):
            label = unicodedata.name(ch, f"U+{ord(ch):04X}")
            raise OccamError(f"the team name contains the invisible or control character {label} (U+{ord(ch):04X})",
                             "use letters, digits, punctuation and plain spaces only")
    return name


def team_key(name: str) -> str:
    """What two names must not share: NFKC, case-folded, spaces collapsed (``Blue  Herons`` = ``blue herons``)."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return " ".join(folded.split())


def csv_cell(value: object) -> object:
    """A value for a CSV export: text that a spreadsheet would run as a formula gets a leading apostrophe
    (the OWASP rule for cells starting with =, +, -, @, tab or carriage return). Numbers pass unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
