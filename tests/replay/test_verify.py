"""``chatsla verify``'s comparison without Kafka (issue #11: ``compare`` had no unit test; issue #5).

:func:`chatsla.replay.compare` takes the replay's result and the live records (latest per key, as
``read_live_outputs`` gives them) and lists the differences, explaining them by late events
(R6.4) or by the lookback's session numbering. The replay's result here comes from the audit of
a small log, the live records from the same report, edited as a drifted live pipeline would have.
"""

from __future__ import annotations

import copy

import orjson

from chatsla.audit import run_audit
from chatsla.core.policy import load_policy
from chatsla.core.timefmt import parse_time
from chatsla.replay import LateEvent, Period, ReplayResult, compare
from tests.builders import at, msg

POLICY = load_policy()
TO = parse_time(at(d=9))


def replayed(late: list[LateEvent] | None = None, lookback: int | None = None) -> ReplayResult:
    """The replay of a week with two sessions in shop s1 (the second missed) and one in s2."""
    evs = [msg("c1", "buyer", at(h=1), eid="m1"), msg("c1", "seller", at(h=2), eid="m2"),
           msg("c2", "buyer", at(d=1), eid="m3"), msg("c9", "buyer", at(d=2), shop="s2", eid="m4")]
    report = run_audit([orjson.dumps(e) for e in evs], POLICY, until=TO)
    return ReplayResult(report, Period(parse_time(at()), TO, lookback), POLICY, [], {}, {}, late or [])


def live_of(result: ReplayResult) -> tuple[dict, dict]:
    """The live records a faithful pipeline wrote: the replay's own, keyed as read_live_outputs keys them."""
    sessions = {(s["shop_id"], s["session_id"]): copy.deepcopy(s) for s in result.report.sessions}
    weeks = {(a["shop_id"], a["week_start"]): copy.deepcopy(a) for a in result.report.assessments}
    return sessions, weeks


def test_a_faithful_live_pipeline_shows_no_difference() -> None:
    result = replayed()
    sessions, weeks = live_of(result)
    v = compare(result, sessions, weeks, live_records=7)
    assert v.differences == []
    assert (v.compared_sessions, v.compared_assessments, v.live_records) == (3, 2, 7)


def test_a_field_that_differs_is_named_and_a_missing_record_is_one_difference() -> None:
    result = replayed()
    sessions, weeks = live_of(result)
    sessions[("s1", "c2#1")]["replied_within_24h"] = True
    weeks[("s1", "2026-11-02")]["replied_24h"] = 2
    del sessions[("s2", "c9#1")]
    diffs = {(d.kind, d.shop_id, d.key, d.field): (d.live, d.replay, d.cause) for d in
             compare(result, sessions, weeks).differences}
    assert diffs == {
        ("session", "s1", "c2#1", "replied_within_24h"): (True, False, None),
        ("session", "s2", "c9#1", "(record)"): (None, "present", None),
        ("assessment", "s1", "2026-11-02", "replied_24h"): (2, 1, None),
    }


def test_a_difference_touched_by_a_late_event_is_explained_by_it() -> None:
    """R6.4: an event that arrived later than the allowed lateness explains the differences of its
    conversation's sessions and of its shop's week; other shops' differences stay unexplained."""
    late = [LateEvent("m3", "s1", "c2", parse_time(at(d=1)), "chat.messages/0", 3, "after_period")]
    result = replayed(late)
    sessions, weeks = live_of(result)
    sessions[("s1", "c2#1")]["replied_within_24h"] = True
    weeks[("s1", "2026-11-02")]["replied_24h"] = 2
    weeks[("s2", "2026-11-02")]["replied_24h"] = 1
    causes = {(d.shop_id, d.key, d.field): (d.late_events, d.cause) for d in compare(result, sessions, weeks).differences}
    assert causes == {
        ("s1", "c2#1", "replied_within_24h"): (("m3",), "late"),
        ("s1", "2026-11-02", "replied_24h"): (("m3",), "late"),
        ("s2", "2026-11-02", "replied_24h"): ((), None),
    }


def test_a_lower_session_number_in_the_replay_is_put_down_to_the_lookback() -> None:
    """The replay's history starts at the lookback window, so a conversation with older sessions
    is numbered from 1 again (module docs of chatsla.replay, known limit); with --lookback all
    (no lookback) the same difference is unexplained."""
    for lookback, cause in ((9 * 86_400_000_000, "lookback"), (None, None)):
        result = replayed(lookback=lookback)
        sessions, weeks = live_of(result)
        sessions[("s1", "c1#1")]["session_id"] = "c1#4"
        diffs = compare(result, sessions, weeks).differences
        assert [(d.field, d.live, d.replay, d.cause) for d in diffs] == [("session_id", "c1#4", "c1#1", cause)]


def test_live_records_outside_the_period_or_the_shops_are_not_compared() -> None:
    result = replayed()
    result.report.stats["shops"] = ["s1"]
    sessions, weeks = live_of(result)
    result.report.sessions = [s for s in result.report.sessions if s["shop_id"] == "s1"]
    result.report.assessments = [a for a in result.report.assessments if a["shop_id"] == "s1"]
    before = dict(sessions[("s1", "c1#1")], session_id="c1#0", opened_at=at(d=-1))
    sessions[("s1", "c1#0")] = before  # opened before the period
    # a week not yet ended at `to`: the replay cannot have its assessment
    weeks[("s1", "2026-11-09")] = dict(weeks[("s1", "2026-11-02")], week_start="2026-11-09")
    assert compare(result, sessions, weeks).differences == []
