"""The after-sales live projections (projections/aftersale.py; issue #14, "Live projections and a
Grafana row"): the day / week to date of RULES R11.5.2 per request type, the month's review
timeliness of R11.6.3 and where it is heading against ``review_rate_below``, with the exact
values of R11.8's examples. The model is the real one (``Aftersale`` on the runner, through
tests/core/modelhost.py), read at the watermark as the worker reads it."""

from __future__ import annotations

from fractions import Fraction

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatsla.core.models.aftersale import Aftersale
from chatsla.core.timefmt import MINUTE
from chatsla.projections.aftersale import (RISK_HEADING_UNDER, RISK_OK, RISK_UNDER, ROWS, aftersale_view,
                                           project_review)
from tests.core.modelhost import Host
from tests.core.test_aftersale import CONFIG, POLICY, T, assign, r11_8_events, req, rev

LATENESS = 2 * MINUTE
THRESHOLD = POLICY.review_rate_below  # 0.90 exactly (R11.7)


def host_at(events: list, watermark: int) -> Host:
    """The aftersale model fed the ``events`` up to ``watermark`` (time-sorted), its watermark
    then at ``watermark``: the live state at that instant."""
    h = Host(Aftersale, POLICY, CONFIG, lateness=LATENESS)
    h.feed(sorted((e for e in events if e.t <= watermark), key=lambda e: (e.t, e.event_id)))
    h.advance(watermark + LATENESS)
    assert h.watermark == watermark
    return h


def view_at(events: list, at: str) -> dict:
    h = host_at(events, T(at))
    return aftersale_view(h.model, "S9", h.watermark)


def test_r11_8_day_all_row_to_date_has_the_examples_exact_values() -> None:
    """R11.8, "Day 2026-11-02, all row": r1-r5 give requests 5, auto_approved 2, manual_review 3,
    rate 0.4, approved {"USD": "99.99"} (exact: 49.99 + 50.00, never a float sum), the manual
    reasons and signals; the cancel row 3 requests / 2 approved, return_refund 2 / 0. Read live,
    at 23:00 on that Monday, before the day's record is final."""
    day = view_at(r11_8_events(), "2026-11-02 23:00")["day"]
    assert list(day) == list(ROWS)
    a = day["all"]
    assert (a["start"], a["requests"], a["auto_approved"], a["manual_review"], a["auto_approval_rate"]) == (
        "2026-11-02", 5, 2, 3, 0.4)
    assert a["auto_approved_amount"] == {"USD": "99.99"}
    assert a["manual_reasons"] == {"evidence_required:unboxing_video": 1, "no_rule_matched": 2}
    assert a["signals"] == {"near_threshold": 2}
    assert (a["status"], a["policy_id"], a["policy_version"]) == (None, "tiktok_aftersale", "2026-01")
    assert (day["cancel"]["requests"], day["cancel"]["auto_approved"]) == (3, 2)
    assert (day["return_refund"]["requests"], day["return_refund"]["auto_approved"]) == (2, 0)
    assert (day["exchange"]["requests"], day["exchange"]["auto_approval_rate"]) == (0, None)


def test_r11_8_week_to_date_counts_the_vase_abuse_signals() -> None:
    """R11.8 v1-v3 and the other rows of the week of 2026-11-16: at Tuesday 11-17 09:00 the
    week holds v3 alone, a limited request (manual_review, limit:per_buyer) with all three
    signals; the week of 11-09 (j2, v2) is not the current one."""
    week = view_at(r11_8_events(), "2026-11-17 09:00")["week"]
    a = week["all"]
    assert (a["start"], a["requests"], a["auto_approved"], a["manual_review"]) == ("2026-11-16", 1, 0, 1)
    assert a["manual_reasons"] == {"limit:per_buyer:home-under-100": 1}
    assert a["signals"] == {"repeat_buyer": 1, "repeat_sku": 1, "near_threshold": 1}
    assert week["refund_only"]["requests"] == 1 and week["cancel"]["requests"] == 0


def test_the_day_to_date_equals_the_days_record_at_its_end() -> None:
    """The live row is the record the model emits when the day ends (same function, same state):
    what the dashboard shows at 23:59 is what the audit prints for the day (R11.5.2)."""
    h = host_at(r11_8_events(), T("2026-11-02 23:00"))
    live = aftersale_view(h.model, "S9", h.watermark)["day"]
    h.advance(T("2026-11-03 00:01") + LATENESS)
    emitted = {r["request_type"]: r for k, r in h.out if k == "period" and r["period"] == "day"
               and r["start"] == "2026-11-02"}
    assert set(emitted) == {"all", "cancel", "return_refund"}
    for row, rec in emitted.items():
        assert {k: v for k, v in live[row].items() if k != "status"} == {k: v for k, v in rec.items() if k != "status"}
        assert rec["status"] == "final"


def month_of_30(in_time: int, pending: int = 0) -> list:
    """R11.8: S9 has 30 return_refund requests awaiting the seller in November 2026, each due 48 h
    after it; ``in_time`` are reviewed by the seller at their due instant (in time, R11.6.2), the
    last ``pending`` are not reviewed at all, the others by the platform 1 s after the due time."""
    events = [assign()]
    for i in range(30):
        events.append(req(f"q{i}", f"2026-11-02 10:{i:02d}", "return_refund", "damaged", "electronics", "30.00"))
        if i < in_time:
            events.append(rev(f"q{i}", f"2026-11-04 10:{i:02d}", "seller"))
        elif i < 30 - pending:
            events.append(rev(f"q{i}", f"2026-11-04 10:{i:02d}:01", "platform"))
    return events


@pytest.mark.parametrize("in_time,rate,outcome,risk", [
    (27, 0.9, "ok", RISK_OK),  # R11.8: 27 of 30 is exactly 0.9, not under it (exact fractions)
    (26, 26 / 30, "auto_approval_tool_risk", RISK_UNDER),  # R11.8: 0.8667
])
def test_r11_8_review_timeliness_27_and_26_of_30(in_time: int, rate: float, outcome: str, risk: int) -> None:
    """R11.6.3 / R11.8: with every request decided, the projection is the month record itself:
    27 reviewed in time of 30 is ``ok``, 26 is ``auto_approval_tool_risk``, and with nothing left
    pending 26 cannot come back (risk 2, one review short)."""
    body = view_at(month_of_30(in_time), "2026-11-05 00:00")
    m = body["month"]["return_refund"]
    assert (m["awaiting_seller"], m["reviewed_in_time"], m["pending"], m["review_rate"], m["outcome"]) == (
        30, in_time, 0, rate, outcome)
    p = body["review_timeliness"]["return_refund"]
    assert (p["awaiting_seller"], p["reviewed_in_time"], p["missed"], p["pending"], p["rate_now"]) == (
        30, in_time, 30 - in_time, 0, rate)
    assert (p["projected_outcome"], p["risk"], p["threshold"]) == (outcome, risk, 0.9)
    assert p["reviews_needed"] == 27 - in_time
    c = body["review_timeliness"]["cancellation"]  # assessed separately (R11.8): no cancellation
    assert (c["awaiting_seller"], c["projected_outcome"], c["risk"]) == (0, "not_assessed", RISK_OK)


def test_r11_6_2_the_miss_is_decided_at_the_due_time_pending_until_then() -> None:
    """R11.8 q1: requested Mon 10:00, due Wed 10:00:00. Just before the due time it is pending
    (not a miss, so nothing is decided and there is no risk); at the due time, unreviewed, it is
    missed: the month's one decided request was not reviewed in time (risk 2, best case 0)."""
    q1 = [assign(), req("q1", "2026-11-02 10:00", "return_refund", "damaged", "electronics", "30.00")]
    before = view_at(q1, "2026-11-04 09:59")["review_timeliness"]["return_refund"]
    assert (before["pending"], before["missed"], before["projected_outcome"], before["risk"]) == (
        1, 0, "not_assessed", RISK_OK)
    assert (before["best_case"], before["worst_case"], before["reviews_needed"], before["reachable"]) == (
        1.0, 0.0, 1, True)
    at_due = view_at(q1, "2026-11-04 10:00:00.000001")["review_timeliness"]["return_refund"]
    assert (at_due["pending"], at_due["missed"], at_due["rate_now"], at_due["risk"]) == (0, 1, 0.0, RISK_UNDER)
    seller = view_at([*q1, rev("q1", "2026-11-04 10:00", "seller")], "2026-11-04 10:00:00.000001")
    assert seller["review_timeliness"]["return_refund"]["reviewed_in_time"] == 1  # at the due time: in time


def test_heading_under_while_the_pending_requests_can_still_save_the_month() -> None:
    """Risk 1 (module docstring): 26 in time, 3 missed and 1 pending of 30. The decided ones are
    under 90 % (26/29) but reviewing the pending one in time gives 27/30 = 0.9, not under: one
    review needed, reachable. Risk 0 when the rest are pending; all awaiting but none decided is
    not assessed."""
    p = project_review("return_refund", "2026-11-01", 30, 26, 1, THRESHOLD)
    assert (p.missed, p.decided, p.rate_now, p.best_case, p.worst_case) == (3, 29, 26 / 29, 0.9, 26 / 30)
    assert (p.projected_outcome, p.risk, p.reviews_needed, p.reachable) == (
        "auto_approval_tool_risk", RISK_HEADING_UNDER, 1, True)
    assert project_review("g", "m", 30, 26, 4, THRESHOLD).risk == RISK_OK  # 26 of 26 decided in time
    assert project_review("g", "m", 5, 0, 5, THRESHOLD).projected_outcome == "not_assessed"
    assert project_review("g", "m", 0, 0, 0, THRESHOLD).risk == RISK_OK
    with pytest.raises(ValueError, match="inconsistent month counters"):
        project_review("g", "m", 3, 2, 2, THRESHOLD)


@given(st.integers(0, 60), st.integers(0, 60), st.integers(0, 60))
def test_risk_is_the_exact_fraction_reading(in_time: int, missed: int, pending: int) -> None:
    """For any counts: risk 0 exactly when nothing is decided or in time / decided >= 9/10; risk 2
    exactly when even every pending request reviewed in time stays under 9/10; best >= now >=
    worst whenever defined (exact fractions, as R11.6.3 compares)."""
    awaiting = in_time + missed + pending
    p = project_review("g", "m", awaiting, in_time, pending, THRESHOLD)
    decided = in_time + missed
    under = decided > 0 and Fraction(in_time, decided) < THRESHOLD
    assert (p.risk > 0) == under
    assert (p.risk == RISK_UNDER) == (under and Fraction(in_time + pending, awaiting) < THRESHOLD)
    assert p.reachable == (Fraction(in_time + pending, awaiting) >= THRESHOLD if awaiting else True)
    if decided:
        assert p.best_case >= p.rate_now >= p.worst_case


def test_the_view_is_json_and_a_scrape_changes_nothing() -> None:
    """R6.1: reading the view creates no period and changes no output; it is plain JSON with the
    policy named (R7)."""
    events = r11_8_events()
    quiet, read = host_at(events, T("2026-11-04 12:30")), host_at(events, T("2026-11-04 12:30"))
    body = aftersale_view(read.model, "S9", read.watermark)
    assert orjson.loads(orjson.dumps(body)) == body
    assert (body["policy_id"], body["policy_version"]) == ("tiktok_aftersale", "2026-01")
    aftersale_view(read.model, "S9", T("2026-12-20 00:00"))  # a month nothing was counted in
    for h in (quiet, read):
        h.advance(T("2026-12-31 00:00"))
    assert quiet.out == read.out
    assert set(read.model.periods) == set(quiet.model.periods)
