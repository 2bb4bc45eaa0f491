"""The ``occam`` command line: a thin layer over the library.

Each part registers its commands from its own module (``occam.cli.<part>``). Those modules
import heavy libraries (PyTorch, onnxruntime, FastAPI) only inside command functions, so
that ``occam --help`` and ``occam score`` start fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer
from rich.console import Console

from occam.errors import OccamError

_SETTINGS = dict(
    name="occam",
    help="Occam Arena: train, score, serve and inspect small, interpretable neural networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app = typer.Typer(**_SETTINGS)  # type: ignore[arg-type]

err_console = Console(stderr=True)

#: top-level verb → the registering module's function, so that ``main`` builds only what a verb needs
_VERBS: dict[str, Callable[[typer.Typer], None]] = {}


def _register() -> None:
    from occam.cli import arena, audit, core, data, fractal, lens, toy, training

    for module in (data, core, training, arena, lens, audit, fractal, toy):
        module.register(app)
        probe = typer.Typer()
        module.register(probe)
        names = [c.name or c.callback.__name__ for c in probe.registered_commands if c.callback]
        names += [g.name for g in probe.registered_groups if g.name]
        for name in names:
            _VERBS[name] = module.register


_register()


def _app_for(argv: list[str]) -> typer.Typer:
    """The app for ``argv``: one with only the first word's commands when it is a known verb (Typer
    then builds a few click commands instead of every command of every part), else the full app."""
    if not argv or argv[0] not in _VERBS:
        return app
    small = typer.Typer(**_SETTINGS)  # type: ignore[arg-type]

    @small.callback()
    def _group() -> None:  # a callback keeps the verb a subcommand, as in the full app
        pass

    _VERBS[argv[0]](small)
    return small


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the Typer app and turns OccamError into a clear message and exit 2."""
    try:
        args = sys.argv[1:] if argv is None else list(argv)
        rv = _app_for(args)(args=args, standalone_mode=False)
        if isinstance(rv, int) and rv != 0:  # typer.Exit(code) comes back as a return value here
            sys.exit(rv)
    except OccamError as exc:
        from rich.markup import escape

        err_console.print(f"[bold red]error:[/] {escape(exc.problem)}", highlight=False)
        if exc.fix:
            err_console.print(f"[bold]fix:[/] {escape(exc.fix)}", highlight=False)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(1)
    except typer.TyperException as exc:  # usage errors (Typer's own click): the message, not a traceback
        show = getattr(exc, "show", None)
        if show is None:
            raise
        show()
        sys.exit(getattr(exc, "exit_code", 2))
