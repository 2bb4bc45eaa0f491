"""Scoring: count what an ONNX model stores, guard it, run it in a sandbox, score it.

``score = CE + log10(max(1, nnz)) / λ`` (lower is better). See docs/scoring.md.

Nothing here imports PyTorch; onnxruntime is imported when a model is run or cross-checked.
"""

from __future__ import annotations

from occam.scoring import frontier
from occam.scoring.count import CountReport, TensorCount, count_model
from occam.scoring.guard import ALLOWED_OPS, DEFAULT_POLICY, GuardPolicy, GuardReport, check_model, inspect_model
from occam.scoring.metrics import compute_metrics, cross_entropy, score_value
from occam.scoring.sandbox import Limits, run_logits
from occam.scoring.score import SCORER_VERSION, ScoreResult, score_model

__all__ = [
    "ALLOWED_OPS", "DEFAULT_POLICY", "SCORER_VERSION", "CountReport", "GuardPolicy", "GuardReport", "Limits",
    "ScoreResult", "TensorCount", "check_model", "compute_metrics", "count_model", "cross_entropy",
    "inspect_model", "frontier", "run_logits", "score_model", "score_value",
]
