"""The scorer: sandboxed inference, metrics against an independent NumPy computation, failures."""

from __future__ import annotations

import inspect
import math
import time

import numpy as np
import pytest
from onnx import helper, numpy_helper

from occam.errors import ModelRejected, ScoringError
from occam.scoring import Limits, compute_metrics, cross_entropy, run_logits, score_model, score_value
from occam.scoring import _child as child
from occam.tasks import Task
from test_scoring_helpers import CLASSES, linear, make, synthetic_task, to_bytes

TASK = synthetic_task("scoring-run-synth", n=90)


def _exact_linear() -> tuple[np.ndarray, np.ndarray]:
    """One power-of-two weight per row: every logit is w*x + b with a single rounding, so ORT and
    NumPy agree bit for bit."""
    W = np.zeros((CLASSES, 16), np.float32)
    W[0, 3], W[1, 7], W[2, 12] = 4.0, -2.0, 0.5
    b = np.array([-1.25, 0.7, 0.1], np.float32)
    return W, b


def _numpy_logits(images: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    x = images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0)
    return (x @ W.T + b).astype(np.float32)


def _numpy_ce(logits: np.ndarray, labels: np.ndarray) -> float:
    total = 0.0
    for row, y in zip(logits.astype(np.float64), labels, strict=True):
        m = max(row)
        lse = m + math.log(sum(math.exp(v - m) for v in row))
        total += lse - row[y]
    return total / len(labels)


def test_score_matches_independent_numpy():
    W, b = _exact_linear()
    images, labels = TASK.images("test"), TASK.labels("test")
    expected_logits = _numpy_logits(images, W, b)
    res = score_model(to_bytes(linear(W, b)), TASK, split="test", lam=7.0)
    ce = _numpy_ce(expected_logits, labels)
    acc = float(np.mean(expected_logits.argmax(1) == labels))
    nnz = int(np.count_nonzero(W) + np.count_nonzero(b))
    assert res.nnz == nnz == 6
    assert res.ce == pytest.approx(ce, rel=1e-9)
    assert res.accuracy == pytest.approx(acc, rel=1e-9)
    assert res.score == pytest.approx(ce + math.log10(nnz) / 7.0, rel=1e-9)
    assert res.n == len(labels) and res.lam == 7.0 and res.split == "test"
    for c in range(CLASSES):
        mask = labels == c
        assert res.per_class_accuracy[c] == pytest.approx(float(np.mean(expected_logits[mask].argmax(1) == c)))
    d = res.to_dict()
    for key in ("task", "split", "lam", "score", "ce", "accuracy", "nnz", "stored_values", "per_class_accuracy",
                "n", "seconds", "scorer_version"):
        assert key in d


def test_dense_model_logits_match_numpy_and_default_lam():
    rng = np.random.default_rng(3)
    W = rng.normal(size=(CLASSES, 16)).astype(np.float32)
    b = rng.normal(size=CLASSES).astype(np.float32)
    images = TASK.images("val")
    logits = run_logits(to_bytes(linear(W, b)), images, threads=1)
    assert logits.dtype == np.float32 and logits.shape == (len(images), CLASSES)
    np.testing.assert_allclose(logits, _numpy_logits(images, W, b), rtol=1e-5, atol=1e-5)
    res = score_model(to_bytes(linear(W, b)), TASK, split="val", indices=np.arange(10))
    assert res.n == 10 and res.lam == TASK.default_lam


def test_batches_and_forkserver_give_the_same_logits():
    W, b = _exact_linear()
    data, images = to_bytes(linear(W, b)), TASK.images("test")
    one = run_logits(data, images)
    batched = run_logits(data, images, batch_size=7)
    served = run_logits(data, images, start_method="forkserver")
    np.testing.assert_array_equal(one, batched)
    np.testing.assert_array_equal(one, served)
    np.testing.assert_array_equal(one, _numpy_logits(images, W, b))


def _unary_model(*nodes) -> bytes:
    W = numpy_helper.from_array(np.ones((16, CLASSES), np.float32), "W")
    return to_bytes(make([helper.make_node("Flatten", ["x"], ["f"], axis=1),
                          helper.make_node("MatMul", ["f", "W"], ["g"]), *nodes], [W]))


def test_nan_logits_error():
    data = _unary_model(helper.make_node("Sub", ["g", "g"], ["z"]), helper.make_node("Div", ["z", "z"], ["y"]))
    with pytest.raises(ScoringError, match="NaN"):
        run_logits(data, TASK.images("val")[:5])


def test_inf_logits_error():
    data = _unary_model(helper.make_node("Sub", ["g", "g"], ["z"]), helper.make_node("Log", ["z"], ["y"]))
    with pytest.raises(ScoringError, match="Inf"):
        run_logits(data, TASK.images("val")[:5])


def test_wrong_output_shape_at_run_time():
    shape = numpy_helper.from_array(np.array([-1, 3], np.int64), "shape")
    W = numpy_helper.from_array(np.ones((16, 6), np.float32), "W")
    data = to_bytes(make([helper.make_node("Flatten", ["x"], ["f"], axis=1),
                          helper.make_node("MatMul", ["f", "W"], ["g"]),
                          helper.make_node("Reshape", ["g", "shape"], ["y"])], [W, shape]))
    with pytest.raises(ScoringError, match="shape"):
        run_logits(data, TASK.images("val")[:4])


def test_memory_limit_gives_scoring_error():
    # Expand every image to 16 x 8M floats (512 MiB per image) under a 256 MiB limit.
    big = numpy_helper.from_array(np.array([1, 1, 8_000_000], np.int64), "big")
    axes = numpy_helper.from_array(np.array([2], np.int64), "axes")
    W = numpy_helper.from_array(np.ones((16, CLASSES), np.float32), "W")
    data = to_bytes(make([helper.make_node("Flatten", ["x"], ["f"], axis=1),
                          helper.make_node("Unsqueeze", ["f", "axes"], ["u"]),
                          helper.make_node("Expand", ["u", "big"], ["e"]),
                          helper.make_node("ReduceSum", ["e", "axes"], ["s"], keepdims=0),
                          helper.make_node("MatMul", ["s", "W"], ["y"])], [big, axes, W]))
    with pytest.raises(ScoringError) as exc:
        run_logits(data, TASK.images("val")[:4], limits=Limits(memory_mb=256, wall_seconds=60))
    assert "memory" in str(exc.value)


def test_wall_clock_limit():
    W, b = _exact_linear()
    with pytest.raises(ScoringError, match="wall-clock"):
        run_logits(to_bytes(linear(W, b)), TASK.images("val"), limits=Limits(wall_seconds=0.0))


def test_unloadable_model_error():
    with pytest.raises(ScoringError, match="onnxruntime cannot load"):
        run_logits(b"not a model", TASK.images("val")[:2])


def test_child_never_gets_labels():
    params = list(inspect.signature(child.run).parameters)
    assert params == ["conn", "model_bytes", "images", "threads", "memory_mb", "cpu_seconds", "batch_size"]
    assert not any("label" in p for p in params)


def test_labels_are_loaded_after_the_fork():
    calls: list[tuple[str, float]] = []

    class Recording(Task):
        def images(self, split):
            calls.append(("images", time.time()))
            return super().images(split)

        def labels(self, split):
            calls.append(("labels", time.time()))
            return super().labels(split)

    task = synthetic_task("scoring-run-synth", n=90, cls=Recording)
    W, b = _exact_linear()
    res = score_model(to_bytes(linear(W, b)), task, split="val")
    assert [c[0] for c in calls] == ["images", "labels"]
    assert res.sandbox["started_at"] < calls[1][1]  # the child was running before the labels existed
    assert "network" in res.sandbox


def test_rejected_model_is_not_run():
    with pytest.raises(ModelRejected, match="output shape"):
        score_model(to_bytes(linear(classes=4)), TASK)


def test_metrics_helpers():
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 5.0], [1000.0, -1000.0, 0.0]], np.float32)
    labels = np.array([0, 1, 0])
    ce = cross_entropy(logits, labels)
    assert ce == pytest.approx(_numpy_ce(logits, labels), rel=1e-12)
    assert math.isfinite(ce)  # stable for huge logits
    m = compute_metrics(logits, labels, num_classes=3, nnz=1000, lam=10.0)
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["per_class_accuracy"] == [1.0, 0.0, None]
    assert m["score"] == pytest.approx(ce + 0.3)
    assert score_value(1.0, 0, 5.0) == 1.0  # max(1, nnz)
    with pytest.raises(ScoringError):
        cross_entropy(np.array([[np.nan, 0.0]]), np.array([0]))
    with pytest.raises(ScoringError):
        compute_metrics(logits, labels, num_classes=4, nnz=1, lam=1.0)


def test_pareto_helpers():
    from occam.scoring import frontier

    pts = [(100, 0.5), (10, 0.9), (1000, 0.4), (500, 0.6), (10, 1.0), (2000, 0.4)]
    assert frontier.frontier(pts).tolist() == [1, 0, 2]
    acc = [(100, 0.8), (10, 0.7), (1000, 0.9), (500, 0.75)]
    assert frontier.frontier(acc, maximize=True).tolist() == [1, 0, 2]
    assert frontier.iso_score_ce(1.0, 100, 10.0) == pytest.approx(0.8)
    np.testing.assert_allclose(frontier.iso_score_ce(1.0, np.array([1, 10, 1000]), 2.0), [1.0, 0.5, -0.5])
    line = [(10 ** k, 1.0 - 0.1 * k) for k in range(1, 5)]
    assert frontier.suggest_lam(line) == pytest.approx(10.0)
