"""Local days and weeks of the R9 / R10 period records, and their duration format.

A period is ``[start, end)`` in the shop's zone: a local day (midnight to midnight) or a week
(R5.1, ``calendar.week_bounds``), resolved like week bounds (``datetime.combine``, fold 0) so a
DST day is 23 or 25 h long. Labels are the local start date ``YYYY-MM-DD``. Durations in records
are seconds as JSON numbers, exact to the microsecond ("Conventions of R9-R11" in docs/rules.md).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache

from chatsla.core.calendar import week_bounds, week_bounds_of, zone
from chatsla.core.timefmt import SECOND, from_datetime, to_datetime

DAY, WEEK = "day", "week"


def seconds(us: int | None) -> int | float | None:
    """µs as seconds: an int when whole (600), else a float exact to the µs (0.000001)."""
    if us is None:
        return None
    q, r = divmod(us, SECOND)
    return q if r == 0 else us / SECOND


@lru_cache(maxsize=4096)
def _day_of_label(label: str, tz: str) -> tuple[int, int]:
    z = zone(tz)
    d = date.fromisoformat(label)
    return (from_datetime(datetime.combine(d, time(0), tzinfo=z)),
            from_datetime(datetime.combine(d + timedelta(days=1), time(0), tzinfo=z)))


def local_date(t: int, tz: str) -> str:
    """The local date of ``t`` in ``tz`` (``YYYY-MM-DD``)."""
    return to_datetime(t).astimezone(zone(tz)).date().isoformat()


def period_bounds(kind: str, t: int, tz: str, week_starts_on: int = 0) -> tuple[int, int, str]:
    """(start µs, end µs, label) of the local day or week containing ``t``."""
    if kind == WEEK:
        return week_bounds(t, tz, week_starts_on)
    label = local_date(t, tz)
    start, end = _day_of_label(label, tz)
    return start, end, label


def period_bounds_of(kind: str, label: str, tz: str) -> tuple[int, int]:
    """(start µs, end µs) of the day or week starting on local date ``label``."""
    if kind == WEEK:
        return week_bounds_of(label, tz)
    return _day_of_label(label, tz)
