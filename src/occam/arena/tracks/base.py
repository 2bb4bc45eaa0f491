"""The :class:`Track` protocol: a base class whose methods the arena, the web layer and the CLI call.

A subclass sets the class attributes and overrides what differs from the defaults (which describe an upload of
one ONNX model with no track settings). Everything returns plain values: no web framework is imported here.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from occam.arena.sanitize import csv_cell
from occam.errors import OccamError

if TYPE_CHECKING:  # annotations only: the arena's schema and challenge specs
    from occam.arena.challenges import ChallengeSpec
    from occam.arena.schema import Challenge


@dataclass
class CheckOutcome:
    """Stage one's answer: accepted (``ok``) or refused with a reason and a fix; never an exception."""

    ok: bool
    reason: str = ""
    fix: str = ""
    nnz: int | None = None
    stored_values: int | None = None
    report: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChallengeInfo:
    """The parts of a Challenge row a track needs (a plain value, safe to pass between threads).

    ``settings``: the track's stored settings (what :meth:`Track.register` returned). They may hold private
    values (server paths, hidden halves): only :meth:`Track.public_challenge` decides what is shown.
    """

    id: str
    track: str
    task: str
    lam: float
    split_seed: int
    public_fraction: float
    limits: dict[str, Any]
    settings: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, c: Challenge) -> ChallengeInfo:
        return cls(c.id, c.track, c.task, c.lam, c.split_seed, c.public_fraction, json.loads(c.limits_json or "{}"),
                   load_settings(c.track_settings))


def load_settings(text: str | None) -> dict[str, Any]:
    """A stored ``track_settings`` JSON text as a dict ({} when empty or unreadable)."""
    try:
        v = json.loads(text or "{}")
    except ValueError:
        return {}
    return v if isinstance(v, dict) else {}


@dataclass(frozen=True)
class ServedFile:
    """A file teams may download: ``name`` relative to ``root`` with '/' separators (the URL's tail)."""

    name: str
    path: Path
    size: int
    sha256: str
    root: Path | None = None  # the folder every served file must stay inside (checked again when served)


@dataclass(frozen=True)
class ClientUpload:
    """What the client uploads: the file name, the bytes, the content type, and a note for the user ('' for none)."""

    filename: str
    data: bytes
    content_type: str = "application/octet-stream"
    note: str = ""


@dataclass(frozen=True)
class CsvColumn:
    """One leaderboard CSV column: its header and how to read it off an Entry."""

    header: str
    value: Callable[[Any], Any]


def num(x: float | None) -> str:
    return "" if x is None else f"{x:.6f}"


def iso(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Track:
    """Everything track-specific. Override what differs; the defaults are an ONNX-model track with no settings."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    policy: ClassVar[str] = ""  # a sentence for the challenge page
    higher_is_better: ClassVar[bool] = False  # how leaderboards order the score
    uploads_models: ClassVar[bool] = True  # uploads are ONNX models (the Lens opens them; the Pareto view plots them)
    accept: ClassVar[str] = ".onnx"  # the upload form's file filter
    default_upload_name: ClassVar[str] = "model.onnx"
    default_quota: ClassVar[int] = 5  # accepted uploads per team per UTC day
    settings_table: ClassVar[str | None] = None  # the challenge TOML's table holding this track's settings
    # Its keys and their types (occam.arena.strict: a type, a tuple of types, or a nested dict): unknown keys and
    # wrong types are refused before parse_settings runs. None: the table is only checked by parse_settings.
    settings_schema: ClassVar[dict[str, Any] | None] = None
    public_settings: ClassVar[tuple[str, ...]] = ()  # stored settings keys that may be shown to anyone
    board_extra: ClassVar[tuple[str, ...]] = ()  # metrics (of a board's half) shown as extra leaderboard columns
    has_pareto: ClassVar[bool] = True  # the accuracy-versus-nnz view applies
    too_large_fix: ClassVar[str] = "prune or quantize the model, or store fewer values"
    refused_by: ClassVar[str] = "the guard"  # who refuses an upload in the request (for messages)
    uses_lam: ClassVar[bool] = True  # the challenge's λ means something here (shown in lists)
    board_style: ClassVar[str] = "score"  # how the live leaderboard script draws rows ("score" or "metrics")
    # Web page fragments (Jinja templates under occam/web/templates) by slot: facts, quota, downloads, upload_help,
    # board_caption, board, rejected_label, submission_scores, team_head, team_cells, files. A slot left out uses
    # tracks/default_{slot}.html (the ONNX-model track's).
    # A name "track:NAME/FILE" is read from this track's ``template_dir`` (a track from another package ships its own).
    fragments: ClassVar[dict[str, str]] = {}
    template_dir: ClassVar[str | None] = None  # a folder of Jinja templates for "track:NAME/..." fragments
    lens_path: ClassVar[str] = "zoo"  # /lens/challenges/{cid}/{lens_path}/{model} opens lens_models

    # ---- challenge settings ------------------------------------------------------------------------------
    def parse_settings(self, table: Mapping[str, Any] | None, *, source: str = "challenge file",
                       base_dir: Path | None = None) -> dict[str, Any]:
        """Validate the TOML table :attr:`settings_table` (None when absent); return JSON-able settings.
        Errors are :class:`OccamError` naming the field and the fix. Default: no settings."""
        if table:
            where = f"[{self.settings_table}]" if self.settings_table else "the track's table"
            raise OccamError(f"{source}: unknown key(s) {sorted(table)} in {where}",
                             f"the {self.name} track takes no settings; remove them")
        return {}

    def default_task(self, settings: Mapping[str, Any]) -> str | None:
        """The task a challenge gets when its TOML names none (None: the TOML must name one)."""
        return None

    def register(self, spec: ChallengeSpec) -> dict[str, Any]:
        """When an organizer adds the challenge: check the settings against the world (files, keys) and return
        the settings to store (JSON-able; may hold private values). Raises OccamError."""
        return dict(spec.settings)

    def private_dataset(self, settings: Mapping[str, Any]) -> str | None:
        """The registered private dataset (occam arena dataset add) this challenge is scored on, or None. The arena
        checks, when the challenge is added, that it exists and fits the task (input shape, classes)."""
        return None

    def public_labels_warning(self, info: ChallengeInfo) -> str:
        """A warning for the challenge page and the organizer when teams can get the labels it is scored on
        ('' when they cannot)."""
        return ""

    def describe(self, info: ChallengeInfo) -> str:
        """One line for the organizer after adding a challenge (Rich markup allowed)."""
        return f"challenge [bold]{info.id}[/] ({info.task}, track {info.track}, λ={info.lam:g}) saved"

    # ---- stage one (request) and stage two (worker) -----------------------------------------------------
    def check(self, data: bytes, info: ChallengeInfo) -> CheckOutcome:
        """Fast, in the web request: never raises on bad bytes, says why a file is refused."""
        raise NotImplementedError

    def score(self, data: bytes, info: ChallengeInfo, options: dict[str, Any]) -> dict[str, Any]:
        """In the worker: returns nnz, scorer_version, public_/private_ score, ce, accuracy, and metrics
        ({"public": {...}, "private": {...}}). Raises OccamError subclasses for the file's or the platform's fault."""
        raise NotImplementedError

    # ---- leaderboards ---------------------------------------------------------------------------------------
    def csv_columns(self) -> list[CsvColumn]:
        return [CsvColumn("rank", lambda e: e.rank), CsvColumn("team", lambda e: e.team),
                CsvColumn("submission_id", lambda e: e.submission_id), CsvColumn("score", lambda e: num(e.score)),
                CsvColumn("ce", lambda e: num(e.ce)), CsvColumn("accuracy", lambda e: num(e.accuracy)),
                CsvColumn("nnz", lambda e: e.nnz), CsvColumn("submitted_at_utc", lambda e: iso(e.submitted_at)),
                CsvColumn("submissions", lambda e: e.submissions),
                CsvColumn("scorer_version", lambda e: e.scorer_version or "")]

    def leaderboard_csv(self, entries: list[Any]) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        cols = self.csv_columns()
        w.writerow([c.header for c in cols])
        for e in entries:
            w.writerow([csv_cell(c.value(e)) for c in cols])  # a team name like "=HYPERLINK(...)" stays text
        return buf.getvalue()

    # ---- public JSON ---------------------------------------------------------------------------------------
    def public_challenge(self, info: ChallengeInfo) -> dict[str, Any]:
        """Track-specific keys of the challenge's public JSON (``links`` are merged). Never a private setting."""
        return {}

    def public_submission(self, metrics: Mapping[str, Any], *, scored: bool, private_scored: bool,
                          show_private: bool) -> dict[str, Any]:
        """Track-specific keys of a submission's JSON, from its stored metrics; the private half only with
        ``show_private``."""
        pub = metrics.get("public") or {}
        return {"public_per_class_accuracy": pub["per_class_accuracy"]} if "per_class_accuracy" in pub else {}

    # ---- downloads and the Lens -----------------------------------------------------------------------------
    def public_files(self, info: ChallengeInfo) -> list[ServedFile] | None:
        """Files teams may download for this challenge (None: the track has none). Raises OccamError when
        they cannot be served (its message may name server paths: the web layer shows it to the admin only)."""
        return None

    def files_version(self, info: ChallengeInfo) -> str:
        """A short id of the downloadable files' current version (names the cached zip)."""
        import hashlib

        files = self.public_files(info) or []
        return hashlib.sha256("".join(f.sha256 for f in files).encode()).hexdigest()[:16]

    def files_meta(self, info: ChallengeInfo) -> dict[str, Any]:
        """Extra public keys of the file index (e.g. the zoo's id)."""
        return {}

    def lens_models(self, info: ChallengeInfo, files: list[ServedFile]) -> dict[str, ServedFile]:
        """Which of ``files`` the Lens may open for this challenge, by model name (besides the scored
        submissions of tracks that upload models)."""
        return {}

    def lens_task(self, info: ChallengeInfo) -> str:
        """The task the Lens opens :meth:`lens_models` with."""
        return info.task

    # ---- the client ------------------------------------------------------------------------------------------
    def client_upload(self, path: Path, challenge: str) -> ClientUpload:
        """What ``occam submit PATH`` uploads to a challenge of this track (OccamError for a wrong file)."""
        if path.suffix.lower() not in self.accept.split(","):
            raise OccamError(f"{path.name}: a {self.name} challenge takes a {self.accept.replace(',', ' or ')} file",
                             f"pass a {self.accept.replace(',', ' or ')} file")
        return ClientUpload(path.name, path.read_bytes())

    def result_lines(self, sub: Mapping[str, Any]) -> list[str]:
        """What ``occam submit`` prints for a scored submission (its JSON as the server answered)."""
        return [f"submission {sub['id']}: score {sub['public_score']:.4f} (public), CE {sub['public_ce']:.4f}, "
                f"accuracy {100 * sub['public_accuracy']:.2f}%, nnz {sub['nnz']:,}"]

    reminds_quota: ClassVar[bool] = False  # ``occam submit`` also prints the quota left

    def download_hint(self, out: Path, challenge: str) -> str:
        """What to do after ``occam arena download`` ('' for nothing)."""
        return ""

    # ---- fixtures for the shared battery (occam.arena.tracks.checks.check_track) -----------------------------
    def example_settings(self, tmp: Path) -> dict[str, Any] | None:
        """A valid TOML settings table for a tiny challenge (None when the track takes none); may write files
        under ``tmp``."""
        return None

    def example_bad_settings(self, tmp: Path) -> list[tuple[dict[str, Any], str]]:
        """(an invalid settings table, a word the error must name) pairs."""
        return [({"no_such_field": 1}, "no_such_field")]

    def example_task(self) -> str:
        return "digits"

    def example_uploads(self, tmp: Path, info: ChallengeInfo) -> tuple[bytes, list[bytes]]:
        """(a valid upload that scores, invalid uploads the check must refuse)."""
        raise NotImplementedError
