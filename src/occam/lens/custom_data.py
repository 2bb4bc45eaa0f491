"""Your own data in the Lens: a task built from arrays or a dataset, and inputs given as indices or arrays.

:func:`array_task` makes an :class:`occam.tasks.Task` whose splits are the arrays you pass
(nothing is written to disk, nothing is registered), so a model of a task the arena does not
know can be opened with the existing ``open_model(model, task)``::

    task = array_task(x_train, y_train, x_val, y_val, name="my-sensors")
    lm = open_model("model.onnx", task)           # or open_model_on_arrays(...)

Images may be uint8 (0–255, divided by 255 as for the built-in tasks) or floats (used as they
are). :func:`as_inputs` is shared by the depth analyses: an input is a val-set index, a list of
indices, or an array of one or more examples.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from occam.errors import OccamError
from occam.tasks import SPLITS, Task, loaders

__all__ = ["ArrayTask", "array_task", "task_from", "dataset_arrays", "open_model_on_arrays", "as_inputs", "as_index",
           "sample_floats"]


def _no_loader() -> loaders.RawData:
    raise OccamError("an array task has no raw files to load", "its splits are the arrays it was built from")


def _located() -> loaders.Located:
    return loaders.Located(ok=True, where="<arrays in memory>", files=[])


@dataclass(frozen=True)
class ArrayTask(Task):
    """A :class:`Task` whose splits live in memory (see :func:`array_task`)."""

    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False, compare=False)

    def _split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        if split not in SPLITS:
            raise OccamError(f"unknown split {split!r}", f"use one of {', '.join(SPLITS)}")
        if split == "test" and "test" not in self.arrays:
            split = "val"
        return self.arrays[split]

    def images(self, split: str) -> np.ndarray:
        x = self._split(split)[0]
        if x.dtype == np.uint8:
            return x
        return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)

    def labels(self, split: str) -> np.ndarray:
        return self._split(split)[1]

    def floats(self, split: str) -> np.ndarray:
        x = self._split(split)[0]
        if x.dtype == np.uint8:
            return x.astype(np.float32) / np.float32(255.0)
        return x.astype(np.float32, copy=False)

    @property
    def available(self) -> bool:
        return True


def _check_pair(x: Any, y: Any, split: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x)
    y = np.asarray(y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y)
    if x.ndim < 2:
        raise OccamError(f"{split} images must have shape [N, ...], got {list(x.shape)}",
                         "stack the examples along a first axis")
    if y.shape != (len(x),):
        raise OccamError(f"{split} labels must have shape [{len(x)}] (one per image), got {list(y.shape)}",
                         "pass one integer class per example")
    if len(x) == 0:
        raise OccamError(f"the {split} split is empty", "pass at least one example")
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise OccamError(f"{split} images have dtype {x.dtype}", "pass uint8 pixels (0-255) or floats")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise OccamError(f"{split} images contain NaN or infinite values", "clean the data first")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.equal(np.mod(y, 1), 0)):
            y = y.astype(np.int64)
        else:
            raise OccamError(f"{split} labels have dtype {y.dtype}", "pass integer class indices")
    return x, y.astype(np.int64)


def array_task(x_train: Any, y_train: Any, x_val: Any, y_val: Any, *, x_test: Any = None, y_test: Any = None,
               name: str = "custom", class_names: Sequence[str] | None = None, num_classes: int | None = None,
               default_lam: float = 10.0, title: str | None = None) -> ArrayTask:
    """A task from arrays: images ``[N, *input_shape]`` (uint8 or float) and integer labels ``[N]``.

    ``num_classes`` defaults to ``len(class_names)`` or ``max(label) + 1``; ``test`` defaults to
    the val split.
    """
    splits = {"train": _check_pair(x_train, y_train, "train"), "val": _check_pair(x_val, y_val, "val")}
    if (x_test is None) != (y_test is None):
        raise OccamError("x_test and y_test go together", "pass both or neither")
    if x_test is not None:
        splits["test"] = _check_pair(x_test, y_test, "test")
    shape = tuple(splits["train"][0].shape[1:])
    for s, (x, _) in splits.items():
        if tuple(x.shape[1:]) != shape:
            raise OccamError(f"the {s} images have shape {list(x.shape[1:])} but train images {list(shape)}",
                             "all splits must have the same per-example shape")
    top = max(int(y.max()) for _, y in splits.values()) + 1
    if class_names is not None:
        class_names = tuple(str(c) for c in class_names)
    n = num_classes or (len(class_names) if class_names else top)
    if class_names is not None and len(class_names) != n:
        raise OccamError(f"{len(class_names)} class names for {n} classes", "pass one name per class")
    for s, (_, y) in splits.items():
        if y.min() < 0 or y.max() >= n:
            raise OccamError(f"{s} labels fall outside 0..{n - 1}", "pass num_classes or fix the labels")
    names = class_names or tuple(str(i) for i in range(n))
    return ArrayTask(name=name, title=title or name, input_shape=shape, num_classes=n, class_names=names,
                     default_lam=default_lam, val_size=len(splits["val"][1]),
                     description=f"arrays in memory: {len(splits['train'][1])} train, {len(splits['val'][1])} val",
                     raw_loader=_no_loader, locate=_located, arrays=splits)


def dataset_arrays(dataset: Iterable[Any], limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` arrays from a dataset of ``(example, label)`` pairs (e.g. a ``torch.utils.data.Dataset``)."""
    xs, ys = [], []
    for i, item in enumerate(dataset):
        if limit is not None and i >= limit:
            break
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise OccamError(f"dataset item {i} is not an (example, label) pair", "yield (x, y) from the dataset")
        x, y = item
        xs.append(np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x))
        ys.append(int(y))
    if not xs:
        raise OccamError("the dataset is empty", "pass a dataset with at least one example")
    shapes = {a.shape for a in xs}
    if len(shapes) != 1:
        raise OccamError(f"the dataset's examples have different shapes: {sorted(shapes)[:3]}",
                         "resize or pad them to one shape")
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def task_from(data: Any, **kwargs: Any) -> Task:
    """A task from what a user has at hand (the hook for ``open_model(model, data)``).

    ``data``: a :class:`Task` (returned as is); a tuple ``(x_train, y_train, x_val, y_val)``; a tuple
    ``(train_dataset, val_dataset)`` of ``(x, y)`` datasets; or a dict of ``array_task``'s arguments.
    Keyword arguments go to :func:`array_task`.
    """
    if isinstance(data, Task):
        return data
    if isinstance(data, dict):
        return array_task(**{**data, **kwargs})
    if isinstance(data, tuple | list) and len(data) == 4:
        return array_task(*data, **kwargs)
    if isinstance(data, tuple | list) and len(data) == 2:
        (xt, yt), (xv, yv) = dataset_arrays(data[0]), dataset_arrays(data[1])
        return array_task(xt, yt, xv, yv, **kwargs)
    raise OccamError(f"cannot build a task from a {type(data).__name__}",
                     "pass a task name, (x_train, y_train, x_val, y_val), (train_dataset, val_dataset) or a dict")


def open_model_on_arrays(model: Any, x_train: Any, y_train: Any, x_val: Any = None, y_val: Any = None,
                         **kwargs: Any) -> Any:
    """``open_model`` with a task built from arrays or datasets (see :func:`array_task`).

    ``x_train``/``x_val`` may be datasets of ``(x, y)`` pairs (then leave ``y_*`` as ``None``).
    Keyword arguments of :func:`array_task` are taken out; the rest go to ``open_model``.
    """
    from occam.lens.model import open_model

    if y_train is None:
        x_train, y_train = dataset_arrays(x_train)
    if x_val is None:
        raise OccamError("no validation data", "pass x_val and y_val (or a val dataset)")
    if y_val is None:
        x_val, y_val = dataset_arrays(x_val)
    task_keys = {"x_test", "y_test", "name", "class_names", "num_classes", "default_lam", "title"}
    task_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in task_keys}
    task = array_task(x_train, y_train, x_val, y_val, **task_kwargs)
    return open_model(model, task, **kwargs)


def sample_floats(task: Task, split: str, n: int, seed: int = 0) -> np.ndarray:
    """Up to ``n`` examples of ``split`` (seeded, in index order), as float32 model inputs.

    For disk-backed tasks only the chosen examples are converted (``floats(split)[idx]`` converts them all).
    """
    x = task.images(split) if not isinstance(task, ArrayTask) else None
    total = len(x) if x is not None else len(task.labels(split))
    rng = np.random.default_rng(seed)
    sel = np.sort(rng.choice(total, size=min(n, total), replace=False))
    if x is None:
        return task.floats(split)[sel]
    return x[sel].astype(np.float32) / np.float32(255.0)


def as_index(lm: Any, i: int, what: str = "image") -> int:
    """``i`` checked against the Lens's val images."""
    n = len(lm.x)
    if isinstance(i, bool) or not isinstance(i, int | np.integer):
        raise OccamError(f"{what} index must be an integer, got {type(i).__name__}", f"pass 0..{n - 1}")
    if not 0 <= int(i) < n:
        raise OccamError(f"{what} index {int(i)} is out of range: the Lens has {n} val images",
                         f"pass an index in 0..{n - 1}")
    return int(i)


def as_inputs(lm: Any, images: Any, what: str = "images") -> torch.Tensor:
    """A float batch ``[N, *input_shape]`` from a val index, a list of indices, or an array of examples."""
    shape = tuple(lm.task.input_shape)
    if isinstance(images, int | np.integer) and not isinstance(images, bool):
        return lm.x[as_index(lm, images, what)][None].clone()
    if isinstance(images, list | tuple | range) and all(isinstance(i, int | np.integer) for i in images):
        if len(images) == 0:
            raise OccamError(f"no {what} given", "pass at least one index")
        return lm.x[[as_index(lm, i, what) for i in images]].clone()
    if isinstance(images, np.ndarray | torch.Tensor):
        t = images.detach().cpu() if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images))
        if t.dtype == torch.uint8:
            t = t.float() / 255.0
        t = t.float()
        if tuple(t.shape) == shape:
            t = t[None]
        if tuple(t.shape[1:]) != shape:
            raise OccamError(f"{what} have shape {list(t.shape)}, but the model takes [N, {', '.join(map(str, shape))}]",
                             "pass one example of the task's input shape, or a batch of them")
        if not torch.isfinite(t).all():
            raise OccamError(f"{what} contain NaN or infinite values", "pass finite pixel values")
        return t.clone()
    raise OccamError(f"cannot read {what} from a {type(images).__name__}",
                     "pass a val index, a list of indices, or an array of examples")
