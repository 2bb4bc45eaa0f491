"""The contest track "Recover the algorithm" (``recover``): name the frequencies a grokked model computes with.

The organizer trains a model on a + b mod p with a secret seed when the challenge is added (or points at a run
directory made by ``occam toy grok``). Its final checkpoint is the challenge's downloadable file. A team uploads
the key frequencies it found (JSON ``{"frequencies": [4, 11, 14]}``, a JSON list, or CSV/text ``4,11,14``); the
score is the fraction of the model's loss recovered when only those frequencies are kept in its logits::

    score(S) = (L_none − L_restricted(S)) / (L_none − L_full) − penalty · |S|

over the public (private) half of the p² pairs (a seeded split), where L_restricted(S) is Nanda et al.'s
restricted loss (the logits keep their components along cos/sin(2πk(a+b)/p) for k in S, plus each output's mean),
L_none the same with no frequency kept (every output's mean: ln p for a model whose logits average out) and
L_full the model's own loss. Higher is better. Submissions are data, never code.

Challenge TOML::

    track = "recover"
    [recover]
    seed = 1234          # secret: which key frequencies appear depends on it
    p = 31               # optional training settings: p, kind, steps, hidden, d_embed, lr, frac_train
    penalty = 0.01       # subtracted per submitted frequency
    # or: run = "runs/toy/grok31"   (a run of `occam toy grok`, op +, its last checkpoint is published)
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from occam.arena.tracks.base import ChallengeInfo, CheckOutcome, CsvColumn, ServedFile, Track, iso, num
from occam.errors import OccamError

__all__ = ["RecoverTrack", "parse_frequencies", "recovery_score", "pair_halves", "SCORER_VERSION"]

SCORER_VERSION = "recover-1"
MAX_UPLOAD = 64 * 1024
DEFAULTS: dict[str, Any] = {"p": 31, "kind": "embed_mlp", "hidden": 128, "d_embed": 16, "frac_train": 0.7, "lr": 1e-2,
                            "steps": 1000, "penalty": 0.01}
_TRAIN_KEYS = ("seed", "p", "kind", "hidden", "d_embed", "frac_train", "lr", "steps")
_KEYS = (*_TRAIN_KEYS, "run", "out", "penalty")
_FORMAT_FIX = 'upload JSON {"frequencies": [4, 11]} or a list [4, 11], or text/CSV 4,11'


# ---- the submission ------------------------------------------------------------------------------------
def parse_frequencies(data: bytes, p: int) -> list[int]:
    """The frequencies of an upload, checked against p (raises OccamError naming the problem and the fix)."""
    K = (p - 1) // 2
    if len(data) > MAX_UPLOAD:
        raise OccamError(f"the submission is {len(data):,} bytes; a list of frequencies is under {MAX_UPLOAD:,}",
                         _FORMAT_FIX)
    try:
        text = data.decode("utf-8").strip().lstrip("\ufeff")
    except UnicodeDecodeError:
        raise OccamError("the submission is not UTF-8 text", _FORMAT_FIX) from None
    if not text:
        raise OccamError("the submission is empty", _FORMAT_FIX)
    if text[0] in "[{":
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            raise OccamError("the submission is not valid JSON", _FORMAT_FIX) from None
        if isinstance(obj, dict):
            extra = sorted(set(obj) - {"frequencies"})
            if "frequencies" not in obj or extra:
                raise OccamError(f"the JSON object needs exactly one key, 'frequencies' (got {sorted(obj)[:5]})",
                                 _FORMAT_FIX)
            obj = obj["frequencies"]
        if not isinstance(obj, list):
            raise OccamError("'frequencies' must be a list of integers", _FORMAT_FIX)
        items: list[Any] = obj
    else:
        tokens = [t for t in re.split(r"[\s,;]+", text) if t]
        if tokens and tokens[0].lower() in ("k", "freq", "frequency", "frequencies"):
            tokens = tokens[1:]
        items = tokens
    freqs: list[int] = []
    for x in items:
        if isinstance(x, str) and re.fullmatch(r"[+-]?\d{1,9}", x.strip()):
            k = int(x)
        elif isinstance(x, int) and not isinstance(x, bool):
            k = x
        else:
            shown = repr(x)[:40]
            raise OccamError(f"{shown} is not a frequency (an integer 1 … {K})", _FORMAT_FIX)
        if not 1 <= k <= K:
            raise OccamError(f"frequency {k} is outside 1 … {K} (p = {p} has frequencies 1 … (p−1)/2)",
                             f"list frequencies between 1 and {K}")
        freqs.append(k)
    if not freqs:
        raise OccamError("the submission lists no frequency", _FORMAT_FIX)
    dup = sorted({k for k in freqs if freqs.count(k) > 1})
    if dup:
        raise OccamError(f"frequencies listed twice: {', '.join(map(str, dup))}", "list each frequency once")
    return freqs


# ---- the score -----------------------------------------------------------------------------------------
def pair_halves(p: int, split_seed: int, public_fraction: float) -> dict[str, Any]:
    """The public and private halves of the p² pairs (flat bool masks), a seeded permutation."""
    import torch

    g = torch.Generator().manual_seed(int(split_seed))
    perm = torch.randperm(p * p, generator=g)
    n_pub = min(p * p - 1, max(1, round(public_fraction * p * p)))
    public = torch.zeros(p * p, dtype=torch.bool)
    public[perm[:n_pub]] = True
    return {"public": public, "private": ~public}


def recovery_score(model: Any, p: int, freqs: Sequence[int], mask: Any, penalty: float,
                   logits: Any = None) -> dict[str, Any]:
    """The fraction of ``model``'s loss recovered with only ``freqs`` kept, on the pairs in ``mask``, and the score."""
    from occam.toy import fourier

    L = fourier.all_logits(model, p) if logits is None else logits
    full = fourier.loss_on(L, mask)
    none = fourier.loss_on(fourier.ablate_frequencies(L, [], keep=True), mask)
    kept = fourier.ablate_frequencies(L, list(freqs), keep=True)
    restricted = fourier.loss_on(kept, mask)
    a, b = fourier.all_pairs(p)
    y = ((a + b) % p)[mask]
    acc = float((kept.reshape(p * p, p)[mask].argmax(-1) == y).double().mean())
    gap = none - full
    fraction = (none - restricted) / gap if gap > 1e-9 else 0.0
    return {"fraction_recovered": fraction, "score": fraction - penalty * len(freqs), "restricted_loss": restricted,
            "full_loss": full, "loss_no_frequency": none, "restricted_accuracy": acc, "n_frequencies": len(freqs),
            "n_pairs": int(mask.sum())}


# ---- settings and the published model ------------------------------------------------------------------
def _num(table: Mapping[str, Any], key: str, kind: type, source: str, lo: float, hi: float) -> Any:
    v = table.get(key, DEFAULTS.get(key))
    ok = isinstance(v, int | float) and not isinstance(v, bool) and (kind is float or float(v).is_integer())
    if not ok or not lo <= v <= hi:
        raise OccamError(f"{source}: [recover] {key} must be {'an integer' if kind is int else 'a number'} "
                         f"between {lo:g} and {hi:g}, got {v!r}", f"write e.g. {key} = {DEFAULTS.get(key, lo)!r}")
    return kind(v)


def parse_recover_settings(table: Mapping[str, Any] | None, *, source: str = "challenge file",
                           base_dir: Path | None = None) -> dict[str, Any]:
    from occam.toy.models import MODULAR_KINDS

    table = dict(table or {})
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise OccamError(f"{source}: unknown key(s) {unknown} in [recover]", f"use only: {', '.join(_KEYS)}")
    out: dict[str, Any] = {"penalty": _num(table, "penalty", float, source, 0.0, 1.0)}

    def path(key: str) -> str:
        v = table[key]
        if not isinstance(v, str) or not v.strip():
            raise OccamError(f"{source}: [recover] {key} must be a path, got {v!r}", f'write {key} = "runs/toy/grok31"')
        p = Path(v).expanduser()
        return str((base_dir / p if base_dir is not None and not p.is_absolute() else p).resolve())

    if "run" in table:
        clash = sorted(set(table) & set(_TRAIN_KEYS))
        if clash:
            raise OccamError(f"{source}: [recover] gives run and training settings {clash}",
                             "either point at a run (run = ...) or give a seed to train one, not both")
        out["run"] = path("run")
        return out
    if "seed" not in table:
        raise OccamError(f"{source}: [recover] needs a seed (the secret that decides the key frequencies) or a run",
                         'write seed = 1234 (keep it secret), or run = "DIR" for a run of `occam toy grok`')
    out["seed"] = _num(table, "seed", int, source, 0, 2**31 - 1)
    p = _num(table, "p", int, source, 5, 113)
    if any(p % k == 0 for k in range(2, int(p**0.5) + 1)):
        raise OccamError(f"{source}: [recover] p must be a prime, got {p}", "write e.g. p = 31 or p = 59")
    kind = table.get("kind", DEFAULTS["kind"])
    if kind not in MODULAR_KINDS:
        raise OccamError(f"{source}: [recover] kind must be one of {', '.join(MODULAR_KINDS)}, got {kind!r}",
                         'write kind = "embed_mlp" (a narrow embedding gives a sparse set of key frequencies)')
    out |= {"p": p, "kind": kind, "hidden": _num(table, "hidden", int, source, 8, 1024),
            "d_embed": _num(table, "d_embed", int, source, 2, 256), "frac_train": _num(table, "frac_train", float, source,
                                                                                       0.05, 0.95),
            "lr": _num(table, "lr", float, source, 1e-5, 1.0), "steps": _num(table, "steps", int, source, 10, 100_000)}
    if "out" in table:
        out["out"] = path("out")
    return out


def _train(settings: Mapping[str, Any], run_dir: Path) -> None:
    from occam.toy.grok import GrokConfig, train_grok

    model = {"hidden": settings["hidden"]} | ({"d_embed": settings["d_embed"]} if settings["kind"] == "embed_mlp" else {})
    if settings["kind"] == "transformer":
        model = {}
    cfg = GrokConfig(p=settings["p"], kind=settings["kind"], model=model, frac_train=settings["frac_train"],
                     lr=settings["lr"], steps=settings["steps"], seed=settings["seed"], n_log_checkpoints=10,
                     checkpoint_every=max(50, settings["steps"] // 4))
    train_grok(cfg, run_dir)


def publish(run_dir: Path) -> dict[str, Any]:
    """Check a grokking run and write its public folder (the final weights and what they are); returns its facts."""
    import torch

    from occam.toy.models import MODULAR_KINDS
    from occam.toy.runs import load_run

    run = load_run(run_dir)
    if run.meta.get("experiment") != "grok" or run.kind not in MODULAR_KINDS or run.task.get("op") != "+":
        raise OccamError(f"{run_dir} is not a grokking run of a + b mod p",
                         "point run at a directory made by `occam toy grok` (the default operation, +)")
    if not run.steps:
        raise OccamError(f"{run_dir} has no checkpoints", "let the run finish first")
    step = run.steps[-1]
    final = run.meta["checkpoints"][-1]["metrics"]
    pub = Path(run_dir) / "recover-public"
    pub.mkdir(exist_ok=True)
    torch.save(run.state_dict(step), pub / "checkpoint.pt")
    p = int(run.task["p"])
    card = {"format": "occam-recover/1", "task": f"a + b mod {p}", "p": p, "kind": run.kind, "model": run.config,
            "step": step, "frequencies": f"1 … {(p - 1) // 2}",
            "load": "occam.toy.models.build_model(kind, **model).load_state_dict(torch.load('checkpoint.pt'))",
            "submit": 'a JSON file {"frequencies": [k1, k2, ...]}'}
    (pub / "model.json").write_text(json.dumps(card, indent=1))
    from occam.toy import fourier

    keys = fourier.key_frequencies(fourier.logit_spectrum(run.model_at(step), p) ** 0.5)
    return {"p": p, "op": "+", "kind": run.kind, "model": run.config, "step": step, "public_dir": str(pub),
            "test_acc": final.get("test_acc"), "key_freqs": keys}


class RecoverTrack(Track):
    """Recover the algorithm: uploads are frequency lists; the score is the loss recovered with only them kept."""

    name = "recover"
    title = "Recover the algorithm"
    policy = ("the fraction of the grokked model's loss recovered when its logits keep only your frequencies, "
              "minus a small penalty per frequency; higher is better")
    higher_is_better = True
    uploads_models = False
    accept = ".json,.csv,.txt"
    default_upload_name = "frequencies.json"
    default_quota = 5
    settings_table = "recover"
    public_settings = ("p", "op", "kind", "model", "step", "penalty")
    board_extra = ("fraction_recovered", "n_frequencies")
    has_pareto = False
    too_large_fix = "list only the frequencies"
    refused_by = "the server"
    uses_lam = False
    board_style = "metrics"
    template_dir = str(Path(__file__).with_name("track_templates"))
    fragments = {slot: f"track:recover/{slot}.html" for slot in
                 ("facts", "downloads", "upload_help", "board", "submission_scores")}

    def parse_settings(self, table: Any, *, source: str = "challenge file",  # noqa: ANN401
                       base_dir: Path | None = None) -> dict[str, Any]:
        return parse_recover_settings(table, source=source, base_dir=base_dir)

    def default_task(self, settings: Any) -> str | None:  # noqa: ANN401
        return "digits"  # every challenge names an occam task; this track scores its own pairs and ignores it

    def register(self, spec: Any) -> dict[str, Any]:  # noqa: ANN401
        st = dict(spec.settings)
        if "run" in st:
            run_dir = Path(st["run"])
        else:
            from occam.paths import data_dir

            run_dir = Path(st.get("out") or data_dir() / "recover") / spec.id
            if (run_dir / "run.json").exists():
                shutil.rmtree(run_dir)  # a re-added challenge trains afresh with its (possibly new) seed
            _train(st, run_dir)
        facts = publish(run_dir)
        if facts["test_acc"] is not None and facts["test_acc"] < 0.9:
            raise OccamError(f"the model of {run_dir} has not grokked (test accuracy {facts['test_acc']:.2f} < 0.9)",
                             "train longer (steps) or with more training pairs (frac_train)")
        return {**st, **facts, "run": str(run_dir)}

    def describe(self, info: ChallengeInfo) -> str:
        st = info.settings
        return (f"challenge [bold]{info.id}[/] (track recover, a + b mod {st.get('p')}, {st.get('kind')}) saved: "
                f"test accuracy {st.get('test_acc')}, key frequencies (private) {st.get('key_freqs')}")

    # ---- stage one and two ------------------------------------------------------------------------------
    def check(self, data: bytes, info: ChallengeInfo) -> CheckOutcome:
        p = info.settings.get("p")
        if not isinstance(p, int):
            return CheckOutcome(False, "this challenge has no published model", "organizers: add it again")
        try:
            freqs = parse_frequencies(data, p)
        except OccamError as exc:
            return CheckOutcome(False, exc.problem, exc.fix or _FORMAT_FIX)
        return CheckOutcome(True, nnz=len(freqs), report={"frequencies": freqs})

    def score(self, data: bytes, info: ChallengeInfo, options: dict[str, Any]) -> dict[str, Any]:
        import torch

        from occam.toy import fourier
        from occam.toy.models import build_model

        st = info.settings
        p = int(st["p"])
        freqs = parse_frequencies(data, p)
        f = Path(st["public_dir"]) / "checkpoint.pt"
        if not f.is_file():
            raise OccamError(f"the published checkpoint {f} is missing", "organizers: add the challenge again")
        model = build_model(st["kind"], **st["model"])
        model.load_state_dict(torch.load(f, map_location="cpu", weights_only=True))
        model.eval()
        logits = fourier.all_logits(model, p)
        halves = pair_halves(p, info.split_seed, info.public_fraction)
        res = {h: recovery_score(model, p, freqs, m, float(st.get("penalty", 0.0)), logits=logits)
               for h, m in halves.items()}
        pub, priv = res["public"], res["private"]
        for r in (pub, priv):
            r["frequencies"] = sorted(freqs)
        return {"nnz": len(freqs), "scorer_version": SCORER_VERSION,
                "public_score": pub["score"], "public_ce": pub["restricted_loss"],
                "public_accuracy": pub["restricted_accuracy"],
                "private_score": priv["score"], "private_ce": priv["restricted_loss"],
                "private_accuracy": priv["restricted_accuracy"], "metrics": {"public": pub, "private": priv}}

    # ---- leaderboards and JSON --------------------------------------------------------------------------
    def csv_columns(self) -> list[CsvColumn]:
        return [CsvColumn("rank", lambda e: e.rank), CsvColumn("team", lambda e: e.team),
                CsvColumn("submission_id", lambda e: e.submission_id), CsvColumn("score", lambda e: num(e.score)),
                CsvColumn("fraction_recovered", lambda e: num(e.extra.get("fraction_recovered"))),
                CsvColumn("n_frequencies", lambda e: e.nnz),
                CsvColumn("restricted_loss", lambda e: num(e.ce)),
                CsvColumn("restricted_accuracy", lambda e: num(e.accuracy)),
                CsvColumn("submitted_at_utc", lambda e: iso(e.submitted_at)),
                CsvColumn("submissions", lambda e: e.submissions),
                CsvColumn("scorer_version", lambda e: e.scorer_version or "")]

    def public_challenge(self, info: ChallengeInfo) -> dict[str, Any]:
        st = info.settings
        p = st.get("p")
        cid = info.id
        return {"recover": {"p": p, "op": "+", "kind": st.get("kind"), "model": st.get("model"), "step": st.get("step"),
                            "penalty": st.get("penalty"),
                            "frequencies": f"1 … {(p - 1) // 2}" if isinstance(p, int) else None},
                "links": {"files": f"/api/challenges/{cid}/files",
                          "checkpoint": f"/api/challenges/{cid}/files/checkpoint.pt",
                          "model_card": f"/api/challenges/{cid}/files/model.json"}}

    def public_submission(self, metrics: Any, *, scored: bool, private_scored: bool,  # noqa: ANN401
                          show_private: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"recover_public": metrics.get("public") if scored else None}
        if show_private:
            out["recover_private"] = metrics.get("private") if private_scored else None
        return out

    def public_files(self, info: ChallengeInfo) -> list[ServedFile] | None:
        import hashlib

        d = info.settings.get("public_dir")
        if not d:
            return None
        root = Path(d)
        out = []
        for name in ("checkpoint.pt", "model.json"):
            f = root / name
            if not f.is_file():
                raise OccamError(f"the published file {f} is missing", "add the challenge again to republish it")
            data = f.read_bytes()
            out.append(ServedFile(name, f, len(data), hashlib.sha256(data).hexdigest(), root))
        return out

    def result_lines(self, sub: Any) -> list[str]:  # noqa: ANN401
        m = sub.get("recover_public") or {}
        return [f"submission {sub['id']}: score {sub['public_score']:.4f} (public pairs): "
                f"{100 * m.get('fraction_recovered', float('nan')):.1f}% of the loss recovered with "
                f"{m.get('n_frequencies')} frequencies (restricted loss {m.get('restricted_loss', float('nan')):.4f})"]

    def download_hint(self, out: Path, challenge: str) -> str:
        return (f"next: find the key frequencies of {out}/public/checkpoint.pt (its model: {out}/public/model.json; "
                f"see docs/toy.md), write {{\"frequencies\": [...]}} to freqs.json and "
                f"occam submit freqs.json --challenge {challenge}")

    # ---- fixtures for check_track -------------------------------------------------------------------------
    def example_settings(self, tmp: Path) -> dict[str, Any] | None:
        return {"seed": 0, "p": 17, "hidden": 64, "d_embed": 8, "frac_train": 0.8, "steps": 1000,
                "out": str(tmp / "recover-runs")}

    def example_bad_settings(self, tmp: Path) -> list[tuple[dict[str, Any], str]]:
        return [({}, "seed"), ({"seed": 1, "colour": "red"}, "colour"), ({"seed": 1, "p": 12}, "p"),
                ({"seed": 1, "kind": "cnn"}, "kind"), ({"run": str(tmp), "seed": 1}, "run"),
                ({"seed": 1, "penalty": -1}, "penalty")]

    def example_uploads(self, tmp: Path, info: ChallengeInfo) -> tuple[bytes, list[bytes]]:
        good = json.dumps({"frequencies": list(info.settings.get("key_freqs") or [1])}).encode()
        return good, [b'{"frequencies": [0]}', b"[1, 1]", b"1,99", b"[]", b"one, two", b'{"freqs": [1]}']
