"""Model kinds: what the Lens can open, one plugin per kind behind the :class:`ModelKind` protocol.

A kind recognizes a source (a path, bytes, an ``nn.Module`` or a checkpoint directory) with
``detect`` and opens it with ``open`` into the model object that views consume. Views declare
the kinds they apply to (``View.kinds``); :func:`open_model` dispatches through :data:`KINDS`,
so the web routes and the CLI never name a kind.

Every model object has a *checkpoint axis*: ``checkpoints`` (labels), ``checkpoint`` (the one
shown) and ``checkout(i)``; views read the model as it is now, so they follow the checkpoint.
An ONNX file has one checkpoint; a directory of ``.onnx``/``.pt`` files opens as a sequence of
checkpoints of one architecture (sorted by name). Sequence models (toy transformers trained on
algorithmic tasks) register their own kind here, with their own views.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from occam.errors import OccamError

__all__ = ["ModelKind", "LensModelLike", "KINDS", "register_kind", "get_kind", "detect_kind", "open_model",
           "ImageClassifierKind", "load_kind_plugins"]


@runtime_checkable
class LensModelLike(Protocol):
    """What every opened model offers views (kind-specific views may ask for more)."""

    kind: str
    name: str
    hash: str
    checkpoints: list[tuple[str, bytes]]
    checkpoint: int

    @property
    def n_val(self) -> int: ...

    def checkout(self, index: int) -> None: ...


class ModelKind(Protocol):
    """One kind of model the Lens can open."""

    name: str  # the registry key, e.g. "image-classifier"
    title: str
    description: str

    def detect(self, source: Any) -> bool:
        """Whether ``source`` (a path, bytes, an ``nn.Module``, a checkpoint directory) is of this kind."""
        ...

    def open(self, source: Any, task: Any = None, **kwargs: Any) -> LensModelLike:
        """The model object views consume (raises :class:`~occam.errors.OccamError` on bad input)."""
        ...


KINDS: dict[str, ModelKind] = {}


def register_kind(kind: ModelKind, *, first: bool = False) -> ModelKind:
    """Add a kind; detection tries kinds in registration order (``first``: before the others, for a
    kind whose sources are a more specific case of another's). Returns it."""
    for attr in ("name", "title", "detect", "open"):
        if not hasattr(kind, attr):
            raise TypeError(f"a model kind needs a {attr!r} attribute ({type(kind).__name__} has none)")
    KINDS.pop(kind.name, None)
    if first:
        rest = dict(KINDS)
        KINDS.clear()
        KINDS[kind.name] = kind
        KINDS.update(rest)
    else:
        KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> ModelKind:
    load_kind_plugins()
    if name not in KINDS:
        raise OccamError(f"no model kind {name!r}", "pick one of: " + ", ".join(KINDS))
    return KINDS[name]


def detect_kind(source: Any) -> ModelKind:
    load_kind_plugins()
    for kind in KINDS.values():
        if kind.detect(source):
            return kind
    what = f"{source!r}" if isinstance(source, str | Path) else type(source).__name__
    raise OccamError(f"no model kind of the Lens recognizes {what}",
                     "pass an ONNX file, an occam .pt checkpoint, a directory of them, ONNX bytes or an nn.Module "
                     f"(kinds: {', '.join(KINDS)})")


def open_model(source: Any, task: Any = None, *, kind: str | None = None, **kwargs: Any) -> Any:
    """Open ``source`` in the Lens: with ``kind`` by that kind, else by the first kind that detects it.

    >>> lm = open_model("model.onnx", "digits")  # doctest: +SKIP
    """
    if isinstance(source, str) and not kind and not Path(source).exists():
        raise OccamError(f"no such model file: {source}", "pass an .onnx file, an occam .pt checkpoint or a directory")
    if isinstance(source, Path) and not source.exists():
        raise OccamError(f"no such model file: {source}", "pass an .onnx file, an occam .pt checkpoint or a directory")
    k = get_kind(kind) if kind else detect_kind(source)
    return k.open(source, task, **kwargs)


# ---- image classifiers (ONNX or nn.Module) --------------------------------------------------------
_MODEL_SUFFIXES = (".onnx", ".pt")


def _natural(p: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def _checkpoint_files(d: Path) -> list[Path]:
    return sorted((p for p in d.iterdir() if p.suffix in _MODEL_SUFFIXES and p.is_file()), key=_natural)


class ImageClassifierKind:
    """Image (or 1-D signal) classifiers of an occam task: ONNX files or bytes, occam ``.pt``
    checkpoints, ``nn.Module`` objects, and directories of those (a checkpoint axis)."""

    name = "image-classifier"
    title = "Image classifier"
    description = "an ONNX (or PyTorch) classifier of an occam task's inputs"

    def detect(self, source: Any) -> bool:
        from torch import nn

        if isinstance(source, nn.Module | bytes | bytearray):
            return True
        if isinstance(source, str | Path):
            p = Path(source)
            if p.is_dir():
                return bool(_checkpoint_files(p))
            return p.suffix in _MODEL_SUFFIXES
        return False

    def _bytes(self, source: Any, task: Any) -> tuple[bytes, str]:
        from torch import nn

        from occam.interp import OnnxModule
        from occam.models import export_bytes

        if isinstance(source, nn.Module):
            if isinstance(source, OnnxModule):
                return source.to_bytes(), type(source).__name__
            return export_bytes(source.eval(), tuple(task.input_shape)), type(source).__name__
        if isinstance(source, bytes | bytearray):
            return bytes(source), "model"
        path = Path(source)
        if not path.exists():
            raise OccamError(f"no such model file: {path}", "pass an .onnx file or an occam .pt checkpoint")
        if path.suffix == ".pt":
            from occam.models import build_model, load_checkpoint

            ckpt = load_checkpoint(path)
            net = build_model(ckpt["arch"], tuple(ckpt["input_shape"]), int(ckpt["num_classes"]),
                              **ckpt.get("arch_kwargs", {}))
            net.load_state_dict(ckpt["state_dict"])
            return export_bytes(net.eval(), tuple(task.input_shape)), path.stem
        return path.read_bytes(), path.stem

    def open(self, source: Any, task: Any = None, **kwargs: Any) -> Any:
        from occam.lens.model import LensModel
        from occam.tasks import get_task

        if task is None:
            raise OccamError("an image classifier opens with the task it solves",
                             "pass the task's name, e.g. open_model(path, 'digits')")
        if isinstance(task, str):
            task = get_task(task)
        else:  # a Task, or your own data: arrays, datasets, a dict (occam.lens.custom_data.task_from)
            from occam.lens.custom_data import task_from

            task = task_from(task)
        name = kwargs.pop("name", None)
        if isinstance(source, str | Path) and Path(source).is_dir():
            files = _checkpoint_files(Path(source))
            if not files:
                raise OccamError(f"no .onnx or .pt files in {source}", "point at a directory of checkpoints")
            checkpoints = [(p.stem, self._bytes(p, task)[0]) for p in files]
            return LensModel(checkpoints[-1][1], task, name=name or Path(source).name, checkpoints=checkpoints,
                             **kwargs)
        data, default_name = self._bytes(source, task)
        return LensModel(data, task, name=name or default_name, **kwargs)


register_kind(ImageClassifierKind())


# ---- kinds from other parts and packages ---------------------------------------------------------------
# Modules that register kinds (and their views) when imported: the entry-point group ``occam.lens_kinds``
# (``name = "module"`` in a package's pyproject.toml) plus the ones this distribution ships, written the same way.
KIND_ENTRY_POINT_GROUP = "occam.lens_kinds"
BUILTIN_KIND_PLUGINS: tuple[str, ...] = ("toy = occam.toy.lens_kind",)


_PLUGINS_LOADED = False


def load_kind_plugins() -> None:
    """Import the kind plugin modules once (each registers its kinds and views); called on first lookup."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    import importlib
    import logging
    from importlib.metadata import entry_points

    targets = {name.strip(): mod.strip() for name, _, mod in (s.partition("=") for s in BUILTIN_KIND_PLUGINS)}
    try:
        targets.update({ep.name: ep.value for ep in entry_points(group=KIND_ENTRY_POINT_GROUP)})
    except Exception:  # noqa: BLE001 - a broken distribution's metadata must not take the Lens down
        logging.getLogger("occam.lens").exception("cannot read the %s entry points", KIND_ENTRY_POINT_GROUP)
    for name, target in targets.items():
        try:
            importlib.import_module(target.partition(":")[0])
        except Exception:  # noqa: BLE001 - one broken plugin leaves the other kinds usable
            logging.getLogger("occam.lens").exception("model kind plugin %s (%s) did not load", name, target)

