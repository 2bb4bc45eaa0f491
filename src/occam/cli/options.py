"""CLI options built from config dataclasses: every default, type, help text, choice and bound is
declared once, on the dataclass field, and the command line reads it from there.

A config field declares its CLI face with field metadata (``help``, ``min``, ``max``), its type
annotation (``int``, ``float``, ``bool``, ``str``, ``X | None``, ``Literal[...]`` for choices) and
its default. A command asks for a config and lists the fields it
exposes::

    @config_options(TrainConfig, exclude=("task", "arch_kwargs"), flags={"arch": ("--arch", "-a")})
    def train_cmd(task: str = typer.Argument(...), *, cfg: TrainConfig) -> None:
        ...

The decorator adds one Typer option per field (``target_nnz`` → ``--target-nnz``; a bool field
becomes ``--name/--no-name``), removes the ``cfg`` parameter from what Typer sees, and calls the
command with ``cfg`` built from the parsed values (command parameters whose names are fields,
such as ``task`` above, go into the config too). An :class:`~occam.errors.OccamError` raised in the
command that names a field in backticks (```target_nnz``` , the library's way of naming a config
field) reaches the user with the flag instead (``--target-nnz``): :func:`cli_terms`.

The config classes live in light modules (``occam.training.config``, ``occam.fractal.config``), so
building a command's options never imports PyTorch or Numba.

Adopting it in another part (e.g. ``occam audit make-zoo`` and ``ZooConfig``):

1. move the config dataclass to a module that imports no heavy library, and give each field
   ``metadata={"help": "..."}`` (plus ``"min"``/``"max"`` where a bound helps);
2. decorate the command with ``@config_options(ZooConfig, exclude=(...fields without a CLI form...),
   flags={...only where the flag differs from the field name...})`` and replace the hand-written
   options by a keyword-only ``cfg: ZooConfig`` parameter;
3. write the library's errors with backticked field names (```models` must be at least 4``); the
   command shows them as ``--models``.

``explicit="given"`` additionally passes the set of fields given on the command line, which is how
``occam train --preset`` layers explicit flags over a preset.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import typer

from occam.errors import OccamError

__all__ = ["config_options", "cli_terms", "field_flag", "option_for"]

F = TypeVar("F", bound=Callable[..., Any])

_BACKTICKED = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


def field_flag(name: str) -> str:
    """``target_nnz`` → ``--target-nnz``."""
    return "--" + name.replace("_", "-")


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def option_for(f: dataclasses.Field, hints: Mapping[str, Any], flags: Iterable[str] | None = None) -> tuple[Any, Any]:
    """(annotation, typer.Option) for one dataclass field."""
    tp, optional = _unwrap_optional(hints[f.name])
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        default = ...
    meta = f.metadata or {}
    names = list(flags) if flags else []
    extra: dict[str, Any] = {}
    if get_origin(tp) is Literal:  # Typer turns a Literal into a choice of its values
        annotation: Any = tp
    elif tp is bool:
        annotation = bool
        if not names:
            names = [f"{field_flag(f.name)}/--no-{f.name.replace('_', '-')}"]
    elif tp in (int, float, str):
        annotation = tp
    else:
        raise TypeError(f"config field {f.name!r} has type {tp!r}, which has no CLI option; exclude it or map it by hand")
    if not names:
        names = [field_flag(f.name)]
    if "min" in meta:
        extra["min"] = meta["min"]
    if "max" in meta:
        extra["max"] = meta["max"]
    if optional:
        annotation = annotation | None
    return annotation, typer.Option(default, *names, help=meta.get("help"), show_default=default is not None, **extra)


def cli_terms(exc: OccamError, flags: Mapping[str, str]) -> OccamError:
    """The same error with every backticked config field that has a flag written as that flag."""
    def swap(text: str | None) -> str | None:
        if text is None:
            return None
        return _BACKTICKED.sub(lambda m: flags.get(m.group(1), m.group(0)), text)

    problem, fix = swap(exc.problem), swap(exc.fix)
    if (problem, fix) == (exc.problem, exc.fix):
        return exc
    new = type(exc).__new__(type(exc))
    OccamError.__init__(new, problem or "", fix)
    return new


_CTX = "_occam_context"


def _given_on_command_line(ctx: Any, names: Iterable[str]) -> set[str]:
    """The parameters among ``names`` that Typer got from the command line (or the environment);
    every name when the command is called as a plain function."""
    if ctx is None:
        return set(names)
    given = set()
    for n in names:
        source = ctx.get_parameter_source(n)
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            given.add(n)
    return given


def config_options(cls: type, *, include: Iterable[str] | None = None, exclude: Iterable[str] = (),
                   flags: Mapping[str, str | tuple[str, ...]] | None = None, param: str = "cfg",
                   explicit: str | None = None) -> Callable[[F], F]:
    """Decorate a Typer command so that ``cls``'s fields become its options and it receives ``cfg``.

    ``include`` limits the fields (default: all), ``exclude`` drops some (those without a CLI
    type must be dropped), ``flags`` overrides a field's flag names (e.g. ``{"arch": ("--arch", "-a")}``
    or ``{"colour": "--colour/--gray"}``), ``param`` names the command's config parameter. With
    ``explicit="name"``, the command also receives (as ``name``) the set of config fields the user
    gave on the command line (to layer them over a preset, say).
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    chosen = set(include) if include is not None else {f.name for f in fields}
    unknown = (chosen | set(exclude) | set(flags or {})) - {f.name for f in fields}
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    chosen -= set(exclude)
    overrides = {k: ((v,) if isinstance(v, str) else tuple(v)) for k, v in (flags or {}).items()}

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn)
        for needed in (param, explicit):
            if needed is not None and needed not in sig.parameters:
                raise TypeError(f"{fn.__name__} has no parameter {needed!r} (config_options passes it)")
        own = [p for name, p in sig.parameters.items() if name not in (param, explicit)]
        own_names = {p.name for p in own}
        exposed = [f for f in fields if f.name in chosen and f.name not in own_names]
        added = []
        mapping: dict[str, str] = {}
        for f in exposed:
            annotation, option = option_for(f, hints, overrides.get(f.name))
            added.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation))
            first = option.param_decls[0] if option.param_decls else field_flag(f.name)
            mapping[f.name] = first.split("/")[0]
        for p in own:  # the command's own options keep their flags (errors may name them too)
            if isinstance(p.default, typer.models.OptionInfo):
                decls = p.default.param_decls or (field_flag(p.name),)
                mapping[p.name] = decls[0].split("/")[0]
        field_names = {f.name for f in fields}
        positional = [p for p in own if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own if p not in positional]
        context = [inspect.Parameter(_CTX, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=typer.Context)]
        new_sig = sig.replace(parameters=[*positional, *added, *keyword, *([] if explicit is None else context)])

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = new_sig.bind(*args, **kwargs)
            bound.apply_defaults()
            values = dict(bound.arguments)
            config_values = {k: v for k, v in values.items() if k in field_names}
            call = {k: v for k, v in values.items() if k in own_names}
            if explicit is not None:
                call[explicit] = _given_on_command_line(values.get(_CTX), config_values)
            try:
                call[param] = cls(**config_values)
                return fn(**call)
            except OccamError as exc:
                new = cli_terms(exc, mapping)
                if new is exc:
                    raise
                raise new from None

        hints_fn = typing.get_type_hints(fn)
        wrapper.__annotations__ = {**{k: v for k, v in hints_fn.items() if k in own_names or k == "return"},
                                   **{p.name: p.annotation for p in added},
                                   **({} if explicit is None else {_CTX: typer.Context})}
        wrapper.__signature__ = new_sig  # type: ignore[attr-defined]
        return typing.cast(F, wrapper)

    return decorate
