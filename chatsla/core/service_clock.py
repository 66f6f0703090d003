"""The service clock of Douyin service tickets (RULES R9.2): time that counts only inside a daily
service window.

Each local date D whose weekday is a service day has one window ``[D start, D end)``; the bounds
are the instants of those local wall times resolved as ``chatsla/core/calendar.py`` resolves week
bounds (``datetime.combine(date, time, tzinfo=zone)``, fold 0), so a DST day still has a 12 h
09:00-21:00 window when its jump falls outside it (example 9-N). ``end`` may be 24:00 (the next
date's midnight). Outside the windows the clock stands still.

* ``clock_start(c)``: ``c`` if inside a window, else the start of the next one (R9.2.4; a ticket at
  21:00:00 starts at 09:00 the next day, one at 09:00:00 at once, N6).
* ``service(a, b)``: the length of ``[a, b)`` inside windows (R9.2.3).
* ``due(c, S)``: the earliest ``u >= c`` with ``service(c, u) == S`` (R9.2.5): time that runs out
  exactly at a window's end is due at that end, never at the next start (N6).
* ``remaining(w, due)``: ``service(w, due)``, 0 once ``w >= due`` (R9.2.6).

Window bounds are cached per date ordinal (every ticket needs a few; zoneinfo arithmetic is the
costly part). Pure: time enters only as arguments, in integer microseconds (R6.1).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from chatsla.core.calendar import zone
from chatsla.core.timefmt import from_datetime, to_datetime

# Beyond this many consecutive dates without a window the clock has none at all (a policy has
# at least one service day, so a week always holds one; the bound only stops a runaway loop).
_MAX_GAP_DAYS = 8


class ServiceClock:
    """The windows of one zone: ``start``/``end`` in minutes after local midnight (``end`` may be
    1440, i.e. 24:00), ``days`` the service weekdays (0 = Monday)."""

    __slots__ = ("tz", "_zone", "start_min", "end_min", "days", "_windows", "_last", "_next")

    def __init__(self, tz: str, start_min: int = 9 * 60, end_min: int = 21 * 60,
                 days: frozenset[int] | tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)) -> None:
        if not 0 <= start_min < end_min <= 24 * 60:
            raise ValueError(f"service window must satisfy 00:00 <= start < end <= 24:00, got {start_min}..{end_min} min")
        if not days:
            raise ValueError("a service clock needs at least one service day")
        self.tz = tz
        self._zone = zone(tz)
        self.start_min = start_min
        self.end_min = end_min
        self.days = frozenset(days)
        self._windows: dict[int, tuple[int, int] | None] = {}
        # ordinal -> _following(ordinal): the window after a window, looked up without a call
        # (service and due walk it for every ticket whose time spans a window's end)
        self._next: dict[int, tuple[int, int, int]] = {}
        # the last next_window answer and the instant it was asked for: it is also the answer for
        # every later instant before that window's end (a ticket's clock_start and due, and the
        # next ticket's, nearly always fall there)
        self._last: tuple[int, int, int, int] = (1, 0, 0, 0)  # (asked, ordinal, start, end): empty

    # ------------------------------------------------------------ windows
    def _local_ordinal(self, t: int) -> int:
        return to_datetime(t).astimezone(self._zone).date().toordinal()

    def _instant(self, d: date, minutes: int) -> int:
        if minutes == 24 * 60:  # "24:00": the next date's midnight
            d, minutes = d + timedelta(days=1), 0
        h, m = divmod(minutes, 60)
        return from_datetime(datetime.combine(d, time(h, m), tzinfo=self._zone))

    def window(self, ordinal: int) -> tuple[int, int] | None:
        """(start µs, end µs) of the window of local date ``ordinal`` (``date.toordinal()``), or
        None on a date that is not a service day. Cached."""
        w = self._windows.get(ordinal, 0)
        if w != 0:
            return w  # type: ignore[return-value]
        d = date.fromordinal(ordinal)
        if d.weekday() in self.days:
            w = (self._instant(d, self.start_min), self._instant(d, self.end_min))
            if w[1] <= w[0]:
                # A window inside the hour a DST jump skips (02:47-03:00 in New York on its
                # spring-forward day): fold 0 puts its start after its end, so it has no time
                # that day. As a negative window, due() counted it as extra service time.
                w = None
        else:
            w = None
        if len(self._windows) > 4096:
            self._windows.clear()
        self._windows[ordinal] = w
        return w

    def next_window(self, t: int) -> tuple[int, int, int]:
        """(ordinal, start, end) of the first window whose end is after ``t`` (the window
        containing ``t``, or the next one)."""
        last = self._last
        if last[0] <= t < last[3]:  # every window ending by last[0] ends by t too
            return last[1], last[2], last[3]
        o = self._local_ordinal(t) - 1  # a 24:00 window of the day before may still hold t
        for _ in range(_MAX_GAP_DAYS + 2):
            w = self.window(o)
            if w is not None and w[1] > t:
                self._last = (t, o, w[0], w[1])
                return o, w[0], w[1]
            o += 1
        raise ValueError("no service window within a week")  # pragma: no cover (days is non-empty)

    def _following(self, ordinal: int) -> tuple[int, int, int]:
        nxt = self._next.get(ordinal)
        if nxt is not None:
            return nxt
        if len(self._next) > 4096:
            self._next.clear()
        nxt = self._next[ordinal] = self._following_window(ordinal)
        return nxt

    def _following_window(self, ordinal: int) -> tuple[int, int, int]:
        o = ordinal + 1
        for _ in range(_MAX_GAP_DAYS):
            w = self.window(o)
            if w is not None:
                return o, w[0], w[1]
            o += 1
        raise ValueError("no service window within a week")  # pragma: no cover

    # ------------------------------------------------------------- R9.2
    def clock_start(self, c: int) -> int:
        """R9.2.4: ``c`` inside a window, else the next window's start."""
        _, start, _end = self.next_window(c)
        return c if c >= start else start

    def service(self, a: int, b: int) -> int:
        """R9.2.3: µs of ``[a, b)`` inside windows (0 when ``b <= a``)."""
        if b <= a:
            return 0
        last = self._last  # (next_window's answer for a later instant, inlined: once per ticket)
        if last[0] <= a < last[3]:
            o, start, end = last[1], last[2], last[3]
        else:
            o, start, end = self.next_window(a)
        total = 0
        while start < b:
            lo = a if a > start else start
            hi = b if b < end else end
            if hi > lo:
                total += hi - lo
            if b <= end:  # the next window starts after ``end``, so after ``b``: not looked up
                break
            o, start, end = self._next.get(o) or self._following(o)
        return total

    def due(self, c: int, s: int) -> int:
        """R9.2.5: the earliest ``u >= c`` with ``service(c, u) == s`` (``s`` > 0 µs): from
        clock_start, what fits in the rest of a window (its end included) is due there."""
        o, start, end = self.next_window(c)
        cur = c if c > start else start
        left = s
        while True:
            avail = end - cur
            if left <= avail:
                return cur + left
            left -= avail
            o, start, end = self._following(o)
            cur = start

    def start_due(self, c: int, s: int) -> tuple[int, int]:
        """``(clock_start(c), due(c, s))`` from one window lookup (a ticket's creation needs both)."""
        last = self._last  # (next_window's answer for a later instant, inlined: once per ticket)
        if last[0] <= c < last[3]:
            o, start, end = last[1], last[2], last[3]
        else:
            o, start, end = self.next_window(c)
        first = cur = c if c > start else start  # (== clock_start(c))
        left = s
        while True:
            avail = end - cur
            if left <= avail:
                return first, cur + left
            left -= avail
            o, start, end = self._next.get(o) or self._following(o)
            cur = start

    def remaining(self, w: int, due: int) -> int:
        """R9.2.6: service time left at ``w`` until ``due``; 0 once ``w >= due``."""
        return self.service(w, due) if w < due else 0


_clocks: dict[tuple, ServiceClock] = {}


def clock_for(tz: str, start_min: int = 9 * 60, end_min: int = 21 * 60,
              days: frozenset[int] | tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)) -> ServiceClock:
    """The shared clock of a zone and window (its window cache serves every ticket in that zone)."""
    key = (tz, start_min, end_min, frozenset(days))
    c = _clocks.get(key)
    if c is None:
        if len(_clocks) > 1024:
            _clocks.clear()
        c = _clocks[key] = ServiceClock(tz, start_min, end_min, days)
    return c
