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
from rich.table import Column
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from mmfr_assets.progress import Snapshot, listening


class Bars:
    """One rich bar per running step: rows done of rows to do, then the rest of its line."""

    def __init__(self, console: Console) -> None:
        # Dagster's console log (stderr, the same terminal) is printed above the bars rather
        # than through them.
        self.progress = Progress(
            TextColumn("{task.description}", table_column=Column(no_wrap=True, min_width=16)),
            BarColumn(bar_width=24), MofNCompleteColumn(),
            # a narrow terminal cuts the figures short, never the step's name or its bar
            TextColumn("{task.fields[detail]}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
            console=console, transient=True,
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
    """A bar's text: its line's figures after the rows done (which the bar shows), counters
    still at zero and the reasons of an unknown ETA left out (the log line has them)."""
    parts = [p for p in snapshot.parts()[1:] if not p.startswith("0 ")]
    return ", ".join(p.split(" (", 1)[0] if p.startswith("ETA unknown") else p for p in parts)


class Lines:
    """The progress lines of the run's log, on `out` (stdout or stderr not a terminal)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, snapshot: Snapshot) -> None:
        if snapshot.event == "line":
            print(snapshot.line(), file=self.out, flush=True)


@contextlib.contextmanager
def showing_progress(out: TextIO | None = None, err: TextIO | None = None) -> Iterator[None]:
    """Bars while the block runs when `out` (stdout) and `err` (stderr) are a terminal, else
    plain lines on `out`.

    Why both: the bars take over the terminal, and what the run writes to stderr is drawn above
    them (rich's redirection of stderr). With stderr sent elsewhere (`2>run.log`) it must stay
    there, and without that redirection the bars were not drawn (seen under `script`; Dagster's
    compute-log capture swaps the process's descriptors while a step runs): plain lines then."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    if not (out.isatty() and err.isatty()):
        with listening(Lines(out)):
            yield
        return
    bars = Bars(Console(file=out))
    with bars.progress, listening(bars):
        yield
