"""The service clock of RULES R9.2 (chatsla/core/service_clock.py): every rule of R9.2, the
examples of R9.10 that are pure clock arithmetic, and the properties issue #12 asks for (due
non-decreasing in c and in S, service(c, due(c, S)) == S, no deadline outside a window except at
its end, DST days give 12 h windows)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings, strategies as st

from chatsla.core.service_clock import ServiceClock, clock_for
from chatsla.core.timefmt import HOUR, MINUTE, SECOND, from_datetime

SH = "Asia/Shanghai"
CLOCK = clock_for(SH)


def local(s: str, tz: str = SH) -> int:
    """µs of a local wall time ``YYYY-MM-DD HH:MM[:SS[.ffffff]]`` in ``tz``."""
    return from_datetime(datetime.fromisoformat(s).replace(tzinfo=ZoneInfo(tz)))


MON = "2026-11-02"
TUE = "2026-11-03"
WED = "2026-11-04"


def test_window_bounds_every_day_9_to_21():
    """R9.2.1: one window [09:00, 21:00) per local date, weekends included (N10)."""
    for day in range(2, 9):  # Mon 2 .. Sun 8 November 2026
        d = f"2026-11-{day:02d}"
        o = datetime.fromisoformat(d).date().toordinal()
        assert CLOCK.window(o) == (local(f"{d} 09:00"), local(f"{d} 21:00"))


def test_clock_start_boundaries():
    """R9.2.4 / N6: 09:00:00 starts at once, 21:00:00 starts at 09:00 the next day, 06:30 at
    09:00 the same day, 23:10 at 09:00 the next day (9-F, 9-G, 9-G')."""
    assert CLOCK.clock_start(local(f"{MON} 09:00")) == local(f"{MON} 09:00")
    assert CLOCK.clock_start(local(f"{MON} 21:00")) == local(f"{TUE} 09:00")
    assert CLOCK.clock_start(local(f"{MON} 20:59:59.999999")) == local(f"{MON} 20:59:59.999999")
    assert CLOCK.clock_start(local(f"{MON} 06:30")) == local(f"{MON} 09:00")
    assert CLOCK.clock_start(local(f"{MON} 23:10")) == local(f"{TUE} 09:00")


def test_service_time_counts_only_windows():
    """R9.2.3: the clock stands still outside the windows."""
    assert CLOCK.service(local(f"{MON} 20:00"), local(f"{TUE} 20:00")) == 12 * HOUR
    assert CLOCK.service(local(f"{MON} 21:00"), local(f"{TUE} 09:00")) == 0
    assert CLOCK.service(local(f"{MON} 14:00"), local(f"{TUE} 10:15")) == 8 * HOUR + 15 * MINUTE  # 9-K
    assert CLOCK.service(local(f"{TUE} 10:00"), local(f"{MON} 10:00")) == 0


def test_due_examples_of_r9_10():
    """R9.2.5 with the examples 9-A, 9-B, 9-C, 9-D, 9-E, 9-F, 9-G, 9-G', 9-I, 9-J, 9-K."""
    h = HOUR
    cases = [
        (f"{MON} 20:00", 12 * h, f"{TUE} 20:00"),  # 9-A, the seed's own example (N5)
        (f"{MON} 10:00", 24 * h, f"{WED} 10:00"),  # 9-B
        (f"{MON} 09:00", 24 * h, f"{TUE} 21:00"),  # 9-C: not Wed 09:00 (N6)
        (f"{MON} 20:30", 2 * h, f"{TUE} 10:30"),  # 9-D
        (f"{MON} 19:00", 2 * h, f"{MON} 21:00"),  # 9-E: no carry-over
        (f"{MON} 23:10", 2 * h, f"{TUE} 11:00"),  # 9-F
        (f"{MON} 06:30", 24 * h, f"{TUE} 21:00"),  # 9-G
        (f"{MON} 21:00", 2 * h, f"{TUE} 11:00"),  # 9-G'
        (f"{MON} 18:00", 4 * h, f"{TUE} 10:00"),  # 9-I
        ("2026-11-06 20:00", 24 * h, "2026-11-08 20:00"),  # 9-J: weekends count
        (f"{MON} 14:00", 24 * h, f"{WED} 14:00"),  # 9-K
        ("2026-11-08 20:30", 24 * h, "2026-11-10 20:30"),  # 9-M
    ]
    for created, s, due in cases:
        assert CLOCK.due(local(created), s) == local(due), created


def test_remaining_service_time_9_l():
    """R9.2.6 and 9-L: ticket 9-D (due Tue 10:30) has 90 min left at Mon 22:00, 59 min at Tue
    09:31, and 0 once the deadline has passed."""
    due = local(f"{TUE} 10:30")
    assert CLOCK.remaining(local(f"{MON} 22:00"), due) == 90 * MINUTE
    assert CLOCK.remaining(local(f"{TUE} 09:31"), due) == 59 * MINUTE
    assert CLOCK.remaining(due, due) == 0
    assert CLOCK.remaining(due + 1, due) == 0


def test_dst_spring_forward_keeps_a_12h_window_9_n():
    """9-N: Europe/Berlin jumps at 02:00 on 2026-03-29, outside the window; Sat 20:00 (+01:00)
    urgent is due Sun 10:00 (+02:00), and the Sunday window is 12 h."""
    berlin = clock_for("Europe/Berlin")
    assert berlin.due(local("2026-03-28 20:00", "Europe/Berlin"), 2 * HOUR) == local("2026-03-29 10:00", "Europe/Berlin")
    o = datetime(2026, 3, 29).toordinal()
    start, end = berlin.window(o)
    assert end - start == 12 * HOUR


def test_restricted_days_and_24h_end():
    """The policy's service_window may name fewer days and end at 24:00 (RULES "Policy fields
    beyond ..."): a Monday-Friday 00:00-24:00 clock skips the weekend (R11.6.1's working day)."""
    wd = ServiceClock("UTC", 0, 24 * 60, (0, 1, 2, 3, 4))
    fri = from_datetime(datetime(2026, 11, 6, 12, tzinfo=ZoneInfo("UTC")))
    mon = from_datetime(datetime(2026, 11, 9, 12, tzinfo=ZoneInfo("UTC")))
    assert wd.due(fri, 24 * HOUR) == mon
    sat = from_datetime(datetime(2026, 11, 7, 12, tzinfo=ZoneInfo("UTC")))
    assert wd.clock_start(sat) == from_datetime(datetime(2026, 11, 9, tzinfo=ZoneInfo("UTC")))


# ------------------------------------------------------------------ properties
ZONES = ["Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Sydney", "UTC", "Asia/Kolkata"]
T0 = local("2026-01-01 00:00", "UTC")
instants = st.integers(min_value=T0, max_value=T0 + 400 * 24 * HOUR)
spans = st.integers(min_value=1, max_value=72 * HOUR)
zones = st.sampled_from(ZONES)


def _in_window_or_at_end(clock: ServiceClock, u: int) -> bool:
    o, start, end = clock.next_window(u - 1)  # the window whose end is at or after u
    return start < u <= end


@settings(max_examples=300, deadline=None)
@given(zones, instants, spans)
def test_service_of_due_is_s(tz, c, s):
    """R9.2.5: due(c, S) is exactly S service time after c."""
    clock = clock_for(tz)
    assert clock.service(c, clock.due(c, s)) == s


@settings(max_examples=300, deadline=None)
@given(zones, instants, spans)
def test_due_is_the_earliest_such_instant(tz, c, s):
    """R9.2.5: one µs earlier has less than S service time."""
    clock = clock_for(tz)
    u = clock.due(c, s)
    assert u >= c and clock.service(c, u - 1) < s


@settings(max_examples=300, deadline=None)
@given(zones, instants, st.integers(min_value=0, max_value=30 * HOUR), spans)
def test_due_non_decreasing_in_c(tz, c, dc, s):
    clock = clock_for(tz)
    assert clock.due(c, s) <= clock.due(c + dc, s)


@settings(max_examples=300, deadline=None)
@given(zones, instants, spans, st.integers(min_value=0, max_value=30 * HOUR))
def test_due_non_decreasing_in_s(tz, c, s, ds):
    clock = clock_for(tz)
    assert clock.due(c, s) <= clock.due(c, s + ds)


@settings(max_examples=300, deadline=None)
@given(zones, instants, spans)
def test_no_deadline_outside_a_window_except_at_its_end(tz, c, s):
    clock = clock_for(tz)
    assert _in_window_or_at_end(clock, clock.due(c, s))


@settings(max_examples=200, deadline=None)
@given(zones, st.integers(min_value=0, max_value=800))
def test_every_day_has_a_12h_window_dst_included(tz, day):
    """R9.2.1 with zones whose DST jumps fall at night: every window is 12 h, the DST days too."""
    o = datetime(2026, 1, 1).toordinal() + day
    start, end = clock_for(tz).window(o)
    assert end - start == 12 * HOUR


@settings(max_examples=200, deadline=None)
@given(zones, instants, st.integers(min_value=0, max_value=50 * HOUR), st.integers(min_value=0, max_value=50 * HOUR))
def test_service_is_additive(tz, a, x, y):
    clock = clock_for(tz)
    assert clock.service(a, a + x + y) == clock.service(a, a + x) + clock.service(a + x, a + x + y)


def test_seconds_resolution():
    """Exact µs arithmetic: one second before the end plus one second is due at the end."""
    c = local(f"{MON} 20:59:59")
    assert CLOCK.due(c, SECOND) == local(f"{MON} 21:00")
    assert CLOCK.due(c, SECOND + 1) == local(f"{TUE} 09:00") + 1


def test_a_window_inside_the_skipped_dst_hour_has_no_time_that_day():
    """R9.2.3 / R9.2.5 with a policy's own service_window (R11.6.1's working-day form allows any
    window): 02:47-03:00 in New York does not exist on 2026-03-08 (clocks jump from 02:00 to
    03:00). Resolved with fold 0, its start fell after its end; due() read that as negative
    length and added it, so service(c, due(c, S)) != S (found by the working-day property
    test). That day has no window now: the time runs on the next day's."""
    ny = "America/New_York"
    clock = ServiceClock(ny, 2 * 60 + 47, 3 * 60)
    sunday = datetime(2026, 3, 8).toordinal()
    assert clock.window(sunday) is None
    c = local("2026-03-07 02:50", ny)  # Saturday, 10 of its 13 minutes left
    due = clock.due(c, 12 * MINUTE)
    assert due == local("2026-03-09 02:49", ny)  # 10 min on Saturday, none on Sunday, 2 on Monday
    assert clock.service(c, due) == 12 * MINUTE


@settings(max_examples=300, deadline=None)
@given(zones, instants, spans, st.integers(0, 23 * 60), st.integers(1, 24 * 60))
def test_service_of_due_is_s_for_any_window(tz, c, s, start, length):
    """R9.2.5 for any window a policy may give, DST days included."""
    end = min(start + length, 24 * 60)
    clock = ServiceClock(tz, start, end)
    u = clock.due(c, s)
    assert u >= c and clock.service(c, u) == s
