"""``format_time`` against a reference built from ``datetime`` (its fast paths: whole seconds,
milliseconds, microseconds from tables, BENCHMARKS.md issue #12), and its round trip through
``parse_time``: records carry these strings, so a wrong digit is a wrong output (R6.1)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from chatsla.core.timefmt import HOUR, format_time, format_time_as, parse_time

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# 1970 .. 2100, µs
TIMES = st.integers(min_value=0, max_value=4_102_444_800_000_000)


def reference(us: int) -> str:
    """RFC 3339 UTC with ``Z``: no fraction for a whole second, three digits for whole
    milliseconds, else six."""
    d = EPOCH + timedelta(microseconds=us)
    base = d.strftime("%Y-%m-%dT%H:%M:%S")
    if d.microsecond == 0:
        return base + "Z"
    if d.microsecond % 1000 == 0:
        return f"{base}.{d.microsecond // 1000:03d}Z"
    return f"{base}.{d.microsecond:06d}Z"


@given(TIMES, st.sampled_from([1, 1000, 1_000_000]))
def test_format_time_equals_the_reference(us: int, unit: int) -> None:
    us -= us % unit  # whole seconds and milliseconds as often as any µs
    assert format_time(us) == reference(us)
    assert parse_time(format_time(us)) == us


def test_format_time_edges() -> None:
    t = parse_time("2026-11-02T23:59:59Z")
    assert [format_time(t + d) for d in (0, 1, 10, 999, 1000, 1001, 999_000, 999_999, 1_000_000)] == [
        "2026-11-02T23:59:59Z", "2026-11-02T23:59:59.000001Z", "2026-11-02T23:59:59.000010Z",
        "2026-11-02T23:59:59.000999Z", "2026-11-02T23:59:59.001Z", "2026-11-02T23:59:59.001001Z",
        "2026-11-02T23:59:59.999Z", "2026-11-02T23:59:59.999999Z", "2026-11-03T00:00:00Z"]


@given(TIMES, st.integers(min_value=-2000, max_value=2000), st.integers(min_value=-3, max_value=3),
       st.sampled_from([1, 1000, 1_000_000]))
def test_format_time_as_equals_format_time(ref: int, hours: int, off: int, unit: int) -> None:
    """``format_time_as`` shares the reference's tail only when the two are whole hours apart
    (``off`` 0); anything else is formatted in full. Either way, what ``format_time`` says."""
    ref -= ref % unit
    us = max(0, ref + hours * HOUR + off)
    assert format_time_as(us, ref, format_time(ref)) == format_time(us)
