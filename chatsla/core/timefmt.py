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
    if len(s) < 20 or s[4] != "-" or s[7] != "-" or s[10] not in "Tt " or s[13] != ":" or s[16] != ":":
        return None
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    return from_datetime(dt)


def parse_time(s: str) -> int | None:
    """RFC 3339 string -> microseconds, or None when it is not a valid RFC 3339 timestamp."""
    if len(s) == 20 and s[19] in "Zz" and s[10] in "Tt":
        base = _minute_cache.get(s[:16])
        if base is None:
            base = _parse_slow(s[:16] + ":00Z")
            if base is None:
                return None
            if len(_minute_cache) >= _MINUTE_CACHE_MAX:
                _minute_cache.clear()
            _minute_cache[s[:16]] = base
        sec = s[17:19]
        if s[16] != ":" or not sec.isdigit() or sec > "59":
            return None
        return base + int(sec) * SECOND
    return _parse_slow(s)


def format_time(us: int) -> str:
    """Microseconds -> RFC 3339 UTC with ``Z``; fractions only when present, so output is stable."""
    dt = to_datetime(us)
    frac = us % SECOND
    if frac == 0:
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    if frac % MS == 0:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{frac // MS:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
