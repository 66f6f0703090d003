"""RULES R10 through the im_waits model (chatsla/core/models/im_waits.py), driven by
tests/core/modelhost.py: every worked example of R10.7 (10-A .. 10-I) with its exact records,
nearest-rank percentiles (R10.5.3), bounded state and the issue #12 properties (reordering
within the lateness, duplicates, snapshot/restore)."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import orjson
import pytest

from chatsla.core.engine import EngineConfig
from chatsla.core.events import ChatMessage
from chatsla.core.models.im_waits import ImWaits, nearest_rank
from chatsla.core.policy import load_policy
from chatsla.core.timefmt import DAY, MINUTE, SECOND, from_datetime
from tests.core.modelhost import Host

POLICY = load_policy("aliexpress@seed004")
CONFIG = EngineConfig()
FORBIDDEN = {"outcome", "warning", "violation_points", "rate", "assessment", "status"}


def ut(s: str) -> int:
    """µs of a UTC wall time ``2026-11-02 10:00[:SS]`` (shop A1 is in UTC, R10.7)."""
    return from_datetime(datetime.fromisoformat(s).replace(tzinfo=timezone.utc))


MON, TUE, WED = "2026-11-02", "2026-11-03", "2026-11-04"
_n = [0]


def m(conv: str, at: str, sender: str = "buyer", kind: str = "message", eid: str | None = None) -> ChatMessage:
    _n[0] += 1
    return ChatMessage(eid or f"e{_n[0]}", "A1", conv, sender, ut(at), kind=kind, platform="aliexpress")


def run(events, until: str | None = None) -> Host:
    h = Host(ImWaits, POLICY, CONFIG).feed(sorted(events, key=lambda e: e.t))
    return h.finish(ut(until) if until else max(e.t for e in events) + 2 * DAY)


def last_wait(h: Host, wait_id: str) -> dict:
    return h.latest("wait", lambda r: r["wait_id"])[wait_id]


def period(h: Host, kind: str, start: str) -> dict:
    return h.latest("period", lambda r: (r["period"], r["start"]))[(kind, start)]


def test_10a_follow_ups_exact_record():
    """10-A: buyer 10:00, 10:05, 10:20, seller 10:30: wait c-1#1 answered, waited 600, from first 1800."""
    h = run([m("c-1", f"{MON} 10:00"), m("c-1", f"{MON} 10:05"), m("c-1", f"{MON} 10:20"),
             m("c-1", f"{MON} 10:30", "seller")])
    expected = {"wait_id": "c-1#1", "shop_id": "A1", "conversation_id": "c-1", "first_at": "2026-11-02T10:00:00Z",
                "last_at": "2026-11-02T10:20:00Z", "buyer_messages": 3, "auto_replied_at": None,
                "ended_at": "2026-11-02T10:30:00Z", "end_reason": "answered", "waited": 600, "waited_from_first": 1800,
                "day": "2026-11-02", "week_start": "2026-11-02", "late": False,
                "policy_id": "aliexpress", "policy_version": "seed004"}
    recs = h.records("wait")
    assert len(recs) == 2 and recs[0]["ended_at"] is None and recs[0]["day"] is None  # at opening, at end
    assert recs[-1] == expected and list(recs[-1]) == list(expected)


def test_10b_auto_reply_does_not_answer():
    """10-B: buyer 10:00, auto_reply 10:00:02, seller 11:00: waited 3600, auto_replied_at
    10:00:02, the period's auto-reply (R10.2.4, R10.4.2)."""
    h = run([m("c", f"{MON} 10:00"), m("c", f"{MON} 10:00:02", "auto_reply"), m("c", f"{MON} 11:00", "seller")])
    r = last_wait(h, "c#1")
    assert (r["waited"], r["auto_replied_at"], r["end_reason"]) == (3600, "2026-11-02T10:00:02Z", "answered")
    assert period(h, "day", MON)["period_auto_replies"] == 1


def test_10c_same_instant_buyer_first():
    """10-C: seller and buyer at 12:00:00 with no open wait: the buyer opens, the seller answers,
    waited 0; seller_messages_no_wait unchanged (R10.2.6), whatever the arrival order."""
    h = run([m("c", f"{MON} 12:00", "seller"), m("c", f"{MON} 12:00")])
    r = last_wait(h, "c#1")
    assert (r["waited"], r["end_reason"]) == (0, "answered")
    assert h.stats()["seller_messages_no_wait"] == 0


def test_10d_closed_unanswered():
    """10-D: buyer 13:00, seller close 15:00: closed, waited null, in closed_unanswered only."""
    h = run([m("c", f"{MON} 13:00"), m("c", f"{MON} 15:00", "seller", kind="close")])
    r = last_wait(h, "c#1")
    assert (r["end_reason"], r["waited"], r["waited_from_first"], r["ended_at"]) == (
        "closed", None, None, "2026-11-02T15:00:00Z")
    d = period(h, "day", MON)
    assert (d["closed_unanswered"], d["answered"], d["waited_p50"]) == (1, 0, None)


def test_10e_auto_reply_periods_and_live_waiting():
    """10-E: the 24 h periods (eligible Mon 10:00 and Tue 10:00; period, extra and unprompted
    auto-replies); the only wait stays open with 4 buyer messages and auto_replied true; at Wed
    11:00 waiting 90000 and waiting_from_first 176400."""
    evs = [m("c", f"{MON} 10:00"), m("c", f"{MON} 10:00:03", "auto_reply"), m("c", f"{MON} 18:00"),
           m("c", f"{MON} 18:00:02", "auto_reply"), m("c", f"{TUE} 09:59:59"), m("c", f"{TUE} 10:00"),
           m("c", f"{WED} 10:30", "auto_reply")]
    h = Host(ImWaits, POLICY, CONFIG).feed(evs).advance(ut(f"{WED} 11:00") + 2 * MINUTE)
    mon, tue = period(h, "day", MON), period(h, "day", TUE)
    assert (mon["eligible_messages"], mon["period_auto_replies"], mon["extra_auto_replies"]) == (1, 1, 1)
    assert (tue["eligible_messages"], tue["period_auto_replies"], tue["unprompted_auto_replies"]) == (1, 0, 0)
    assert h.model.periods[("A1", "day", WED)].unprompted_ar == 1
    v = h.model.view("A1", ut(f"{WED} 11:00"))
    assert v["unreplied"] == 1
    row = v["conversations"][0]
    assert (row["wait_id"], row["buyer_messages"], row["auto_replied"], row["waiting"], row["waiting_from_first"]) == (
        "c#1", 4, True, 90000, 176400)


def test_10f_unreplied_view_order():
    """10-F at watermark Mon 16:00: c-8 (7200), c-9 (3600), c-7 (1800 / 25200); longest waiting
    7200, longest waiting_from_first 25200 (R10.3.2-3)."""
    evs = [m("c-7", f"{MON} 09:00"), m("c-8", f"{MON} 14:00"), m("c-9", f"{MON} 15:00"), m("c-7", f"{MON} 15:30")]
    h = Host(ImWaits, POLICY, CONFIG).feed(evs).advance(ut(f"{MON} 16:00"))
    v = h.model.view("A1", ut(f"{MON} 16:00"))
    assert [(r["conversation_id"], r["first_at"][11:16], r["last_at"][11:16], r["waiting"], r["waiting_from_first"])
            for r in v["conversations"]] == [("c-8", "14:00", "14:00", 7200, 7200), ("c-9", "15:00", "15:00", 3600, 3600),
                                             ("c-7", "09:00", "15:30", 1800, 25200)]
    assert (v["unreplied"], v["longest_waiting"], v["longest_waiting_from_first"]) == (3, 7200, 25200)


def _10g_events():
    c1 = [("08:00", "b"), ("08:01", "s"), ("09:00", "b"), ("09:02", "s"), ("10:00", "b"), ("10:02", "b"), ("10:05", "s"),
          ("11:00", "b"), ("11:10", "s"), ("12:00", "b"), ("12:30", "b"), ("13:30", "s")]
    evs = [m("c-1", f"{MON} {t}", "buyer" if who == "b" else "seller") for t, who in c1]
    evs += [m("c-6", f"{MON} 13:00"), m("c-6", f"{MON} 15:00", "seller", kind="close")]
    evs += [m("c-7", f"{MON} 22:00"), m("c-7", f"{MON} 23:30"), m("c-7", f"{TUE} 08:00", "seller")]
    return evs


DAY_10G = {"shop_id": "A1", "period": "day", "start": "2026-11-02", "answered": 5,
           "waited_p50": 180, "waited_p90": 3600, "waited_p99": 3600, "waited_max": 3600,
           "from_first_p50": 300, "from_first_p90": 5400, "from_first_p99": 5400, "from_first_max": 5400,
           "closed_unanswered": 1, "opened": 7, "open_at_end": 1,
           "oldest_waiting_at_end": 1800, "oldest_waiting_from_first_at_end": 7200,
           "eligible_messages": 3, "period_auto_replies": 0, "extra_auto_replies": 0, "unprompted_auto_replies": 0,
           "late": False, "policy_id": "aliexpress", "policy_version": "seed004"}


def test_10g_day_record_exact():
    """10-G: Monday's exact record, emitted once the watermark passes Tue 00:00 and not before;
    c-7#1 counts on Tuesday (answered 1, waited 30600, from first 36000)."""
    h = Host(ImWaits, POLICY, CONFIG).feed(sorted(_10g_events(), key=lambda e: e.t)[:-1])
    h.advance(ut(f"{TUE} 00:00") + 2 * MINUTE - 1)
    assert h.records("period") == []
    h.advance(ut(f"{TUE} 00:00") + 2 * MINUTE)
    days = h.records("period")
    assert days == [DAY_10G] and list(days[0]) == list(DAY_10G)
    h.feed([_10g_events()[-1]]).finish(ut(f"{WED} 00:00") + 1)
    tue = period(h, "day", TUE)
    assert (tue["answered"], tue["waited_max"], tue["from_first_max"]) == (1, 30600, 36000)
    r = last_wait(h, "c-7#1")
    assert (r["waited"], r["waited_from_first"], r["day"]) == (30600, 36000, TUE)


def test_10h_nearest_rank_percentiles():
    """10-H: 30 .. 7200 s: p50 = 300 (rank 5), p90 = 1200 (rank 9), p99 = 7200 (rank 10), on
    exact µs (R10.5.3)."""
    vals = sorted(x * SECOND for x in (30, 45, 90, 120, 300, 310, 400, 900, 1200, 7200))
    assert [nearest_rank(vals, p) for p in (50, 90, 99)] == [300 * SECOND, 1200 * SECOND, 7200 * SECOND]
    assert nearest_rank([], 50) is None
    assert nearest_rank([1, 2], 100) == 2 and nearest_rank([1, 2, 3], 1) == 1


def test_10h_through_the_model():
    """10-H as a day of ten answered waits in ten conversations."""
    evs = []
    for i, w in enumerate((30, 45, 90, 120, 300, 310, 400, 900, 1200, 7200)):
        t0 = ut(f"{MON} 08:00") + i * 10 * MINUTE
        evs += [ChatMessage(f"b{i}", "A1", f"c{i}", "buyer", t0, platform="aliexpress"),
                ChatMessage(f"s{i}", "A1", f"c{i}", "seller", t0 + w * SECOND, platform="aliexpress")]
    d = period(run(evs, until=f"{WED} 00:00"), "day", MON)
    assert (d["answered"], d["waited_p50"], d["waited_p90"], d["waited_p99"], d["waited_max"]) == (10, 300, 1200, 7200, 7200)


def test_10i_no_penalty():
    """10-I: 40 buyer messages in a week and no reply: wait records, the view and period records,
    and no record anywhere with an outcome, warning, violation points, rate or status."""
    evs = [m(f"c{i % 8}", f"2026-11-0{2 + i % 5} {8 + i // 5:02d}:00") for i in range(40)]
    h = run(evs, until="2026-11-10 00:01")
    kinds = {k for k, _ in h.out}
    assert kinds == {"wait", "period"}
    assert all(not (FORBIDDEN & set(r)) for _, r in h.out)
    assert h.model.view("A1", ut("2026-11-10 00:00"))["unreplied"] == 8
    assert period(h, "week", MON)["open_at_end"] == 8


def test_late_reply_reemits_the_period_late():
    """R10.5.4: a late event re-emits an emitted period with late: true."""
    h = Host(ImWaits, POLICY, CONFIG).feed([m("c", f"{MON} 10:00"), m("x", f"{TUE} 12:00")])
    h.feed([m("c", f"{MON} 23:00", "seller")])  # behind the watermark: late
    d = period(h, "day", MON)
    assert (d["answered"], d["late"]) == (1, True)
    assert last_wait(h, "c#1")["late"] is True


def test_state_per_open_wait_under_1kb():
    h = Host(ImWaits, POLICY, CONFIG).feed([ChatMessage("e" * 64, "s" * 64, "c" * 64, "buyer", ut(f"{MON} 10:00"),
                                                        platform="aliexpress")]).advance(ut(f"{MON} 11:00"))
    assert len(orjson.dumps(h.model.snapshot()["wait_convs"][0])) < 1024


def test_conversations_are_forgotten_when_idle():
    h = run([m("c", f"{MON} 10:00"), m("c", f"{MON} 10:30", "seller")], until="2026-12-31 00:00")
    assert h.model.convs == {} and h.model.periods == {}


def _final(h: Host) -> tuple:
    return (sorted(orjson.dumps(r) for r in h.latest("wait", lambda r: r["wait_id"]).values()),
            sorted(orjson.dumps(r) for r in h.latest("period", lambda r: (r["period"], r["start"])).values()))


@pytest.mark.parametrize("seed", range(8))
def test_reordering_within_lateness_duplicates_and_snapshot_restore(seed):
    """R6.3 / issue #12: arrival order within the lateness, duplicates and a snapshot/restore
    mid-stream give the same final waits and periods as the sorted input."""
    rng = random.Random(seed)
    events = sorted(_10g_events() + [m("c-2", f"{MON} 10:00"), m("c-2", f"{MON} 10:00:01", "auto_reply"),
                                     m("c-2", f"{MON} 10:01", "auto_reply"), m("c-2", f"{MON} 10:01", "seller")],
                    key=lambda e: e.t)
    expected = _final(run(events, until=f"{WED} 00:00"))
    arrival = sorted(events + rng.sample(events, 5), key=lambda e: e.t + rng.randrange(0, 2 * MINUTE))
    cut = rng.randrange(1, len(arrival))
    h = Host(ImWaits, POLICY, CONFIG).feed(arrival[:cut])
    h2 = Host.restore(ImWaits, POLICY, CONFIG, h.snapshot())
    h2.out = list(h.out)
    h2.feed(arrival[cut:]).finish(ut(f"{WED} 00:00"))
    assert _final(h2) == expected


def _by_key(h: Host) -> dict:
    """The audit's reading of the wait records (``chatsla.audit.Collector``): the last one per
    (shop, conversation, first_at), as a compacted topic keeps them."""
    return h.latest("wait", lambda r: (r["shop_id"], r["conversation_id"], r["first_at"]))


def _late_cases() -> list[list]:
    """Waits whose records move late (R6.4, R10.5.1), each after an in-order opening: a late
    buyer message before first_at (a new key), after it (the same key), a late auto-reply, a
    late reply, a wait still open at the end, one opened late; "x" only moves the watermark."""
    return [
        [m("a", f"{MON} 10:00"), m("x", f"{MON} 11:00"), m("a", f"{MON} 09:50"), m("a", f"{MON} 12:00", "seller")],
        [m("a", f"{MON} 10:00"), m("x", f"{MON} 11:00"), m("a", f"{MON} 09:50")],  # open at the end
        [m("a", f"{MON} 10:00"), m("a", f"{MON} 10:01"), m("x", f"{MON} 11:00"), m("a", f"{MON} 10:05")],
        [m("a", f"{MON} 10:00"), m("a", f"{MON} 10:20", "auto_reply"), m("x", f"{MON} 11:00"),
         m("a", f"{MON} 10:10", "auto_reply")],
        [m("a", f"{MON} 10:00"), m("x", f"{MON} 11:00"), m("a", f"{MON} 10:30", "seller")],
        [m("a", f"{MON} 10:00"), m("a", f"{MON} 10:05"), m("a", f"{MON} 10:06", "auto_reply")],  # open, in order
        [m("x", f"{MON} 11:00"), m("a", f"{MON} 10:00"), m("a", f"{MON} 11:30", "seller")],  # opened late
    ]


@pytest.mark.parametrize("case", range(7))
@pytest.mark.parametrize("restore", [False, True])
def test_audit_defers_opening_records_and_equals_live(case, restore):
    """With ``session_updates=False`` (the audit) an in-order opening's record is not formatted
    at once (ImWaits._emit_open); the audit's last record per (shop, conversation, first_at)
    still equals the live one's, whatever moves late afterwards (R10.5.1, R6.4), also across a
    snapshot/restore between the events (the owed record is read from state)."""
    events = _late_cases()[case]
    live = Host(ImWaits, POLICY, CONFIG).feed(events).finish(ut(f"{TUE} 00:00"))
    audit = Host(ImWaits, POLICY, CONFIG, session_updates=False)
    cut = len(events) - 1 if restore else len(events)
    audit.feed(events[:cut])
    if restore:
        out = audit.out
        audit = Host.restore(ImWaits, POLICY, CONFIG, audit.snapshot(), session_updates=False)
        audit.out = out
    audit.feed(events[cut:]).finish(ut(f"{TUE} 00:00"))
    assert _by_key(audit) == _by_key(live)
    assert _by_key(live)  # every case has waits


def test_audit_formats_an_in_order_wait_once():
    """The point of the deferral (BENCHMARKS.md): a wait opened and answered in order gets one
    record in the audit, its final one."""
    events = [m("a", f"{MON} 10:00"), m("a", f"{MON} 10:05"), m("a", f"{MON} 10:30", "seller")]
    audit = Host(ImWaits, POLICY, CONFIG, session_updates=False).feed(events).finish(ut(f"{TUE} 00:00"))
    assert [r["ended_at"] for r in audit.records("wait")] == ["2026-11-02T10:30:00Z"]
