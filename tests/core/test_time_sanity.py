"""Time sanity: no event time or tick far from the others can move the clock (issue #10, findings 4
and 5; the engine's module docstring and docs/pipeline.md describe the rule).

An event more than ``max_future`` ahead of everything seen is held until later records confirm
it (any record within ``max_future`` of it) or its own source carries on without it (three current
records more than ``max_future`` before it: rejected as ``future_time``). Honest input, whose
disorder stays within the allowed lateness, gives exactly the results it gave without the check.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from hypothesis import given
from hypothesis import strategies as st

from chatsla.audit import run_audit
from chatsla.core.engine import Engine, EngineConfig
from chatsla.core.policy import load_policy
from chatsla.core.timefmt import DAY, HOUR, MINUTE, parse_time
from chatsla.schemas.decode import decode
from tests.builders import at, audit, msg, session
from tests.core.test_properties import SETTINGS, outputs_only, streams

POLICY = load_policy()
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "week.jsonl"
UNTIL = parse_time("2026-11-17T00:10:00Z")
OFF = EngineConfig(max_future=None)


def _future(eid: str, when: str, conv: str = "c-future", shop: str = "shop-01") -> bytes:
    return orjson.dumps({"schema": "chat.message/v1", "event_id": eid, "shop_id": shop, "conversation_id": conv,
                         "sender": "buyer", "sent_at": when})


def test_finding_4_one_event_dated_2030_inside_the_sample_week_changes_nothing_but_a_counter() -> None:
    """Issue #10 finding 4: one chat event dated 2030 in the middle of the sample week made 3,291 of
    3,664 events late and gave every shop a violation. Now it is rejected as future_time, and every
    session and assessment is what the week gives without it."""
    lines = SAMPLE.read_bytes().splitlines()
    clean = run_audit(lines, POLICY, until=UNTIL)
    dirty = run_audit(lines[:1800] + [_future("bogus-2030", "2030-01-01T00:00:00Z")] + lines[1800:], POLICY,
                      until=UNTIL)
    assert dirty.sessions == clean.sessions and dirty.assessments == clean.assessments
    assert dirty.stats["late"] == clean.stats["late"]
    assert dirty.stats["invalid_by_reason"] == clean.stats["invalid_by_reason"] | {"future_time": 1}
    assert dirty.stats["read"] == dirty.stats["valid"] + dirty.stats["duplicate"] + dirty.stats["invalid"]


def test_finding_4_without_the_check_the_same_event_corrupts_the_week() -> None:
    """The check is what makes the difference (this is the behaviour the issue found)."""
    lines = SAMPLE.read_bytes().splitlines()
    clean = run_audit(lines, POLICY, OFF, until=UNTIL)
    dirty = run_audit(lines[:1800] + [_future("bogus-2030", "2030-01-01T00:00:00Z")] + lines[1800:], POLICY, OFF,
                      until=UNTIL)
    assert dirty.stats["late"] > 1000 > clean.stats["late"]


def test_a_step_confirmed_by_the_next_event_is_applied_as_without_the_check() -> None:
    events = [msg("c1", "buyer", at(h=0)), msg("c2", "buyer", at(d=2)), msg("c2", "seller", at(d=2, m=5)),
              msg("c1", "seller", at(h=30))]  # late: behind the confirmed step's watermark
    on, off = audit(events, until=at(d=6)), audit(events, until=at(d=6), config=OFF)
    assert outputs_only(on) == outputs_only(off)
    assert session(on, "c1#1")["late"] is True and on.stats["invalid"] == 0


def test_a_step_is_confirmed_by_another_source_and_never_contradicted_by_one() -> None:
    """A partition read ahead of the others (R6.2) is normal: the others' older events give no
    opinion against it; an event of any source that reaches it confirms it."""
    engine = Engine(POLICY, sources=["a", "b"])
    engine.apply(decode(orjson.dumps(msg("c1", "buyer", at(h=0)))), "a")
    engine.apply(decode(orjson.dumps(msg("c2", "buyer", at(h=0, m=1), shop="s2"))), "b")
    ahead = decode(orjson.dumps(msg("c3", "buyer", at(h=5), shop="s2")))
    engine.apply(ahead, "b")  # b is read five hours ahead of a
    for m in range(2, 8):  # a carries on at its own time: no opinion on b's events
        engine.apply(decode(orjson.dumps(msg(f"a{m}", "buyer", at(h=0, m=m)))), "a")
    assert engine.stats["invalid:future_time"] == 0
    engine.apply(decode(orjson.dumps(msg("c4", "buyer", at(h=4, m=30)))), "a")  # a reaches it
    assert engine._src_max["b"] == ahead.t and not engine._held


def test_three_current_events_of_its_own_source_reject_a_step_and_a_late_one_gives_no_opinion() -> None:
    engine = Engine(POLICY, keep_rejected=True)
    engine.apply(decode(orjson.dumps(msg("c1", "buyer", at(h=10)))))
    bogus = decode(orjson.dumps(msg("c2", "buyer", at(d=400))))
    engine.apply(bogus)
    engine.apply(decode(orjson.dumps(msg("c1", "seller", at(h=5)))))  # late: no opinion
    engine.apply(decode(orjson.dumps(msg("c3", "buyer", at(h=10, m=1)))))
    engine.apply(decode(orjson.dumps(msg("c4", "buyer", at(h=10, m=2)))))
    assert engine.stats["invalid:future_time"] == 0  # two opinions so far
    engine.apply(decode(orjson.dumps(msg("c5", "buyer", at(h=10, m=3)))))
    assert engine.stats["invalid:future_time"] == 1 and engine.take_rejected() == [(None, bogus)]
    assert engine.watermark is not None and engine.watermark < parse_time(at(d=1))
    assert ("s1", "c2") not in engine.convs


def test_finding_5_a_tick_far_ahead_decides_nothing_until_an_event_confirms_it() -> None:
    """Issue #10 finding 5: a host clock that runs ahead, or a hand-written tick, decided sessions
    early, and a tick at year 9999 broke the metrics endpoint. A tick more than max_future ahead
    of every event is held; the ticks of one host are no second opinion on its own clock."""
    engine = Engine(POLICY)
    engine.apply(decode(orjson.dumps(msg("c1", "buyer", at(h=0)))))
    engine.advance(parse_time(at(h=0, m=30)))  # an honest tick
    for year in ("2027", "2030", "9999"):
        engine.advance(parse_time(f"{year}-01-01T00:00:00Z"))
    assert engine.watermark == parse_time(at(h=0, m=28))
    assert [r for k, r in engine.take_records() if k == "session" and r["replied_within_24h"] is not None] == []
    assert engine.stats["rejected_ticks"] == 2  # two superseded; the newest is still held
    engine.advance(parse_time(at(h=1)))  # honest ticks still move the clock
    assert engine.watermark == parse_time(at(h=0, m=58))


def test_a_held_tick_is_applied_when_an_event_confirms_it() -> None:
    """A worker restarted after more than max_future without traffic: its first tick waits for
    the first event, then fires every deadline it passed."""
    engine = Engine(POLICY)
    engine.apply(decode(orjson.dumps(msg("c1", "buyer", at(h=0)))))
    engine.advance(parse_time(at(d=4)))
    assert engine.watermark < parse_time(at(h=1))
    engine.apply(decode(orjson.dumps(msg("c9", "buyer", at(d=4, m=1)))))
    closes = [r for k, r in engine.take_records() if k == "session" and r["close_reason"]]
    assert [r["close_reason"] for r in closes] == ["seller_timeout"]


def test_an_accepted_tick_confirms_the_held_events_it_reaches_and_leaves_the_others_held() -> None:
    """A tick confirms a held event it comes within max_future of; one it does not reach stays
    held (ticks walked through a backfill are no wall clock; live, the router refuses events
    ahead of the wall clock before they reach the engine)."""
    engine = Engine(POLICY)
    engine.apply(decode(orjson.dumps(msg("c1", "buyer", at(h=0)))))
    near = decode(orjson.dumps(msg("c2", "buyer", at(h=1, m=30))))
    far = decode(orjson.dumps(msg("c3", "buyer", at(d=30))))
    engine.apply(near)
    assert engine._held
    engine.advance(parse_time(at(h=0, m=45)))
    assert engine._src_max[None] == near.t and not engine._held
    engine.apply(far)
    engine.advance(parse_time(at(h=1, m=31)))
    assert engine.stats["invalid:future_time"] == 0 and engine._held[None][0][0] is far


def test_held_events_and_ticks_survive_snapshot_and_restore() -> None:
    engine = Engine(POLICY)
    engine.apply(decode(orjson.dumps(msg("c1", "buyer", at(h=0)))))
    engine.apply(decode(orjson.dumps(msg("c2", "buyer", at(d=2)))))
    engine.advance(parse_time(at(d=9)))
    snap = orjson.loads(orjson.dumps(engine.snapshot()))
    restored = Engine.restore(POLICY, EngineConfig(), snap)
    confirming = decode(orjson.dumps(msg("c2", "buyer", at(d=2, m=1))))
    for e in (engine, restored):
        e.apply(confirming)
        e.finish(parse_time(at(d=12)))
    assert restored.snapshot() == engine.snapshot()


def test_the_check_keeps_memory_bounded_for_a_flood_of_future_events() -> None:
    engine = Engine(POLICY)
    engine.apply(decode(orjson.dumps(msg("c1", "buyer", at(h=0)))))
    for i in range(1000):
        engine.apply(decode(orjson.dumps(msg(f"f{i}", "buyer", at(d=100 + i)))))
    assert sum(len(q) for q in engine._held.values()) <= 64


@SETTINGS
@given(streams(), st.data())
def test_honest_input_within_the_lateness_gives_the_results_it_gave_without_the_check(events, data) -> None:
    """Disorder within the allowed lateness (R6.3), over gaps of seconds to days: every step is
    confirmed by the records after it, so the check changes no record and rejects nothing."""
    lateness = 120
    keys = [parse_time(e.get("sent_at") or e["at"]) // 1_000_000 + data.draw(st.integers(0, lateness - 1))
            for e in events]
    shuffled = [e for _, _, e in sorted(zip(keys, range(len(events)), events), key=lambda x: x[:2])]
    raw = [orjson.dumps(e) for e in shuffled]
    on = run_audit(raw, POLICY, EngineConfig(dedupe_window=400 * DAY))
    off = run_audit(raw, POLICY, EngineConfig(dedupe_window=400 * DAY, max_future=None))
    assert outputs_only(on) == outputs_only(off)
    assert "future_time" not in on.stats["invalid_by_reason"]


def test_max_future_is_an_engine_setting() -> None:
    assert EngineConfig().max_future == HOUR and HOUR == 60 * MINUTE


def test_the_worker_runtime_hands_rejected_events_to_the_dead_letter_path() -> None:
    """Live, a rejected step goes to its input's dead-letter topic (streams/worker.py): the runtime
    names the input topic of its source and re-encodes the event as its input schema."""
    from chatsla.streams.codec import encode_event, encode_tick
    from chatsla.streams.runtime import PartitionRuntime, Tables

    source = "chat.messages/1"
    rt = PartitionRuntime.load(0, POLICY, EngineConfig(), [source], Tables({}, {}, {}))
    bogus = decode(orjson.dumps(msg("c2", "buyer", "2030-01-01T00:00:00Z", eid="bogus")))
    rt.handle(encode_event(decode(orjson.dumps(msg("c1", "buyer", at(h=10)))), source))
    rt.handle(encode_event(bogus, source))
    for m in (1, 2, 3):
        rt.handle(encode_event(decode(orjson.dumps(msg(f"c{m + 2}", "buyer", at(h=10, m=m)))), source))
    (topic, key, value), = rt.rejected()
    assert (topic, key) == ("chat.messages", b"c2")
    again = decode(value)
    assert (again.event_id, again.shop_id, again.conversation_id, again.sender, again.t) == (
        "bogus", "s1", "c2", "buyer", bogus.t)
    assert rt.rejected() == []
    rt.handle(encode_tick(parse_time(at(h=10, m=30))))
    assert rt.engine.stats["invalid:future_time"] == 1


def test_a_held_event_and_a_tick_that_agree_confirm_each_other() -> None:
    """A backfill whose data jumps days ahead on its last event, then ticks walked from it (the
    end of input): the tick and the held event are within max_future of each other, two
    independent opinions, so both apply and the deadlines before them fire."""
    engine = Engine(POLICY)
    engine.apply(decode(orjson.dumps(msg("c1", "buyer", at(h=0)))))
    engine.apply(decode(orjson.dumps(msg("c2", "buyer", at(d=50)))))
    assert engine._held
    engine.advance(parse_time(at(d=50, m=30)))
    assert not engine._held and engine._held_tick is None
    assert engine.watermark == parse_time(at(d=50, m=28))
    assert ("s1", "c2") in engine.convs


def test_a_tick_behind_the_clock_gives_no_opinion_on_held_events() -> None:
    """End-of-input ticks walked from the first event of a backfill pass partitions whose clocks
    stand later: such a tick changes nothing, and must not reject a held step it does not reach."""
    engine = Engine(POLICY)
    engine.apply(decode(orjson.dumps(msg("c1", "buyer", at(d=5, h=14)))))
    reply = decode(orjson.dumps(msg("c1", "seller", at(d=5, h=19))))
    engine.apply(reply)  # a step of five hours in a sparse partition: held
    engine.advance(parse_time(at(d=0, h=1)))  # a stale tick
    assert engine._held and engine.stats["invalid:future_time"] == 0
    for h in range(15, 21):  # the walk reaches it: confirmed, applied
        engine.advance(parse_time(at(d=5, h=h)))
    assert not engine._held and engine.convs[("s1", "c1")].first_human == reply.t
