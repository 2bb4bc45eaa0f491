"""Tasks: datasets with fixed splits, class names, input shapes and a default λ.

A task gives ``train``, ``val`` and ``test`` arrays of uint8 pixels and int64 labels.
``val`` is a fixed, seeded part of the official training set (and is removed from
``train``); ``test`` is the official test set. Models see float32 pixels in [0, 1]:
``x.astype(np.float32) / 255``.

Loaded splits are materialized once as ``.npy`` files under ``OCCAM_CACHE`` (keyed by the
source files' size and mtime) so that later loads cost milliseconds and never import
scikit-learn or PyTorch.

>>> from occam.tasks import get_task
>>> task = get_task("digits")
>>> x, y = task.load("val")
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from occam.errors import DataError
from occam.paths import cache_dir
from occam.tasks import loaders

SPLITS = ("train", "val", "test")
_VAL_SEED = 20261123


@dataclass(frozen=True)
class Task:
    name: str
    title: str
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...]
    default_lam: float
    val_size: int
    description: str
    raw_loader: Callable[[], loaders.RawData] = field(repr=False)
    locate: Callable[[], loaders.Located] = field(repr=False)
    version: str = "1"
    augment: str = "none"  # the training recipe's augmentation policy (see occam.training.augment)
    # A generated task can draw a fresh labelled set from any seed: ``generate_test(seed, n)`` gives a test set that
    # exists only where it is generated (an arena challenge keeps the seed secret, so no team has its labels).
    generate_test: Callable[[int, int], tuple[np.ndarray, np.ndarray]] | None = field(default=None, repr=False)

    # ---- availability ------------------------------------------------------------------
    def availability(self) -> tuple[bool, str]:
        """(available, where): whether the source files are present here, and where they are or were sought."""
        found = self.locate()
        return found.ok, found.where

    @property
    def available(self) -> bool:
        return self.locate().ok

    # ---- data ----------------------------------------------------------------------------
    def load(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(images uint8 [N, *input_shape], labels int64 [N]) for ``split``."""
        return self.images(split), self.labels(split)

    def images(self, split: str) -> np.ndarray:
        return np.load(self._materialize() / f"{_check_split(split)}_x.npy")

    def labels(self, split: str) -> np.ndarray:
        return np.load(self._materialize() / f"{_check_split(split)}_y.npy")

    def floats(self, split: str) -> np.ndarray:
        """Images as the models see them: float32 in [0, 1]."""
        return self.images(split).astype(np.float32) / np.float32(255.0)

    def _cache_key(self, found: loaders.Located) -> str:
        h = hashlib.sha256(f"{self.name}:{self.version}:{self.val_size}:{_VAL_SEED}".encode())
        for p in found.files:
            st = p.stat()
            h.update(f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
        return h.hexdigest()[:16]

    def _materialize(self) -> Path:
        found = self.locate()
        if not found.ok:
            raise DataError(found.problem, found.fix)
        root = cache_dir() / "tasks" / self.name / self._cache_key(found)
        if (root / "meta.json").exists():
            return root
        raw = self.raw_loader()
        _validate_raw(self, raw)
        rng = np.random.default_rng(_VAL_SEED)
        perm = rng.permutation(len(raw.train_x))
        val_idx, train_idx = np.sort(perm[: self.val_size]), np.sort(perm[self.val_size:])
        arrays = {
            "train_x": raw.train_x[train_idx], "train_y": raw.train_y[train_idx],
            "val_x": raw.train_x[val_idx], "val_y": raw.train_y[val_idx],
            "test_x": raw.test_x, "test_y": raw.test_y,
        }
        root.mkdir(parents=True, exist_ok=True)
        for key, arr in arrays.items():
            tmp = root / f".{key}.{os.getpid()}.npy"
            np.save(tmp, np.ascontiguousarray(arr))
            os.replace(tmp, root / f"{key}.npy")
        meta = {"task": self.name, "version": self.version, "sizes": {s: int(len(arrays[f"{s}_y"])) for s in SPLITS},
                "sources": [str(p) for p in found.files]}
        tmp = root / f".meta.{os.getpid()}.json"
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, root / "meta.json")
        return root


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}", f"use one of {', '.join(SPLITS)}")
    return split


def _validate_raw(task: Task, raw: loaders.RawData) -> None:
    for name, x, y in (("train", raw.train_x, raw.train_y), ("test", raw.test_x, raw.test_y)):
        if x.dtype != np.uint8 or tuple(x.shape[1:]) != task.input_shape or len(x) != len(y):
            raise DataError(f"{task.name} {name} data has shape {x.shape} {x.dtype}, expected [N, {task.input_shape}] uint8",
                            "the dataset files are corrupt; replace them")
        if y.min() < 0 or y.max() >= task.num_classes:
            raise DataError(f"{task.name} {name} labels fall outside 0..{task.num_classes - 1}",
                            "the label file is corrupt; replace it")


FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DIGIT_CLASSES = tuple(str(i) for i in range(10))

_REGISTRY: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Add a task to the registry (later parts may register more, e.g. synthetic fractals)."""
    _REGISTRY[task.name] = task
    return task


register(Task(
    name="fashion-mnist", title="Fashion-MNIST", input_shape=(1, 28, 28), num_classes=10,
    class_names=FASHION_CLASSES, default_lam=10.0, val_size=5000, augment="flip-shift2",
    description="Zalando's 28×28 grayscale clothing images: 55k train, 5k val, 10k test.",
    raw_loader=loaders.load_fashion_mnist, locate=loaders.locate_fashion_mnist,
))
register(Task(
    name="mnist", title="MNIST", input_shape=(1, 28, 28), num_classes=10,
    class_names=DIGIT_CLASSES, default_lam=100.0, val_size=5000, augment="shift2",
    description="Handwritten digits, 28×28: 55k train, 5k val, 10k test. Files placed by the user.",
    raw_loader=loaders.load_mnist, locate=loaders.locate_mnist,
))
register(Task(
    name="cifar10", title="CIFAR-10", input_shape=(3, 32, 32), num_classes=10,
    class_names=CIFAR_CLASSES, default_lam=3.0, val_size=5000, augment="flip-shift4",
    description="32×32 colour images of 10 classes: 45k train, 5k val, 10k test. Files placed by the user.",
    raw_loader=loaders.load_cifar10, locate=loaders.locate_cifar10,
))
register(Task(
    name="digits", title="scikit-learn digits", input_shape=(1, 8, 8), num_classes=10,
    class_names=DIGIT_CLASSES, default_lam=30.0, val_size=216, augment="none",
    description="scikit-learn's 1,797 8×8 digits (0-16 scaled to 0-255); seeded 80/20 train/test split.",
    raw_loader=loaders.load_digits, locate=loaders.locate_builtin,
))
register(Task(
    name="mnist1d", title="MNIST-1D", input_shape=(40,), num_classes=10,
    class_names=DIGIT_CLASSES, default_lam=5.0, val_size=500, augment="none",
    description="MNIST-1D (Greydanus 2020) generated locally with the reference seed: 3.5k train, 0.5k val, 1k test.",
    raw_loader=loaders.load_mnist1d, locate=loaders.locate_builtin, generate_test=loaders.generate_mnist1d,
))


def get_task(name: str) -> Task:
    """The task called ``name``; a clear error lists the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DataError(f"unknown task {name!r}", f"use one of: {', '.join(sorted(_REGISTRY))}") from None


def list_tasks() -> list[Task]:
    return list(_REGISTRY.values())


__all__ = ["Task", "get_task", "list_tasks", "register", "SPLITS"]
