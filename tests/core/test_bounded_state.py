"""Bounded per-conversation state and eviction (issue #10 findings 1 and 3; RULES R1, R6.1).

Finding 1: a conversation's stored entry kept every event id of 8 days, so one chatty
conversation outgrew Kafka's 1 MB record limit and stopped the pipeline. Now at most
``max_remembered_ids`` ids are kept, long ids as digests, and a ``floor`` keeps replays of
forgotten ones out (``chatsla.core.sessions``).

Finding 3: state never shrank. Now a conversation that can no longer change any output is evicted
by its timer (``chatsla.core.engine``), at the same point of the log in every run (R6.1).
"""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from chatsla.audit import run_audit
from chatsla.core.engine import Engine, EngineConfig
from chatsla.core.policy import load_policy
from chatsla.core.sessions import N_FIELDS
from chatsla.core.timefmt import DAY, HOUR, MINUTE, SECOND, parse_time
from chatsla.schemas.decode import decode
from chatsla.core.events import ChatMessage, new_chat_message
from tests.builders import at, msg
from tests.core.test_properties import SETTINGS, outputs_only, streams
from tests.core.test_properties import engine_run as properties_engine_run

POLICY = load_policy()
T0 = parse_time(at())
LATENESS = 2 * MINUTE



def _tick(engine: Engine, t: int) -> None:
    """Move the clock to ``t`` as a live worker's ticks do, an hour at a time: a single tick more
    than ``max_future`` ahead of every event waits for an event to confirm it (time sanity)."""
    now = engine.max_seen if engine.max_seen is not None else t
    while now < t:
        now = min(now + 3_600_000_000, t)
        engine.advance(now)
    engine.advance(t)

def _chat(eid: str, conv: str, sender: str, t: int, shop: str = "s1") -> ChatMessage:
    return new_chat_message(eid, shop, conv, sender, t)


def _chatty(n: int, eid=lambda i: f"m-{i:06d}") -> tuple[Engine, list[ChatMessage]]:
    """One conversation with ``n`` messages, a buyer and the seller taking turns every 2 s."""
    engine = Engine(POLICY, track_dirty=True)
    events = [_chat(eid(i), "big", ("buyer", "seller")[i % 2], T0 + 2 * i * SECOND) for i in range(n)]
    for ev in events:
        engine.apply(ev)
    _tick(engine, events[-1].t + LATENESS + SECOND)  # all applied
    return engine, events


def _entry_bytes(engine: Engine, key: tuple[str, str] = ("s1", "big")) -> int:
    return len(orjson.dumps(engine.conversation_entry(engine.convs[key])))


def test_issue_10_finding_1_a_conversation_of_100k_messages_keeps_a_small_entry() -> None:
    """On main this entry held all 100,000 ids (about 3 MB, over Kafka's 1 MB record limit)."""
    engine, events = _chatty(100_000)
    c = engine.convs[("s1", "big")]
    assert len(c.seen_ids) <= EngineConfig().max_remembered_ids
    assert _entry_bytes(engine) < 64 * 1024
    assert c.floor is not None and c.floor < events[-1].t
    stats = engine.stats
    assert stats["valid"] == 100_000 and stats["duplicate"] == 0 and stats["dedupe_overflow"] == 0

    before = engine.take_records()
    engine.apply(events[-300])  # a retried recent event: remembered, a plain duplicate (R1)
    assert engine.stats["duplicate"] == 1 and engine.stats["dedupe_overflow"] == 0
    engine.apply(events[10])  # a replay of a long-forgotten one: at or before the floor
    assert engine.stats["duplicate"] == 2 and engine.stats["dedupe_overflow"] == 1
    assert engine.stats["valid"] == 100_000 and engine.take_records() == []
    assert before  # (the run did emit its sessions)


def test_issue_10_finding_1_unknown_events_at_or_before_the_floor_are_dropped_after_it_applied() -> None:
    """The documented limit: a late event at or before the floor cannot be told apart from a
    replay and is dropped (counted); a late event after the floor is new and applied (R6.4)."""
    engine, events = _chatty(5_000)
    c = engine.convs[("s1", "big")]
    floor = c.floor
    assert floor is not None
    engine.apply(_chat("new-old", "big", "seller", floor))
    assert engine.stats["dedupe_overflow"] == 1 and engine.stats["late"] == 0
    engine.apply(_chat("new-late", "big", "seller", floor + 1))
    assert engine.stats["dedupe_overflow"] == 1 and engine.stats["late"] == 1
    assert engine.stats["valid"] == 5_001


def test_issue_10_finding_1_long_ids_are_remembered_as_digests() -> None:
    """Ids are producer strings of any length: a long one is kept as a 64-bit digest, so the entry
    stays small, and a copy of it is still recognised."""
    engine, events = _chatty(3_000, eid=lambda i: f"{i:06d}-" + "x" * 500)
    assert _entry_bytes(engine) < 64 * 1024
    assert all(type(i) is int for i in engine.convs[("s1", "big")].seen_ids)
    engine.apply(events[-1])
    assert engine.stats["duplicate"] == 1 and engine.stats["dedupe_overflow"] == 0


def test_issue_10_finding_1_entries_stored_before_the_bound_still_load_and_dedupe() -> None:
    """An existing changelog's entry has no floor and holds long ids as they are: it loads, and a
    replayed copy of one of its events is still a duplicate."""
    long_id = "retry-" + "y" * 100
    engine = Engine(POLICY)
    engine.apply(_chat(long_id, "c1", "buyer", T0))
    engine.apply(_chat("e2", "c2", "buyer", T0 + MINUTE))
    _tick(engine, T0 + 10 * MINUTE)
    snap = orjson.loads(orjson.dumps(engine.snapshot()))
    old = []
    for entry in snap["conversations"]:
        entry = entry[: N_FIELDS + 1]  # no floor: the old form
        entry[N_FIELDS - 3] = [long_id if type(i) is int else i for i in entry[N_FIELDS - 3]]
        old.append(entry)
    assert long_id in old[0][N_FIELDS - 3]
    restored = Engine.from_parts(POLICY, EngineConfig(), snap, old, snap["shops"])
    restored.apply(_chat(long_id, "c1", "buyer", T0))
    assert restored.stats["duplicate"] == 1


def test_issue_10_finding_1_a_restored_chatty_conversation_behaves_identically() -> None:
    """The floor is stored with the conversation (R6.1): after a snapshot and restore, a replay
    of a forgotten event is still dropped, and the entry reads back equal."""
    engine, events = _chatty(3_000)
    snap = orjson.loads(orjson.dumps(engine.snapshot()))
    restored = Engine.restore(POLICY, EngineConfig(), snap)
    c = restored.convs[("s1", "big")]
    assert c.floor == engine.convs[("s1", "big")].floor
    assert restored.conversation_entry(c) == engine.conversation_entry(engine.convs[("s1", "big")])
    restored.apply(events[5])
    assert restored.stats["dedupe_overflow"] == 1


def _closed_session_engine() -> tuple[Engine, int]:
    """c1: a session on Monday 2026-11-02 (week 11-02 to 11-09, UTC), replied and closed by the
    buyer timeout at 16:30; nothing else. Returns the engine and the week's end."""
    engine = Engine(POLICY, track_dirty=True)
    engine.apply(decode(orjson.dumps(msg("c1", "buyer", at(h=10), eid="b1"))))
    engine.apply(decode(orjson.dumps(msg("c1", "seller", at(h=10.5), eid="r1"))))
    week_end = parse_time(at(d=7))
    _tick(engine, week_end + DAY)  # the week is assessed (final)
    assert engine.convs[("s1", "c1")].opened_at is None
    return engine, week_end


def test_issue_10_finding_3_evicted_exactly_when_its_week_is_forgotten_not_a_moment_earlier() -> None:
    retention = EngineConfig().week_retention
    engine, week_end = _closed_session_engine()
    _tick(engine, week_end + retention + LATENESS)  # watermark = the week's end + 35 days
    assert ("s1", "c1") in engine.convs and engine.stats["evicted"] == 0
    _tick(engine, week_end + retention + LATENESS + 2)  # the watermark passes it: evicted
    assert ("s1", "c1") not in engine.convs and engine.stats["evicted"] == 1
    assert [c.key for c in engine.take_evicted()] == [("s1", "c1")] and engine.take_evicted() == []
    assert "2026-11-02" not in engine.shops["s1"].weeks  # the idle shop forgot the week too


def test_issue_10_finding_3_a_late_event_into_a_retained_week_still_finds_its_conversation() -> None:
    """Just before eviction the week is retained: a late buyer message (R6.4) belongs to the same
    conversation and opens its session #2, and the week's assessment is re-emitted, late."""
    retention = EngineConfig().week_retention
    engine, week_end = _closed_session_engine()
    _tick(engine, week_end + retention + LATENESS)
    engine.take()
    engine.apply(decode(orjson.dumps(msg("c1", "buyer", at(d=3), eid="late"))))
    records = engine.take_records()
    sessions = [r for k, r in records if k == "session"]
    # opened, then decided (missed) and closed at once: its deadlines are behind the watermark
    assert {s["session_id"] for s in sessions} == {"c1#2"} and all(s["late"] for s in sessions)
    weeks = [r for k, r in records if k == "assessment"]
    assert weeks and weeks[-1]["sessions"] == 2 and weeks[-1]["late"]


def test_issue_10_finding_3_a_conversation_back_after_eviction_starts_at_session_1() -> None:
    """README, Readings of the rules: session numbers restart after eviction."""
    retention = EngineConfig().week_retention
    engine, week_end = _closed_session_engine()
    later = week_end + retention + 3 * DAY
    _tick(engine, later)  # weeks of silence pass (a live worker's ticks), then the buyer is back
    engine.apply(_chat("back", "c1", "buyer", later))
    _tick(engine, later + LATENESS + MINUTE)
    assert engine.stats["evicted"] == 1
    assert engine.convs[("s1", "c1")].session_id == "c1#1"


def test_issue_10_finding_3_outreach_only_conversation_evicted_after_the_dedupe_window() -> None:
    """No session, no week: evicted once its last event id is out of the dedupe window, so a
    retried copy until then is still recognised (R1)."""
    window = EngineConfig().dedupe_window
    engine = Engine(POLICY, track_dirty=True)
    engine.apply(_chat("o1", "c9", "seller", T0))
    _tick(engine, T0 + window + LATENESS)
    assert ("s1", "c9") in engine.convs
    engine.apply(_chat("o1", "c9", "seller", T0))
    assert engine.stats["duplicate"] == 1
    _tick(engine, T0 + window + LATENESS + 2)
    assert ("s1", "c9") not in engine.convs and engine.stats["evicted"] == 1


def test_issue_10_finding_3_an_open_session_is_never_evicted() -> None:
    engine = Engine(POLICY)
    engine.apply(_chat("b", "c1", "buyer", T0))
    engine.apply(_chat("a", "c1", "auto_reply", T0 + SECOND))
    engine.apply(_chat("b2", "c1", "buyer", T0 + 2 * MINUTE))  # awaiting the seller: 72 h clock
    _tick(engine, T0 + 71 * HOUR)
    assert engine.convs[("s1", "c1")].opened_at is not None
    _tick(engine, T0 + 200 * DAY)  # closed at 72 h, then evicted much later
    assert engine.stats["closed:seller_timeout"] == 1 and engine.stats["evicted"] == 1


def _steady_weeks(weeks: int, shops: int = 3, per_week: int = 60) -> list[ChatMessage]:
    """Steady traffic: every week new buyers write to each shop and get a reply."""
    out = []
    for w in range(weeks):
        for i in range(per_week):
            t = T0 + w * 7 * DAY + i * (7 * DAY // per_week)
            for s in range(shops):
                conv = f"w{w}-c{i}"
                out.append(_chat(f"{conv}-{s}-b", conv, "buyer", t, shop=f"s{s}"))
                out.append(_chat(f"{conv}-{s}-s", conv, "seller", t + 30 * MINUTE, shop=f"s{s}"))
    return out


def test_issue_10_finding_3_engine_memory_stays_flat_over_many_weeks() -> None:
    """Live conversations are what the engine holds: over 20 weeks of steady traffic (3,600
    conversations) it holds about 7 weeks' worth, the same at week 12 as at week 20."""
    engine = Engine(POLICY)
    sizes = []
    events = _steady_weeks(20)
    per_week = len(events) // 20
    for w in range(20):
        for ev in events[w * per_week:(w + 1) * per_week]:
            engine.apply(ev)
        sizes.append(len(engine.convs))
    assert sizes[11] == sizes[19] <= 7 * 180, sizes
    assert engine.stats["evicted"] == 20 * 180 - sizes[19]
    assert max(len(s.weeks) for s in engine.shops.values()) <= 7


def test_issue_10_finding_3_eviction_changes_no_audit_output_within_retention() -> None:
    """The audit runs the same core: a week's assessment and sessions are the same whether its
    conversations were later evicted or not (a run long enough to evict vs. one cut before)."""
    events = [orjson.dumps({"schema": "chat.message/v1", "event_id": e.event_id, "shop_id": e.shop_id,
                            "conversation_id": e.conversation_id, "sender": e.sender,
                            "sent_at": at(s=(e.t - T0) / SECOND)}) for e in _steady_weeks(12)]
    short = run_audit(events, POLICY, until=T0 + 14 * DAY)
    long = run_audit(events, POLICY, until=T0 + 100 * DAY)
    first = {(a["shop_id"], a["week_start"]): a for a in long.assessments}
    for a in short.assessments:
        if a["status"] == "final":
            assert first[(a["shop_id"], a["week_start"])] == a
    assert {s["session_id"] for s in long.sessions} >= {s["session_id"] for s in short.sessions}


# Short windows and a tiny id bound, so that generated logs (days to weeks long) evict and overflow.
SMALL = EngineConfig(allowed_lateness=120 * SECOND, dedupe_window=DAY, week_retention=2 * DAY,
                     max_remembered_ids=3)


def _latest(records: list) -> dict:
    """Latest record per output key: sessions by (shop, conversation, number, opened_at), weeks by
    (shop, week)."""
    return {(kind, r[:2] if kind == "assessment" else r[:4]): r for kind, r in records}


def _engine_run(events: list[dict], cuts: list[int], config: EngineConfig) -> tuple[list, dict]:
    """tests/core/test_properties.py's batched snapshot/restore run, ending the input 30 days after
    the last event so that evictions fall inside it."""
    return properties_engine_run(events, cuts, config, finish_after=30 * DAY)


@SETTINGS
@given(streams(), st.data())
def test_issue_10_r6_1_snapshot_restore_anywhere_gives_the_same_records_with_eviction(events: list[dict],
                                                                                       data: st.DataObject) -> None:
    """The latest record per key (what a consumer of the compacted output topics keeps) and the
    counters are those of an uninterrupted run. A restore may repeat an identical record: a week
    forgotten by its shop after a time-zone change is rebuilt from a conversation's share in the
    zone of the day, which can end after the retention horizon, so its (unchanged, final)
    assessment is emitted again before it is forgotten once more (the at-least-once contract,
    docs/pipeline.md, "Crash safety")."""
    cuts = data.draw(st.lists(st.integers(0, len(events)), max_size=6))
    got, want = _engine_run(events, cuts, SMALL), _engine_run(events, [], SMALL)
    assert _latest(got[0]) == _latest(want[0]) and got[1] == want[1]
    assert set(got[0]) == set(want[0])  # nothing but repeats


@SETTINGS
@given(streams(), st.data())
def test_issue_10_r1_duplicates_change_nothing_with_a_tiny_id_bound(events: list[dict], data: st.DataObject) -> None:
    """With 3 ids remembered per conversation, a copy of any earlier event is still dropped: a
    forgotten id is at or before the floor. (The windows are long here: no eviction.)"""
    config = EngineConfig(allowed_lateness=120 * SECOND, dedupe_window=400 * DAY, max_remembered_ids=3)
    noisy = list(events)
    for _ in range(data.draw(st.integers(1, 10))):
        i = data.draw(st.integers(0, len(events) - 1))
        pos = data.draw(st.integers(noisy.index(events[i]) + 1, len(noisy)))
        noisy.insert(pos, dict(events[i]))
    base = run_audit([orjson.dumps(e) for e in events], POLICY, config)
    dup = run_audit([orjson.dumps(e) for e in noisy], POLICY, config)
    assert outputs_only(dup) == outputs_only(base)
    # (base may itself drop events: more same-instant events than the bound forget that instant)
    assert dup.stats["duplicate"] == base.stats["duplicate"] + len(noisy) - len(events)
