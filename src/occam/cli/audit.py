"""CLI commands for the audit part (filled in by its issue)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Audit commands.", no_args_is_help=True)
    app.add_typer(sub, name="audit")
