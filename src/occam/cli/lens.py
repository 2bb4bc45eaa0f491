"""``occam lens MODEL --task T``: open a model in the Lens (a local web page), or export it to HTML."""

from __future__ import annotations

from pathlib import Path

import typer


def lens(
    model: Path = typer.Argument(..., help="an ONNX file, an occam .pt checkpoint, or a directory of checkpoints"),
    task: str | None = typer.Option(None, "--task", "-t",
                                    help="task the model solves (e.g. digits); not needed for runs that name it"),
    port: int = typer.Option(0, "--port", help="port on 127.0.0.1 (0: a free one)"),
    export: Path | None = typer.Option(None, "--export", help="write one offline HTML file with every view and exit"),
    no_browser: bool = typer.Option(False, "--no-browser", help="do not open a browser"),
    threads: int = typer.Option(1, "--threads", help="torch threads (small models: 1 is fastest on a busy machine)"),
    kind: str | None = typer.Option(None, "--kind", help="the model kind (default: detected; see the Lens docs for the list)"),
    n_val: int | None = typer.Option(None, "--n-val", help="validation examples every view uses (default: all)"),
    compare: Path | None = typer.Option(None, "--compare", help="a second model on the same task: every view side by side"),
) -> None:
    """Inspect one model: its views side by side, with live edits."""
    import socket

    import torch

    from occam.errors import OccamError
    from occam.lens.kinds import KINDS, load_kind_plugins, open_model
    from occam.lens.views import LensSession

    torch.set_num_threads(max(1, threads))
    load_kind_plugins()
    if kind is not None and kind not in KINDS:
        raise OccamError(f"--kind {kind!r} is not a model kind", f"pass one of: {', '.join(KINDS)}, or leave --kind out")
    if n_val is not None and n_val < 1:
        raise OccamError(f"--n-val must be at least 1, got {n_val}", "leave --n-val out to use the whole validation split")
    try:
        lm = open_model(model, task, kind=kind, n_val=n_val)
    except OccamError as exc:
        if task is None and "task" in exc.problem:  # a kind that needs the task: say which flag gives it
            raise OccamError(exc.problem, "pass --task NAME (e.g. --task digits)") from exc
        raise
    session = LensSession(lm)
    if compare is not None:
        if not compare.exists():
            raise OccamError(f"--compare {compare}: no such file or directory", "pass a second model file of the same task")
        session.set_compare(open_model(compare, task, kind=kind, n_val=n_val, name=compare.stem))
    if export is not None:
        from occam.web.lens_routes import export_html

        out = export_html(session, export)
        typer.echo(f"wrote {out} ({out.stat().st_size // 1024} KiB)")
        return
    import uvicorn

    from occam.web.lens_routes import create_app

    if port == 0:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/lens/m/{session.id}"
    typer.echo(f"Lens on {url}  (Ctrl-C to stop)")
    if not no_browser:
        import threading
        import webbrowser

        threading.Timer(1.0, lambda: webbrowser.open(url)).start()
    uvicorn.run(create_app(session), host="127.0.0.1", port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command("lens")(lens)
