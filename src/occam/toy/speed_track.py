"""The contest track "Grok fast" (``grok-speed``): the second format of "Recover the algorithm" (issue #18).

Teams upload a training configuration from a fixed schema (JSON)::

    {"optimizer": "adamw", "lr": 0.003, "weight_decay": 1.0, "betas": [0.9, 0.98], "batch": 0, "width": 128}

(``optimizer`` adamw, adam or sgd; ``batch`` 0 = full batch; ``width`` the hidden layer, at most the challenge's
budget). The worker trains the challenge's model kind on a + b mod p with that configuration on hidden seeds (each
seed draws the train/test split and the initialization) and records the first step at which test accuracy reaches
99 % (checked every ``eval_every`` steps; a run that never does counts ``max_steps + eval_every``). The score is
the median of those steps over the public seeds (the private seeds for the final board); lower is better.
Submissions are data, never code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from occam.arena.tracks.base import ChallengeInfo, CheckOutcome, CsvColumn, Track, iso, num
from occam.errors import OccamError

__all__ = ["GrokSpeedTrack", "parse_config", "steps_to_grok"]

SCORER_VERSION = "grok-speed-1"
OPTIMIZERS = ("adamw", "adam", "sgd")
CONFIG_KEYS = ("optimizer", "lr", "weight_decay", "betas", "batch", "width")
_FIX = ('upload JSON like {"optimizer": "adamw", "lr": 0.003, "weight_decay": 1.0, "betas": [0.9, 0.98], '
        '"batch": 0, "width": 128}')
SETTINGS_DEFAULTS: dict[str, Any] = {"p": 31, "kind": "embed_mlp", "frac_train": 0.7, "max_steps": 2000,
                                     "eval_every": 10, "max_width": 256, "public_seeds": 2, "private_seeds": 3}


def _number(cfg: Mapping[str, Any], key: str, lo: float, hi: float, integer: bool = False) -> Any:
    v = cfg.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or (integer and v != int(v)):
        raise OccamError(f"{key} must be {'an integer' if integer else 'a number'}, got {v!r}", _FIX)
    if not lo <= v <= hi:
        raise OccamError(f"{key} must lie between {lo:g} and {hi:g}, got {v!r}", f"pick a {key} in that range")
    return int(v) if integer else float(v)


def parse_config(data: bytes, max_width: int, n_train: int) -> dict[str, Any]:
    """A submitted configuration, checked against the schema and the budget (OccamError naming the field)."""
    if len(data) > 4096:
        raise OccamError(f"the configuration is {len(data):,} bytes; it fits in a few hundred", _FIX)
    try:
        cfg = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise OccamError("the configuration is not a JSON object", _FIX) from None
    if not isinstance(cfg, dict):
        raise OccamError("the configuration is not a JSON object", _FIX)
    unknown = sorted(set(cfg) - set(CONFIG_KEYS))
    missing = [k for k in CONFIG_KEYS if k not in cfg]
    if unknown or missing:
        raise OccamError(f"the configuration has unknown keys {unknown} or lacks {missing}",
                         f"give exactly: {', '.join(CONFIG_KEYS)}")
    if cfg["optimizer"] not in OPTIMIZERS:
        raise OccamError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {cfg['optimizer']!r}", _FIX)
    betas = cfg["betas"]
    if not (isinstance(betas, list) and len(betas) == 2):
        raise OccamError(f"betas must be a list of two numbers, got {betas!r}", "write e.g. [0.9, 0.98]")
    b = [_number({"betas": x}, "betas", 0.0, 0.9999) for x in betas]
    return {"optimizer": cfg["optimizer"], "lr": _number(cfg, "lr", 1e-6, 1.0),
            "weight_decay": _number(cfg, "weight_decay", 0.0, 10.0), "betas": b,
            "batch": _number(cfg, "batch", 0, n_train, integer=True),
            "width": _number(cfg, "width", 4, max_width, integer=True)}


def steps_to_grok(cfg: Mapping[str, Any], settings: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Train once on ``seed``; the first evaluated step with test accuracy ≥ 99 % (or max_steps + eval_every)."""
    import torch
    import torch.nn.functional as F

    from occam.toy.data import modular_data
    from occam.toy.models import build_model

    torch.manual_seed(seed)
    p, every, max_steps = int(settings["p"]), int(settings["eval_every"]), int(settings["max_steps"])
    data = modular_data(p, "+", float(settings["frac_train"]), seed)
    a, b, y = data.split("train")
    ta, tb, ty = data.split("test")
    extra = {"d_embed": 16} if settings["kind"] == "embed_mlp" else {}
    model = build_model(settings["kind"], p=p, hidden=int(cfg["width"]), **extra)
    params = model.parameters()
    if cfg["optimizer"] == "sgd":
        opt = torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg["betas"][0], weight_decay=cfg["weight_decay"])
    else:
        cls = torch.optim.AdamW if cfg["optimizer"] == "adamw" else torch.optim.Adam
        opt = cls(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"], betas=tuple(cfg["betas"]))
    gen = torch.Generator().manual_seed(seed + 1)
    n, batch = len(y), int(cfg["batch"]) or len(y)
    acc = loss = float("nan")
    for step in range(max_steps + 1):
        if step % every == 0:
            with torch.no_grad():
                logits = model(ta, tb)
                loss = float(F.cross_entropy(logits, ty))
                acc = float((logits.argmax(-1) == ty).float().mean())
            if acc >= 0.99:
                return {"steps": step, "test_loss": loss, "test_acc": acc, "reached": True}
        if step == max_steps:
            break
        idx = torch.randint(n, (batch,), generator=gen) if batch < n else slice(None)
        out = F.cross_entropy(model(a[idx], b[idx]), y[idx])
        if not torch.isfinite(out):
            break
        opt.zero_grad(set_to_none=True)
        out.backward()
        opt.step()
    return {"steps": max_steps + every, "test_loss": loss, "test_acc": acc, "reached": False}


def _seeds(secret: int, n_public: int, n_private: int) -> dict[str, list[int]]:
    import numpy as np

    s = np.random.default_rng(secret).choice(10**6, size=n_public + n_private, replace=False).tolist()
    return {"public": s[:n_public], "private": s[n_public:]}


class GrokSpeedTrack(Track):
    """Grok fast: uploads are training configurations; the score is the median step to 99 % test accuracy."""

    name = "grok-speed"
    title = "Grok fast"
    policy = ("the median training step at which test accuracy first reaches 99 % with your configuration, over "
              "hidden seeds; lower is better")
    higher_is_better = False
    uploads_models = False
    accept = ".json"
    default_upload_name = "config.json"
    default_quota = 3
    settings_table = "grok-speed"
    public_settings = ("p", "kind", "frac_train", "max_steps", "eval_every", "max_width", "public_seeds",
                       "private_seeds")
    board_extra = ("reached",)
    has_pareto = False
    too_large_fix = "upload only the six fields"
    refused_by = "the server"
    uses_lam = False
    board_style = "metrics"
    template_dir = str(Path(__file__).with_name("track_templates"))
    fragments = {slot: f"track:grok-speed/speed_{slot}.html" for slot in
                 ("facts", "upload_help", "board", "submission_scores")}

    def parse_settings(self, table: Any, *, source: str = "challenge file",  # noqa: ANN401
                       base_dir: Path | None = None) -> dict[str, Any]:
        from occam.toy.models import MODULAR_KINDS

        table = dict(table or {})
        keys = (*SETTINGS_DEFAULTS, "seed")
        unknown = sorted(set(table) - set(keys))
        if unknown:
            raise OccamError(f"{source}: unknown key(s) {unknown} in [grok-speed]", f"use only: {', '.join(keys)}")
        if "seed" not in table:
            raise OccamError(f"{source}: [grok-speed] needs a seed (the secret that draws the hidden seeds)",
                             "write seed = 1234 and keep it secret")
        out: dict[str, Any] = {}
        bounds = {"seed": (0, 2**31 - 1), "p": (5, 113), "max_steps": (10, 100_000), "eval_every": (1, 1000),
                  "max_width": (4, 4096), "public_seeds": (1, 25), "private_seeds": (1, 25)}
        for key, (lo, hi) in bounds.items():
            v = table.get(key, SETTINGS_DEFAULTS.get(key))
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise OccamError(f"{source}: [grok-speed] {key} must be an integer between {lo} and {hi}, got {v!r}",
                                 f"write e.g. {key} = {SETTINGS_DEFAULTS.get(key, 1234)}")
            out[key] = v
        if any(out["p"] % k == 0 for k in range(2, int(out["p"] ** 0.5) + 1)):
            raise OccamError(f"{source}: [grok-speed] p must be a prime, got {out['p']}", "write e.g. p = 31")
        frac = table.get("frac_train", SETTINGS_DEFAULTS["frac_train"])
        if isinstance(frac, bool) or not isinstance(frac, int | float) or not 0.05 <= frac <= 0.95:
            raise OccamError(f"{source}: [grok-speed] frac_train must be between 0.05 and 0.95, got {frac!r}",
                             "write e.g. frac_train = 0.7")
        kind = table.get("kind", SETTINGS_DEFAULTS["kind"])
        if kind not in ("onehot_mlp", "embed_mlp") or kind not in MODULAR_KINDS:
            raise OccamError(f"{source}: [grok-speed] kind must be onehot_mlp or embed_mlp, got {kind!r}",
                             'write kind = "embed_mlp"')
        return out | {"frac_train": float(frac), "kind": kind}

    def default_task(self, settings: Any) -> str | None:  # noqa: ANN401
        return "digits"  # every challenge names an occam task; this track trains on its own pairs and ignores it

    def register(self, spec: Any) -> dict[str, Any]:  # noqa: ANN401
        st = dict(spec.settings)
        return st | {"n_train": round(st["frac_train"] * st["p"] ** 2)}

    def check(self, data: bytes, info: ChallengeInfo) -> CheckOutcome:
        st = info.settings
        try:
            cfg = parse_config(data, int(st.get("max_width", 0)), int(st.get("n_train", 0)))
        except OccamError as exc:
            return CheckOutcome(False, exc.problem, exc.fix or _FIX)
        return CheckOutcome(True, report={"config": cfg})

    def score(self, data: bytes, info: ChallengeInfo, options: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        st = info.settings
        cfg = parse_config(data, int(st["max_width"]), int(st["n_train"]))
        seeds = _seeds(int(st["seed"]), int(st["public_seeds"]), int(st["private_seeds"]))
        halves = {}
        for half, ss in seeds.items():
            runs = [steps_to_grok(cfg, st, s) for s in ss]
            halves[half] = {"median_steps": float(np.median([r["steps"] for r in runs])),
                            "steps": [r["steps"] for r in runs], "reached": sum(r["reached"] for r in runs),
                            "test_loss": float(np.median([r["test_loss"] for r in runs])),
                            "test_acc": float(np.median([r["test_acc"] for r in runs])), "n_seeds": len(runs)}
        pub, priv = halves["public"], halves["private"]
        return {"nnz": cfg["width"], "scorer_version": SCORER_VERSION,
                "public_score": pub["median_steps"], "public_ce": pub["test_loss"], "public_accuracy": pub["test_acc"],
                "private_score": priv["median_steps"], "private_ce": priv["test_loss"],
                "private_accuracy": priv["test_acc"], "metrics": {"public": pub, "private": priv}}

    def csv_columns(self) -> list[CsvColumn]:
        return [CsvColumn("rank", lambda e: e.rank), CsvColumn("team", lambda e: e.team),
                CsvColumn("submission_id", lambda e: e.submission_id),
                CsvColumn("median_steps_to_99", lambda e: num(e.score)), CsvColumn("width", lambda e: e.nnz),
                CsvColumn("seeds_reached", lambda e: e.extra.get("reached")),
                CsvColumn("test_loss", lambda e: num(e.ce)), CsvColumn("test_accuracy", lambda e: num(e.accuracy)),
                CsvColumn("submitted_at_utc", lambda e: iso(e.submitted_at)),
                CsvColumn("submissions", lambda e: e.submissions),
                CsvColumn("scorer_version", lambda e: e.scorer_version or "")]

    def public_challenge(self, info: ChallengeInfo) -> dict[str, Any]:
        st = info.settings
        return {"grok_speed": {k: st.get(k) for k in self.public_settings} | {"schema": list(CONFIG_KEYS),
                                                                              "optimizers": list(OPTIMIZERS)}}

    def public_submission(self, metrics: Any, *, scored: bool, private_scored: bool,  # noqa: ANN401
                          show_private: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"grok_speed_public": metrics.get("public") if scored else None}
        if show_private:
            out["grok_speed_private"] = metrics.get("private") if private_scored else None
        return out

    def result_lines(self, sub: Any) -> list[str]:  # noqa: ANN401
        m = sub.get("grok_speed_public") or {}
        return [f"submission {sub['id']}: median {sub['public_score']:.0f} steps to 99 % test accuracy on the public "
                f"seeds ({m.get('reached')} of {m.get('n_seeds')} reached it)"]

    def example_settings(self, tmp: Path) -> dict[str, Any] | None:
        return {"seed": 7, "p": 17, "frac_train": 0.8, "max_steps": 1200, "eval_every": 25, "max_width": 64,
                "public_seeds": 1, "private_seeds": 1}

    def example_bad_settings(self, tmp: Path) -> list[tuple[dict[str, Any], str]]:
        return [({}, "seed"), ({"seed": 1, "colour": 1}, "colour"), ({"seed": 1, "p": 15}, "p"),
                ({"seed": 1, "kind": "transformer"}, "kind"), ({"seed": 1, "max_width": 0}, "max_width")]

    def example_uploads(self, tmp: Path, info: ChallengeInfo) -> tuple[bytes, list[bytes]]:
        good = {"optimizer": "adamw", "lr": 0.01, "weight_decay": 1.0, "betas": [0.9, 0.98], "batch": 0, "width": 64}
        return json.dumps(good).encode(), [json.dumps(good | {"width": 65}).encode(),
                                           json.dumps(good | {"optimizer": "lion"}).encode(),
                                           json.dumps({k: v for k, v in good.items() if k != "lr"}).encode(),
                                           json.dumps(good | {"code": "import os"}).encode(), b"[1, 2]"]
