"""Progress on a terminal for long work: files and records done, rate, time left.

Shown on standard error with rich when it is a terminal and ``--quiet`` was not given; nothing
otherwise (pipes, files, CI logs stay clean).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def decode_progress(
    quiet: bool, description: str = "Reading logs"
) -> Iterator[Callable[[int, int, int], None] | None]:
    """A ``progress(files_done, files_total, records)`` callback, or None when not shown."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    started = time.monotonic()
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files"),
        TextColumn("{task.fields[records]:>12,} records"),
        TextColumn("{task.fields[rate]:>9,.0f} rec/s"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=None, records=0, rate=0.0)

        def update(done: int, total: int, records: int) -> None:
            elapsed = max(time.monotonic() - started, 1e-6)
            bar.update(task, completed=done, total=total, records=records, rate=records / elapsed)

        yield update
        bar.update(task, description="Hunting")
