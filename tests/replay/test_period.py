"""The replay's period, ``--week`` and the notes on cut weeks, without Kafka (issues #11, #13; RULES
R5.1, R5.6, R6.2): ``chatsla.replay.period``.

The broker-side behaviour (each shop's own week on the demo's mixed-time-zone data, the notes of a
UTC range) is tested in tests/integration/test_replay.py.
"""

from __future__ import annotations

import pytest

from chatsla.core.calendar import week_bounds_of
from chatsla.core.policy import load_policy
from chatsla.audit import Report
from chatsla.core.timefmt import MINUTE, format_time, parse_time
from chatsla.replay import (
    DEFAULT_LOOKBACK, PartitionRange, Period, ReplayResult, final_after, period_notes, week_extent, week_label,
    week_period,
)

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


def test_a_period_reads_its_lookback_before_it_and_holds_its_start_not_its_end() -> None:
    """Module docs of chatsla.replay, "What is read": the chat input from ``from - lookback``."""
    start, end = parse_time("2026-11-02T00:00:00Z"), parse_time("2026-11-09T00:00:00Z")
    p = Period(start, end)
    assert p.read_from == start - DEFAULT_LOOKBACK
    assert Period(start, end, None).read_from is None  # --lookback all: from the beginning
    assert Period(5, 10, 100).read_from == 0
    assert start in p and end - 1 in p and end not in p and start - 1 not in p and "x" not in p
    with pytest.raises(ValueError, match="end after it starts"):
        Period(end, start)
    with pytest.raises(ValueError, match="negative"):
        Period(start, end, -1)


def result_with_weeks(period: Period, weeks: dict, newest: int | None, stopped: bool = False) -> ReplayResult:
    report = Report([], [], {"shops": None})
    ranges = [PartitionRange("chat.messages", 0, 0, 10, stop=5 if stopped else None)]
    return ReplayResult(report, period, POLICY, ranges, {}, {"s1": "Asia/Bangkok"}, shop_weeks={"s1": weeks},
                        newest=newest, allowed_lateness=2 * MINUTE)


def test_the_notes_name_each_week_the_period_cuts_and_when_it_is_final() -> None:
    """R5.1: a UTC range cuts a Bangkok shop's weeks; each note says which --to makes it final."""
    end = parse_time("2026-11-09T00:00:00Z")
    w1 = week_bounds_of("2026-11-02", "Asia/Bangkok")
    w0 = week_bounds_of("2026-10-26", "Asia/Bangkok")
    w2 = week_bounds_of("2026-11-09", "Asia/Bangkok")
    weeks = {"2026-10-26": (*w0, "final"), "2026-11-02": (*w1, "provisional"), "2026-11-09": (*w2, None)}
    notes, warning = period_notes(result_with_weeks(Period(w1[0], w2[0]), weeks, newest=end - 1, stopped=True))
    assert [(n.label, n.kind, n.final_to) for n in notes] == [
        ("2026-11-02", "provisional", final_after(w1[1], POLICY, 2 * MINUTE))]
    assert warning is None  # the data reaches --to: a partition stopped beyond it
    # weeks starting before --from and not ended by --to
    p = Period(w1[0] + 1, w2[0] + 1)
    weeks = {"2026-11-02": (*w1, "final"), "2026-11-09": (*w2, None)}
    notes, warning = period_notes(result_with_weeks(p, weeks, newest=w2[0] - 5))
    assert [(n.label, n.kind) for n in notes] == [("2026-11-02", "before_from"), ("2026-11-09", "not_ended")]
    assert "--week 2026-11-02" in notes[0].text() and "before --to" in warning
    assert period_notes(result_with_weeks(p, weeks, newest=None))[1] == "no event was read: nothing to report"


def test_with_a_week_label_the_notes_name_every_shops_own_week() -> None:
    p = week_period("2026-11-02", POLICY, 2 * MINUTE)
    w1 = week_bounds_of("2026-11-02", "Asia/Bangkok")
    weeks = {"2026-10-26": (*week_bounds_of("2026-10-26", "Asia/Bangkok"), "final"), "2026-11-02": (*w1, "final")}
    notes, _ = period_notes(result_with_weeks(p, weeks, newest=p.end, stopped=True))
    assert [(n.shop_id, n.zone, n.label, n.kind) for n in notes] == [("s1", "Asia/Bangkok", "2026-11-02", "week")]
