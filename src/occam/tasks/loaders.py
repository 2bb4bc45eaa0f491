"""Raw loaders: where each dataset's files are, and how to read them into uint8 arrays."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from occam.errors import DataError
from occam.paths import data_dir
from occam.tasks.formats import parse_idx, read_bytes, read_cifar_batch, sha256

DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# SHA-256 of the *decompressed* Fashion-MNIST IDX files (zalandoresearch/fashion-mnist v1).
# Hashing the payload rather than the .gz accepts re-compressed copies such as Debian's.
FASHION_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

CIFAR_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")


@dataclass
class RawData:
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


@dataclass
class Located:
    ok: bool
    where: str
    files: list[Path] = field(default_factory=list)
    problem: str = ""
    fix: str = ""


def _find_idx(dirs: list[Path]) -> dict[str, Path] | None:
    for d in dirs:
        found = {}
        for stem in IDX_FILES:
            for candidate in (d / f"{stem}.gz", d / stem):
                if candidate.is_file():
                    found[stem] = candidate
                    break
        if len(found) == len(IDX_FILES):
            return found
    return None


def _fashion_dirs() -> list[Path]:
    dirs = [data_dir() / "fashion-mnist"]
    if os.environ.get("OCCAM_DATA"):
        dirs.append(data_dir())
    dirs.append(DEBIAN_FASHION_DIR)
    return dirs


def locate_fashion_mnist() -> Located:
    dirs = _fashion_dirs()
    found = _find_idx(dirs)
    where = " or ".join(str(d) for d in dirs)
    if found is None:
        return Located(False, where, problem=f"Fashion-MNIST files not found in {where}",
                       fix="install Debian's package (apt-get install dataset-fashion-mnist) or put the four "
                           "IDX files (train-images-idx3-ubyte.gz, ...) in $OCCAM_DATA/fashion-mnist/")
    return Located(True, str(found[IDX_FILES[0]].parent), files=[found[s] for s in IDX_FILES])


def _read_idx_set(found: Located, expected_sha: dict[str, str] | None, task: str) -> RawData:
    arrays = {}
    for stem, path in zip(IDX_FILES, found.files, strict=True):
        data = read_bytes(path)
        if expected_sha is not None and sha256(data) != expected_sha[stem]:
            raise DataError(f"{path} does not match the published {task} file (SHA-256 mismatch)",
                            f"replace it with the original {stem} file")
        arrays[stem] = parse_idx(data, str(path))
    tx, ty, sx, sy = (arrays[s] for s in IDX_FILES)
    for name, imgs, labs in (("train", tx, ty), ("test", sx, sy)):
        if imgs.ndim != 3 or labs.ndim != 1 or len(imgs) != len(labs):
            raise DataError(f"{task} {name} images {imgs.shape} and labels {labs.shape} do not match",
                            "the files are from different datasets or corrupt; replace them")
    return RawData(tx[:, None].astype(np.uint8), ty.astype(np.int64), sx[:, None].astype(np.uint8), sy.astype(np.int64))


def load_fashion_mnist() -> RawData:
    return _read_idx_set(locate_fashion_mnist(), FASHION_SHA256, "Fashion-MNIST")


def locate_mnist() -> Located:
    dirs = [data_dir() / "mnist"]
    found = _find_idx(dirs)
    if found is None:
        return Located(False, str(dirs[0]), problem=f"MNIST files not found in {dirs[0]}",
                       fix="download the four MNIST IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                           f"t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) into {dirs[0]} "
                           "(or set OCCAM_DATA to the folder that holds mnist/)")
    return Located(True, str(dirs[0]), files=[found[s] for s in IDX_FILES])


def load_mnist() -> RawData:
    raw = _read_idx_set(locate_mnist(), None, "MNIST")
    if raw.train_x.shape[1:] != (1, 28, 28):
        raise DataError(f"MNIST images are {raw.train_x.shape[1:]}, expected 28×28", "replace the files with MNIST's")
    return raw


def locate_cifar10() -> Located:
    base = data_dir() / "cifar10"
    for d in (base / "cifar-10-batches-py", base):
        if all((d / f).is_file() for f in CIFAR_FILES):
            return Located(True, str(d), files=[d / f for f in CIFAR_FILES])
    return Located(False, str(base), problem=f"CIFAR-10 batches not found in {base} or {base / 'cifar-10-batches-py'}",
                   fix="download cifar-10-python.tar.gz (the 'python version') and extract it into "
                       f"{base} so that {base}/cifar-10-batches-py/data_batch_1 exists")


def load_cifar10() -> RawData:
    found = locate_cifar10()
    parts = [read_cifar_batch(p) for p in found.files]
    train_x = np.concatenate([p[0] for p in parts[:5]])
    train_y = np.concatenate([p[1] for p in parts[:5]])
    return RawData(train_x, train_y, parts[5][0], parts[5][1])


def locate_builtin() -> Located:
    return Located(True, "generated locally")


def load_digits() -> RawData:
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    x = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    y = bunch.target.astype(np.int64)
    tx, sx, ty, sy = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return RawData(tx, ty, sx, sy)


# MNIST-1D values lie in about [-5.5, 4.6] with the reference settings; map [-6, 6] to [0, 255].
MNIST1D_RANGE = 6.0


def _mnist1d_to_uint8(x: np.ndarray) -> np.ndarray:
    return np.rint((np.clip(x, -MNIST1D_RANGE, MNIST1D_RANGE) + MNIST1D_RANGE) * (255.0 / (2 * MNIST1D_RANGE))).astype(np.uint8)


def load_mnist1d() -> RawData:
    # make_dataset generates the data from templates with the reference seed (42); it never downloads.
    from mnist1d.data import get_dataset_args, make_dataset

    ds = make_dataset(get_dataset_args())
    return RawData(_mnist1d_to_uint8(ds["x"]), np.asarray(ds["y"], np.int64),
                   _mnist1d_to_uint8(ds["x_test"]), np.asarray(ds["y_test"], np.int64))


def generate_mnist1d(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` fresh MNIST-1D examples (rounded up to a multiple of 10) drawn with ``seed``, made the way the reference
    set is (same templates and transforms), so a model trained on the public set is scored on a set no one has."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = int(seed)
    args.num_samples = int(-(-max(10, n) // 10) * 10)
    args.train_split = 0.0
    ds = make_dataset(args)
    return _mnist1d_to_uint8(ds["x_test"])[:n], np.asarray(ds["y_test"], np.int64)[:n]
