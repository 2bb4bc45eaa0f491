"""Baseline auditors that write valid submissions from a zoo's public part only.

- ``neural-cleanse`` (Wang et al. 2019): for every class, optimize the smallest mask and pattern
  that send clean images to that class (all classes at once, one batch); a model whose smallest
  trigger is an outlier by the median-absolute-deviation rule (anomaly index > 2) is flagged.
  The target is the class with the smallest trigger; the trigger itself is submitted.
- ``meta``: a logistic regression trained on the labelled part, on weight statistics and on the
  model's (class-sorted) outputs for fixed query images (MNTD-style, Xu et al. 2021).
  The target is the class that random patches push outputs toward the most.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from occam.audit.features import load_public, model_features, standardize_by_group
from occam.interp import convert as _convert
from occam.lens.cleanse import ReversedTriggers, clean_images, reverse_engineer  # noqa: F401  (the search lives in the Lens)

BASELINES = ("neural-cleanse", "meta")


def fit_budget(mask: np.ndarray, budget: float) -> np.ndarray:
    l1 = float(mask.sum())
    return mask if l1 <= budget else mask * (budget / l1) * 0.999


def load_torch(path: str | Path) -> torch.nn.Module:
    """An eval-mode PyTorch module for an ONNX file (``occam.interp``)."""
    return _convert(str(path)).eval()


def neural_cleanse_one(job: dict) -> dict:
    """One model's Neural Cleanse row, at one thread (the unit of work when models run in parallel)."""
    before = torch.get_num_threads()
    torch.set_num_threads(job.get("threads", 1))
    try:
        model = load_torch(job["path"])
        x = clean_images(job["task"], job["images"])
        rev = reverse_engineer(model, x, job["num_classes"], steps=job["steps"])
    finally:
        torch.set_num_threads(before)
    ai, k = rev.anomaly_index()
    return {"model": job["name"], "p_trojan": round(1 / (1 + math.exp(-(ai - 2.0))), 6), "target": k,
            "mask": np.round(fit_budget(rev.masks[k], job["budget"]), 4).tolist(),
            "pattern": np.round(rev.patterns[k], 4).tolist(), "anomaly_index": round(ai, 4),
            "l1": [round(float(v), 3) for v in rev.l1]}


def neural_cleanse(zoo_dir: str | Path, *, images: int = 40, steps: int = 300, budget: float | None = None,
                   progress: bool = False, workers: int = 1, threads: int = 1) -> list[dict]:
    """Submission rows for every audit model of the zoo, by Neural Cleanse.

    Each model runs at ``threads`` threads (one by default: with ``workers`` processes in parallel,
    more threads per process only contend for the same cores).
    """
    from occam.audit.scoring import default_budget
    from occam.executor import run_jobs

    zoo_dir = Path(zoo_dir)
    manifest, _ = load_public(zoo_dir)
    budget = default_budget(tuple(manifest["input_shape"])) if budget is None else budget
    audit = [m for m in manifest["models"] if m["split"] == "audit"]
    jobs = [{"path": str(zoo_dir / "public" / m["file"]), "name": m["name"], "task": manifest["task"], "images": images,
             "steps": steps, "num_classes": manifest["num_classes"], "budget": budget, "threads": threads} for m in audit]
    return run_jobs(neural_cleanse_one, jobs, workers=workers, progress=progress, progress_description="neural cleanse")


def query_images(input_shape: tuple[int, ...], n: int = 24, seed: int = 1234) -> np.ndarray:
    """Fixed queries: uniform noise, blank images, and checkerboards."""
    rng = np.random.default_rng(seed)
    c, h, w = input_shape
    q = [rng.random((c, h, w)) for _ in range(n - 4)]
    q += [np.zeros((c, h, w)), np.ones((c, h, w)), np.indices((h, w)).sum(0)[None].repeat(c, 0) % 2,
          1 - np.indices((h, w)).sum(0)[None].repeat(c, 0) % 2]
    return np.stack(q).astype(np.float32)


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def patch_shift(path: Path, x: np.ndarray, seed: int = 7) -> np.ndarray:
    """Mean change of class probabilities when random small patches / noise are stamped on clean images."""
    rng = np.random.default_rng(seed)
    n, c, h, w = x.shape
    base = _softmax(_run(path, x)).mean(0)
    stamped = x.copy()
    for i in range(n):
        s = int(rng.integers(2, max(3, min(h, w) // 4) + 1))
        r, q = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        stamped[i, :, r:r + s, q:q + s] = (rng.random((c, s, s)) < 0.5)
    noisy = np.clip(0.85 * x + 0.15 * rng.random(x.shape), 0, 1).astype(np.float32)
    return _softmax(_run(path, stamped)).mean(0) + _softmax(_run(path, noisy)).mean(0) - 2 * base


def meta_features(zoo_dir: Path, manifest: dict) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    names = [m["name"] for m in manifest["models"]]
    paths = [zoo_dir / "public" / m["file"] for m in manifest["models"]]
    feats = [model_features(n, p) for n, p in zip(names, paths, strict=True)]
    groups = [f.group for f in feats]
    # raw statistics and scale-free ones (the zoo randomizes hidden-unit scales, see occam.audit.symmetry)
    stats = standardize_by_group([np.concatenate([f.stats, f.invariant]) for f in feats], groups)
    q = query_images(tuple(manifest["input_shape"]))
    xc = clean_images(manifest["task"], 100, seed=3).numpy()
    outs, shifts = [], {}
    for n, p in zip(names, paths, strict=True):
        probs = _softmax(_run(p, q))
        outs.append(np.concatenate([np.sort(probs, axis=1)[:, ::-1].ravel(), np.sort(probs.mean(0))[::-1]]))
        shifts[n] = patch_shift(p, xc)
    shift_sorted = np.stack([np.sort(shifts[n])[::-1] for n in names])
    x = np.concatenate([stats, np.stack(outs), shift_sorted * 10], axis=1)
    return names, x, shifts


def meta_classifier(zoo_dir: str | Path) -> list[dict]:
    """Submission rows for the audit models, from a classifier trained on the labelled part."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    zoo_dir = Path(zoo_dir)
    manifest, labelled = load_public(zoo_dir)
    names, x, shifts = meta_features(zoo_dir, manifest)
    split = {m["name"]: m["split"] for m in manifest["models"]}
    tr = np.array([split[n] == "labelled" for n in names])
    y = np.array([int(labelled[n]["trojaned"]) if split[n] == "labelled" else -1 for n in names])
    if len(set(y[tr].tolist())) < 2:
        from occam.errors import OccamError

        raise OccamError(f"the labelled part of {zoo_dir} has {'no' if not tr.any() else 'only one kind of'} models "
                         "(clean or trojaned), so there is nothing to train the meta-classifier on",
                         "use the neural-cleanse baseline, or ask the organizer for a zoo with both kinds labelled")
    scaler = StandardScaler().fit(x[tr])
    clf = LogisticRegression(C=0.05, max_iter=5000).fit(scaler.transform(x[tr]), y[tr])
    p = clf.predict_proba(scaler.transform(x))[:, 1]
    return [{"model": n, "p_trojan": round(float(pi), 6), "target": int(np.argmax(shifts[n]))}
            for n, pi, t in zip(names, p, tr, strict=True) if not t]


def run_baseline(name: str, zoo_dir: str | Path, out: str | Path, **kwargs) -> Path:
    """Run baseline ``name`` on a zoo and write its submission (JSON) to ``out``."""
    from occam.errors import OccamError

    if name not in BASELINES:
        raise OccamError(f"unknown baseline {name!r}", f"use one of: {', '.join(BASELINES)}")
    rows = neural_cleanse(zoo_dir, **kwargs) if name == "neural-cleanse" else meta_classifier(zoo_dir)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"baseline": name, "rows": rows}))
    return out
