"""The ``sparse`` track: upload an ONNX classifier; score = CE + log10(max(1, nnz)) / λ, lower is better.

``check`` runs the guard's static checks in the request (under a millisecond for small models); ``score`` runs
the guard again with the onnxruntime cross-check, runs the model in a sandboxed child
(``occam.scoring.run_logits``: no labels, no network, one thread, rlimits) and computes the metrics in the
worker on the public and private parts of the test set.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from occam.arena.challenges import public_mask
from occam.arena.tracks.base import ChallengeInfo, CheckOutcome, Track
from occam.errors import OccamError

PUBLIC_LABELS_WARNING = "contestants can train on the test labels; use a private dataset for prizes"
MAX_TEST_SIZE = 200_000


@lru_cache(maxsize=8)
def _test_set(task_name: str) -> tuple[np.ndarray, np.ndarray]:
    from occam.tasks import get_task

    images, labels = get_task(task_name).load("test")
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


@lru_cache(maxsize=4)
def _generated_test_set(task_name: str, seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    from occam.tasks import get_task

    task = get_task(task_name)
    if task.generate_test is None:
        raise OccamError(f"task {task_name!r} cannot generate a test set", "use a private dataset instead")
    images, labels = task.generate_test(seed, n)
    images = np.ascontiguousarray(images)  # the dtype the task's own test split has
    labels = np.asarray(labels, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def test_set_of(info: ChallengeInfo, options: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels a challenge is scored on: its private dataset (read through the worker's
    ``options["private_dataset"]``), a set generated from its secret seed, or the task's public test split."""
    st = info.settings
    if st.get("dataset"):
        loader = options.get("private_dataset")
        if loader is None:
            raise OccamError(f"challenge {info.id!r} is scored on the private dataset {st['dataset']!r}, "
                             "but this scorer cannot read private datasets", "score it with an arena worker")
        images, labels = loader(str(st["dataset"]))
        return np.asarray(images), np.asarray(labels, dtype=np.int64)  # uint8 pixels, as the tasks' own splits
    if st.get("secret_seed") is not None:
        return _generated_test_set(info.task, int(st["secret_seed"]), int(st.get("test_size") or 2000))
    return _test_set(info.task)


def sparse_check(data: bytes, info: ChallengeInfo, *, cross_check: bool = False) -> CheckOutcome:
    """The guard. In the request it runs its static checks; the worker runs it again with the onnxruntime
    cross-check before scoring."""
    from occam.scoring import inspect_model
    from occam.tasks import get_task

    report = inspect_model(data, get_task(info.task), cross_check=cross_check)
    rep = report.to_dict()
    if not report.ok:
        return CheckOutcome(False, report.reason or "the guard refused this file", report.fix or "", report=rep)
    return CheckOutcome(True, nnz=int(report.nnz), stored_values=int(report.stored_values or 0), report=rep)


def make_limits(limits: dict[str, Any]):  # noqa: ANN201 - occam.scoring.Limits
    from occam.scoring import Limits

    if not limits:
        return None
    try:
        return Limits(**limits)
    except TypeError as exc:
        raise OccamError(f"the challenge's [limits] are not understood: {exc}",
                         "use the field names of occam.scoring.Limits") from exc


def sparse_score(data: bytes, info: ChallengeInfo, options: dict[str, Any]) -> dict[str, Any]:
    """Re-run the guard, run the model in a sandboxed child, and compute public/private metrics."""
    from occam.errors import ModelRejected
    from occam.scoring import SCORER_VERSION, compute_metrics, run_logits
    from occam.tasks import get_task

    task = get_task(info.task)
    outcome = sparse_check(data, info, cross_check=True)
    if not outcome.ok:
        raise ModelRejected(outcome.reason, outcome.fix)
    nnz = int(outcome.nnz or 0)
    images, labels = test_set_of(info, options)
    logits = run_logits(data, images, limits=make_limits(info.limits),
                        start_method=options.get("start_method", "forkserver"), threads=1)
    mask = public_mask(len(labels), info.split_seed, info.public_fraction)
    pub = compute_metrics(logits[mask], labels[mask], num_classes=task.num_classes, nnz=nnz, lam=info.lam)
    priv = compute_metrics(logits[~mask], labels[~mask], num_classes=task.num_classes, nnz=nnz, lam=info.lam)
    return {
        "nnz": nnz, "scorer_version": str(SCORER_VERSION),
        "public_score": float(pub["score"]), "public_ce": float(pub["ce"]), "public_accuracy": float(pub["accuracy"]),
        "private_score": float(priv["score"]), "private_ce": float(priv["ce"]),
        "private_accuracy": float(priv["accuracy"]),
        "metrics": {"public": _plain(pub), "private": _plain(priv)},
    }


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, np.ndarray):
            out[k] = v.tolist()
        elif isinstance(v, np.generic):
            out[k] = v.item()
        elif isinstance(v, list | tuple):
            out[k] = [x.item() if isinstance(x, np.generic) else x for x in v]
        else:
            out[k] = v
    return out


def linear_onnx(in_shape: tuple[int, ...], classes: int, seed: int = 0) -> bytes:
    """A Flatten+Gemm classifier with random weights (a tiny valid upload for examples and checks)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    n_in = int(np.prod(in_shape))
    w = numpy_helper.from_array((rng.standard_normal((n_in, classes)) * 0.1).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(classes, np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"], axis=1), helper.make_node("Gemm", ["f", "w", "b"], ["logits"])],
        "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *in_shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])], initializer=[w, b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10).SerializeToString()


class SparseTrack(Track):
    name = "sparse"
    title = "sparse"
    policy = ("score = CE + log10(max(1, nnz)) / λ, lower is better; CE in nats over the scored images; "
              "nnz counts the non-zero numbers the ONNX file stores.")
    default_quota = 5
    settings_table = "sparse"
    settings_schema = {"dataset": str, "secret_test": bool, "test_size": int}
    public_settings = ("test_size",)

    # ---- the test set: public split, private dataset, or generated from a secret seed -------------------------
    def parse_settings(self, table: Any, *, source: str = "challenge file",  # noqa: ANN401
                       base_dir: Path | None = None) -> dict[str, Any]:
        from occam.arena.datasets import check_name
        from occam.arena.strict import check_table

        table = dict(table or {})
        check_table(table, self.settings_schema or {}, where=source, section="sparse")
        out: dict[str, Any] = {}
        if table.get("dataset"):
            if table.get("secret_test"):
                raise OccamError(f"{source}: [sparse] sets both dataset and secret_test",
                                 "pick one test set: a private dataset, or one generated from a secret seed")
            try:
                check_name(table["dataset"])
            except OccamError as exc:
                raise OccamError(f"{source}: [sparse] dataset: {exc.problem}", exc.fix) from None
            out["dataset"] = table["dataset"]
        if "test_size" in table and not table.get("secret_test"):
            raise OccamError(f"{source}: [sparse] test_size applies only with secret_test = true",
                             "add secret_test = true, or remove test_size")
        if table.get("secret_test"):
            n = int(table.get("test_size", 2000))
            if not 100 <= n <= MAX_TEST_SIZE:
                raise OccamError(f"{source}: [sparse] test_size must lie in 100..{MAX_TEST_SIZE:,}, got {n}",
                                 "use e.g. test_size = 2000")
            out["secret_test"] = True
            out["test_size"] = n
        return out

    def register(self, spec: Any) -> dict[str, Any]:  # noqa: ANN401 - a ChallengeSpec
        import secrets

        from occam.tasks import get_task

        settings = dict(spec.settings)
        if settings.get("secret_test"):
            task = get_task(spec.task)
            if task.generate_test is None:
                raise OccamError(f"task {spec.task!r} cannot generate a test set, so secret_test does not apply",
                                 "register a private dataset (occam arena dataset add) and set dataset = \"NAME\"")
            # the seed lives only in the stored settings (never served): no team can draw this test set
            settings.setdefault("secret_seed", secrets.randbits(62))
        return settings

    def private_dataset(self, settings: Any) -> str | None:  # noqa: ANN401
        return str(settings["dataset"]) if settings.get("dataset") else None

    def public_labels_warning(self, info: ChallengeInfo) -> str:
        if info.settings.get("dataset") or info.settings.get("secret_seed") is not None:
            return ""
        return PUBLIC_LABELS_WARNING

    def public_challenge(self, info: ChallengeInfo) -> dict[str, Any]:
        st = info.settings
        source = ("private dataset" if st.get("dataset") else
                  "generated from a secret seed" if st.get("secret_seed") is not None else "the task's public test split")
        out: dict[str, Any] = {"test_set": source}
        if st.get("secret_seed") is not None:
            out["test_size"] = int(st.get("test_size") or 2000)
        return out

    def describe(self, info: ChallengeInfo) -> str:
        line = super().describe(info)
        warning = self.public_labels_warning(info)
        return line + (f"\n[yellow]warning: the test labels of task {info.task} are public: {warning}[/]" if warning else "")

    def check(self, data: bytes, info: ChallengeInfo) -> CheckOutcome:
        return sparse_check(data, info)

    def score(self, data: bytes, info: ChallengeInfo, options: dict[str, Any]) -> dict[str, Any]:
        return sparse_score(data, info, options)

    def example_uploads(self, tmp: Path, info: ChallengeInfo) -> tuple[bytes, list[bytes]]:
        from occam.tasks import get_task

        t = get_task(info.task)
        return linear_onnx(tuple(t.input_shape), t.num_classes), [b"not an onnx file", b"\x08\x07" * 40]
