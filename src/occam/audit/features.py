"""Features of zoo models computed from their public ONNX files: weight statistics, structure, accuracy.

Used by the leak check (what a lazy auditor could exploit) and by the meta-classifier baseline.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from occam.errors import OccamError

STATS = ("rms", "mean_abs", "max_abs", "std", "mean", "kurtosis", "q99_abs")


def structure_fingerprint(proto) -> str:
    """SHA-256 of the ModelProto with every initializer's values removed (names, dims and types kept)."""
    import onnx

    p = onnx.ModelProto()
    p.CopyFrom(proto)
    for init in p.graph.initializer:
        for f in ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data"):
            init.ClearField(f)
    return hashlib.sha256(p.SerializeToString(deterministic=True)).hexdigest()


def initializers(proto) -> list[tuple[str, np.ndarray]]:
    """Float initializers with more than one value, in graph order."""
    from onnx import numpy_helper

    out = []
    for init in proto.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype.kind == "f" and arr.size > 1:
            out.append((init.name, arr.astype(np.float64)))
    return out


def layer_stats(arr: np.ndarray) -> list[float]:
    a = arr.ravel()
    absa = np.abs(a)
    std = float(a.std())
    kurt = float(((a - a.mean()) ** 4).mean() / std ** 4) if std > 0 else 0.0
    return [float(np.sqrt((a ** 2).mean())), float(absa.mean()), float(absa.max()), std, float(a.mean()),
            float(np.log1p(kurt)), float(np.quantile(absa, 0.99))]


@dataclass
class ModelFeatures:
    name: str
    group: str  # structure fingerprint (one per architecture)
    norms: np.ndarray  # per-layer rms
    stats: np.ndarray  # per-layer STATS, flattened
    invariant: np.ndarray  # features unchanged by rescaling hidden units (see invariant_features)


def model_features(name: str, path: Path) -> ModelFeatures:
    import onnx

    proto = onnx.load(str(path))
    inits = initializers(proto)
    stats = np.array([layer_stats(a) for _, a in inits], np.float64)
    return ModelFeatures(name=name, group=structure_fingerprint(proto), norms=stats[:, 0].copy(), stats=stats.ravel(),
                         invariant=invariant_features(stats, np.array([a.ndim >= 2 for _, a in inits])))


def invariant_features(stats: np.ndarray, is_weight: np.ndarray) -> np.ndarray:
    """Scale-free statistics: per layer log-kurtosis, max/RMS, q99/RMS and mean|w|/RMS, plus the sum of
    the weight tensors' log RMS (the network's overall scale, which rescaling hidden units by ``s``
    and the next layer by ``1/s`` leaves nearly unchanged). What an informed auditor would use
    once raw norms are randomized."""
    rms = np.where(stats[:, 0] > 0, stats[:, 0], 1.0)
    per_layer = np.stack([stats[:, 5], stats[:, 2] / rms, stats[:, 6] / rms, stats[:, 1] / rms], 1)
    return np.concatenate([per_layer.ravel(), [float(np.log(rms[is_weight]).sum())]])


def standardize_by_group(rows: list[np.ndarray], groups: list[str]) -> np.ndarray:
    """Z-score each feature within its group (architecture), pad to one width, append nothing else.

    Standardizing within architecture uses no labels (all models of the group), and keeps a
    detector from learning architecture instead of trojans.
    """
    width = max(len(r) for r in rows)
    out = np.zeros((len(rows), width))
    for g in set(groups):
        idx = [i for i, gg in enumerate(groups) if gg == g]
        block = np.stack([rows[i] for i in idx])
        mu, sd = block.mean(0), block.std(0)
        z = (block - mu) / np.where(sd > 1e-12, sd, 1.0)
        for j, i in enumerate(idx):
            out[i, : z.shape[1]] = z[j]
    return out


def load_public(zoo_dir: str | Path) -> tuple[dict, dict]:
    """(manifest, labelled-part labels) of a zoo's public directory."""
    pub = Path(zoo_dir) / "public"
    try:
        manifest = json.loads((pub / "manifest.json").read_text())
        labelled = json.loads((pub / "labelled.json").read_text())["models"]
    except (OSError, ValueError, KeyError) as exc:
        raise OccamError(f"{zoo_dir} is not an audit zoo ({exc})",
                         "pass the directory written by `occam audit make-zoo` (it holds public/manifest.json)") from exc
    return manifest, labelled


def onnx_logits(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + 1000]})[0] for i in range(0, len(x), 1000)]).astype(np.float64)


OUTPUT_STATS = ("margin", "confidence", "logit_std", "entropy", "top2_gap")


def mean_confidence(logits: np.ndarray, temperature: float = 1.0) -> float:
    """Mean top probability of ``softmax(logits / temperature)`` over images."""
    z = logits / temperature
    p = np.exp(z - z.max(1, keepdims=True))
    return float((p.max(1) / p.sum(1)).mean())


def temperature_for_confidence(confidence_at, target: float, lo: float, hi: float, steps: int) -> float:
    """The temperature in ``[lo, hi]`` at which ``confidence_at(log T)`` equals ``target``.

    Bisection on ``log T``: the mean top probability falls as ``T`` grows. A target out of reach
    leaves ``T`` at the nearer bound.
    """
    a, b = math.log(lo), math.log(hi)
    for _ in range(steps):
        mid = 0.5 * (a + b)
        a, b = (mid, b) if confidence_at(mid) > target else (a, mid)
    return math.exp(0.5 * (a + b))


def recalibrated_output_stats(logits: np.ndarray, confidence: float) -> np.ndarray:
    """:func:`output_stats` (without the confidence itself) after rescaling the logits to a common confidence.

    The temperature ``T`` with mean top probability ``confidence`` is found by
    :func:`temperature_for_confidence`. Any per-model temperature, such as
    the zoo's jitter, cancels: what is left is the *shape* of the outputs at equal confidence,
    which an auditor gets for free by recalibrating every model the same way. Logits that cannot
    reach ``confidence`` (constant rows, or a target outside their range) keep ``T`` at the bound.
    """
    t = temperature_for_confidence(lambda lt: mean_confidence(logits, math.exp(lt)), confidence, 1e-3, 1e3, 60)
    stats = output_stats(logits / t)
    return np.delete(stats, OUTPUT_STATS.index("confidence"))


def output_stats(logits: np.ndarray) -> np.ndarray:
    """Label-free statistics of a model's outputs on clean images (means over images): the margin of the top
    logit over the median, the top probability, the logits' spread, the entropy, and the gap between the
    two top probabilities."""
    z = logits - logits.max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    top2 = np.sort(p, 1)[:, -2:]
    return np.array([float((logits.max(1) - np.median(logits, 1)).mean()), float(p.max(1).mean()),
                     float(logits.std(1).mean()), float(-(p * np.log(p + 1e-12)).sum(1).mean()),
                     float((top2[:, 1] - top2[:, 0]).mean())])
