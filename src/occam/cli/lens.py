"""CLI commands for the lens part (filled in by its issue)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Lens commands.", no_args_is_help=True)
    app.add_typer(sub, name="lens")
