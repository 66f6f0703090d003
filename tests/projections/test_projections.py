"""RULES R8 live projections (projections/), with R3, R5.4-R5.5 and R6.2 where they meet them."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatsla.core.policy import load_policy
from chatsla.core.timefmt import DAY, HOUR, MINUTE
from chatsla.projections import (OpenSession, RollingRate, ShopView, WeekProjection, at_risk, fleet_summary, longest_wait,
                         project_week, select_shops)

POLICY = load_policy("tiktok_shop@2023-11")
WM = 1_793_577_600_000_000  # 2026-11-02T00:00:00Z, any instant works
WEEK = "2026-11-02"


def proj(sessions: int, replied: int, pending: int, buyer_messages: int = 50,
         recent: float | Fraction | None = None) -> WeekProjection:
    return project_week(WEEK, sessions, replied, pending, buyer_messages, POLICY, recent)


# --- R8 bullet 1: rolling 7-day rate ---------------------------------------------------------

def test_r8_rolling_window_is_exactly_7x24h_open_at_the_start_closed_at_the_watermark() -> None:
    r = RollingRate()
    r.observe("a#1", WM - 7 * DAY, True)  # exactly 7 days before: outside (watermark - 7d, watermark]
    r.observe("b#1", WM - 7 * DAY + 1, True)  # 1 µs inside
    r.observe("c#1", WM, False)  # at the watermark: inside
    r.observe("d#1", WM + 1, True)  # after the watermark (lateness, R6.2): not yet
    assert (r.replied(WM), r.decided(WM), r.rate(WM)) == (1, 2, 0.5)
    assert len(r) == 3  # a#1 can never re-enter a window: pruned
    assert r.counts(WM + 1) == (1, 2)  # b#1 now exactly 7 days old (out), d#1 in
    assert len(r) == 2


def test_r8_r3_rolling_rate_counts_decided_sessions_only_and_is_none_without_any() -> None:
    r = RollingRate()
    assert r.rate(WM) is None
    r.observe("a#1", WM - HOUR, None)  # pending (R3): not in the rate
    assert r.rate(WM) is None and len(r) == 0
    for i in range(9):
        r.observe(f"r{i}#1", WM - i * HOUR, True)
    r.observe("m#1", WM - DAY, False)
    assert r.rate(WM) == 0.9 and r.decided(WM) == 10


def test_r8_r6_4_rolling_reobservation_replaces_the_earlier_one() -> None:
    r = RollingRate()
    r.observe("c#1", WM - HOUR, False)
    r.observe("c#1", WM - HOUR, False)  # the same record twice: counted once
    assert r.counts(WM) == (0, 1)
    r.observe("c#1", WM - HOUR, True)  # a late in-time reply turns the miss around (R6.4)
    assert r.counts(WM) == (1, 1)
    r.observe("c#1", WM - HOUR, None)  # None removes it
    assert r.counts(WM) == (0, 0) and len(r) == 0
    r.observe("x#1", WM - HOUR, None)  # removing what was never there changes nothing
    assert r.counts(WM) == (0, 0)


def test_r8_rolling_ignores_sessions_already_out_of_every_future_window() -> None:
    r = RollingRate()
    r.rate(WM)
    r.observe("old#1", WM - 8 * DAY, False)  # a late decision of a session 8 days old
    assert r.counts(WM) == (0, 0) and len(r) == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(-9 * DAY, DAY), st.sampled_from([True, False, None]),
                          st.integers(0, 2 * DAY)), max_size=40))
def test_r8_rolling_rate_matches_a_brute_force_count(steps: list[tuple[int, int, bool | None, int]]) -> None:
    """Property (R8): after any observations under a non-decreasing watermark (R6.2), the counts
    equal a direct count of the latest observation per session inside the window."""
    r = RollingRate()
    latest: dict[str, tuple[int, bool | None]] = {}
    opened_of: dict[str, int] = {}
    wm = WM
    for key_no, offset, replied, advance in steps:
        key = f"c{key_no}#1"
        opened = opened_of.setdefault(key, WM + offset)  # a session's opened_at never changes
        wm += advance
        r.observe(key, opened, replied)
        latest[key] = (opened, replied)
        inside = [rep for o, rep in latest.values() if rep is not None and wm - 7 * DAY < o <= wm]
        assert r.counts(wm) == (sum(inside), len(inside))


# --- R8 bullet 2: week to date ---------------------------------------------------------------

def test_r8_week_counts_rate_now_best_and_worst_case() -> None:
    w = proj(sessions=20, replied=15, pending=3)
    assert (w.decided, w.replied, w.pending) == (17, 15, 3)
    assert w.rate_now == 15 / 17
    assert w.best_case == 0.9  # (15 + 3) / 20: every pending one answered in time
    assert w.worst_case == 0.75  # 15 / 20: none
    assert w.week_start == WEEK and w.buyer_messages == 50


def test_r8_projection_uses_the_rolling_rate_for_pending_sessions() -> None:
    w = proj(sessions=20, replied=15, pending=3, recent=0.5)
    assert w.projection_basis == "rolling_7d"
    assert w.projected_rate == 0.825  # (15 + 3 * 0.5) / 20
    assert (w.projected_outcome, w.penalty_risk) == ("violation", 2)


def test_r8_projection_falls_back_to_this_weeks_rate_without_a_rolling_rate() -> None:
    w = proj(sessions=20, replied=15, pending=3)
    assert w.projection_basis == "week_to_date"
    assert w.projected_rate == pytest.approx(15 / 17)  # (15 + 3 * 15/17) / 20 = 15/17 ≈ 88.2 %
    assert (w.projected_outcome, w.penalty_risk) == ("warning", 1)


def test_r8_projection_without_any_basis_is_not_assessed() -> None:
    w = proj(sessions=3, replied=0, pending=3)  # a shop's very first sessions, none decided
    assert (w.projection_basis, w.projected_rate, w.projected_outcome, w.penalty_risk) == ("none", None, "not_assessed", 0)
    assert (w.rate_now, w.best_case, w.worst_case) == (None, 1.0, 0.0)


def test_r8_r5_3_week_without_sessions_has_no_rates() -> None:
    w = proj(sessions=0, replied=0, pending=0, recent=0.2)
    assert (w.rate_now, w.best_case, w.worst_case, w.projected_rate) == (None, None, None, None)
    assert (w.projected_outcome, w.replies_needed_for_90, w.reachable) == ("not_assessed", 0, True)


@pytest.mark.parametrize(("sessions", "replied", "outcome", "risk"), [
    (10, 9, "ok", 0),  # exactly 90 %: not below 90 % (R5.5)
    (20, 17, "warning", 1),  # exactly 85 %: below 90 %, not below 85 %
    (10000, 8999, "warning", 1),  # 89.99 %
    (100, 84, "violation", 2),
])
def test_r8_r5_5_projected_outcome_of_a_complete_week_is_exact(sessions: int, replied: int, outcome: str,
                                                               risk: int) -> None:
    w = proj(sessions, replied, pending=0, recent=0.0)  # nothing pending: the rolling rate is irrelevant
    assert w.projection_basis == "complete" and w.projected_rate == replied / sessions
    assert (w.projected_outcome, w.penalty_risk) == (outcome, risk)


@pytest.mark.parametrize(("recent", "outcome"), [
    (0.9, "ok"), (Fraction(9, 10), "ok"), (27 / 30, "ok"),  # exactly 90 % however it was computed
    (0.85, "warning"), (17 / 20, "warning"), (Fraction(17, 20), "warning"),  # 0.85 is 0.8499999... as a float
    (0.8499, "violation"),
])
def test_r8_r5_5_projected_outcome_at_90_and_85_percent_exactly_with_pending_sessions(recent: float | Fraction,
                                                                                    outcome: str) -> None:
    w = proj(sessions=10, replied=0, pending=10, recent=recent)  # projected = recent exactly
    assert w.projected_outcome == outcome


def test_r8_r5_5_projection_landing_on_85_percent_exactly_is_a_warning() -> None:
    w = proj(sessions=20, replied=16, pending=2, recent=0.5)  # (16 + 2 * 0.5) / 20 = 17/20
    assert (w.projected_rate, w.projected_outcome) == (0.85, "warning")


def test_r8_r5_4_fewer_than_5_buyer_messages_is_not_assessed() -> None:
    w = proj(sessions=4, replied=0, pending=0, buyer_messages=4)
    assert (w.projected_rate, w.projected_outcome, w.penalty_risk) == (0.0, "not_assessed", 0)
    assert proj(sessions=4, replied=0, pending=0, buyer_messages=5).projected_outcome == "violation"


def test_r8_replies_needed_for_90_when_reachable() -> None:
    # 17 decided and all replied, 3 pending, 20 sessions: 90 % of 20 = 18 -> 1 more in-time reply
    w = proj(sessions=20, replied=17, pending=3)
    assert (w.replies_needed_for_90, w.reachable) == (1, True)
    # 15 of 17 decided replied, 3 pending: 18 needed -> all 3 pending, best case exactly 90 %
    w = proj(sessions=20, replied=15, pending=3)
    assert (w.replies_needed_for_90, w.reachable, w.best_case) == (3, True, 0.9)
    # already there: 9 of 10, nothing more needed
    assert proj(sessions=10, replied=9, pending=1).replies_needed_for_90 == 0


def test_r8_replies_needed_for_90_when_unreachable() -> None:
    # 17 of 20 decided replied, 3 pending: 23 sessions, 90 % of 23 = 20.7 -> 21 replies, 4 more > 3 pending
    w = proj(sessions=23, replied=17, pending=3)
    assert (w.replies_needed_for_90, w.reachable) == (4, False)
    assert w.best_case == 20 / 23 < 0.9
    # 14 replied, 3 pending of 20: 4 needed, best case 85 %
    w = proj(sessions=20, replied=14, pending=3)
    assert (w.replies_needed_for_90, w.reachable, w.best_case) == (4, False, 0.85)


def test_r8_r7_replies_needed_follows_the_policys_warning_threshold() -> None:
    lenient = dataclasses.replace(POLICY, warning_below=Fraction(3, 4), violation_below=Fraction(1, 2))
    w = project_week(WEEK, 20, 10, 5, 50, lenient, None)  # 75 % of 20 = 15 -> 5 more
    assert (w.replies_needed_for_90, w.reachable) == (5, True)


def test_r8_week_projection_is_plain_json() -> None:
    w = proj(sessions=20, replied=15, pending=3, recent=0.5)
    data = orjson.loads(orjson.dumps({f.name: getattr(w, f.name) for f in dataclasses.fields(w)}))
    assert data["projected_outcome"] == "violation" and data["replies_needed_for_90"] == 3


def test_r8_inconsistent_week_counters_are_rejected() -> None:
    with pytest.raises(ValueError, match="inconsistent"):
        proj(sessions=3, replied=2, pending=2)
    with pytest.raises(ValueError, match="between 0 and 1"):
        proj(sessions=3, replied=1, pending=1, recent=1.5)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 200), st.integers(0, 200), st.integers(0, 200), st.integers(0, 10),
       st.one_of(st.none(), st.floats(0, 1), st.fractions(0, 1)))
def test_r8_property_bounds_and_replies_needed(replied: int, missed: int, pending: int, messages: int,
                                               recent: float | Fraction | None) -> None:
    """Property (R8, R5.5): worst <= rate now, projection <= best; answering exactly
    ``replies_needed_for_90`` pending sessions reaches the warning threshold, one fewer does not."""
    sessions = replied + missed + pending
    w = proj(sessions, replied, pending, buyer_messages=messages, recent=recent)
    if sessions:
        assert w.worst_case <= w.best_case
        for value in (w.rate_now, w.projected_rate):
            if value is not None:
                assert w.worst_case - 1e-12 <= value <= w.best_case + 1e-12
        k = w.replies_needed_for_90
        assert Fraction(replied + k, sessions) >= POLICY.warning_below
        assert k == 0 or Fraction(replied + k - 1, sessions) < POLICY.warning_below
        assert w.reachable == (k <= pending)
    if messages < POLICY.min_buyer_messages or w.projected_rate is None:
        assert (w.projected_outcome, w.penalty_risk) == ("not_assessed", 0)
    assert w.penalty_risk == {"ok": 0, "not_assessed": 0, "warning": 1, "violation": 2}[w.projected_outcome]


# --- R8 bullets 3 and 4: at-risk sessions, buyer waiting time --------------------------------

def pending_due_in(name: str, left: int, decided: bool = False, excluded: bool = False) -> OpenSession:
    """A session awaiting the seller whose 24 h deadline (R3) is ``left`` µs after the watermark."""
    opened = WM + left - 24 * HOUR
    return OpenSession(name, opened, opened, decided, excluded)


def test_r8_at_risk_means_strictly_less_than_2h_left() -> None:
    sessions = [
        pending_due_in("exactly-2h#1", 2 * HOUR),  # not yet at risk
        pending_due_in("just-under#1", 2 * HOUR - 1),
        pending_due_in("one-hour#1", HOUR),
        pending_due_in("due-now#1", 0),  # a reply at the deadline is in time (R2.5, R3): at risk
        pending_due_in("overdue#1", -1),  # too late to act on: not at risk
        pending_due_in("decided#1", HOUR, decided=True),
        pending_due_in("vacation#1", HOUR, excluded=True),  # R4: in no rate
        pending_due_in("plenty#1", 20 * HOUR),
    ]
    assert [s.session_id for s in at_risk(sessions, WM, POLICY.reply_window)] == \
        ["due-now#1", "one-hour#1", "just-under#1"]  # by deadline


def test_r8_at_risk_threshold_is_configurable() -> None:
    sessions = [pending_due_in("a#1", 29 * MINUTE), pending_due_in("b#1", 30 * MINUTE)]
    assert [s.session_id for s in at_risk(sessions, WM, POLICY.reply_window, threshold=30 * MINUTE)] == ["a#1"]
    assert len(at_risk(sessions, WM, POLICY.reply_window, threshold=3 * HOUR)) == 2


def test_r8_r2_3_longest_wait_among_sessions_awaiting_the_seller() -> None:
    sessions = [
        OpenSession("a#1", WM - 5 * HOUR, WM - 3 * HOUR, False, False),
        OpenSession("b#1", WM - 30 * HOUR, WM - 30 * HOUR, True, False),  # missed, buyer still waiting
        OpenSession("c#1", WM - 40 * HOUR, None, True, False),  # awaiting the buyer: no wait
    ]
    assert longest_wait(sessions, WM) == 30 * HOUR
    assert longest_wait(sessions[2:], WM) == 0
    assert longest_wait([], WM) == 0
    assert longest_wait([OpenSession("d#1", WM + MINUTE, WM + MINUTE, False, False)], WM) == 0  # ahead of wm


# --- fleet aggregates and per-shop selection (R8) ----------------------------------------------

def view(shop: str, rate: float | None, week: WeekProjection | None = None, risky: int = 0) -> ShopView:
    return ShopView(shop, rate, week, risky, 0)


def test_r8_fleet_histogram_is_cumulative_with_inclusive_bounds() -> None:
    views = [view(f"s{i}", r) for i, r in enumerate([0.3, 0.5, 0.85, 0.9, 0.95, 1.0, None])]
    s = fleet_summary(views)
    assert s.rate_buckets == ((0.5, 2), (0.7, 2), (0.8, 2), (0.85, 3), (0.9, 4), (0.95, 5), (1.0, 6), (math.inf, 6))
    assert (s.rate_count, s.rate_sum, s.shops) == (6, 4.5, 7)


def test_r8_r5_5_fleet_counts_shops_by_projected_outcome_and_adds_at_risk_sessions() -> None:
    views = [
        view("ok", 1.0, proj(10, 9, 0), risky=1),
        view("warn", 0.85, proj(20, 17, 0), risky=2),
        view("bad", 0.5, proj(20, 10, 0)),
        view("quiet", None, proj(2, 0, 0, buyer_messages=2)),
        view("new", None, None),  # no week yet: not assessed
    ]
    s = fleet_summary(views)
    assert s.shops_by_outcome == {"ok": 1, "warning": 1, "violation": 1, "not_assessed": 2}
    assert s.at_risk_total == 3
    assert fleet_summary([]).shops_by_outcome == {"ok": 0, "warning": 0, "violation": 0, "not_assessed": 0}


def test_r8_select_shops_modes() -> None:
    views = [
        view("d", 0.95, proj(10, 10, 0)),
        view("c", 0.5, proj(20, 17, 0)),  # projected 85 %: warning
        view("b", 0.7, proj(10, 10, 0), risky=1),  # ok but has an at-risk session
        view("a", 0.8, None),  # ranked by its rolling rate
        view("e", None, None),  # nothing to rank
        view("f", 0.8, None),  # ties with "a": shop id decides
    ]

    def ids(selected: list[ShopView]) -> list[str]:
        return [v.shop_id for v in selected]

    assert ids(select_shops(views, "all")) == ["a", "b", "c", "d", "e", "f"]
    assert ids(select_shops(views, "at-risk")) == ["b", "c"]
    assert ids(select_shops(views, "worst:3")) == ["a", "f", "c"]  # 0.8, 0.8, 0.85 (projected beats rolling)
    assert ids(select_shops(views, "worst:100")) == ["a", "f", "c", "b", "d"]
    assert select_shops(views, "none") == []


@pytest.mark.parametrize("mode", ["", "ALL", "some", "worst", "worst:", "worst:0", "worst:-1", "worst:x", "worst:٣"])
def test_r8_select_shops_rejects_a_bad_mode_in_one_line(mode: str) -> None:
    with pytest.raises(ValueError) as e:
        select_shops([], mode)
    assert "\n" not in str(e.value) and repr(mode) in str(e.value)
