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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from occam.audit.features import load_public, model_features, standardize_by_group

BASELINES = ("neural-cleanse", "meta")


@dataclass
class ReversedTriggers:
    masks: np.ndarray  # [K, H, W]
    patterns: np.ndarray  # [K, C, H, W]
    l1: np.ndarray  # [K] mask L1 of the smallest trigger found per class
    success: np.ndarray  # [K] fraction of the images it sends to the class

    def anomaly_index(self) -> tuple[float, int]:
        """(anomaly index of the smallest trigger by the MAD rule, its class)."""
        l1 = self.l1
        med = float(np.median(l1))
        mad = float(np.median(np.abs(l1 - med))) * 1.4826
        k = int(np.argmin(l1))
        return (med - float(l1[k])) / max(mad, 1e-6), k


def clean_images(task_name: str, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` clean validation images (float [0, 1]), balanced over classes as far as possible."""
    from occam.tasks import get_task

    task = get_task(task_name)
    x, y = task.load("val")
    rng = np.random.default_rng(seed)
    per = max(1, n // task.num_classes)
    idx = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per] for c in range(task.num_classes)])
    idx = rng.permutation(idx)[:n]
    return torch.from_numpy(x[idx]).float() / 255.0


def reverse_engineer(model: torch.nn.Module, x: torch.Tensor, num_classes: int, *, steps: int = 300,
                     lam: float = 1e-2, lr: float = 0.1, target_success: float = 0.95, seed: int = 0,
                     progress: Callable[[int, int], None] | None = None) -> ReversedTriggers:
    """Neural Cleanse's trigger search for every class at once.

    Per class k: minimize CE(f((1 - m) x + m p), k) + λ_k |m|_1 over m = σ(a), p = σ(b). λ_k
    adapts as in the paper: raised when the trigger succeeds on ``target_success`` of the batch,
    lowered otherwise. The smallest successful mask per class is kept. ``progress(step, steps)``
    is called every 10 steps and at the end.
    """
    torch.manual_seed(seed)
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    n, c, h, w = x.shape
    k = num_classes
    a = torch.full((k, 1, h, w), -2.0, requires_grad=True)
    b = (torch.randn(k, c, h, w) * 0.1).requires_grad_(True)
    opt = torch.optim.Adam([a, b], lr=lr)
    lam_k = torch.full((k,), lam * 10 / (h * w))
    labels = torch.arange(k).repeat_interleave(n)
    best_l1 = np.full(k, np.inf)
    best_m = np.zeros((k, h, w), np.float32)
    best_p = np.zeros((k, c, h, w), np.float32)
    best_s = np.zeros(k)
    for step in range(steps):
        m, pat = torch.sigmoid(a), torch.sigmoid(b)
        xt = ((1 - m[:, None]) * x[None] + (m * pat)[:, None]).reshape(k * n, c, h, w)
        logits = model(xt)
        ce = F.cross_entropy(logits, labels, reduction="none").view(k, n).mean(1)
        l1 = m.view(k, -1).sum(1)
        loss = (ce + lam_k * l1).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            succ = (logits.argmax(1) == labels).float().view(k, n).mean(1)
            ok = succ >= target_success
            l1n = l1.detach().numpy()
            for j in np.flatnonzero(ok.numpy()):
                if l1n[j] < best_l1[j]:
                    best_l1[j], best_s[j] = l1n[j], float(succ[j])
                    best_m[j], best_p[j] = m[j, 0].numpy(), pat[j].numpy()
            if step % 10 == 9:
                lam_k = torch.where(ok, lam_k * 1.5, lam_k / 1.5)
        if progress is not None and (step % 10 == 9 or step == steps - 1):
            progress(step + 1, steps)
    # classes never reached: report the final mask (its size is an upper bound)
    with torch.no_grad():
        m, pat = torch.sigmoid(a), torch.sigmoid(b)
        for j in np.flatnonzero(~np.isfinite(best_l1)):
            best_l1[j] = float(m[j].sum())
            best_m[j], best_p[j] = m[j, 0].numpy(), pat[j].numpy()
    return ReversedTriggers(masks=best_m, patterns=best_p, l1=best_l1, success=best_s)


def fit_budget(mask: np.ndarray, budget: float) -> np.ndarray:
    l1 = float(mask.sum())
    return mask if l1 <= budget else mask * (budget / l1) * 0.999


def load_torch(path: str | Path) -> torch.nn.Module:
    from occam.lens.onnx_to_torch import convert

    return convert(str(path)).eval()


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
