"""``chatsla replay --week``'s period, without Kafka (issue #13; RULES R5.1, R5.6, R6.2).

The broker-side behaviour (each shop's own week on the demo's mixed-time-zone data, the notes of a
UTC range) is tested in tests/integration/test_replay.py.
"""

from __future__ import annotations

import pytest

from chatsla.core.calendar import week_bounds_of
from chatsla.core.policy import load_policy
from chatsla.core.timefmt import MINUTE, format_time
from chatsla.replay import final_after, week_extent, week_label, week_period

POLICY = load_policy()


def test_the_week_period_holds_every_zones_week_and_makes_it_final() -> None:
    """Issue #13: --week reads from the earliest local Monday 00:00 (UTC+14) and finishes the
    watermark at the latest week end (UTC-12) + reply window + auto-reply timeout + lateness."""
    p = week_period("2026-11-02", POLICY, 2 * MINUTE)
    assert (format_time(p.start), format_time(p.end), p.week) == (
        "2026-11-01T10:00:00Z", "2026-11-10T12:12:00Z", "2026-11-02")
    for zone in ("UTC", "Asia/Bangkok", "Asia/Jakarta", "Europe/London", "America/Los_Angeles",
                 "Pacific/Kiritimati", "Etc/GMT+12", "Asia/Kolkata"):
        start, end = week_bounds_of("2026-11-02", zone)
        assert p.start <= start and final_after(end, POLICY, 2 * MINUTE) <= p.end, zone
    assert week_extent("2026-11-02") == (week_bounds_of("2026-11-02", "Pacific/Kiritimati")[0],
                                         week_bounds_of("2026-11-02", "Etc/GMT+12")[1])
    # Tuesday 00:10 local plus the lateness (R5.6, R6.2): shop-03 on Asia/Jakarta
    assert format_time(final_after(week_bounds_of("2026-11-02", "Asia/Jakarta")[1], POLICY, 2 * MINUTE)) == \
        "2026-11-09T17:12:00Z"


@pytest.mark.parametrize("text, why", [("2026-11-03", "is a Tuesday"), ("2026-11-2", "YYYY-MM-DD"),
                                       ("last week", "YYYY-MM-DD"), ("2026-02-30", "YYYY-MM-DD")])
def test_a_week_is_named_by_its_monday(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        week_label(text)
    assert week_label("2026-11-02") == "2026-11-02"
