"""Progress of a long command on standard error (issue #13): ``audit`` and ``simulate``.

On a terminal a rich progress bar (done, rate, time left); otherwise -- a log file, CI, a pipe --
one plain line every ``interval`` seconds (10 by default), so a run that finishes within the first
interval prints nothing: small inputs stay quiet. ``--quiet`` turns both off. Standard output is
never touched, so a report is byte-identical with or without progress.

Callers report per chunk (a 1 MiB block of input, a shop, a thousand records), never per line: an
update costs a clock read and a comparison, which is why progress does not slow the audit path
(BENCHMARKS.md). The clock is injectable for tests.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

UNITS = ("bytes", "events", "shops", "records")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # not reached


def _amount(n: float, unit: str) -> str:
    return human_bytes(n) if unit == "bytes" else f"{n:,.0f} {unit}"


def _duration(seconds: float) -> str:
    s = int(seconds + 0.5)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Progress:
    """``update(done, total)`` as work proceeds, ``close()`` at the end (or use ``with``)."""

    def __init__(self, label: str, unit: str = "bytes", total: float | None = None, *, quiet: bool = False,
                 interval: float = 10.0, stream: TextIO | None = None, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.unit, self.total = label, unit, total
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet or self.stream is None
        self.interval = interval
        self.clock = clock
        self.start = clock()
        self.next_line = self.start + interval
        self.done = 0.0
        self.lines = 0
        if tty is None:
            try:
                tty = bool(self.stream.isatty())
            except (AttributeError, ValueError, OSError):
                tty = False
        self.tty = tty and not self.quiet
        self._bar = None
        self._task = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, done: float, total: float | None = None) -> None:
        if self.quiet:
            return
        self.done = done
        if total is not None:
            self.total = total
        if self.tty:
            self._update_bar()
            return
        now = self.clock()
        if now >= self.next_line:
            self.next_line = now + self.interval
            self._write_line(now)

    def line(self, now: float) -> str:
        """The periodic line: ``chatsla audit: 120.0 MiB of 2.0 GiB (6 %), 40.1 MiB/s, about 47 s left``."""
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        text = f"{self.label}: {_amount(self.done, self.unit)}"
        if self.total:
            text += f" of {_amount(self.total, self.unit)} ({100 * self.done / self.total:.0f} %)"
        text += f", {_amount(rate, self.unit)}/s"
        if self.total and rate > 0 and self.done < self.total:
            text += f", about {_duration((self.total - self.done) / rate)} left"
        return text

    def _write_line(self, now: float) -> None:
        try:
            self.stream.write(self.line(now) + "\n")
            self.stream.flush()
            self.lines += 1
        except (OSError, ValueError):  # a closed stderr silences progress, it never fails the command
            self.quiet = True

    def _update_bar(self) -> None:
        if self._bar is None:
            from rich.console import Console
            from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress as Bar, TextColumn,
                                       TimeRemainingColumn, TransferSpeedColumn)

            columns = [TextColumn(self.label), BarColumn()]
            if self.unit == "bytes":
                columns += [DownloadColumn(binary_units=True), TransferSpeedColumn()]
            else:
                columns += [MofNCompleteColumn(), TextColumn(self.unit)]
            columns.append(TimeRemainingColumn())
            self._bar = Bar(*columns, console=Console(file=self.stream), transient=True, refresh_per_second=4)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total)
        self._bar.update(self._task, completed=self.done, total=self.total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
