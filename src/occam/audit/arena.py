"""Library pieces for an ``audit`` challenge in the arena (the server owns storage and HTTP).

The server is expected to:

1. :func:`register_zoo` once, when an organizer adds a zoo: it validates the public part and the
   key and returns a :class:`RegisteredZoo` (what to serve, the audit model names, the key).
2. :func:`split_models` to fix which audit models feed the public leaderboard and which are held
   for the final (private) ranking; store both lists with the challenge.
3. :func:`score_for_leaderboard` on every submission: parse, validate (errors name the row and
   field), score against the key restricted to a subset, and round the public scores.

Nothing here imports a web framework.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from occam.audit.scoring import load_key, parse_submission, score_rows
from occam.audit.zoo import FORMAT, KEY_FORMAT, public_files
from occam.errors import OccamError

PUBLIC_DECIMALS = 2
SCORE_KEYS = ("auroc", "log_loss", "brier", "target_accuracy", "trigger_success")
PRIMARY = "auroc"


@dataclass
class RegisteredZoo:
    zoo_dir: Path
    zoo_id: str
    task: str
    audit_models: list[str]
    labelled_models: list[str]
    files: list[Path] = field(repr=False)  # exactly what may be served (public_files)
    key: dict = field(repr=False)  # never serve this


def register_zoo(zoo_dir: str | Path, key_path: str | Path | None = None) -> RegisteredZoo:
    """Validate a zoo and its key; raises :class:`OccamError` naming the problem."""
    zoo_dir = Path(zoo_dir)
    pub = zoo_dir / "public"
    key_path = Path(key_path) if key_path else zoo_dir / "private_key" / "key.json"
    try:
        manifest = json.loads((pub / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise OccamError(f"{zoo_dir} has no readable public/manifest.json ({exc})",
                         "register the directory written by `occam audit make-zoo`") from exc
    if manifest.get("format") != FORMAT:
        raise OccamError(f"{pub / 'manifest.json'} has format {manifest.get('format')!r}, expected {FORMAT!r}",
                         "rebuild the zoo with this version of occam")
    key = load_key(key_path)
    if key.get("format") != KEY_FORMAT:
        raise OccamError(f"{key_path} has format {key.get('format')!r}, expected {KEY_FORMAT!r}", "pass the zoo's key.json")
    files = public_files(zoo_dir)
    resolved = {p.resolve() for p in files}
    if key_path.resolve() in resolved or any(p.name == "key.json" for p in files):
        raise OccamError(f"the key {key_path} is among the public files", "move the key out of DIR/public")
    if key.get("zoo_id") != manifest.get("zoo_id"):
        raise OccamError(f"the key belongs to zoo {key.get('zoo_id')!r}, the manifest to {manifest.get('zoo_id')!r}",
                         "pass the key written together with this zoo")
    labelled_fields = {"trojaned", "target", "attack", "trigger"}
    audit, labelled = [], []
    digest = hashlib.sha256()
    for m in manifest.get("models", []):
        leaked = labelled_fields & set(m)
        if leaked:
            raise OccamError(f"the public manifest carries label fields {sorted(leaked)} for {m.get('name')}",
                             "rebuild the public part; the manifest must hold no labels")
        path = pub / m["file"]
        if path.resolve() not in resolved:
            raise OccamError(f"model file {path} is missing or not servable", "re-run make-zoo (it resumes) to rewrite it")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
        if m["name"] not in key["models"]:
            raise OccamError(f"the key has no entry for {m['name']}", "pass the key written together with this zoo")
        (audit if m["split"] == "audit" else labelled).append(m["name"])
    if digest.hexdigest()[:16] != manifest["zoo_id"]:
        raise OccamError("the model files do not match the manifest's zoo_id (modified after make-zoo?)",
                         "re-run make-zoo to rebuild the public part")
    ytr = [bool(key["models"][n]["trojaned"]) for n in audit]
    if not audit or all(ytr) or not any(ytr):
        raise OccamError("the audit part needs both clean and trojaned models", "build a larger zoo")
    return RegisteredZoo(zoo_dir=zoo_dir, zoo_id=manifest["zoo_id"], task=manifest["task"], audit_models=sorted(audit),
                         labelled_models=sorted(labelled), files=files, key=key)


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
