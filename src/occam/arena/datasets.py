"""Private test sets: an organizer's own labelled images, which no team can see.

An organizer registers a dataset from

- **IDX** files (MNIST format, plain or gzipped): the images file, with ``labels`` naming the labels file;
- **NPZ**: one file with arrays ``x`` (or ``images``) and ``y`` (or ``labels``);
- **a folder of PNGs** with ``labels`` naming a CSV file of ``filename,label`` rows (a header row is allowed).

:func:`read_dataset` turns any of these into ``uint8 [N, C, H, W]`` (or ``[N, L]``) images and ``int64`` labels,
checking every file; :func:`pack` stores them as one compressed NPZ blob with a manifest (shape, classes, counts,
SHA-256) that the arena keeps in its database, where only the scoring workers read it. The manifest is public to the
organizer; the labels never leave the workers.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from occam.errors import DataError
from occam.tasks.formats import parse_idx, read_bytes

__all__ = ["DatasetManifest", "read_dataset", "pack", "unpack", "check_against", "NAME_RE"]

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_IMAGES = 1_000_000


@dataclass(frozen=True)
class DatasetManifest:
    """What the organizer sees of a private dataset (never its labels)."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    count: int
    class_counts: list[int] = field(default_factory=list)
    sha256: str = ""
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetManifest:
        return cls(name=d["name"], input_shape=tuple(d["input_shape"]), num_classes=int(d["num_classes"]),
                   count=int(d["count"]), class_counts=list(d.get("class_counts", [])), sha256=d.get("sha256", ""),
                   source=d.get("source", ""))


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise DataError(f"dataset name {name!r} is not allowed",
                        "use 1-64 lower-case letters, digits, '-' or '_', starting with a letter or digit")
    return name


def _fmt(source: Path, fmt: str | None) -> str:
    if fmt:
        if fmt not in ("idx", "npz", "png"):
            raise DataError(f"unknown dataset format {fmt!r}", "use idx, npz or png")
        return fmt
    if source.is_dir():
        return "png"
    name = source.name.lower()
    if name.endswith(".npz"):
        return "npz"
    if "idx" in name or name.endswith(".gz") or name.endswith("-ubyte"):
        return "idx"
    raise DataError(f"cannot tell the format of {source}",
                    "name the format (idx, npz or png), or use .npz / an IDX name / a folder of PNGs")


def read_dataset(source: str | Path, labels: str | Path | None = None, *, fmt: str | None = None,
                 num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [N, *shape], labels int64 [N])`` from IDX, NPZ or a PNG folder (see the module doc)."""
    source = Path(source)
    if not source.exists():
        raise DataError(f"{source} does not exist", "give the path of the images file or folder")
    kind = _fmt(source, fmt)
    if kind == "npz":
        x, y = _read_npz(source)
    elif kind == "idx":
        if labels is None:
            raise DataError("an IDX images file needs its labels file", "name the labels file (…-labels-idx1-ubyte)")
        x = parse_idx(read_bytes(source), str(source))
        y = parse_idx(read_bytes(Path(labels)), str(labels))
        if x.ndim == 3:
            x = x[:, None]
    else:
        if labels is None:
            raise DataError("a folder of PNGs needs a labels file", "name a CSV file of `filename,label` rows")
        x, y = _read_png_folder(source, Path(labels))
    return _validate(x, y, num_classes, str(source))


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            xk = next((k for k in ("x", "images", "x_test") if k in keys), None)
            yk = next((k for k in ("y", "labels", "y_test") if k in keys), None)
            if xk is None or yk is None:
                raise DataError(f"{path} has arrays {sorted(keys)}, not images and labels",
                                "save the images as `x` and the labels as `y` (np.savez(path, x=..., y=...))")
            return z[xk], z[yk]
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path} as NPZ: {exc}", "write it with numpy.savez(path, x=images, y=labels)") from exc


def _read_png_folder(folder: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    if not labels.is_file():
        raise DataError(f"labels file {labels} not found", "give a CSV file of `filename,label` rows")
    rows: list[tuple[str, int]] = []
    with labels.open(newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.reader(f)):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 2:
                raise DataError(f"{labels} line {i + 1} has {len(row)} field(s)", "write `filename,label` on every line")
            name, lab = row[0].strip(), row[1].strip()
            if i == 0 and not lab.lstrip("-").isdigit():
                continue  # a header row
            if not lab.lstrip("-").isdigit():
                raise DataError(f"{labels} line {i + 1}: label {lab!r} is not a whole number",
                                "labels are class indices 0, 1, 2, …")
            rows.append((name, int(lab)))
    if not rows:
        raise DataError(f"{labels} lists no images", "write one `filename,label` row per image")
    if len(rows) > MAX_IMAGES:
        raise DataError(f"{labels} lists {len(rows):,} images", f"use at most {MAX_IMAGES:,}")
    images = []
    root = folder.resolve()
    for name, _ in rows:
        p = (folder / name).resolve()
        if root not in p.parents:
            raise DataError(f"{name!r} points outside {folder}", "list files inside the folder only")
        try:
            with Image.open(p) as im:
                a = np.asarray(im.convert("L") if im.mode in ("L", "1", "I;16", "P", "LA") else im.convert("RGB"))
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read image {p}: {exc}", "every listed file must be a readable PNG") from exc
        images.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    shapes = {a.shape for a in images}
    if len(shapes) != 1:
        raise DataError(f"the images in {folder} have different shapes {sorted(shapes)[:4]}",
                        "resize them to one size")
    return np.stack(images), np.array([lab for _, lab in rows])


def _validate(x: np.ndarray, y: np.ndarray, num_classes: int | None, source: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
        raise DataError(f"{source}: images {x.shape} and labels {y.shape} do not match",
                        "give one label per image (images [N, ...], labels [N])")
    if len(x) == 0:
        raise DataError(f"{source} holds no images", "register a dataset with at least one image")
    if len(x) > MAX_IMAGES:
        raise DataError(f"{source} holds {len(x):,} images", f"use at most {MAX_IMAGES:,}")
    if x.dtype != np.uint8:
        if np.issubdtype(x.dtype, np.floating) and x.size and 0.0 <= float(x.min()) and float(x.max()) <= 1.0:
            x = np.round(x * 255.0).astype(np.uint8)
        elif np.issubdtype(x.dtype, np.integer) and x.size and 0 <= int(x.min()) and int(x.max()) <= 255:
            x = x.astype(np.uint8)
        else:
            raise DataError(f"{source}: images are {x.dtype} outside 0..255 (or 0..1 for floats)",
                            "store uint8 pixels, or floats in [0, 1]")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{source}: labels are {y.dtype}", "labels are whole-number class indices")
    y = y.astype(np.int64)
    if y.min() < 0:
        raise DataError(f"{source}: a label is negative ({int(y.min())})", "labels are class indices 0, 1, 2, …")
    if num_classes is not None and y.max() >= num_classes:
        raise DataError(f"{source}: label {int(y.max())} is outside 0..{num_classes - 1}",
                        f"the task has {num_classes} classes; fix the labels or choose the matching task")
    return np.ascontiguousarray(x), y


def pack(name: str, x: np.ndarray, y: np.ndarray, *, num_classes: int | None = None,
         source: str = "") -> tuple[bytes, DatasetManifest]:
    """One compressed NPZ blob and its manifest (SHA-256 of the blob)."""
    check_name(name)
    x, y = _validate(x, y, num_classes, source or name)
    buf = io.BytesIO()
    np.savez_compressed(buf, x=x, y=y)
    blob = buf.getvalue()
    k = int(num_classes if num_classes is not None else y.max() + 1)
    manifest = DatasetManifest(name=name, input_shape=tuple(int(d) for d in x.shape[1:]), num_classes=k,
                               count=int(len(y)), class_counts=np.bincount(y, minlength=k).tolist(),
                               sha256=hashlib.sha256(blob).hexdigest(), source=source)
    return blob, manifest


def unpack(blob: bytes, manifest: DatasetManifest | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The arrays of a :func:`pack` blob, checked against the manifest's SHA-256 when given."""
    if manifest is not None and manifest.sha256 and hashlib.sha256(blob).hexdigest() != manifest.sha256:
        raise DataError(f"private dataset {manifest.name!r} does not match its SHA-256",
                        "the stored copy is corrupt; register the dataset again")
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        x, y = z["x"], z["y"]
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def check_against(manifest: DatasetManifest, input_shape: tuple[int, ...], num_classes: int, task: str) -> None:
    """Refuse a dataset whose images or classes do not fit the challenge's task."""
    if tuple(manifest.input_shape) != tuple(input_shape):
        raise DataError(f"private dataset {manifest.name!r} has images of shape {list(manifest.input_shape)}, but task "
                        f"{task!r} takes {list(input_shape)}",
                        "register images of the task's shape, or choose the task that matches the dataset")
    if manifest.num_classes > num_classes:
        raise DataError(f"private dataset {manifest.name!r} has {manifest.num_classes} classes, task {task!r} has "
                        f"{num_classes}", "use a dataset whose labels are the task's classes")
