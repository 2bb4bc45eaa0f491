"""A tiny, complete track: guess the organizers' secret word (the "add a track" guide in docs/architecture.md).

A challenge file names the track and gives its settings in a table named after it::

    track = "echo"
    task = "digits"            # every challenge names a task; this track does not use it
    [echo]
    secret = "occam"           # private: never shown
    hint = "a razor"           # public: shown on the challenge page

An upload is a small text file holding one word. The score is the fraction of the secret's letters the word
gets right, position by position (higher is better); the public board scores the first half of the secret, the
private board the second half.

Register it at run time (``occam.arena.tracks.register_track(EchoTrack)``) or, from a package, through the
entry-point group ``occam.tracks`` in that package's pyproject.toml::

    [project.entry-points."occam.tracks"]
    echo = "echo_track:EchoTrack"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from occam.arena.tracks import ChallengeInfo, CheckOutcome, Track
from occam.errors import OccamError

MAX_WORD = 64


def _letters_right(word: str, secret: str) -> float:
    return sum(a == b for a, b in zip(word, secret, strict=False)) / max(1, len(secret))


class EchoTrack(Track):
    name = "echo"
    title = "echo"
    policy = "the fraction of the secret word's letters your word gets right, position by position; higher is better"
    higher_is_better = True
    uploads_models = False
    has_pareto = False
    accept = ".txt"
    default_upload_name = "word.txt"
    default_quota = 3
    settings_table = "echo"
    public_settings = ("hint",)
    refused_by = "the server"
    uses_lam = False
    # page fragments: "track:echo/FILE" is read from template_dir (other slots use the defaults)
    template_dir = str(Path(__file__).with_name("echo_track_templates"))
    fragments = {"facts": "track:echo/facts.html"}

    def parse_settings(self, table: Any, *, source: str = "challenge file",  # noqa: ANN401
                       base_dir: Path | None = None) -> dict[str, Any]:
        table = dict(table or {})
        unknown = sorted(set(table) - {"secret", "hint"})
        if unknown:
            raise OccamError(f"{source}: unknown key(s) {unknown} in [echo]", "use only secret and hint")
        secret = table.get("secret")
        if not isinstance(secret, str) or not secret.isalpha() or len(secret) > MAX_WORD:
            raise OccamError(f"{source}: [echo] secret must be one word of letters, got {secret!r}",
                             'write it as secret = "word"')
        hint = table.get("hint", "")
        if not isinstance(hint, str):
            raise OccamError(f"{source}: [echo] hint must be a string, got {hint!r}", 'write it as hint = "text"')
        return {"secret": secret.lower(), "hint": hint}

    def check(self, data: bytes, info: ChallengeInfo) -> CheckOutcome:
        try:
            word = data.decode("utf-8").strip()
        except UnicodeDecodeError:
            return CheckOutcome(False, "the file is not UTF-8 text", "upload a .txt file holding one word")
        if not word.isalpha() or len(word) > MAX_WORD:
            return CheckOutcome(False, f"the file must hold one word of at most {MAX_WORD} letters",
                                "write just the word, e.g. razor")
        return CheckOutcome(True, report={"letters": len(word)})

    def score(self, data: bytes, info: ChallengeInfo, options: dict[str, Any]) -> dict[str, Any]:
        word, secret = data.decode("utf-8").strip().lower(), str(info.settings["secret"])
        half = len(secret) // 2 or 1
        pub = _letters_right(word[:half], secret[:half])
        priv = _letters_right(word[half:], secret[half:])
        return {"nnz": None, "scorer_version": "echo-1",
                "public_score": pub, "public_ce": 1.0 - pub, "public_accuracy": pub,
                "private_score": priv, "private_ce": 1.0 - priv, "private_accuracy": priv,
                "metrics": {"public": {"letters_right": pub}, "private": {"letters_right": priv}}}

    def public_challenge(self, info: ChallengeInfo) -> dict[str, Any]:
        return {"echo": {"hint": info.settings.get("hint", ""), "letters": len(info.settings.get("secret", ""))}}

    def public_submission(self, metrics: Any, *, scored: bool, private_scored: bool,  # noqa: ANN401
                          show_private: bool) -> dict[str, Any]:
        out = {"echo_public": metrics.get("public") if scored else None}
        if show_private:
            out["echo_private"] = metrics.get("private") if private_scored else None
        return out

    def result_lines(self, sub: Any) -> list[str]:  # noqa: ANN401
        return [f"submission {sub['id']}: {100 * sub['public_score']:.0f}% of the public letters right"]

    # fixtures for occam.arena.tracks.checks.check_track
    def example_settings(self, tmp: Path) -> dict[str, Any]:
        return {"secret": "occamrazor", "hint": "a principle"}

    def example_bad_settings(self, tmp: Path) -> list[tuple[dict[str, Any], str]]:
        return [({}, "secret"), ({"secret": "two words"}, "secret"), ({"secret": "ok", "colour": 1}, "colour")]

    def example_uploads(self, tmp: Path, info: ChallengeInfo) -> tuple[bytes, list[bytes]]:
        return b"occamrazes\n", [b"two words", b"\xff\xfe", b"x" * 100]
