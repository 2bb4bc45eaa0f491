"""Library pieces for an ``audit`` challenge in the arena (the server owns storage and HTTP).

The server is expected to:

1. :func:`register_zoo` once, when an organizer adds a zoo: it validates the public part and the
   key and returns a :class:`RegisteredZoo` (what to serve, the audit model names, the key).
2. :func:`split_models` to fix which audit models feed the public leaderboard and which are held
   for the final (private) ranking; store both lists with the challenge.
3. :func:`score_for_leaderboard` on every submission: parse, validate (errors name the row and
   field), score against the key restricted to a subset, and round the public scores.

The ``audit`` arena track, :class:`AuditTrack` (a plugin on :class:`occam.arena.tracks.Track`, declared in
the ``occam.tracks`` entry-point group), is built from these: :func:`register_challenge` when an organizer
adds a challenge, :func:`audit_check` in the upload request (parse and validate, no key needed),
:func:`audit_score` in the worker (public half rounded, private half exact). The web process never
reads the key: it serves :func:`public_index` (the allow-list :func:`occam.audit.zoo.public_files`)
and checks uploads against the public manifest (:func:`zoo_facts`). Its stored settings (the challenge's
``track_settings``) are ``zoo_dir``, ``key_path``, ``zoo_id``, ``public_models`` and ``private_models``; only
``zoo_id`` and the halves' sizes are ever shown.

Nothing here imports a web framework.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from occam.arena.challenges import ChallengeSpec
from occam.arena.tracks import ChallengeInfo, CheckOutcome, ClientUpload, CsvColumn, ServedFile, Track
from occam.arena.tracks.base import iso, num
from occam.audit.scoring import (
    SubmissionError,
    _check_trigger,
    default_budget,
    load_key,
    parse_submission,
    score_rows,
)
from occam.errors import OccamError, ScoringError

log = logging.getLogger("occam.audit.arena")

PUBLIC_DECIMALS = 2
SCORE_KEYS = ("auroc", "log_loss", "brier", "target_accuracy", "trigger_success")
PRIMARY = "auroc"
SCORER_VERSION = "audit-1"
LABEL_FIELDS = ("trojaned", "target", "attack", "trigger")


@dataclass
class RegisteredZoo:
    zoo_dir: Path
    zoo_id: str
    task: str
    audit_models: list[str]
    labelled_models: list[str]
    files: list[Path] = field(repr=False)  # exactly what may be served (public_files)
    key: dict = field(repr=False)  # never serve this


def public_files(zoo_dir: str | Path) -> list[Path]:
    """:func:`occam.audit.zoo.public_files` (imported here, not at module level: the zoo builder imports torch)."""
    from occam.audit.zoo import public_files as files

    return files(zoo_dir)


def _read_manifest(zoo_dir: Path) -> dict:
    from occam.audit.zoo import FORMAT  # the zoo builder imports torch: only when a zoo is read
    pub = zoo_dir / "public"
    if not zoo_dir.is_dir():
        raise OccamError(f"zoo directory {zoo_dir} does not exist",
                         "pass the directory written by `occam audit make-zoo` (it holds public/ and private_key/)")
    try:
        manifest = json.loads((pub / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise OccamError(f"{zoo_dir} has no readable public/manifest.json ({exc})",
                         "register the directory written by `occam audit make-zoo`") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise OccamError(f"{pub / 'manifest.json'} has format {got!r}, expected {FORMAT!r}",
                         "rebuild the zoo with this version of occam")
    models = manifest.get("models")
    if not isinstance(models, list) or not all(isinstance(m, dict) and {"name", "file", "split"} <= set(m)
                                               for m in models):
        raise OccamError(f"{pub / 'manifest.json'} has no valid 'models' list (each with name, file, split)",
                         "rebuild the public part with `occam audit make-zoo`")
    for m in models:
        leaked = set(LABEL_FIELDS) & set(m)
        if leaked:
            raise OccamError(f"the public manifest carries label fields {sorted(leaked)} for {m.get('name')}",
                             "rebuild the public part; the manifest must hold no labels")
    return manifest


def _models_digest(zoo_dir: Path, manifest: dict, servable: set[Path]) -> str:
    """The zoo_id the model files give (as make-zoo computes it); checks every model file is servable."""
    pub = zoo_dir / "public"
    digest = hashlib.sha256()
    for m in manifest["models"]:
        path = pub / m["file"]
        if path.resolve() not in servable:
            raise OccamError(f"model file {path} is missing or not servable", "re-run make-zoo (it resumes) to rewrite it")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def register_zoo(zoo_dir: str | Path, key_path: str | Path | None = None) -> RegisteredZoo:
    """Validate a zoo and its key; raises :class:`OccamError` naming the problem."""
    from occam.audit.zoo import KEY_FORMAT

    zoo_dir = Path(zoo_dir)
    pub = zoo_dir / "public"
    key_path = Path(key_path) if key_path else zoo_dir / "private_key" / "key.json"
    manifest = _read_manifest(zoo_dir)
    if not key_path.is_file():
        raise OccamError(f"the key {key_path} does not exist",
                         "pass the key.json written by `occam audit make-zoo` ([audit] key = PATH)")
    key = load_key(key_path)
    if key.get("format") != KEY_FORMAT:
        raise OccamError(f"{key_path} has format {key.get('format')!r}, expected {KEY_FORMAT!r}", "pass the zoo's key.json")
    if pub.resolve() in key_path.resolve().parents:
        raise OccamError(f"the key {key_path} lies inside the public folder {pub}",
                         "move the key out of DIR/public (make-zoo writes it to DIR/private_key)")
    files = public_files(zoo_dir)
    resolved = {p.resolve() for p in files}
    if key_path.resolve() in resolved or any(p.name == "key.json" for p in files):
        raise OccamError(f"the key {key_path} is among the public files", "move the key out of DIR/public")
    if key.get("zoo_id") != manifest.get("zoo_id"):
        raise OccamError(f"the key belongs to zoo {key.get('zoo_id')!r}, the manifest to {manifest.get('zoo_id')!r}",
                         "pass the key written together with this zoo")
    audit, labelled = [], []
    for m in manifest["models"]:
        if m["name"] not in key["models"]:
            raise OccamError(f"the key has no entry for {m['name']}", "pass the key written together with this zoo")
        (audit if m["split"] == "audit" else labelled).append(m["name"])
    if _models_digest(zoo_dir, manifest, resolved) != manifest["zoo_id"]:
        raise OccamError("the model files do not match the manifest's zoo_id (modified after make-zoo?)",
                         "re-run make-zoo to rebuild the public part")
    _refuse_public_labels(files, key_path, set(audit))
    ytr = [bool(key["models"][n]["trojaned"]) for n in audit]
    if not audit or all(ytr) or not any(ytr):
        raise OccamError("the audit part needs both clean and trojaned models", "build a larger zoo")
    return RegisteredZoo(zoo_dir=zoo_dir, zoo_id=manifest["zoo_id"], task=manifest["task"], audit_models=sorted(audit),
                         labelled_models=sorted(labelled), files=files, key=key)


def _audit_labels_in(path: Path, audit: set[str]) -> list[str]:
    """Audit models whose labels a (JSON) file carries, e.g. a stray copy of the key; [] for other files."""
    if path.suffix.lower() != ".json":
        return []
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return []
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        return []
    return sorted(n for n in audit if isinstance(models.get(n), dict) and set(LABEL_FIELDS) & set(models[n]))


def _refuse_public_labels(files: list[Path], key_path: Path, audit: set[str]) -> None:
    """No servable file may be a copy of the key or carry labels of audit models (e.g. a stray key under public/)."""
    key_bytes = key_path.read_bytes()
    for p in files:
        if p.stat().st_size == len(key_bytes) and p.read_bytes() == key_bytes:
            raise OccamError(f"the public file {p} is a copy of the key", "delete it from DIR/public")
        bad = _audit_labels_in(p, audit)
        if bad:
            raise OccamError(f"the public file {p} carries labels of audit model(s) {', '.join(bad[:3])}",
                             "only labelled-part models may have labels in public/; rebuild the public part")


def split_models(zoo: RegisteredZoo, public_fraction: float = 0.5, seed: int = 0) -> tuple[list[str], list[str]]:
    """(public-leaderboard models, private-ranking models): a seeded split of the audit models,
    stratified by trojaned/clean so both halves can compute AUROC."""
    if not 0 < public_fraction < 1:
        raise OccamError(f"public_fraction must lie strictly between 0 and 1, got {public_fraction}", "pass e.g. 0.5")
    rng = np.random.default_rng(seed)
    pub, priv = [], []
    for flag in (True, False):
        group = [n for n in zoo.audit_models if bool(zoo.key["models"][n]["trojaned"]) == flag]
        group = [group[i] for i in rng.permutation(len(group))]
        k = min(len(group) - 1, max(1, round(len(group) * public_fraction))) if len(group) > 1 else len(group)
        pub += group[:k]
        priv += group[k:]
    return sorted(pub), sorted(priv)


def round_scores(scores: dict, decimals: int = PUBLIC_DECIMALS) -> dict:
    """Scores rounded for public display (exact feedback on a small set leaks labels); per-attack removed."""
    return {k: (None if scores.get(k) is None else round(float(scores[k]), decimals)) for k in SCORE_KEYS} | {
        "n_models": scores.get("n_models")}


def score_for_leaderboard(zoo: RegisteredZoo, submission: str | Path | bytes, *, models: list[str],
                          filename: str | None = None, public: bool = True, decimals: int = PUBLIC_DECIMALS,
                          budget: float | None = None) -> dict:
    """Score a submission on ``models`` (e.g. the public half). With ``public``, scores are rounded
    and the per-attack breakdown is dropped; the private (final) ranking uses ``public=False``.

    The submission must hold a row for every audit model (so one file serves both halves).
    """
    rows = parse_submission(submission, filename=filename)
    full = score_rows(rows, zoo.key, models=zoo.audit_models, zoo_dir=None)  # validates coverage of all audit models
    del full
    res = score_rows(rows, zoo.key, models=models, zoo_dir=zoo.zoo_dir, budget=budget)
    return round_scores(res, decimals) if public else res


# ---- serving the public part (web process; never reads the key) -------------------------------

@dataclass(frozen=True)
class ZooFacts:
    """What the public manifest says (no labels): enough to check an upload in the request."""

    zoo_id: str
    task: str
    input_shape: tuple[int, ...]
    audit_models: tuple[str, ...]
    labelled_models: tuple[str, ...]


def zoo_facts(zoo_dir: str | Path, zoo_id: str) -> ZooFacts:
    """The public manifest's facts, checked against the zoo_id recorded at registration."""
    return _zoo_facts(str(zoo_dir), zoo_id)


@lru_cache(maxsize=16)
def _zoo_facts(zoo_dir: str, zoo_id: str) -> ZooFacts:
    manifest = _read_manifest(Path(zoo_dir))
    _same_zoo(manifest, zoo_id)
    audit = tuple(sorted(m["name"] for m in manifest["models"] if m["split"] == "audit"))
    labelled = tuple(sorted(m["name"] for m in manifest["models"] if m["split"] != "audit"))
    return ZooFacts(zoo_id=zoo_id, task=str(manifest.get("task")), input_shape=tuple(manifest["input_shape"]),
                    audit_models=audit, labelled_models=labelled)


def _same_zoo(manifest: dict, zoo_id: str) -> None:
    if manifest.get("zoo_id") != zoo_id:
        raise OccamError(f"the zoo on the server is now {manifest.get('zoo_id')!r}, but the challenge registered "
                         f"{zoo_id!r}", "organizers: restore the registered zoo, or register the new one with "
                                        "`occam arena challenge add FILE --replace` and rejudge")


def public_index(zoo_dir: str | Path, zoo_id: str) -> list[ServedFile]:
    """Exactly the files teams may download (``public_files``), with sizes and SHA-256, after checking that
    the model files still hash to the registered ``zoo_id``. Cached per zoo."""
    return list(_public_index(str(zoo_dir), zoo_id))


@lru_cache(maxsize=16)
def _public_index(zoo_dir: str, zoo_id: str) -> tuple[ServedFile, ...]:
    d = Path(zoo_dir)
    manifest = _read_manifest(d)
    _same_zoo(manifest, zoo_id)
    files = public_files(d)
    if _models_digest(d, manifest, {p.resolve() for p in files}) != zoo_id:
        raise OccamError(f"the model files under {d / 'public'} changed since the challenge was registered",
                         "organizers: restore them (or rebuild the zoo and register it again)")
    pub = d / "public"
    audit = {m["name"] for m in manifest["models"] if m["split"] == "audit"}
    out = []
    for p in files:
        if _audit_labels_in(p, audit):  # planted after registration (which refuses such zoos): never serve it
            log.error("%s carries labels of audit models; it is not served", p)
            continue
        data = p.read_bytes()
        out.append(ServedFile(p.relative_to(pub).as_posix(), p, len(data), hashlib.sha256(data).hexdigest(), pub))
    return tuple(out)


# ---- the arena track ---------------------------------------------------------------------------

POLICY = ("AUROC of p_trojan over the audit models (higher is better); the public leaderboard scores one half of "
          "them and shows scores rounded to 2 decimals (exact feedback on a few dozen models would leak their "
          "labels); the other half, scored exactly, decides the private leaderboard. Also shown: log-loss "
          "and Brier score of p_trojan, target accuracy and trigger success on the trojaned models.")


SETTINGS_KEYS = ("zoo", "key")  # the [audit] table of a challenge TOML


def parse_settings(table: dict[str, Any] | None, *, source: str = "challenge file",
                   base_dir: Path | None = None) -> dict[str, Any]:
    """The ``[audit]`` table: ``zoo`` (required) and ``key`` (default ZOO/private_key/key.json), made absolute
    (relative paths start at ``base_dir``, the challenge file's folder)."""
    if not isinstance(table, dict) or not table.get("zoo"):
        raise OccamError(f"{source}: an audit challenge needs an [audit] table with zoo = \"DIR\"",
                         "point zoo at the directory written by `occam audit make-zoo` (see docs/arena.md)")
    unknown = sorted(set(table) - set(SETTINGS_KEYS))
    if unknown:
        raise OccamError(f"{source}: unknown key(s) {unknown} in [audit]", f"use only {', '.join(SETTINGS_KEYS)}")

    def absolute(value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise OccamError(f"{source}: [audit] {key} must be a path (a string), got {value!r}",
                             f'write it as {key} = "PATH"')
        p = Path(value).expanduser()
        if not p.is_absolute() and base_dir is not None:
            p = base_dir / p
        return str(p.absolute())

    return {"zoo": absolute(table["zoo"], "zoo"),
            "key": absolute(table["key"], "key") if table.get("key") is not None else None}


def zoo_task(settings: dict[str, Any], *, source: str = "challenge file") -> str | None:
    """The task the zoo was trained on (a challenge's default task)."""
    zoo = settings["zoo"]
    if not Path(zoo).is_dir():
        raise OccamError(f"{source}: [audit] zoo {zoo} does not exist",
                         "point zoo at the directory written by `occam audit make-zoo` (relative paths start "
                         "at the challenge file's folder)")
    try:
        return json.loads((Path(zoo) / "public" / "manifest.json").read_text()).get("task")
    except (OSError, ValueError, AttributeError) as exc:
        raise OccamError(f"{source}: {zoo}/public/manifest.json cannot be read ({exc}), so the task is unknown",
                         "point zoo at the directory written by `occam audit make-zoo`") from exc


def register_challenge(spec: ChallengeSpec) -> dict[str, Any]:
    """The audit track's ``register`` hook: validate the zoo and key, split the audit models, return the
    settings to store (zoo_dir, key_path, zoo_id, public_models, private_models)."""
    zoo_dir, key = spec.settings.get("zoo"), spec.settings.get("key")
    if not zoo_dir:
        raise OccamError(f"audit challenge {spec.id!r} names no zoo",
                         'add an [audit] table with zoo = "DIR" (the directory written by `occam audit make-zoo`)')
    zoo = register_zoo(zoo_dir, key)
    if zoo.task != spec.task:
        raise OccamError(f"the zoo was trained on task {zoo.task!r} but the challenge says task = {spec.task!r}",
                         f'set task = "{zoo.task}" (or leave it out: it defaults to the zoo\'s task)')
    pub, priv = split_models(zoo, spec.public_fraction, spec.split_seed)
    for name, half in (("public", pub), ("private", priv)):
        flags = {bool(zoo.key["models"][n]["trojaned"]) for n in half}
        if flags != {True, False}:
            n_troj = sum(bool(zoo.key["models"][n]["trojaned"]) for n in zoo.audit_models)
            raise OccamError(f"the {name} half of the audit models lacks clean or trojaned ones (the audit part has "
                             f"{n_troj} trojaned and {len(zoo.audit_models) - n_troj} clean models)",
                             "build a zoo whose audit part has at least 2 trojaned and 2 clean models, "
                             "or change [split] public_fraction")
    key_path = Path(key) if key else zoo.zoo_dir / "private_key" / "key.json"
    return dict(zoo_dir=str(zoo.zoo_dir.resolve()), key_path=str(key_path.resolve()), zoo_id=zoo.zoo_id,
                public_models=pub, private_models=priv)


@dataclass(frozen=True)
class AuditInfo:
    """An audit challenge's registered zoo. Server-side only: the key path and the two halves are never served."""

    zoo_dir: str
    key_path: str
    zoo_id: str
    public_models: tuple[str, ...]
    private_models: tuple[str, ...]

    @classmethod
    def of(cls, info: ChallengeInfo) -> AuditInfo | None:
        st = info.settings
        if not st.get("zoo_dir") or not st.get("zoo_id"):
            return None
        return cls(str(st["zoo_dir"]), str(st.get("key_path") or ""), str(st["zoo_id"]),
                   tuple(st.get("public_models") or ()), tuple(st.get("private_models") or ()))


def validate_submission(data: bytes, facts: ZooFacts) -> list:
    """Parse an uploaded submission and check everything that needs no key: one row per audit model, no
    unknown or labelled models, triggers of the right shape within the budget. Raises SubmissionError."""
    rows = parse_submission(data, filename="submission")
    audit, labelled = set(facts.audit_models), set(facts.labelled_models)
    budget = default_budget(facts.input_shape)
    for r in rows:
        where = f"row {r.index} (model {r.model!r})"
        if r.model in labelled:
            raise SubmissionError(f"{where}: field 'model' names a model of the labelled part",
                                  "its labels are in labelled.json; submit one row per audit model only")
        if r.model not in audit:
            raise SubmissionError(f"{where}: field 'model' names no model of this zoo",
                                  "use the names of the audit models in manifest.json (split 'audit')")
        if r.mask is not None:
            _check_trigger(r, facts.input_shape, budget)
    missing = sorted(audit - {r.model for r in rows})
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise SubmissionError(f"no row for {len(missing)} audit model(s): {shown}",
                              "add one row per audit model listed in manifest.json (p_trojan is required)")
    return rows


def audit_check(data: bytes, info: ChallengeInfo) -> CheckOutcome:
    """Stage one, in the request: parse and validate (never raises; errors name the row and the field)."""
    a = AuditInfo.of(info)
    if a is None:
        return CheckOutcome(False, f"challenge {info.id!r} has no registered zoo",
                            "organizers: add it with an [audit] table (occam arena challenge add FILE --replace)")
    try:
        facts = zoo_facts(a.zoo_dir, a.zoo_id)
    except OccamError as exc:  # the detail names server paths: it goes to the log, not to the team
        log.error("challenge %s: cannot read the zoo: %s", info.id, exc)
        return CheckOutcome(False, "the server cannot read this challenge's zoo",
                            "tell the organizers (the server log says why); this upload used no quota")
    try:
        rows = validate_submission(data, facts)
    except OccamError as exc:
        return CheckOutcome(False, exc.problem, exc.fix or "see docs/audit.md for the submission format")
    except Exception as exc:  # bad bytes of any kind (NUL bytes, deep nesting, ...) are the file's fault
        return CheckOutcome(False, f"the file cannot be read as CSV or JSON ({type(exc).__name__}: {exc})"[:500],
                            "upload UTF-8 CSV (model,p_trojan,target,mask,pattern) or JSON; see docs/audit.md")
    return CheckOutcome(True, report={"rows": len(rows), "triggers": sum(r.mask is not None for r in rows)})


_REG_LOCK = threading.Lock()


@lru_cache(maxsize=4)
def _registered(zoo_dir: str, key_path: str, zoo_id: str) -> RegisteredZoo:
    zoo = register_zoo(zoo_dir, key_path or None)
    if zoo.zoo_id != zoo_id:
        raise OccamError(f"the zoo on disk is {zoo.zoo_id!r}, the challenge registered {zoo_id!r}",
                         "organizers: restore the registered zoo, or register the new one and rejudge")
    return zoo


def audit_score(data: bytes, info: ChallengeInfo, options: dict[str, Any]) -> dict[str, Any]:
    """Stage two, in the worker (which reads the key): public half rounded, private half exact."""
    a = AuditInfo.of(info)
    if a is None:
        raise OccamError(f"challenge {info.id!r} has no registered zoo", "organizers: register one, then rejudge")
    try:
        with _REG_LOCK:
            zoo = _registered(a.zoo_dir, a.key_path, a.zoo_id)
    except OccamError as exc:  # the detail names server paths (the key's among them): log it, tell the team less
        log.error("challenge %s: cannot load the zoo and key: %s", info.id, exc)
        raise OccamError("the scoring worker cannot load this challenge's zoo (the organizers were told)",
                         "nothing to do: your quota was given back") from exc
    try:
        pub = score_for_leaderboard(zoo, data, models=list(a.public_models), public=True)
        priv = score_for_leaderboard(zoo, data, models=list(a.private_models), public=False)
    except SubmissionError as exc:  # stage one checks the format; what is left is the file's fault
        raise ScoringError(exc.problem, exc.fix) from exc
    if pub.get(PRIMARY) is None or priv.get(PRIMARY) is None:
        raise OccamError("a half of the audit models lacks clean or trojaned ones, so AUROC is undefined",
                         "organizers: register the challenge again (registration refuses such splits), then rejudge")
    private = {k: priv.get(k) for k in SCORE_KEYS} | {"n_models": priv.get("n_models")}  # no per-attack breakdown
    return {
        "nnz": None, "scorer_version": SCORER_VERSION,
        "public_score": pub["auroc"], "public_ce": pub["log_loss"], "public_accuracy": pub["target_accuracy"],
        "private_score": float(priv["auroc"]), "private_ce": float(priv["log_loss"]),
        "private_accuracy": None if priv["target_accuracy"] is None else float(priv["target_accuracy"]),
        "metrics": {"public": pub, "private": private},
    }


_MODEL_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


def zoo_models(files: list[ServedFile]) -> dict[str, ServedFile]:
    """The models of a public index that the Lens opens, by name: every ``.onnx`` entry under its file name
    without the extension (``models/model_0007.onnx`` → ``model_0007``). Names that are not plain (letters,
    digits, '.', '-', '_'; no leading '.') or that two entries share are left out."""
    out: dict[str, ServedFile] = {}
    shared: set[str] = set()
    for f in files:
        base = f.name.rsplit("/", 1)[-1]
        name = base[:-5] if base.endswith(".onnx") else ""
        if not _MODEL_NAME.fullmatch(name):
            continue
        if name in out or name in shared:
            out.pop(name, None)
            shared.add(name)
            continue
        out[name] = f
    return out


# a tiny zoo for the shared track checks (the arena plumbing is under test there, not evasion)
EXAMPLE_ZOO = dict(task="digits", models=12, seed=3, epochs=20, archs=("mlp",), attacks=("badnets",), eval_limit=360,
                   rate=0.2, finetune_steps=40, acc_tol=5.0, max_retries=2, distill=0.0, protocol="joint")

METRIC_LABELS = (("auroc", "AUROC"), ("log_loss", "log-loss"), ("brier", "Brier"),
                 ("target_accuracy", "target accuracy"), ("trigger_success", "trigger success"))


class AuditTrack(Track):
    """Find the trojaned models of a zoo: uploads are prediction files (CSV/JSON), the score is AUROC."""

    name = "audit"
    title = "audit"
    policy = POLICY
    higher_is_better = True
    uploads_models = False
    accept = ".csv,.json"
    default_upload_name = "predictions.csv"
    default_quota = 2  # exact feedback on a few dozen models leaks labels
    settings_table = "audit"
    settings_schema = {"zoo": str, "key": str}
    public_settings = ("zoo_id",)
    board_extra = ("brier", "trigger_success")
    has_pareto = False
    too_large_fix = "leave out inline trigger arrays you do not need"
    refused_by = "the server"
    uses_lam = False
    board_style = "metrics"
    fragments = {slot: f"tracks/audit_{slot}.html" for slot in (
        "facts", "quota", "downloads", "upload_help", "board_caption", "board", "rejected_label", "submission_scores",
        "team_head", "team_cells", "files")}
    reminds_quota = True

    def parse_settings(self, table: Any, *, source: str = "challenge file",  # noqa: ANN401
                       base_dir: Path | None = None) -> dict[str, Any]:
        return parse_settings(table, source=source, base_dir=base_dir)

    def default_task(self, settings: Any) -> str | None:  # noqa: ANN401
        return zoo_task(settings)

    def register(self, spec: ChallengeSpec) -> dict[str, Any]:
        return register_challenge(spec)

    def describe(self, info: ChallengeInfo) -> str:
        st = info.settings
        n_pub, n_priv = len(st.get("public_models") or ()), len(st.get("private_models") or ())
        return (f"challenge [bold]{info.id}[/] ({info.task}, track audit, zoo {st.get('zoo_id')}) saved: "
                f"{n_pub} audit models feed the public board, {n_priv} the private one")

    def check(self, data: bytes, info: ChallengeInfo) -> CheckOutcome:
        return audit_check(data, info)

    def score(self, data: bytes, info: ChallengeInfo, options: dict[str, Any]) -> dict[str, Any]:
        return audit_score(data, info, options)

    def csv_columns(self) -> list[CsvColumn]:
        return [CsvColumn("rank", lambda e: e.rank), CsvColumn("team", lambda e: e.team),
                CsvColumn("submission_id", lambda e: e.submission_id), CsvColumn("auroc", lambda e: num(e.score)),
                CsvColumn("log_loss", lambda e: num(e.ce)), CsvColumn("target_accuracy", lambda e: num(e.accuracy)),
                CsvColumn("brier", lambda e: num(e.extra.get("brier"))),
                CsvColumn("trigger_success", lambda e: num(e.extra.get("trigger_success"))),
                CsvColumn("submitted_at_utc", lambda e: iso(e.submitted_at)),
                CsvColumn("submissions", lambda e: e.submissions),
                CsvColumn("scorer_version", lambda e: e.scorer_version or "")]

    def public_challenge(self, info: ChallengeInfo) -> dict[str, Any]:
        st = info.settings
        n_pub = len(st.get("public_models") or ())
        n_all = n_pub + len(st.get("private_models") or ())
        cid = info.id
        return {"audit": {"zoo_id": st.get("zoo_id"), "audit_models": n_all, "public_board_models": n_pub,
                          "public_decimals": PUBLIC_DECIMALS},
                "links": {"files": f"/api/challenges/{cid}/files", "zip": f"/api/challenges/{cid}/zoo.zip",
                          "files_page": f"/challenges/{cid}/files",
                          "manifest": f"/api/challenges/{cid}/files/manifest.json",
                          "labelled": f"/api/challenges/{cid}/files/labelled.json"}}

    def public_submission(self, metrics: Any, *, scored: bool, private_scored: bool,  # noqa: ANN401
                          show_private: bool) -> dict[str, Any]:
        # the public half's metrics are stored rounded (2 decimals); the private half's only after the reveal
        pub = metrics.get("public") or {}
        out: dict[str, Any] = {"audit_public": {k: pub.get(k) for k in SCORE_KEYS} if scored else None}
        if show_private:
            priv = metrics.get("private") or {}
            out["audit_private"] = {k: priv.get(k) for k in SCORE_KEYS} if private_scored else None
        return out

    def public_files(self, info: ChallengeInfo) -> list[ServedFile] | None:
        a = AuditInfo.of(info)
        if a is None:
            return None
        return public_index(a.zoo_dir, a.zoo_id)

    def files_version(self, info: ChallengeInfo) -> str:
        return str(info.settings.get("zoo_id") or super().files_version(info))

    def files_meta(self, info: ChallengeInfo) -> dict[str, Any]:
        return {"zoo_id": info.settings.get("zoo_id")}

    def lens_models(self, info: ChallengeInfo, files: list[ServedFile]) -> dict[str, ServedFile]:
        return zoo_models(files)

    def lens_task(self, info: ChallengeInfo) -> str:
        a = AuditInfo.of(info)
        if a is None:
            raise OccamError(f"challenge {info.id!r} has no registered zoo", "organizers: register one")
        return zoo_facts(a.zoo_dir, a.zoo_id).task

    def client_upload(self, path: Path, challenge: str) -> ClientUpload:
        return prediction_upload(path, challenge)

    def result_lines(self, sub: Any) -> list[str]:  # noqa: ANN401
        m = sub.get("audit_public") or {}

        def f(key: str) -> str:
            v = m.get(key)
            return "n/a" if v is None else f"{v:.2f}"

        return [f"submission {sub['id']}: public " + ", ".join(f"{label} {f(k)}" for k, label in METRIC_LABELS),
                "(the public half of the audit models, rounded to 2 decimals; the other half decides the final "
                "ranking)"]

    def download_hint(self, out: Path, challenge: str) -> str:
        return (f"next: occam audit baseline meta --zoo {out} --out meta.json && "
                f"occam submit meta.json --challenge {challenge}")

    # ---- fixtures for check_track -------------------------------------------------------------------------
    def example_settings(self, tmp: Path) -> dict[str, Any] | None:
        zoo = tmp / "zoo"
        if not (zoo / "public" / "manifest.json").is_file():
            from occam.audit.zoo import ZooConfig, make_zoo

            make_zoo(ZooConfig(**EXAMPLE_ZOO), zoo, workers=1, allow_leaks=True, progress=False,
                     leak_check_enabled=False)
        return {"zoo": str(zoo)}

    def example_bad_settings(self, tmp: Path) -> list[tuple[dict[str, Any], str]]:
        return [({}, "zoo"), ({"zoo": str(tmp / "zoo"), "colour": "red"}, "colour"), ({"zoo": 3}, "zoo")]

    def example_uploads(self, tmp: Path, info: ChallengeInfo) -> tuple[bytes, list[bytes]]:
        a = AuditInfo.of(info)
        names = sorted((a.public_models if a else ()) + (a.private_models if a else ()))
        good = "model,p_trojan,target\n" + "".join(f"{n},0.5,\n" for n in names)
        return good.encode(), [b"model,p_trojan\nno_such_model,0.5\n", b"\x00\xff" * 10, b"{\"rows\": 3}"]


# ---- the client side (runs on a team's machine) ---------------------------------------------------------------

PREDICTION_SUFFIXES = (".csv", ".json")


def _inline_triggers(rows: list) -> bytes:
    def arr(a: Any) -> Any:  # noqa: ANN401
        return None if a is None else np.round(np.asarray(a, dtype=np.float64), 6).tolist()

    out = [{"model": r.model, "p_trojan": r.p_trojan, "target": r.target, "mask": arr(r.mask),
            "pattern": arr(r.pattern)} for r in rows]
    return json.dumps({"rows": out}, separators=(",", ":")).encode()


def prediction_upload(path: Path, challenge: str) -> ClientUpload:
    """What ``occam submit`` uploads to an audit challenge.

    The file goes up as it is, and the server names any bad row and field. Only when its rows name trigger
    files (``mask``/``pattern`` paths, which the server cannot read) and those load from the file's folder
    are the arrays inlined into a JSON upload (the note says how many rows).
    """
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        raise OccamError(f"challenge {challenge!r} is an audit challenge: it takes a prediction file (CSV or JSON), "
                         f"not a model ({path.name})",
                         "write one row per audit model, e.g. `occam audit baseline meta --zoo DIR --out meta.json` "
                         "(format: docs/audit.md)")
    if suffix not in PREDICTION_SUFFIXES:
        raise OccamError(f"{path.name}: an audit challenge takes a .csv or .json prediction file",
                         "save the predictions as CSV (model,p_trojan,target,mask,pattern) or JSON; see docs/audit.md")
    data = path.read_bytes()
    ctype = "text/csv" if suffix == ".csv" else "application/json"
    try:
        parse_submission(data, filename=path.name)  # as the server reads it: no folder around it
        return ClientUpload(path.name, data, ctype)
    except Exception as exc:  # noqa: BLE001 - the server names the problem; see below
        alone = str(exc)
    try:
        rows = parse_submission(path)  # with its folder: trigger files next to it load
    except Exception as exc:  # noqa: BLE001
        if isinstance(exc, OccamError) and str(exc) != alone:  # a trigger file's own problem: say it here
            raise OccamError(f"{path.name} was not uploaded: {exc.problem}", exc.fix) from exc
        return ClientUpload(path.name, data, ctype)  # the same problem either way: the server names the row and field
    n = sum(r.mask is not None for r in rows)
    return ClientUpload(f"{path.stem}.json", _inline_triggers(rows), "application/json",
                        f"inlined the trigger files of {n} rows into the upload (JSON)" if n else "")
