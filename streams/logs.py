"""Rate-limited logging for the worker (issue #10 finding 7).

During a broker outage aiokafka, Faust and our own code log the same few errors in tight loops:
about 5,700 lines/s were measured (228,000 lines, 21 MB in 44 s), enough to fill a disk or drown
the one line that matters. :class:`RepeatLimiter` lets the first record of a *message key* pass,
counts the repeats within an interval (30 s by default) and summarises them as ONE warning per
interval with their count ("... repeated 5,431 times in the last 30 s").

The key of a WARNING or worse is the logger, level and message *template* (``record.msg``, before
its ``%`` arguments), so "connection to node 1 failed" and "... node 2 failed" are one key, and
only its first record in an interval passes. Below WARNING the arguments are part of the key, so
distinct informational lines (a partition loaded, then another) all pass, and the first
``INFO_BURST`` exact repeats in an interval pass too (Faust logs a few lines twice at start-up).

:class:`RepeatFilter` is installed on the root logger's *handlers*, not on loggers: a filter on a
logger sees only the records created by that very logger, not those of its children
(``aiokafka.conn``, ``faust.transport.drivers.aiokafka``...), whereas every propagated record of
every library reaches the root handlers. :class:`RepeatLimiter` is pure (an injected clock), so
it is unit-tested without logging or sleeping (tests/streams/test_live_guards.py).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Hashable

DEFAULT_INTERVAL = 30.0
INFO_BURST = 5  # exact repeats of an INFO or DEBUG line that pass per interval
MAX_KEYS = 10_000  # distinct keys remembered; beyond that the oldest intervals are summarised early


@dataclass
class _Window:
    start: float
    passed: int = 1
    suppressed: int = 0
    last: str = ""  # the last suppressed message, for the summary
    level: int = logging.WARNING
    name: str = ""


@dataclass(frozen=True)
class Summary:
    """What to log for an interval that had repeats."""

    name: str  # logger name
    level: int  # the repeated records' level
    count: int
    interval: float
    message: str

    def text(self) -> str:
        return f"{self.message} ... repeated {self.count:,} times in the last {self.interval:g} s"


class RepeatLimiter:
    """Per-key interval counting; no logging, no clock of its own."""

    def __init__(self, interval: float = DEFAULT_INTERVAL, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = MAX_KEYS) -> None:
        self.interval = interval
        self.clock = clock
        self.max_keys = max_keys
        self._windows: dict[Hashable, _Window] = {}

    def offer(self, key: Hashable, name: str, level: int, message: Callable[[], str],
              burst: int = 1) -> tuple[bool, list[Summary]]:
        """``(pass this record?, summaries to log first)``: the first ``burst`` records of a key
        in an interval pass, the rest are counted. ``message`` is called only for a suppressed
        record (formatting costs nothing for the records that pass)."""
        now = self.clock()
        summaries: list[Summary] = []
        w = self._windows.get(key)
        if w is not None and now - w.start < self.interval:
            if w.passed < burst:
                w.passed += 1
                return True, summaries
            w.suppressed += 1
            w.last = message()
            return False, summaries
        if w is not None:  # its interval is over: summarise it, this record opens the next one
            if w.suppressed:
                summaries.append(self._summary(w))
            del self._windows[key]
        elif len(self._windows) >= self.max_keys:
            summaries.extend(self.flush(force=True))
        self._windows[key] = _Window(now, level=level, name=name)
        return True, summaries

    def flush(self, force: bool = False) -> list[Summary]:
        """Summaries of the intervals that are over (all of them with ``force``); called
        periodically, so the repeats of a message that then stops are still reported."""
        now = self.clock()
        out = []
        for key, w in list(self._windows.items()):
            if force or now - w.start >= self.interval:
                if w.suppressed:
                    out.append(self._summary(w))
                del self._windows[key]
        return out

    def _summary(self, w: _Window) -> Summary:
        # a warning (or the repeats' own level if worse); repeated informational lines stay at theirs
        return Summary(w.name, w.level, w.suppressed, self.interval, w.last)


def record_key(record: logging.LogRecord) -> Hashable:
    """The message key of a record (see the module docstring)."""
    template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
    if record.levelno >= logging.WARNING:
        return (record.name, record.levelno, template)
    try:
        return (record.name, record.levelno, template, record.getMessage())
    except Exception:  # a record whose arguments do not format: limit it by template
        return (record.name, record.levelno, template)


_SUMMARY_ATTR = "_chatsla_summary"


class RepeatFilter(logging.Filter):
    """A handler filter applying a :class:`RepeatLimiter`; summaries go to the same handler."""

    def __init__(self, handler: logging.Handler, limiter: RepeatLimiter) -> None:
        super().__init__()
        self.handler = handler
        self.limiter = limiter
        self._lock = threading.Lock()  # Faust's consumer thread logs too

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _SUMMARY_ATTR, False):
            return True
        with self._lock:
            ok, summaries = self.limiter.offer(record_key(record), record.name, record.levelno,
                                               lambda: _message(record),
                                               1 if record.levelno >= logging.WARNING else INFO_BURST)
        self._emit(summaries)
        return ok

    def flush_summaries(self, force: bool = False) -> None:
        """Log the summaries of the intervals that are over (all of them with ``force``)."""
        with self._lock:
            summaries = self.limiter.flush(force)
        self._emit(summaries)

    def _emit(self, summaries: list[Summary]) -> None:
        for s in summaries:
            rec = logging.LogRecord(s.name, s.level, __file__, 0, "%s", (s.text(),), None)
            setattr(rec, _SUMMARY_ATTR, True)
            self.handler.handle(rec)


def _message(record: logging.LogRecord) -> str:
    try:
        text = record.getMessage()
    except Exception:
        text = str(record.msg)
    return text if len(text) <= 500 else text[:500] + "..."


_installed: list[RepeatFilter] = []


def install(interval: float = DEFAULT_INTERVAL, logger: logging.Logger | None = None) -> list[RepeatFilter]:
    """Put a :class:`RepeatFilter` on every handler of ``logger`` (the root logger) that has none
    yet; returns the filters added (the worker flushes their summaries periodically)."""
    logger = logger or logging.getLogger()
    out = []
    for handler in logger.handlers:
        if any(isinstance(f, RepeatFilter) for f in handler.filters):
            continue
        f = RepeatFilter(handler, RepeatLimiter(interval))
        handler.addFilter(f)
        out.append(f)
    _installed.extend(out)
    return out


def installed() -> list[RepeatFilter]:
    """Every filter :func:`install` added in this process."""
    return list(_installed)
