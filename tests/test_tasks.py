"""Task loaders on real file formats: present, missing, truncated and corrupt files."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from occam.errors import DataError
from occam.tasks import get_task, list_tasks
from occam.tasks.formats import parse_idx, write_cifar_batch, write_idx
from occam.tasks.loaders import FASHION_SHA256, IDX_FILES, locate_fashion_mnist


def _write_mnist_like(folder, n_train=60, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        IDX_FILES[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        IDX_FILES[1]: rng.integers(0, 10, n_train).astype(np.uint8),
        IDX_FILES[2]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        IDX_FILES[3]: rng.integers(0, 10, n_test).astype(np.uint8),
    }
    for stem, arr in arrays.items():
        write_idx(folder / f"{stem}.gz", arr)
    return arrays


def test_idx_round_trip(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", arr)
    back = parse_idx(gzip.decompress((tmp_path / "a.gz").read_bytes()))
    assert back.shape == (2, 3, 4) and np.array_equal(back, arr)


def test_idx_rejects_bad_magic_and_truncation():
    with pytest.raises(DataError, match="not an IDX file"):
        parse_idx(b"\x01\x02\x03\x04hello")
    good = bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + b"abcde"
    assert parse_idx(good).tolist() == list(b"abcde")
    with pytest.raises(DataError, match="truncated or corrupt"):
        parse_idx(good[:-2])


def test_mnist_from_user_files(data_home):
    arrays = _write_mnist_like(data_home / "mnist", n_train=6000, n_test=30)
    task = get_task("mnist")
    assert task.available
    x, y = task.load("test")
    assert x.shape == (30, 1, 28, 28) and x.dtype == np.uint8
    assert np.array_equal(x[:, 0], arrays[IDX_FILES[2]]) and np.array_equal(y, arrays[IDX_FILES[3]])
    tx, _ = task.load("train")
    vx, vy = task.load("val")
    assert len(tx) + len(vx) == 6000 and len(vx) == task.val_size
    # val is a fixed part of train and disjoint from what train keeps
    train_rows = {r.tobytes() for r in tx}
    assert not any(r.tobytes() in train_rows for r in vx[:50])


def test_mnist_missing_says_where_and_how(data_home):
    task = get_task("mnist")
    assert not task.available
    with pytest.raises(DataError) as info:
        task.load("train")
    assert str(data_home / "mnist") in info.value.problem
    assert "t10k-images-idx3-ubyte.gz" in info.value.fix


def test_mnist_truncated_gzip_is_a_clear_error(data_home):
    _write_mnist_like(data_home / "mnist")
    f = data_home / "mnist" / f"{IDX_FILES[0]}.gz"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(DataError, match="truncated or corrupt"):
        get_task("mnist").load("train")


def test_mnist_mismatched_counts(data_home):
    _write_mnist_like(data_home / "mnist")
    write_idx(data_home / "mnist" / f"{IDX_FILES[1]}.gz", np.zeros(7, np.uint8))
    with pytest.raises(DataError, match="do not match"):
        get_task("mnist").load("train")


def test_fashion_sha_mismatch_in_user_folder(data_home):
    _write_mnist_like(data_home / "fashion-mnist")
    assert locate_fashion_mnist().where == str(data_home / "fashion-mnist")
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        get_task("fashion-mnist").load("test")


@pytest.mark.skipif(not get_task("fashion-mnist").available, reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_real_files():
    task = get_task("fashion-mnist")
    x, y = task.load("test")
    assert x.shape == (10000, 1, 28, 28) and np.bincount(y).tolist() == [1000] * 10
    assert len(task.labels("train")) == 55000 and len(task.labels("val")) == 5000
    assert set(FASHION_SHA256) == set(IDX_FILES)


def test_cifar10_from_pickles_and_corrupt_batch(data_home):
    root = data_home / "cifar10" / "cifar-10-batches-py"
    root.mkdir(parents=True)
    rng = np.random.default_rng(1)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        write_cifar_batch(root / name, rng.integers(0, 256, (1100, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, 1100))
    task = get_task("cifar10")
    x, y = task.load("test")
    assert x.shape == (1100, 3, 32, 32) and y.max() < 10
    assert len(task.labels("train")) == 5500 - task.val_size
    (root / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="cannot unpickle"):
        # a changed file invalidates the materialized cache, so the corrupt batch is read
        get_task("cifar10").load("test")


def test_cifar10_missing(data_home):
    with pytest.raises(DataError, match="CIFAR-10 batches not found"):
        get_task("cifar10").load("train")


def test_builtin_tasks_are_deterministic():
    for name in ("digits", "mnist1d"):
        task = get_task(name)
        x1, y1 = task.load("val")
        assert x1.dtype == np.uint8 and x1.shape[1:] == task.input_shape
        assert len(np.unique(y1)) == task.num_classes
    x, y = get_task("digits").raw_loader().test_x, get_task("digits").raw_loader().test_y
    assert np.array_equal(get_task("digits").images("test"), x) and np.array_equal(get_task("digits").labels("test"), y)


def test_unknown_task_and_split():
    with pytest.raises(DataError, match="unknown task"):
        get_task("imagenet")
    with pytest.raises(DataError, match="unknown split"):
        get_task("digits").load("holdout")
    assert {t.name for t in list_tasks()} >= {"fashion-mnist", "mnist", "cifar10", "digits", "mnist1d"}
