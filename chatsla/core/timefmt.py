"""Event time as integer microseconds since the Unix epoch (UTC).

Integers compare and add exactly, serialise compactly and never depend on the machine's clock or
time zone, which is what byte-identical replays need (RULES R6.1). Parsing has a fast path for the
overwhelmingly common ``YYYY-MM-DDTHH:MM:SSZ``, ``...SS+HH:MM`` and ``...SS.ffffffZ`` forms because
it runs on every event: the hour is looked up in a cache, minutes, seconds and offset in
precomputed tables.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

US = 1
MS = 1_000
SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_US = timedelta(microseconds=1)
hour_cache: dict[str, int] = {}
_HOUR_CACHE_MAX = 100_000


def from_datetime(dt: datetime) -> int:
    """Exact microseconds of an aware datetime (float timestamps would lose microseconds)."""
    return (dt - _EPOCH) // _ONE_US


def to_datetime(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


# RFC 3339 section 5.6 ``date-time``, the same pattern as the ``rfc3339`` definition of
# schemas/chat.message.v1.schema.json and shop.event.v1.schema.json (tests/schemas/test_schemas.py checks
# that they agree, RULES R1): full date, ``T`` or ``t``, seconds, an optional fraction of one or
# more digits, then ``Z``, ``z`` or ``+HH:MM`` / ``-HH:MM``. ``[0-9]`` is ASCII only, and fullmatch
# leaves no room for anything before or after (a space, a NUL, a newline). The calendar (February 30)
# is checked by datetime in _parse_slow.
_RFC3339 = re.compile(
    r"(?!0000)([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9])"
    r"(?:\.([0-9]+))?(?:[Zz]|([+-])([01][0-9]|2[0-3]):([0-5][0-9]))")
_rfc3339 = _RFC3339.fullmatch
_EPOCH_NAIVE = datetime(1970, 1, 1)


def _parse_slow(s: str) -> int | None:
    """Any RFC 3339 ``date-time`` -> µs, or None; no cache. Digits of a fraction beyond
    microseconds are dropped (truncated, not rounded), as in every earlier version."""
    m = _rfc3339(s)
    if m is None:
        return None
    year, month, day, hour, minute, second, frac, sign, off_h, off_m = m.groups()
    try:
        dt = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError:  # not a calendar date
        return None
    us = (dt - _EPOCH_NAIVE) // _ONE_US
    if frac:
        us += int(frac[:6].ljust(6, "0"))
    if sign:
        offset = int(off_h) * HOUR + int(off_m) * MINUTE
        us -= offset if sign == "+" else -offset
    return us


def _hour(prefix: str) -> int | None:
    """µs of ``YYYY-MM-DDTHH`` read as UTC, or None if invalid; cached, because consecutive events
    share their hour and :func:`_parse_slow` costs as much as a whole event. Only valid prefixes
    are cached, so a hit also proves the prefix is ASCII RFC 3339."""
    base = hour_cache.get(prefix)
    if base is None:
        base = _parse_slow(prefix + ":00:00Z")
        if base is None:
            return None
        if len(hour_cache) >= _HOUR_CACHE_MAX:
            hour_cache.clear()
        hour_cache[prefix] = base
    return base


# ``:MM:SS`` -> µs and ``+HH:MM`` / ``-HH:MM`` -> µs to subtract: one lookup both validates a field
# (ASCII digits in range only: str.isdigit() would accept "²" or "٥", RFC 3339 does not) and
# converts it.
_MIN_SEC = {f":{m:02d}:{s:02d}": m * MINUTE + s * SECOND for m in range(60) for s in range(60)}
# ``:MM:SSZ`` -> µs: the whole tail of ``YYYY-MM-DDTHH:MM:SSZ`` in one lookup, which also proves
# its length and the ``Z`` (the decoder's fast path, schemas/decode.py)
MIN_SEC_UTC = {k + "Z": v for k, v in _MIN_SEC.items()}
MIN_SEC = _MIN_SEC  # (``:MM:SS`` alone)
# The tail ``:MM:SS.fffuuuZ`` of a µs time in three lookups that validate it as they convert it:
# ``:MM:SS.`` -> µs, ``fff`` -> µs of the milliseconds, ``uuuZ`` -> µs (which also proves the
# length and the ``Z``). The decoder's µs fast path (schemas/decode.py: a ticket line's ``at``).
MIN_SEC_DOT = {k + ".": v for k, v in _MIN_SEC.items()}
MS3 = {f"{i:03d}": i * 1000 for i in range(1000)}
US3_UTC = {f"{i:03d}Z": i for i in range(1000)}
_OFFSETS = {f"{sign}{h:02d}:{m:02d}": (1 if sign == "+" else -1) * (h * HOUR + m * MINUTE)
            for sign in "+-" for h in range(24) for m in range(60)}


def parse_time(s: str) -> int | None:
    """RFC 3339 string -> microseconds, or None when it is not a valid RFC 3339 timestamp."""
    n = len(s)
    if n == 20 and s[19] in "Zz" and s[10] in "Tt":  # YYYY-MM-DDTHH:MM:SSZ
        base = hour_cache.get(s[:13])
        if base is None:
            base = _hour(s[:13])
            if base is None:
                return None
        rest = _MIN_SEC.get(s[13:19])
        return None if rest is None else base + rest
    if n == 25 and s[10] in "Tt":  # YYYY-MM-DDTHH:MM:SS+HH:MM: the wall time as if UTC, minus the offset
        offset = _OFFSETS.get(s[19:])
        if offset is None:  # a bad offset, or another form of this length (fractions)
            return None if s[19] in "+-" and s[22] == ":" else _parse_other(s)
        base = hour_cache.get(s[:13])  # _hour's cache lookup inlined: a call less for most
        if base is None:
            base = _hour(s[:13])
        rest = _MIN_SEC.get(s[13:19])
        if base is None or rest is None:
            return None
        return base + rest - offset
    if n == 27 and s[19] == "." and s[26] in "Zz":  # YYYY-MM-DDTHH:MM:SS.ffffffZ (microseconds)
        frac = s[20:26]
        if frac.isdigit() and frac.isascii():  # what the pattern's [0-9]+ accepts, no more
            base = hour_cache.get(s[:13])
            if base is None:
                base = _hour(s[:13])
            rest = _MIN_SEC.get(s[13:19])
            if base is not None and rest is not None:
                return base + rest + int(frac)
    return _parse_other(s)


def _parse_other(s: str) -> int | None:
    """The forms the fast paths leave (fractions, ``z`` after them, other lengths): the strict
    RFC 3339 pattern first, then the cached hour and the tables as on the fast paths."""
    m = _rfc3339(s)
    if m is None:
        return None
    base = hour_cache.get(s[:13])
    if base is None:
        base = _hour(s[:13])
        if base is None:  # not a calendar date
            return None
    us = base + _MIN_SEC[s[13:19]]
    frac = m[7]
    if frac:
        us += int(frac[:6].ljust(6, "0"))
    if m[8]:
        us -= _OFFSETS[s[-6:]]
    return us


_prefix_cache: dict[int, str] = {}
_MIN_SEC_Z = [f"{m:02d}:{s:02d}Z" for m in range(60) for s in range(60)]
# Fractions from tables as well: ``MM:SS.`` by second of the hour, three digits (and three with
# the ``Z``) by millisecond and by µs within it. Concatenating table strings costs half of an
# f-string's ``{:06d}`` (a µs time was formatted in twice a whole second's time, and the ticket
# and wait records format several: BENCHMARKS.md, issue #12).
_MIN_SEC_DOT = [f"{m:02d}:{s:02d}." for m in range(60) for s in range(60)]
_DIGITS3 = [f"{i:03d}" for i in range(1000)]
_DIGITS3_Z = [f"{i:03d}Z" for i in range(1000)]


def format_time(us: int) -> str:
    """Microseconds -> RFC 3339 UTC with ``Z``; fractions only when present, so output is stable."""
    # Seconds first, then hours of seconds: both divisors fit in one 30-bit digit of a Python
    # int, which CPython divides on a fast path (HOUR in µs does not; it was a tenth of the cost).
    secs, frac = divmod(us, SECOND)
    hour, sec = divmod(secs, 3600)
    prefix = _prefix_cache.get(hour)  # ``YYYY-MM-DDTHH:``, cached as in parse_time
    if prefix is None:
        if len(_prefix_cache) >= _HOUR_CACHE_MAX:
            _prefix_cache.clear()
        prefix = _prefix_cache[hour] = to_datetime(hour * HOUR).strftime("%Y-%m-%dT%H:")
    if frac == 0:
        return prefix + _MIN_SEC_Z[sec]
    ms, sub = divmod(frac, MS)
    if sub == 0:
        return prefix + _MIN_SEC_DOT[sec] + _DIGITS3_Z[ms]
    return prefix + _MIN_SEC_DOT[sec] + _DIGITS3[ms] + _DIGITS3_Z[sub]


def format_time_as(us: int, ref: int, ref_text: str) -> str:
    """``format_time(us)``, given ``ref_text == format_time(ref)``: when ``us`` is whole hours
    from ``ref`` the two share everything after ``YYYY-MM-DDTHH:`` (minutes, seconds, fraction),
    so only the hour's cached prefix is looked up. A ticket's deadline is often whole hours of
    service time after its creation (BENCHMARKS.md, issue #12)."""
    if (us - ref) % HOUR == 0 and ref_text[13] == ":":
        prefix = _prefix_cache.get(us // SECOND // 3600)
        if prefix is not None:
            return prefix + ref_text[14:]
    return format_time(us)


def format_opt(us: int | None) -> str | None:
    return None if us is None else format_time(us)


_DURATION_UNITS = {"ms": MS, "s": SECOND, "m": MINUTE, "min": MINUTE, "h": HOUR, "d": DAY}


def parse_duration(text: str) -> int:
    """'72h', '10min', '2m', '90s' -> microseconds. Policies keep durations readable as data (R7)."""
    s = text.strip().lower()
    for unit in sorted(_DURATION_UNITS, key=len, reverse=True):
        if s.endswith(unit):
            number = s[: -len(unit)].strip()
            try:
                value = float(number)
            except ValueError:
                break
            if value < 0:
                break
            return round(value * _DURATION_UNITS[unit])
    raise ValueError(f"not a duration: {text!r} (use e.g. 72h, 10min, 90s)")
