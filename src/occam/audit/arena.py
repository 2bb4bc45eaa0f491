"""Library pieces for an ``audit`` challenge in the arena (the server owns storage and HTTP).

The server is expected to:

1. :func:`register_zoo` once, when an organizer adds a zoo: it validates the public part and the
   key and returns a :class:`RegisteredZoo` (what to serve, the audit model names, the key).
2. :func:`split_models` to fix which audit models feed the public leaderboard and which are held
   for the final (private) ranking; store both lists with the challenge.
3. :func:`score_for_leaderboard` on every submission: parse, validate (errors name the row and
   field), score against the key restricted to a subset, and round the public scores.

The ``audit`` arena track (registered on import; :mod:`occam.arena.tracks` imports this module
when a challenge uses the track) is built from these: :func:`register_challenge` when an organizer
adds a challenge, :func:`audit_check` in the upload request (parse and validate, no key needed),
:func:`audit_score` in the worker (public half rounded, private half exact). The web process never
reads the key: it serves :func:`public_index` (the allow-list :func:`occam.audit.zoo.public_files`)
and checks uploads against the public manifest (:func:`zoo_facts`).

Nothing here imports a web framework.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from occam.arena.challenges import ChallengeSpec
from occam.arena.tracks import ChallengeInfo, CheckOutcome, Track, register_track
from occam.audit.scoring import (
    SubmissionError,
    _check_trigger,
    default_budget,
    load_key,
    parse_submission,
    score_rows,
)
from occam.audit.zoo import FORMAT, KEY_FORMAT, public_files
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


def _read_manifest(zoo_dir: Path) -> dict:
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
class ServedFile:
    name: str  # path relative to DIR/public, with '/' separators (the download URL's tail)
    path: Path
    size: int
    sha256: str


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
        out.append(ServedFile(p.relative_to(pub).as_posix(), p, len(data), hashlib.sha256(data).hexdigest()))
    return tuple(out)


# ---- the arena track ---------------------------------------------------------------------------

POLICY = ("AUROC of p_trojan over the audit models (higher is better); the public leaderboard scores one half of "
          "them and shows scores rounded to 2 decimals (exact feedback on a few dozen models would leak their "
          "labels); the other half, scored exactly, decides the private leaderboard. Also shown: log-loss "
          "and Brier score of p_trojan, target accuracy and trigger success on the trojaned models.")


def register_challenge(spec: ChallengeSpec) -> dict[str, Any]:
    """The audit track's ``register`` hook: validate the zoo and key, split the audit models, return the columns."""
    if not spec.audit_zoo:
        raise OccamError(f"audit challenge {spec.id!r} names no zoo",
                         'add an [audit] table with zoo = "DIR" (the directory written by `occam audit make-zoo`)')
    zoo = register_zoo(spec.audit_zoo, spec.audit_key)
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
    key_path = Path(spec.audit_key) if spec.audit_key else zoo.zoo_dir / "private_key" / "key.json"
    return dict(audit_zoo_dir=str(zoo.zoo_dir.resolve()), audit_key_path=str(key_path.resolve()),
                audit_zoo_id=zoo.zoo_id, audit_public_models=json.dumps(pub), audit_private_models=json.dumps(priv))


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
    if info.audit is None:
        return CheckOutcome(False, f"challenge {info.id!r} has no registered zoo",
                            "organizers: add it with an [audit] table (occam arena challenge add FILE --replace)")
    try:
        facts = zoo_facts(info.audit.zoo_dir, info.audit.zoo_id)
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
    if info.audit is None:
        raise OccamError(f"challenge {info.id!r} has no registered zoo", "organizers: register one, then rejudge")
    a = info.audit
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


TRACK = register_track(Track(
    name="audit", check=audit_check, score=audit_score, policy=POLICY, higher_is_better=True, uploads_models=False,
    accept=".csv,.json", register=register_challenge,
))
