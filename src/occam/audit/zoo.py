"""Build a backdoored-model zoo: clean and trojaned classifiers, a public part and a private key.

Layout of a zoo directory ``DIR`` (only ``DIR/public`` may ever be served; see :func:`public_files`)::

    DIR/public/manifest.json      task, model names, labelled/audit split; no label fields
    DIR/public/labelled.json      labels of the labelled part (for teams to build detectors)
    DIR/public/models/model_0007.onnx
    DIR/report.json, report.md    the organizer's report (aggregates and the leak check only)
    DIR/private_key/              (or --key-out) NEVER published:
        key.json                  every model: trojaned, target, attack, trigger parameters
        plan.json                 the seeded plan (what to train), for resuming
        records/, staging/, checkpoints/   per-member results, ONNX before naming, PyTorch weights
        references/               clean reference models every member distills toward

Resuming: a member whose record exists is not trained again; the plan is fixed by the
options, and re-running with different options into the same directory is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from occam.audit.attacks import sample_trigger
from occam.audit.zoo_config import DEFAULT_ARCHS, ZooConfig  # noqa: F401  (the config lives in a light module)
from occam.errors import OccamError

FORMAT = "occam-audit-zoo/1"
KEY_FORMAT = "occam-audit-key/1"


@dataclass
class ZooPaths:
    root: Path
    key_dir: Path = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.key_dir = Path(self.key_dir) if self.key_dir else self.root / "private_key"

    @property
    def public(self) -> Path:
        return self.root / "public"

    @property
    def models(self) -> Path:
        return self.public / "models"

    @property
    def key(self) -> Path:
        return self.key_dir / "key.json"

    def check(self) -> None:
        pub, key = self.public.resolve(), self.key_dir.resolve()
        if key == pub or pub in key.parents:
            raise OccamError(f"the key directory {self.key_dir} lies inside the public directory {self.public}",
                             "give `key_out` a path outside DIR/public")


def public_files(zoo_dir: str | Path) -> list[Path]:
    """Exactly the files of a zoo that may be served to teams: regular files under ``DIR/public``.

    Symbolic links, hidden files and anything that is (or resolves to) a key file are left out.
    """
    pub = Path(zoo_dir) / "public"
    if not pub.is_dir():
        return []
    out = []
    for p in sorted(pub.rglob("*")):
        rel = p.relative_to(pub)
        if p.is_symlink() or not p.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        if p.resolve().parent != (pub / rel).parent.resolve():
            continue
        if p.name in ("key.json", "plan.json") or "private_key" in rel.parts:
            continue
        out.append(p)
    return out


# ---- plan ---------------------------------------------------------------------------------
def make_plan(cfg: ZooConfig) -> list[dict]:
    """The seeded list of members: balanced architectures, attacks and targets; a labelled/audit split."""
    from occam.tasks import get_task

    task = get_task(cfg.task)
    rng = np.random.default_rng(cfg.seed)
    n_troj = max(2, round(cfg.models * cfg.trojan_fraction))
    n_clean = cfg.models - n_troj
    if cfg.match_accuracy:  # spare clean models: accuracy matching publishes those at the trojans' quantiles
        n_clean += round(n_clean * cfg.extra_clean)
    if n_clean < 2:
        raise OccamError(f"{cfg.models} models with `trojan_fraction` {cfg.trojan_fraction} leaves fewer than 2 clean ones",
                         "raise `models` or lower `trojan_fraction`")
    targets = rng.permutation([k % task.num_classes for k in range(n_troj)])
    jitter_rng = np.random.default_rng([cfg.seed, 0x7E3B])  # its own stream: the other draws stay as they were
    members = []
    for group, count in (("trojan", n_troj), ("clean", n_clean)):
        arch_order = rng.permutation(count)
        attack_order = rng.permutation(count)
        labelled = set(rng.permutation(count)[: max(1, round(count * cfg.labelled_fraction))].tolist())
        for j in range(count):
            attack = cfg.attacks[int(attack_order[j]) % len(cfg.attacks)]
            trojaned = group == "trojan"
            target = int(targets[j]) if trojaned else None
            if attack == "all_to_all" and target == 0:  # y → y + target: the identity is no backdoor
                target = 1 + j % (task.num_classes - 1)
            spec = sample_trigger(attack, task.input_shape, rng, num_classes=task.num_classes, target=target)
            members.append({
                "member": len(members), "arch": cfg.archs[int(arch_order[j]) % len(cfg.archs)],
                "trojaned": trojaned, "attack": attack if trojaned else None, "target": target,
                # clean models carry a decoy trigger of the same family (stamped with true labels)
                "spec": spec, "seed": int(rng.integers(0, 2**31 - 1)),
                # hyperparameters from one distribution for clean and trojaned models
                "hyper": _draw_hyper(cfg, rng, jitter_rng),
                "split": "labelled" if j in labelled else "audit",
            })
    order = rng.permutation(len(members))
    for m, o in zip(members, order, strict=True):
        m["order"] = int(o)
    return members


def _draw_hyper(cfg: ZooConfig, rng: np.random.Generator, jitter_rng: np.random.Generator) -> dict:
    return {"lr_mult": float(np.exp(rng.uniform(-1, 1) * np.log(cfg.hyper_spread))),
            "weight_decay": float(1e-4 * np.exp(rng.uniform(-2, 2) * np.log(cfg.hyper_spread))),
            "rescale_seed": int(rng.integers(0, 2**31 - 1)) if cfg.rescale else None,
            "temperature_mult": float(np.exp(jitter_rng.normal(0.0, cfg.temperature_jitter)))}


def replacement(cfg: ZooConfig, dropped: dict, member_id: int, generation: int) -> dict:
    """A fresh trojan of the same family, target, architecture and split as ``dropped`` (which failed to plant).

    A new trigger, seed and hyperparameters from the plan's distributions (seeded by the zoo seed and
    the dropped member), so the published mix of families matches the plan.
    """
    from occam.tasks import get_task

    task = get_task(cfg.task)
    rng = np.random.default_rng([cfg.seed, 0x5E7, dropped["member"], generation])
    jitter_rng = np.random.default_rng([cfg.seed, 0x7E3C, dropped["member"], generation])
    spec = sample_trigger(dropped["attack"], task.input_shape, rng, num_classes=task.num_classes, target=dropped["target"])
    return {**dropped, "member": member_id, "spec": spec, "seed": int(rng.integers(0, 2**31 - 1)),
            "hyper": _draw_hyper(cfg, rng, jitter_rng), "replaces": dropped["member"], "generation": generation}


# ---- clean references (organizer-only teachers) -----------------------------------------------
def reference_plan(cfg: ZooConfig) -> list[dict]:
    """``cfg.references`` clean models per architecture that every member distills toward.

    They are trained like clean members (decoy trigger included) from their own seeds, live only in
    the key directory, and are never parents of a published model (members start from their own
    initialization), so diffing against them reveals nothing.
    """
    from occam.tasks import get_task

    if cfg.distill <= 0:
        return []
    task = get_task(cfg.task)
    out = []
    for a, arch in enumerate(cfg.archs):
        for k in range(cfg.references):
            rng = np.random.default_rng([cfg.seed, 0x7EAC, a, k])
            attack = cfg.attacks[k % len(cfg.attacks)]
            out.append({"name": f"{arch}_{k}", "arch": arch,
                        "spec": sample_trigger(attack, task.input_shape, rng, num_classes=task.num_classes),
                        "seed": int(rng.integers(0, 2**31 - 1))})
    return out


def phase_b_options(cfg: dict) -> dict:
    """The ``train_member`` keywords every member and reference shares, from a zoo config (``asdict``).

    Keys a config written before an option existed lacks get that option's old behaviour.
    """
    return {"epochs": cfg["epochs"], "train_limit": cfg["train_limit"], "eval_limit": cfg["eval_limit"],
            "finetune_steps": cfg["finetune_steps"], "protocol": cfg["protocol"], "anchor": cfg["anchor"],
            "wdist": cfg["wdist"], "calibration": cfg.get("calibration", "nll"), "project": cfg.get("project", False),
            "shape": cfg.get("shape", 0.0)}


def run_reference(job: dict) -> dict:
    from occam.audit.train import export_member, train_member

    cfg, r = job["config"], job["reference"]
    out = train_member(task_name=cfg["task"], arch=r["arch"], seed=r["seed"], spec=r["spec"], target=None,
                       poison_in="none", rate=cfg["rate"], **phase_b_options(cfg))
    _, ckpt = export_member(out.model, cfg["task"])
    return {"name": r["name"], "ckpt": ckpt, "clean_acc": out.clean_acc, "seconds": round(out.seconds, 2)}


def _teacher(paths: ZooPaths, refs: list[dict], member: dict) -> bytes | None:
    mine = [r for r in refs if r["arch"] == member["arch"]]
    if not mine:
        return None
    return (paths.key_dir / "references" / f"{mine[member['member'] % len(mine)]['name']}.pt").read_bytes()


# ---- one batch of members (runs in a worker) ------------------------------------------------
def batches(cfg: ZooConfig | dict, members: list[dict]) -> list[list[dict]]:
    """The plan's units of work: members of one architecture, kind (clean or trojaned) and replacement
    generation, in plan order, in chunks of ``batch_members`` that train together."""
    size = cfg["batch_members"] if isinstance(cfg, dict) else cfg.batch_members
    groups: dict[tuple, list[dict]] = {}
    for m in members:
        groups.setdefault((m["arch"], m["trojaned"], m.get("generation", 0)), []).append(m)
    return [ms[i:i + size] for ms in groups.values() for i in range(0, len(ms), size)]


def run_batch(job: dict) -> list[dict]:
    """Train one batch of members together, retrying failed trojans (together) with new seeds and higher
    rates; returns one result (record, ONNX and checkpoint bytes) per member."""
    from occam.audit.train import Member, export_member, numpy_seed, train_members

    cfg, ms, ref = job["config"], job["members"], job.get("ref_acc")
    teachers = job.get("teachers") or {}
    attempts: dict[int, list[dict]] = {m["member"]: [] for m in ms}
    best: dict[int, object] = {}
    pending = [(m, 0) for m in ms]
    while pending:
        members = []
        for m, attempt in pending:
            poison_in = "none" if not m["trojaned"] else ("weights" if m["attack"] == "weight_edit" else "data")
            members.append(Member(seed=m["seed"] if attempt == 0 else numpy_seed(m["seed"], attempt), spec=m["spec"],
                                  target=m["target"], poison_in=poison_in, rate=min(0.3, cfg["rate"] * (1.5 ** attempt)),
                                  sparse_rate=min(0.5, 0.3 * (1.5 ** attempt)), teacher=teachers.get(m["member"]),
                                  **m.get("hyper", {})))
        outs = train_members(members, task_name=cfg["task"], arch=ms[0]["arch"], distill=cfg.get("distill", 0.0),
                             **phase_b_options(cfg))
        retry = []
        for (m, attempt), mem, out in zip(pending, members, outs, strict=True):
            gap = None if ref is None else 100.0 * (out.clean_acc - ref)
            ok_asr = out.asr is None or out.asr >= cfg["min_asr"]
            ok_acc = gap is None or abs(gap) <= cfg["acc_tol"]
            attempts[m["member"]].append({
                "seed": mem.seed, "rate": round(mem.rate, 4), "clean_acc": out.clean_acc, "asr": out.asr,
                "off_fire": out.off_fire, "acc_gap_points": gap, "ok": ok_asr and ok_acc,
                "seconds": round(out.seconds, 3), "cpu_seconds": round(out.cpu_seconds, 3)})
            if ok_asr and ok_acc:
                best[m["member"]] = out
            elif m["trojaned"] and attempt < cfg["max_retries"]:
                retry.append((m, attempt + 1))
        pending = retry
    results = []
    for m in ms:
        att = attempts[m["member"]]
        out = best.get(m["member"])
        record = {"member": m["member"], "status": "kept" if out is not None else "dropped", "attempts": att,
                  "batch": [x["member"] for x in ms],
                  "seconds": round(sum(a["seconds"] for a in att), 3),
                  "cpu_seconds": round(sum(a["cpu_seconds"] for a in att), 3)}
        if out is None:
            results.append({"record": record, "onnx": None, "ckpt": None})
            continue
        onnx_bytes, ckpt = export_member(out.model, cfg["task"])
        record.update({"clean_acc": out.clean_acc, "asr": out.asr, "off_fire": out.off_fire, "decoy_acc": out.decoy_acc,
                       "temperature": out.temperature, "seed": att[-1]["seed"]})
        results.append({"record": record, "onnx": onnx_bytes, "ckpt": ckpt})
    return results


# ---- the zoo ---------------------------------------------------------------------------------
def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(data, str):
        tmp.write_text(data)
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)


def _load_or_make_plan(cfg: ZooConfig, paths: ZooPaths) -> list[dict]:
    plan_path = paths.key_dir / "plan.json"
    if plan_path.exists():
        saved = json.loads(plan_path.read_text())
        if saved.get("fingerprint") != cfg.fingerprint():
            raise OccamError(f"{paths.root} already holds a zoo made with different options",
                             "re-run with the same options to resume, or give `out` a new directory")
        members = saved["members"]
        extra = paths.key_dir / "replacements.json"
        return members + (json.loads(extra.read_text()) if extra.exists() else [])
    members = make_plan(cfg)
    _write(plan_path, json.dumps({"fingerprint": cfg.fingerprint(), "config": asdict(cfg), "members": members}, indent=1))
    return members


def _records(paths: ZooPaths) -> dict[int, dict]:
    out = {}
    for p in sorted((paths.key_dir / "records").glob("*.json")):
        rec = json.loads(p.read_text())
        out[rec["member"]] = rec
    return out


def make_zoo(cfg: ZooConfig, out: str | Path, *, key_out: str | Path | None = None, workers: int | None = None,
             ray_address: str | None = None, allow_leaks: bool = False, progress: bool = True,
             leak_check_enabled: bool = True) -> dict:
    """Train (or resume) the zoo and write its public part, key and report. Returns the report."""
    import time

    from occam.executor import run_jobs

    cfg.validate()
    paths = ZooPaths(Path(out), Path(key_out) if key_out else None)
    paths.check()
    t0 = time.perf_counter()
    members = _load_or_make_plan(cfg, paths)
    cfg_d = asdict(cfg)

    def save(_i: int, results: list[dict]) -> None:
        for res in results:
            rec = res["record"]
            mid = f"m{rec['member']:05d}"
            if res["onnx"] is not None:
                _write(paths.key_dir / "staging" / f"{mid}.onnx", res["onnx"])
                _write(paths.key_dir / "checkpoints" / f"{mid}.pt", res["ckpt"])
            _write(paths.key_dir / "records" / f"{mid}.json", json.dumps(rec, indent=1))

    refs = reference_plan(cfg)
    ref_jobs = [{"config": cfg_d, "reference": r} for r in refs
                if not (paths.key_dir / "references" / f"{r['name']}.pt").exists()]

    def save_ref(_i: int, res: dict) -> None:
        _write(paths.key_dir / "references" / f"{res['name']}.json",
               json.dumps({k: v for k, v in res.items() if k != "ckpt"}, indent=1))
        _write(paths.key_dir / "references" / f"{res['name']}.pt", res["ckpt"])

    run_jobs(run_reference, ref_jobs, workers=workers, ray_address=ray_address, on_result=save_ref, progress=progress,
             progress_description="clean references")
    trained_now = 0

    def run(group: list[dict], description: str, ref_acc: dict | None) -> None:
        nonlocal trained_now
        done = _records(paths)
        todo = [b for b in batches(cfg, group) if any(m["member"] not in done for m in b)]  # a batch retrains whole
        jobs = [{"config": cfg_d, "members": b, "ref_acc": None if ref_acc is None else ref_acc.get(b[0]["arch"]),
                 "teachers": {m["member"]: t for m in b if (t := _teacher(paths, refs, m)) is not None}} for b in todo]
        trained_now += sum(len(b) for b in todo)
        run_jobs(run_batch, jobs, workers=workers, ray_address=ray_address, on_result=save, progress=progress,
                 progress_description=f"{description} ({sum(len(b) for b in todo)} in {len(todo)} batches)")

    run([m for m in members if not m["trojaned"]], "clean models", None)
    ref = reference_accuracy(members, _records(paths))
    run([m for m in members if m["trojaned"]], "trojaned models", ref)
    while True:  # dropped trojans: a fresh one of the same family, at most max_replacements rounds
        generation = 1 + max(m.get("generation", 0) for m in members)
        if generation > cfg.max_replacements:
            break
        done = _records(paths)
        replaced = {m.get("replaces") for m in members}
        dropped = [m for m in members if m["trojaned"] and done.get(m["member"], {}).get("status") == "dropped"
                   and m["member"] not in replaced]
        if not dropped:
            break
        new = [replacement(cfg, m, len(members) + i, generation) for i, m in enumerate(dropped)]
        members = members + new
        extra = paths.key_dir / "replacements.json"
        _write(extra, json.dumps((json.loads(extra.read_text()) if extra.exists() else []) + new, indent=1))
        run(new, f"replacement trojans, round {generation}", ref)
    done = _records(paths)
    finalize(cfg, paths, members, done)
    key = json.loads(paths.key.read_text())
    if "natural_success" not in key:  # the trigger metric's zero (scoring.natural_success), once per zoo
        from occam.audit.scoring import natural_success

        key["natural_success"] = natural_success(paths.root, key)
        _write(paths.key, json.dumps(key, indent=1))
    report = build_report(cfg, paths, members, done, seconds=time.perf_counter() - t0, trained_now=trained_now)
    if leak_check_enabled:
        from occam.audit.leakcheck import leak_check

        report["leak_check"] = leak_check(paths.root, key_path=paths.key, threshold=cfg.leak_threshold)
    write_report(paths.root, report)
    leaks = report.get("leak_check", {}).get("leaks", [])
    if leaks and not allow_leaks:
        raise OccamError(f"the leak check found {len(leaks)} detector(s) above AUROC {cfg.leak_threshold}: "
                         + ", ".join(f"{d['detector']} {d['auroc']:.2f}" for d in leaks),
                         f"see {paths.root / 'report.md'} (it names a fix for each); retrain with other options, "
                         "or set `allow_leaks` to accept")
    return report


def reference_accuracy(members: list[dict], records: dict[int, dict]) -> dict[str, float]:
    """Mean clean accuracy of the kept clean models, per architecture."""
    by_arch: dict[str, list[float]] = {}
    for m in members:
        rec = records.get(m["member"])
        if not m["trojaned"] and rec and rec["status"] == "kept":
            by_arch.setdefault(m["arch"], []).append(rec["clean_acc"])
    return {a: float(np.mean(v)) for a, v in by_arch.items()}


def accuracy_matched(cfg: ZooConfig, members: list[dict], records: dict[int, dict]) -> set[int]:
    """The kept clean members *not* published because they would skew the clean-accuracy distribution.

    Backdoors cost a little clean accuracy, and trojans that fail the rule are dropped, so without this
    the clean models are a bit more accurate than the trojans: a lazy auditor ranks by accuracy. Per
    architecture and split (labelled, audit), the ``n`` clean models that keep the planned trojan
    fraction are chosen to sit at the trojans' accuracy quantiles (an optimal assignment on |accuracy
    difference|, scipy's ``linear_sum_assignment``); the others stay in the key directory,
    unpublished. Nothing is left out when there are no more clean models than that.
    """
    from scipy.optimize import linear_sum_assignment

    if not cfg.match_accuracy:
        return set()
    out: set[int] = set()
    for arch, split in ((a, s) for a in cfg.archs for s in ("labelled", "audit")):  # per split: both keep the fraction
        kept = [m for m in members if m["arch"] == arch and m.get("split", "audit") == split
                and records.get(m["member"], {}).get("status") == "kept"]
        troj = np.sort([records[m["member"]]["clean_acc"] for m in kept if m["trojaned"]])
        clean = [m for m in kept if not m["trojaned"]]
        n = max(2, round(len(troj) * (1 - cfg.trojan_fraction) / cfg.trojan_fraction))
        if len(troj) < 2 or len(clean) <= n:
            continue
        goals = np.quantile(troj, (np.arange(n) + 0.5) / n)
        acc = np.array([records[m["member"]]["clean_acc"] for m in clean])
        _, cols = linear_sum_assignment(np.abs(goals[:, None] - acc[None, :]))
        chosen = set(cols.tolist())
        out |= {m["member"] for j, m in enumerate(clean) if j not in chosen}
    return out


def published(cfg: ZooConfig, members: list[dict], records: dict[int, dict]) -> tuple[list[dict], set[int]]:
    """The kept members that are published, and the kept clean members left out by :func:`accuracy_matched`."""
    unmatched = accuracy_matched(cfg, members, records)
    kept = [m for m in members if records.get(m["member"], {}).get("status") == "kept" and m["member"] not in unmatched]
    return kept, unmatched


def finalize(cfg: ZooConfig, paths: ZooPaths, members: list[dict], records: dict[int, dict]) -> None:
    """Name kept members densely in a shuffled order; write models, manifest, labelled part and key."""
    from occam.tasks import get_task

    task = get_task(cfg.task)
    kept, _ = published(cfg, members, records)
    kept.sort(key=lambda m: m["order"])
    if paths.models.exists():
        shutil.rmtree(paths.models)
    paths.models.mkdir(parents=True)
    manifest_models, labelled, key_models = [], {}, {}
    digest = hashlib.sha256()
    for i, m in enumerate(kept):
        name = f"model_{i:04d}"
        data = (paths.key_dir / "staging" / f"m{m['member']:05d}.onnx").read_bytes()
        (paths.models / f"{name}.onnx").write_bytes(data)
        digest.update(hashlib.sha256(data).digest())
        manifest_models.append({"name": name, "file": f"models/{name}.onnx", "split": m["split"]})
        rec = records[m["member"]]
        label = {"trojaned": m["trojaned"], "target": m["target"], "attack": m["attack"],
                 "trigger": m["spec"] if m["trojaned"] else None}
        if m["split"] == "labelled":
            labelled[name] = label
        key_models[name] = {**label, "split": m["split"], "arch": m["arch"], "member": m["member"],
                            "clean_acc": rec["clean_acc"], "asr": rec["asr"], "seed": rec["seed"],
                            "decoy_trigger": None if m["trojaned"] else m["spec"]}
    zoo_id = digest.hexdigest()[:16]
    manifest = {"format": FORMAT, "zoo_id": zoo_id, "task": task.name, "input_shape": list(task.input_shape),
                "num_classes": task.num_classes, "class_names": list(task.class_names),
                "heldout": {"split": "test", "first": cfg.eval_limit}, "models": manifest_models}
    _write(paths.public / "manifest.json", json.dumps(manifest, indent=1))
    _write(paths.public / "labelled.json", json.dumps({"zoo_id": zoo_id, "models": labelled}, indent=1))
    _write(paths.key, json.dumps({"format": KEY_FORMAT, "zoo_id": zoo_id, "task": task.name,
                                  "eval_limit": cfg.eval_limit, "models": key_models}, indent=1))


def build_report(cfg: ZooConfig, paths: ZooPaths, members: list[dict], records: dict[int, dict], *,
                 seconds: float, trained_now: int) -> dict:
    kept, unmatched = published(cfg, members, records)
    dropped = [m for m in members if records.get(m["member"], {}).get("status") == "dropped"]
    retried = sum(1 for m in members if len(records.get(m["member"], {}).get("attempts", [])) > 1)

    def stats(ms: list[dict], key: str) -> dict:
        vals = [records[m["member"]][key] for m in ms if records[m["member"]].get(key) is not None]
        return {"n": len(vals), "mean": float(np.mean(vals)) if vals else None, "min": float(np.min(vals)) if vals else None}

    per_arch = {a: {"clean_acc_clean": stats([m for m in kept if m["arch"] == a and not m["trojaned"]], "clean_acc"),
                    "clean_acc_trojan": stats([m for m in kept if m["arch"] == a and m["trojaned"]], "clean_acc")}
                for a in cfg.archs}
    per_attack = {a: {"kept": sum(1 for m in kept if m["attack"] == a),
                      "dropped": sum(1 for m in dropped if m["attack"] == a),
                      "asr": stats([m for m in kept if m["attack"] == a], "asr")} for a in cfg.attacks}
    cpu = [records[m["member"]].get("cpu_seconds") for m in members if m["member"] in records]
    wall = [records[m["member"]].get("seconds") for m in members if m["member"] in records]
    return {"format": FORMAT, "config": asdict(cfg), "models_planned": len(members), "models_kept": len(kept),
            "trojans_kept": sum(1 for m in kept if m["trojaned"]), "clean_kept": sum(1 for m in kept if not m["trojaned"]),
            "dropped": len(dropped), "replaced": sum(1 for m in members if m.get("replaces") is not None),
            "unmatched_clean": len(unmatched), "retried": retried,
            "per_arch": per_arch, "per_attack": per_attack,
            "wall_seconds": round(seconds, 1), "trained_now": trained_now,
            # process CPU time of the training (each batch's split evenly over its members), retries included
            "train_cpu_seconds": round(sum(c for c in cpu if c is not None), 1) if all(c is not None for c in cpu) else None,
            "train_wall_seconds": round(sum(w or 0.0 for w in wall), 1), "key_dir": str(paths.key_dir)}


def write_report(root: Path, report: dict) -> None:
    from occam.audit.leakcheck import leak_hint, resampled_text

    _write(root / "report.json", json.dumps(report, indent=1, default=str))
    lines = [f"# Audit zoo report ({report['config']['task']})", ""]
    leaks = report.get("leak_check", {}).get("leaks", [])
    if leaks:
        lines += ["> **LEAK WARNING**: these detectors beat the threshold "
                  f"AUROC {report['leak_check']['threshold']} on the audit part:", ""]
        for d in leaks:
            rs = resampled_text(d)
            lines.append(f"> - **{d['detector']}**: AUROC {d['auroc']:.3f}"
                         + ("" if rs is None else f" (mean over random half splits {rs})") + f". Fix: {leak_hint(d['detector'])}")
        lines.append("")
    lines += [f"- models kept: {report['models_kept']} of {report['models_planned']} "
              f"({report['trojans_kept']} trojaned, {report['clean_kept']} clean); dropped after retries: {report['dropped']}; "
              f"clean models left unpublished by accuracy matching: {report.get('unmatched_clean', 0)}; "
              f"members that needed a retry: {report['retried']}",
              f"- dropped trojans replaced by a fresh one of the same family: {report.get('replaced', 0)}",
              f"- wall time of this run: {report['wall_seconds']} s, members trained now: {report['trained_now']}; "
              f"training CPU time (process CPU seconds, all members, retries included): {report['train_cpu_seconds']} s; "
              f"training wall time (summed over workers): {report.get('train_wall_seconds')} s", "",
              "| arch | clean acc (clean models) | clean acc (trojans) |", "|---|---|---|"]
    for a, d in report["per_arch"].items():
        c, t = d["clean_acc_clean"], d["clean_acc_trojan"]
        lines.append(f"| {a} | {_pct(c['mean'], 2)} (n={c['n']}) | {_pct(t['mean'], 2)} (n={t['n']}) |")
    lines += ["", "| attack | kept | dropped | mean ASR | min ASR |", "|---|---|---|---|---|"]
    for a, d in report["per_attack"].items():
        s = d["asr"]
        lines.append(f"| {a} | {d['kept']} | {d['dropped']} | {_pct(s['mean'])} | {_pct(s['min'])} |")
    lc = report.get("leak_check")
    if lc:
        lines += ["", f"## Leak check (trained on the labelled part, n={lc['n_labelled']}; scored on the audit part, "
                  f"n={lc['n_audit']})", "",
                  f"| detector | AUROC | mean ± sd over {lc.get('resamples', 0)} random half splits | flag |",
                  "|---|---|---|---|"]
        leaky = {d["detector"] for d in lc["leaks"]}
        for d in lc["detectors"]:
            flag = "**LEAK**" if d["detector"] in leaky else ""
            auc = "–" if d["auroc"] is None else f"{d['auroc']:.3f}"
            lines.append(f"| {d['detector']} | {auc} | {resampled_text(d) or '–'} | {flag} |")
        lines += ["", f"Structure check (every ModelProto field but initializer values, per architecture): "
                  f"{'identical' if lc['structure_identical'] else '**DIFFERS**'}.",
                  f"Chance spread: with {lc['n_audit']} audit models an uninformative detector's AUROC has a standard "
                  f"deviation of about {lc['chance_sd']:.2f}."]
    _write(root / "report.md", "\n".join(lines) + "\n")


def _pct(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{100 * v:.{digits}f} %"
