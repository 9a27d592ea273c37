"""The progress bar the CLI shows on stderr while long work runs: each phase with its bar, its count,
the time spent and an estimate of the time left. No torch import.

It draws a :data:`torchscope._progress.ProgressFn` callback's calls; the collectors only call it.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["ProgressBar"]


class ProgressBar:
    """A ``progress(phase, done, total)`` callback drawing one Rich bar per phase, with the time left.

    Refreshes only when called (no refresh thread), and the collectors call it only between steps
    of their work (bench: at window edges), so the bar costs the timed steps nothing. A phase whose
    total is 0 (not known yet) shows a pulsing bar and no estimate. In Jupyter, a Rich console
    renders the bar as one updating display, never as a line per update.
    """

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            auto_refresh=False,
        )
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> ProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, phase: str, done: int, total: int) -> None:
        task = self._tasks.get(phase)
        if task is None:
            task = self._tasks[phase] = self.progress.add_task(phase, total=total or None)
        self.progress.update(task, completed=done, total=total or None)
        self.progress.refresh()
