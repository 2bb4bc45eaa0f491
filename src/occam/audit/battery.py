"""The held-out leak battery: lazy detectors the zoo generator never sees, and the power of the verdict.

The leak check (:mod:`occam.audit.leakcheck`) holds the *matching* detectors: the zoo generator may
use what they read to make clean and trojaned models alike (it projects weights onto the parent's
values, holds output-shape statistics, matches accuracy on the first ``eval_limit`` test images). A
zoo tuned against them can pass them by construction, so passing says little. This battery holds
detectors that nothing in the generator looks at, and must never be tuned against (pre-registered:
its verdict on a fresh-seed zoo is reported as it comes out):

- ``first_layer_peak`` (no labels, no training): per hidden unit the row-normalised |W1|, summed over
  units, is a pixel map; the score is its max / median. A patch trojan's first layer gathers weight
  on the trigger's pixels. Higher means trojaned (fixed direction).
- ``first_layer_map``: logistic regression on that map's max/median, top-9 share, entropy and the
  location (row, column) of its brightest pixel.
- ``class_outputs``: class-conditional output statistics on held-out images: per true class the mean
  probability of each class, sorted (how each class's mass spreads), and the predicted-class histogram.
- ``query_outputs``: outputs on query inputs: uniform noise, blank (black, white, grey) images and
  random binary patches of every size from 2 px to a third of the side, on black and on clean images.
- ``fresh_accuracy``: clean accuracy on the test images the accuracy matching never used (those after
  the first ``eval_limit``); lower means trojaned (fixed direction, no training).
- ``spectral``: per weight matrix (convolution kernels flattened per output channel) the normalised
  singular values (top 8 of σ/Σσ), the stable rank and the spectral entropy: all scale-free.
- ``meta_all``: logistic regression on every feature above.

Trained detectors are fitted on the labelled part and scored on the audit part, and refitted on
random half splits of all models (mean ± sd); untrained ones are scored on all models. Every AUROC
gets a bootstrap 95 % interval over models. :func:`power` gives the threshold in chance standard
deviations for the zoo's size, and :func:`recommended_models` the zoo size at which 0.6 is 3 sd.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from occam.audit.features import initializers, load_public, onnx_logits, standardize_by_group, structure_fingerprint
from occam.audit.scoring import auroc
from occam.errors import OccamError

MATCHING = ("accuracy", "weight_norms", "weight_linear", "weight_invariant", "clean_outputs", "clean_outputs_recalibrated")
HELD_OUT = ("first_layer_peak", "first_layer_map", "class_outputs", "query_outputs", "fresh_accuracy", "spectral",
            "meta_all")
UNTRAINED = {"first_layer_peak": 1.0, "fresh_accuracy": -1.0}  # the score's sign: higher means trojaned


def chance_sd(n_trojan: int, n_clean: int) -> float:
    """Standard deviation of an uninformative score's AUROC (Hanley & McNeil under the null)."""
    return math.sqrt((n_trojan + n_clean + 1) / (12 * max(1, n_trojan) * max(1, n_clean)))


def power(n_trojan: int, n_clean: int, threshold: float = 0.6) -> float:
    """The threshold's distance from chance (0.5) in chance standard deviations."""
    return (threshold - 0.5) / chance_sd(n_trojan, n_clean)


def recommended_models(threshold: float = 0.6, sds: float = 3.0, labelled_fraction: float = 0.5,
                       trojan_fraction: float = 0.5) -> int:
    """The smallest published zoo whose audit part puts ``threshold`` at least ``sds`` chance sd above 0.5."""
    n = 4
    while True:
        audit = n * (1 - labelled_fraction)
        n1 = max(1, round(audit * trojan_fraction))
        n0 = max(1, round(audit) - n1)
        if power(n1, n0, threshold) >= sds:
            return n
        n += 2


def bootstrap_auroc(y: np.ndarray, s: np.ndarray, n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Percentile 95 % interval of the AUROC over models resampled with replacement (within each class)."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    vals = []
    for _ in range(n):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        vals.append(auroc(y[idx], s[idx]))
    lo, hi = np.quantile(vals, [0.025, 0.975])
    return float(lo), float(hi)


# ---- features ---------------------------------------------------------------------------------
def first_layer_map(weights: list[np.ndarray], input_shape: tuple[int, ...]) -> np.ndarray | None:
    """The row-normalised |W1| pixel map [H, W] of the first dense layer that reads the pixels, or None."""
    c, h, w = input_shape
    for a in weights:
        if a.ndim != 2 or c * h * w not in a.shape:
            continue
        m = np.abs(a if a.shape[1] == c * h * w else a.T)  # [units, pixels]
        m = m / np.maximum(m.sum(1, keepdims=True), 1e-12)
        return m.sum(0).reshape(c, h, w).sum(0)
    return None


def map_features(pixel_map: np.ndarray | None) -> np.ndarray:
    """max/median, top-9 share, entropy, row and column (in [0, 1]) of the brightest pixel; zeros without a map."""
    if pixel_map is None:
        return np.zeros(5)
    p = pixel_map.ravel() / pixel_map.sum()
    top = int(np.argmax(p))
    h, w = pixel_map.shape
    return np.array([float(p.max() / max(np.median(p), 1e-12)), float(np.sort(p)[-9:].sum()),
                     float(-(p * np.log(p + 1e-12)).sum()), (top // w) / max(1, h - 1), (top % w) / max(1, w - 1)])


def spectral_features(weights: list[np.ndarray], k: int = 8) -> np.ndarray:
    out = []
    for a in weights:
        if a.ndim < 2:
            continue
        mat = a.reshape(a.shape[0], -1)
        s = np.linalg.svd(mat, compute_uv=False)
        sn = s / max(s.sum(), 1e-12)
        top = np.zeros(k)
        top[:min(k, len(sn))] = sn[:k]
        stable_rank = float((s ** 2).sum() / max(s[0] ** 2, 1e-12))
        entropy = float(-(sn * np.log(sn + 1e-12)).sum())
        out += [*top, stable_rank, entropy]
    return np.array(out)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def class_output_features(logits: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    p = _softmax(logits)
    rows = []
    for k in range(num_classes):
        sel = y == k
        rows.append(np.sort(p[sel].mean(0))[::-1] if sel.any() else np.zeros(num_classes))
    hist = np.bincount(logits.argmax(1), minlength=num_classes) / len(logits)
    return np.concatenate([np.stack(rows).ravel(), np.sort(hist)[::-1]])


def query_inputs(input_shape: tuple[int, ...], clean: np.ndarray, seed: int = 11) -> list[np.ndarray]:
    """Query sets: noise, blanks, and random binary patches of each size on black and on clean images."""
    rng = np.random.default_rng(seed)
    c, h, w = input_shape
    sets = [rng.random((32, c, h, w)).astype(np.float32),
            np.stack([np.full((c, h, w), v, np.float32) for v in (0.0, 0.5, 1.0)])]
    for s in range(2, max(3, min(h, w) // 3 + 1)):
        for base in (np.zeros((32, c, h, w), np.float32), clean[:32].copy()):
            for i in range(len(base)):
                r, q = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
                base[i, :, r:r + s, q:q + s] = (rng.random((c, s, s)) < 0.5)
            sets.append(base)
    return sets


def query_features(path: Path, sets: list[np.ndarray], clean_mean: np.ndarray) -> np.ndarray:
    out = []
    for q in sets:
        p = _softmax(onnx_logits(path, q))
        shift = p.mean(0) - clean_mean  # how the query moves the mean output away from clean images'
        out += [*np.sort(p.mean(0))[::-1][:3], float(shift.max()), float(p.max(1).mean())]
    return np.array(out)


def model_battery_features(path: Path, input_shape: tuple[int, ...], num_classes: int, x: np.ndarray, y: np.ndarray,
                           sets: list[np.ndarray]) -> dict:
    """One model's raw held-out features (``x``, ``y``: images no matching used; ``sets``: :func:`query_inputs`)."""
    import onnx

    proto = onnx.load(str(path))
    weights = [a for _, a in initializers(proto)]
    mf = map_features(first_layer_map(weights, input_shape))
    logits = onnx_logits(path, x)
    return {"group": structure_fingerprint(proto), "first_layer_map": mf,
            "class_outputs": class_output_features(logits, y, num_classes),
            "query_outputs": query_features(path, sets, _softmax(logits).mean(0)),
            "spectral": spectral_features(weights), "first_layer_peak": mf[:1],
            "fresh_accuracy": np.array([float((logits.argmax(1) == y).mean())])}


def heldout_features(zoo_dir: str | Path, *, heldout_first: int = 5000, images: int = 2000) -> dict:
    """Every held-out detector's features (and untrained scores) for every published model, in manifest order."""
    from occam.tasks import get_task

    zoo_dir = Path(zoo_dir)
    manifest, _ = load_public(zoo_dir)
    task = get_task(manifest["task"])
    shape = tuple(manifest["input_shape"])
    x_test, y_test = task.load("test")
    first = int(manifest.get("heldout", {}).get("first", heldout_first))
    fresh_x = x_test[first:].astype(np.float32) / 255.0
    fresh_y = y_test[first:]
    if len(fresh_x) < 100:
        raise OccamError(f"only {len(fresh_x)} test images lie after the {first} the zoo measured on",
                         "build the zoo with a smaller eval_limit so that images remain for the held-out battery")
    fresh_x, fresh_y = fresh_x[:images], fresh_y[:images]
    sets = query_inputs(shape, fresh_x)
    names, feats, groups = [], {k: [] for k in HELD_OUT if k not in UNTRAINED}, []
    scores = {k: [] for k in UNTRAINED}
    for m in manifest["models"]:
        path = zoo_dir / "public" / m["file"]
        f = model_battery_features(path, shape, manifest["num_classes"], fresh_x, fresh_y, sets)
        names.append(m["name"])
        groups.append(f.pop("group"))
        for k, v in f.items():
            (scores if k in UNTRAINED else feats)[k].append(v if k not in UNTRAINED else float(v[0]))
    x = {k: standardize_by_group(v, groups) for k, v in feats.items() if k != "meta_all"}
    acc_z = standardize_by_group([np.array([a]) for a in scores["fresh_accuracy"]], groups)[:, 0]
    x["meta_all"] = np.concatenate([x["first_layer_map"], x["class_outputs"], x["query_outputs"], x["spectral"],
                                    acc_z[:, None]], axis=1)
    return {"names": names, "groups": groups, "features": x,
            "scores": {"first_layer_peak": np.array(scores["first_layer_peak"]), "fresh_accuracy": acc_z},
            "fresh_images": len(fresh_x)}


# ---- the battery ------------------------------------------------------------------------------
def heldout_battery(zoo_dir: str | Path, *, key_path: str | Path | None = None, threshold: float = 0.6,
                    resamples: int = 50, bootstrap: int = 1000, images: int = 2000) -> dict:
    """Run every held-out detector on a zoo; ``leaks`` lists those whose AUROC (or resampled mean) exceeds ``threshold``."""
    from occam.audit.leakcheck import resampled_auroc

    zoo_dir = Path(zoo_dir)
    manifest, _ = load_public(zoo_dir)
    key_path = Path(key_path) if key_path else zoo_dir / "private_key" / "key.json"
    if not key_path.exists():
        raise OccamError(f"no key at {key_path}", "pass the key.json written by make-zoo")
    key = json.loads(key_path.read_text())["models"]
    data = heldout_features(zoo_dir, images=images)
    names = data["names"]
    y = np.array([int(key[n]["trojaned"]) for n in names])
    split = {m["name"]: m["split"] for m in manifest["models"]}
    train = np.array([split[n] == "labelled" for n in names])
    test = ~train
    detectors = []
    for name in HELD_OUT:
        if name in UNTRAINED:
            s = UNTRAINED[name] * data["scores"][name]
            a = auroc(y, s) if 0 < y.sum() < len(y) else None
            ci = bootstrap_auroc(y, s, bootstrap) if a is not None else (None, None)
            detectors.append({"detector": name, "trained": False, "auroc": a, "ci95": ci, "n": len(y),
                              "resampled_mean": None, "resampled_sd": None})
            continue
        x = data["features"][name]
        c = 0.1
        a, ci = None, (None, None)
        if len(set(y[train].tolist())) == 2 and len(set(y[test].tolist())) == 2:
            from sklearn.linear_model import LogisticRegression

            clf = LogisticRegression(C=c, max_iter=3000).fit(x[train], y[train])
            s = clf.decision_function(x[test])
            a = auroc(y[test], s)
            ci = bootstrap_auroc(y[test], s, bootstrap)
        res = resampled_auroc(x, y, c, resamples) if resamples > 0 else None
        detectors.append({"detector": name, "trained": True, "auroc": a, "ci95": ci, "n": int(test.sum()),
                          "resampled_mean": None if res is None else res[0],
                          "resampled_sd": None if res is None else res[1]})
    for d in detectors:
        for k in ("auroc", "resampled_mean", "resampled_sd"):
            if d[k] is not None:
                d[k] = round(float(d[k]), 4)
        d["ci95"] = [None if v is None else round(float(v), 4) for v in d["ci95"]]
    leaks = [d for d in detectors if (d["auroc"] is not None and d["auroc"] > threshold)
             or (d["resampled_mean"] is not None and d["resampled_mean"] > threshold)]
    n1, n0 = int(y[test].sum()), int((1 - y[test]).sum())
    return {"threshold": threshold, "detectors": detectors, "leaks": leaks, "n_models": len(y),
            "n_audit": int(test.sum()), "chance_sd_audit": round(chance_sd(n1, n0), 4),
            "threshold_in_chance_sd_audit": round(power(n1, n0, threshold), 2),
            "chance_sd_all": round(chance_sd(int(y.sum()), int((1 - y).sum())), 4),
            "threshold_in_chance_sd_all": round(power(int(y.sum()), int((1 - y).sum()), threshold), 2),
            "recommended_models": recommended_models(threshold), "fresh_images": data["fresh_images"],
            "resamples": resamples, "bootstrap": bootstrap}
