"""Readers (and writers, for tests and fixtures) of the standard dataset file formats.

- IDX (MNIST, Fashion-MNIST), plain or gzipped.
- CIFAR-10's "python version": pickled dicts with ``data`` (N×3072 uint8) and ``labels``.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np

from occam.errors import DataError

_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}


def read_bytes(path: Path) -> bytes:
    """File contents, transparently gunzipped when the name ends in ``.gz``."""
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            return gzip.decompress(raw)
        return raw
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(
            f"cannot read {path}: {exc}",
            "the file is truncated or corrupt; delete it and copy or download it again",
        ) from exc


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into an array, checking the header against the payload size."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{source} is not an IDX file (bad magic number)",
            "use the original MNIST-format files (e.g. train-images-idx3-ubyte.gz)",
        )
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES or ndim == 0:
        raise DataError(f"{source}: unknown IDX type code 0x{code:02x} or rank {ndim}",
                        "use the original MNIST-format files")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source}: IDX header is truncated", "copy or download the file again")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(
            f"{source}: IDX payload has {len(data) - header} bytes but the header promises {expected}",
            "the file is truncated or corrupt; copy or download it again",
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: Path, array: np.ndarray, gz: bool | None = None) -> None:
    """Write an array (uint8 or int8) in IDX format; gzipped when the name ends in .gz."""
    array = np.ascontiguousarray(array)
    code = _IDX_CODES[array.dtype]
    payload = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    gz = path.suffix == ".gz" if gz is None else gz
    path.write_bytes(gzip.compress(payload, mtime=0) if gz else payload)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: images as N×3×32×32 uint8, labels as int64."""
    try:
        with path.open("rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
    except Exception as exc:  # pickle raises many types on corrupt input
        raise DataError(f"cannot unpickle {path}: {exc}",
                        "the CIFAR-10 batch is truncated or corrupt; extract cifar-10-python.tar.gz again") from exc
    if not isinstance(batch, dict):
        raise DataError(f"{path} is not a CIFAR-10 batch (not a dict)", "use the 'python version' of CIFAR-10")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise DataError(f"{path} has no 'data'/'labels' entries", "use the 'python version' of CIFAR-10")
    data = np.asarray(data, dtype=np.uint8)
    labels = np.asarray(labels, dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(f"{path}: expected N×3072 images and N labels, got {data.shape} and {labels.shape}",
                        "the CIFAR-10 batch is corrupt; extract it again")
    return data.reshape(-1, 3, 32, 32), labels


def write_cifar_batch(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write a batch in CIFAR-10's python format (used to build test fixtures)."""
    batch = {b"data": images.reshape(len(images), -1).astype(np.uint8), b"labels": [int(v) for v in labels],
             b"batch_label": b"occam fixture", b"filenames": [b"x.png"] * len(images)}
    with path.open("wb") as fh:
        pickle.dump(batch, fh)
