"""One progress-bar style for every long loop (rich), quiet when output is not a terminal."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)


def progress() -> Progress:
    """A progress bar with a free-text field `info` for live metrics (loss, tokens/s, ...)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        disable=not sys.stderr.isatty(),
        transient=False,
    )


def log(message: str) -> None:
    """A status line on stderr (kept out of stdout so results can be piped), printed as it is:
    no markup (commands and values hold brackets: `sweep=[1,4]`), no wrapping at 80 columns
    when stderr is a file (a line of a log stays one line)."""
    console.print(message, highlight=False, markup=False, soft_wrap=True)
