"""How `mmfr run` shows its steps' progress: live bars on a terminal (rich), else the lines the
run's log gets, on stdout.

`mmfr run` executes its runs in this process, so it listens to every step's `Reporter`
(`mmfr_assets.progress.listening`) rather than reading the event log back.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from mmfr_assets.progress import Snapshot, listening


class Bars:
    """One rich bar per running step: rows done of rows to do, then the rest of its line."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"), console=console, transient=True,
        )
        self.tasks: dict[tuple[str, str], TaskID] = {}

    def __call__(self, snapshot: Snapshot) -> None:
        key = (snapshot.step, snapshot.label)
        if snapshot.event == "end":
            task = self.tasks.pop(key, None)
            if task is not None:
                self.progress.remove_task(task)
            return
        detail = detail_of(snapshot)
        task = self.tasks.get(key)
        if task is None:
            self.tasks[key] = self.progress.add_task(
                f"{snapshot.step} {snapshot.label}", total=snapshot.total,
                completed=snapshot.counts.done, detail=detail)
        else:
            self.progress.update(task, completed=snapshot.counts.done, detail=detail)


def detail_of(snapshot: Snapshot) -> str:
    """A bar's text: its line's figures after the rows done (which the bar shows)."""
    return ", ".join(snapshot.parts()[1:])


class Lines:
    """The progress lines of the run's log, on `out` (stdout not a terminal)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, snapshot: Snapshot) -> None:
        if snapshot.event == "line":
            print(snapshot.line(), file=self.out, flush=True)


@contextlib.contextmanager
def showing_progress(out: TextIO | None = None) -> Iterator[None]:
    """Bars while the block runs when `out` (stdout) is a terminal, else plain lines."""
    out = out if out is not None else sys.stdout
    if not out.isatty():
        with listening(Lines(out)):
            yield
        return
    bars = Bars(Console(file=out))
    # Dagster's console log (stderr) is printed above the bars rather than through them.
    with bars.progress, listening(bars):
        yield
