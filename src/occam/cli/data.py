"""CLI: ``occam data list``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Datasets: which tasks exist and whether their files are here.", no_args_is_help=True)
    sub.command("list")(data_list)
    app.add_typer(sub, name="data")


def data_list(
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """List every task: name, input shape, classes, default λ, and whether its data is available here."""
    import json

    from rich.console import Console
    from rich.table import Table

    from occam.tasks import list_tasks

    rows = []
    for task in list_tasks():
        try:
            ok, where = task.availability()
        except Exception as exc:  # a broken locator must not hide the other tasks
            ok, where = False, f"error: {exc}"
        rows.append({"name": task.name, "title": task.title, "input_shape": list(task.input_shape),
                     "classes": task.num_classes, "default_lam": task.default_lam, "available": ok,
                     "where": where})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="Tasks")
    for col in ("task", "shape", "classes", "default λ", "available", "where"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], "×".join(map(str, r["input_shape"])), str(r["classes"]), f"{r['default_lam']:g}",
                      "[green]yes[/]" if r["available"] else "[red]no[/]", r["where"])
    Console().print(table)
