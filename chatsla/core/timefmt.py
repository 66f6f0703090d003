"""Event time as integer microseconds since the Unix epoch (UTC).

Integers compare and add exactly, serialise compactly and never depend on the machine's clock or
time zone, which is what byte-identical replays need (RULES R6.1). Parsing has a fast path for the
overwhelmingly common ``YYYY-MM-DDTHH:MM:SSZ`` form because it runs on every event.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

US = 1
MS = 1_000
SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_US = timedelta(microseconds=1)
_minute_cache: dict[str, int] = {}
_MINUTE_CACHE_MAX = 200_000


def from_datetime(dt: datetime) -> int:
    """Exact microseconds of an aware datetime (float timestamps would lose microseconds)."""
    return (dt - _EPOCH) // _ONE_US


def to_datetime(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _parse_slow(s: str) -> int | None:
    # RFC 3339 needs a full date, a time with seconds and an offset; fromisoformat is laxer
    # (basic format, hour-only times, no offset), so check the shape before trusting it.
    if (len(s) < 20 or not s.isascii() or s[4] != "-" or s[7] != "-" or s[10] not in "Tt "
            or s[13] != ":" or s[16] != ":"):
        return None
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    return from_datetime(dt)


def _minute(prefix: str) -> int | None:
    """µs of ``YYYY-MM-DDTHH:MM`` read as UTC, cached: consecutive events share their minute."""
    base = _minute_cache.get(prefix)
    if base is None:
        base = _parse_slow(prefix + ":00Z")
        if base is None:
            return None
        if len(_minute_cache) >= _MINUTE_CACHE_MAX:
            _minute_cache.clear()
        _minute_cache[prefix] = base
    return base


def parse_time(s: str) -> int | None:
    """RFC 3339 string -> microseconds, or None when it is not a valid RFC 3339 timestamp."""
    n = len(s)
    if n == 25 and s[19] in "+-" and s[22] == ":" and s[10] in "Tt" and s[16] == ":":
        # YYYY-MM-DDTHH:MM:SS+HH:MM: the wall time as if UTC, minus the offset
        sec, oh, om = s[17:19], s[20:22], s[23:25]
        # str.isdigit() also accepts non-ASCII digits such as "²" or "٥"; RFC 3339 is ASCII only
        if not (s.isascii() and sec.isdigit() and oh.isdigit() and om.isdigit()) \
                or sec > "59" or oh > "23" or om > "59":
            return None
        base = _minute(s[:16])
        if base is None:
            return None
        offset = int(oh) * HOUR + int(om) * MINUTE
        return base + int(sec) * SECOND - (offset if s[19] == "+" else -offset)
    if n == 20 and s[19] in "Zz" and s[10] in "Tt":
        base = _minute_cache.get(s[:16])
        if base is None:
            base = _parse_slow(s[:16] + ":00Z")
            if base is None:
                return None
            if len(_minute_cache) >= _MINUTE_CACHE_MAX:
                _minute_cache.clear()
            _minute_cache[s[:16]] = base
        sec = s[17:19]
        if s[16] != ":" or not (s.isascii() and sec.isdigit()) or sec > "59":
            return None
        return base + int(sec) * SECOND
    return _parse_slow(s)


_prefix_cache: dict[int, str] = {}


def format_time(us: int) -> str:
    """Microseconds -> RFC 3339 UTC with ``Z``; fractions only when present, so output is stable."""
    minute, rest = divmod(us, MINUTE)
    prefix = _prefix_cache.get(minute)
    if prefix is None:
        if len(_prefix_cache) >= _MINUTE_CACHE_MAX:
            _prefix_cache.clear()
        prefix = _prefix_cache[minute] = to_datetime(minute * MINUTE).strftime("%Y-%m-%dT%H:%M:")
    sec, frac = divmod(rest, SECOND)
    if frac == 0:
        return f"{prefix}{sec:02d}Z"
    if frac % MS == 0:
        return f"{prefix}{sec:02d}.{frac // MS:03d}Z"
    return f"{prefix}{sec:02d}.{frac:06d}Z"


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
