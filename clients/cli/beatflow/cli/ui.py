"""Output: results on stdout (plain or --json), progress and messages on stderr.

rich is imported on first use, so commands that print no progress start quickly.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True) + "\n")


@functools.cache
def err() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def err_is_terminal() -> bool:
    return sys.stderr.isatty()


def info(message: str) -> None:
    if err_is_terminal():
        err().print(message, markup=False, soft_wrap=True)  # above any live progress bar
    else:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()


def transfer_progress() -> Progress:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err(),
        transient=True,
        disable=not err_is_terminal(),  # bars only on a terminal; logs and pipes stay clean
    )


def task_progress() -> Progress:
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[stage]}"),
        console=err(),
        transient=True,
        disable=not err_is_terminal(),
    )


def bar_callbacks(progress: Any, bar: Any) -> tuple[Callable[[int], None], Callable[[int], None]]:
    """(advance by n bytes, set the total) for one bar of a ``transfer_progress()``."""

    def advance(n: int) -> None:
        progress.advance(bar, n)

    def total(n: int) -> None:
        progress.update(bar, total=n)

    return advance, total
