"""Rich progress bars for long work, behind the small Reporter protocol the library uses.

Library functions accept any object with ``start(total, description)``, ``update(advance, **fields)``
and ``finish()``; the CLI passes a :class:`RichReporter`. Nothing here is imported by the
scoring path.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class RichReporter:
    """A progress bar that shows extra numeric fields (e.g. ``loss``) next to the bar."""

    def __init__(self, console: Console | None = None, transient: bool = False):
        self.console = console or Console(stderr=True)
        self.transient = transient
        self._progress: Progress | None = None
        self._task = None
        self._fields: dict[str, float] = {}

    def start(self, total: int, description: str) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=self.console, transient=self.transient,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total, info="")

    def update(self, advance: int, **fields: float) -> None:
        if self._progress is None:
            return
        self._fields.update(fields)
        info = " ".join(f"{k} {v:.4g}" for k, v in self._fields.items())
        self._progress.update(self._task, advance=advance, info=info)

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._fields = {}


class RichDownloadReporter:
    """The same protocol for byte counts (downloads): size done/total, speed and time left.

    ``total`` may be None (no Content-Length): the bar then pulses and shows the bytes so far.
    """

    def __init__(self, console: Console | None = None, transient: bool = False):
        self.console = console or Console(stderr=True)
        self.transient = transient
        self._progress: Progress | None = None
        self._task = None

    def start(self, total: int | None, description: str) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            TextColumn("eta"), TimeRemainingColumn(), console=self.console, transient=self.transient,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total)

    def update(self, advance: int, **fields: float) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=advance)

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
