"""The ``occam`` command line: a thin layer over the library.

Each part registers its commands from its own module (``occam.cli.<part>``). Those modules
import heavy libraries (PyTorch, onnxruntime, FastAPI) only inside command functions, so
that ``occam --help`` and ``occam score`` start fast.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from occam.errors import OccamError

app = typer.Typer(
    name="occam",
    help="Occam Arena: train, score, serve and inspect small, interpretable neural networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

err_console = Console(stderr=True)


def _register() -> None:
    from occam.cli import arena, audit, core, data, fractal, lens, toy, training

    for module in (data, core, training, arena, lens, audit, fractal, toy):
        module.register(app)


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the Typer app and turns OccamError into a clear message and exit 2."""
    try:
        rv = app(args=argv, standalone_mode=False)
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
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
