"""Rolling 7-day 24 h reply rate of one shop (RULES R8, first bullet).

R8 asks for the share of sessions replied within 24 h (R3) among the *decided* sessions opened in
the last 7 x 24 h before the watermark, i.e. opened in ``(watermark - 7 days, watermark]``. Unlike
the weekly assessment (R5) this window slides with the watermark and ignores the shop's calendar.

The engine emits a session record every time a session changes, so the same session is observed
several times (opened and pending, then decided, perhaps re-decided by a late event, R6.4): an
observation replaces the previous one for the same key, which makes feeding the same records twice
harmless. Sessions that fall out of the window for good are dropped, so memory stays bounded by
one window of sessions per shop.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from operator import itemgetter

from chatsla.core.timefmt import DAY

WINDOW = 7 * DAY  # R8: 7 x 24 h, independent of the shop's time zone and of DST
_OPENED = itemgetter(0)


class RollingRate:
    """Replied / decided over the sessions opened in ``(watermark - window, watermark]`` (R8).

    Queries are meant for a non-decreasing watermark (R6.2: a watermark never goes back). Each
    query drops the sessions opened at or before ``watermark - window``; they can never re-enter a
    later window, so observations of such sessions are ignored too. Asking about an *earlier*
    watermark afterwards would miss those dropped sessions.

    Sessions opened after the watermark (the watermark trails event time by the allowed lateness)
    are kept but not counted until the watermark reaches them.
    """

    __slots__ = ("window", "_by_key", "_order", "_replied", "_horizon")

    def __init__(self, window: int = WINDOW) -> None:
        if window <= 0:
            raise ValueError(f"rolling window must be positive, not {window} µs")
        self.window = window
        self._by_key: dict[str, tuple[int, bool]] = {}  # session key -> (opened_at, replied)
        self._order: list[tuple[int, str]] = []  # (opened_at, key), sorted: pruning is a prefix cut
        self._replied = 0  # replied sessions among _by_key, so a query only walks the few after the watermark
        self._horizon: int | None = None  # sessions opened at or before this are gone for good

    def __len__(self) -> int:
        """Decided sessions currently held (bounded by one window, see the class docstring)."""
        return len(self._by_key)

    def observe(self, session_key: str, opened_at: int, replied: bool | None) -> None:
        """Record a session's decided outcome (R3); ``replied=None`` (pending) forgets it.

        Idempotent per ``session_key``: the latest observation replaces the earlier one, so a late
        event that turns a miss into an in-time reply (R6.4) corrects the rate.
        """
        by_key = self._by_key
        old = by_key.get(session_key)
        if old is not None:
            if replied is not None and old[1] is replied and old[0] == opened_at:
                return  # the same outcome again (a decided session's later records): nothing moves
            del by_key[session_key]
            old_opened, old_replied = old
            i = bisect_left(self._order, (old_opened, session_key))
            del self._order[i]
            self._replied -= old_replied
        if replied is None or (self._horizon is not None and opened_at <= self._horizon):
            return
        self._by_key[session_key] = (opened_at, replied)
        insort(self._order, (opened_at, session_key))
        self._replied += replied

    def advance(self, watermark: int) -> None:
        """Drop what no window at or after ``watermark`` can count. Queries do it too; the worker
        also calls it at every checkpoint, so memory stays one window per shop when nothing
        queries (a worker nobody scrapes held every session it ever decided)."""
        self._prune(watermark - self.window)

    def _prune(self, horizon: int) -> None:
        if self._horizon is not None and horizon <= self._horizon:
            return
        self._horizon = horizon
        cut = bisect_right(self._order, horizon, key=_OPENED)
        for _, key in self._order[:cut]:
            self._replied -= self._by_key.pop(key)[1]
        del self._order[:cut]

    def counts(self, watermark: int) -> tuple[int, int]:
        """(replied, decided) over the sessions opened in ``(watermark - window, watermark]``."""
        self._prune(watermark - self.window)
        replied, decided = self._replied, len(self._order)
        for _, key in self._order[bisect_right(self._order, watermark, key=_OPENED):]:
            decided -= 1
            replied -= self._by_key[key][1]
        return replied, decided

    def replied(self, watermark: int) -> int:
        """Sessions replied within 24 h (R3) among those counted by :meth:`decided`."""
        return self.counts(watermark)[0]

    def decided(self, watermark: int) -> int:
        """Decided sessions opened in ``(watermark - window, watermark]``."""
        return self.counts(watermark)[1]

    def rate(self, watermark: int) -> float | None:
        """replied / decided in the window, or None when no session in it is decided yet."""
        replied, decided = self.counts(watermark)
        return replied / decided if decided else None
