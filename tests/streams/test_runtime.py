"""The worker's persistence protocol without Kafka (RULES R6.1: restarts never change a result).

A checkpoint writes, in order and with a flush between the phases: the changed conversation
entries, the meta (the commit point, carrying the changed shops), then the shop entries; only
then does the committed offset move (``streams/runtime.py``). A worker killed mid-checkpoint
leaves every earlier phase stored and *any subset* of the current phase's writes (they go to
different changelog topics and partitions, so Kafka keeps no order among them). These tests cut
checkpoints at every phase with every kind of subset, restart from the committed offset as Kafka
would, and check the outputs, deduplicated by key as a consumer would, and the final state equal
an uninterrupted run's.

The log has what made such cuts dangerous: shops whose time zone arrives mid-stream in the same
checkpoint as their first conversations, vacation switched on and off, weeks ending (and being
assessed) between checkpoints.
"""

from __future__ import annotations

import random

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from chatsla.core.engine import EngineConfig
from chatsla.core.policy import load_policy
from chatsla.core.timefmt import parse_time
from chatsla.schemas.decode import decode
from chatsla.streams.codec import encode_event, encode_tick
from chatsla.streams.runtime import META_COMPRESS_BYTES, PartitionRuntime, Tables
from tests.builders import at, msg, shop_event

POLICY = load_policy()
CONFIG = EngineConfig()
SOURCES = ["chat.messages/0", "chat.messages/1"]
EVERY = 5  # records between checkpoints
# the write phases of a checkpoint, then "commit": every write landed, but the input offsets were
# not committed yet (Faust commits acknowledged offsets a moment later), so the next owner
# replays the checkpoint's input on top of its state
PHASES = ("conversations", "meta", "shops", "commit")


def log(seed: int = 7) -> list[bytes]:
    rnd = random.Random(seed)
    events: list[dict] = []
    for k in range(90):
        h = k * 3.1 + rnd.random()  # about 11.6 days, across the week boundary
        shop = ("s1", "s2", "s3")[k % 3]
        if k == 16:  # s2's zone arrives after its first conversations (their week labels move)
            events.append(shop_event("timezone", at(h=h - 0.5), shop="s2", tz="Asia/Bangkok"))
        if k == 40:  # a new shop: its zone and first conversations in one checkpoint interval
            events.append(shop_event("timezone", at(h=h - 0.5), shop="s4", tz="America/Los_Angeles"))
        if k >= 40 and k % 2:
            shop = "s4"
        if k in (22, 61):
            events.append(shop_event("vacation_on", at(h=h - 0.2), shop="s1"))
            events.append(msg(f"v{k}", "buyer", at(h=h - 0.1), shop="s1"))  # opened on vacation
        if k in (31, 70):
            events.append(shop_event("vacation_off", at(h=h - 0.2), shop="s1"))
        conv = f"c{k % 7}"
        sender = rnd.choice(["buyer", "buyer", "seller", "auto_reply", "buyer", "seller"])
        events.append(msg(conv, sender, at(h=h), shop=shop))
    out = []
    for i, e in enumerate(events):
        source = "shop.events/0" if "type" in e else SOURCES[i % 2]
        out.append(encode_event(decode(orjson.dumps(e)), source))
        if i % 17 == 16:
            out.append(encode_tick(parse_time(e.get("sent_at") or e["at"])))
    # The end: a tick 13 days after the last event fires every deadline. A tick that far ahead of
    # every event is held until an event confirms it (time sanity, issue #10 finding 5), as live
    # traffic would: the event after it does.
    out.append(encode_tick(parse_time(at(d=25))))
    out.append(encode_event(decode(orjson.dumps(msg("c-end", "buyer", at(d=25), shop="s1"))), SOURCES[0]))
    return out


Cut = tuple[int, str, list[bool]]  # (record position, phase cut short, which writes of it landed)


def run(records: list[bytes], cuts: list[Cut], config: EngineConfig = CONFIG) -> tuple[dict, dict]:
    """Outputs deduplicated by key, and the final state, of a run killed at each cut."""
    tables = Tables({}, {}, {})
    latest: dict = {}
    committed = 0  # offset of the first record not covered by a completed checkpoint
    rt = PartitionRuntime.load(0, POLICY, config, SOURCES, tables)
    pos = 0
    pending = sorted(cuts, key=lambda c: c[0])
    while pos < len(records):
        rt.handle(records[pos], pos)  # a record's offset is its position in the log
        pos += 1
        for kind, key, value in rt.outputs():  # delivered before any state (flushed first)
            rec = orjson.loads(value)
            latest[(kind, rec.get("session_id"), rec["shop_id"], rec.get("week_start"))] = rec
        if pos % EVERY and pos != len(records):
            continue
        cp = rt.checkpoint()
        phases = {"conversations": [(tables.conversations, k, v) for k, v in cp.conversations],
                  "meta": [(tables.partitions, *cp.meta)],
                  "shops": [(tables.shops, k, v) for k, v in cp.shops],
                  "commit": []}
        if pending and pos >= pending[0][0]:
            _, cut_phase, landed = pending.pop(0)
            for phase in PHASES:
                writes = phases[phase]
                if phase == cut_phase:
                    writes = [w for w, ok in zip(writes, landed * (len(writes) // max(len(landed), 1) + 1)) if ok]
                for table, k, v in writes:
                    _write(table, k, v)
                if phase == cut_phase:
                    break
            pos = committed  # Kafka redelivers from the committed offset to the next owner
            rt = PartitionRuntime.load(0, POLICY, config, SOURCES, tables)
            continue
        for phase in PHASES:
            for table, k, v in phases[phase]:
                _write(table, k, v)
        rt.pending_acks = 0
        committed = pos
    return latest, _state(rt)


def _write(table: dict, k: tuple, v: bytes | None) -> None:
    """A table write as Faust's store and changelog recovery apply it: None deletes the key."""
    if v is None:
        table.pop(k, None)
    else:
        table[k] = v


def _state(rt: PartitionRuntime) -> dict:
    """The engine's state without its counters (a replayed duplicate is counted as one)."""
    snap = rt.engine.snapshot()
    snap.pop("counters")
    snap["conversations"] = sorted(snap["conversations"], key=lambda c: (c[0], c[1]))
    snap["shops"] = sorted(snap["shops"], key=lambda s: s[0])
    return snap


RECORDS = log()
REFERENCE = run(RECORDS, [])


def test_the_log_exercises_zones_vacations_and_assessed_weeks() -> None:
    outputs, state = REFERENCE
    weeks = {(k[2], k[3]) for k in outputs if k[0] == "assessment"}
    assert {s for s, _ in weeks} >= {"s1", "s2", "s4"} and len(weeks) >= 5
    assert any(rec.get("excluded") for k, rec in outputs.items() if k[0] == "session")
    assert {s[0]: s[1] for s in state["shops"]}["s4"] == "America/Los_Angeles"


def test_r6_1_a_crash_between_checkpoints_changes_nothing() -> None:
    for crash in range(EVERY, len(RECORDS), EVERY):
        assert run(RECORDS, [(crash, "conversations", [False])]) == REFERENCE, f"crash at {crash}"


def test_r6_1_a_checkpoint_cut_short_in_any_phase_changes_nothing() -> None:
    """Every checkpoint, cut in each phase with every other write landed, then all but the
    first: the cases where a shop entry is older or newer than its conversations."""
    for crash in range(EVERY, len(RECORDS), EVERY):
        for phase in PHASES:
            for landed in ([True, False], [False, True], [True]):
                got = run(RECORDS, [(crash, phase, landed)])
                assert got == REFERENCE, f"checkpoint at {crash} cut in {phase} with {landed}"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, len(RECORDS) // EVERY), st.sampled_from(PHASES),
                          st.lists(st.booleans(), min_size=1, max_size=8)), max_size=4))
def test_r6_1_repeated_crashes_with_any_partial_writes_change_nothing(cuts: list) -> None:
    assert run(RECORDS, [(n * EVERY, phase, landed) for n, phase, landed in cuts]) == REFERENCE


def test_r6_1_a_meta_holding_thousands_of_events_is_compressed_and_restores_exactly() -> None:
    """Input partitions consumed unevenly (a backfill with large fetches): one source runs far
    ahead, so the events it delivered wait for the other's watermark and the meta, which must
    hold them, grows past Kafka's 1 MB message limit unless compressed."""
    events = [msg(f"k{i}", "buyer", at(h=i / 100), shop=f"s{i % 5}") for i in range(14000)]
    ahead = [encode_event(decode(orjson.dumps(e)), SOURCES[0]) for e in events]
    behind = [encode_event(decode(orjson.dumps(msg(f"k{i}", "seller", at(h=i / 100 + 0.5), shop=f"s{i % 5}"))),
                           SOURCES[1]) for i in range(0, 14000, 40)]
    end = [encode_tick(parse_time(at(d=25)))]

    def outputs(rt: PartitionRuntime, records: list[bytes]) -> list[bytes]:
        out = []
        for r in records:
            rt.handle(r)
            out.extend(v for _, _, v in rt.outputs())
        return out

    reference = PartitionRuntime.load(0, POLICY, CONFIG, SOURCES, Tables({}, {}, {}))
    want = outputs(reference, ahead + behind + end)

    tables = Tables({}, {}, {})
    rt = PartitionRuntime.load(0, POLICY, CONFIG, SOURCES, tables)
    got = outputs(rt, ahead)
    assert len(rt.engine.meta()["buffer"]) == len(ahead)  # all held: the other source is silent
    cp = rt.checkpoint()
    assert len(orjson.dumps(rt.engine.meta())) > 1_000_000 > len(cp.meta[1])
    rt.checkpoint_into(tables)  # stores exactly what checkpoint() would have (nothing changed since)
    restored = PartitionRuntime.load(0, POLICY, CONFIG, SOURCES, tables)
    assert _state(restored) == _state(rt)
    got += outputs(restored, behind + end)
    assert got == want



def test_r6_1_a_compressed_meta_survives_the_changelog_topics_json_decoding() -> None:
    """Issue #12 end-to-end SIGKILL test (tests/integration/test_pipeline_models.py): a meta over
    META_COMPRESS_BYTES (a mixed week's ticket and wait entries ride in it) was zlib bytes, and
    Faust's changelog topic decodes every table value as JSON on recovery ('utf-8' codec can't
    decode byte 0xed): the worker logged "Error in recovery" and waited for that record forever.
    The stored meta must be JSON whichever way it is read back: as the bytes written (a local
    RocksDB store) or JSON-decoded (Faust's changelog recovery, its ``json`` codec)."""
    import json

    events = [msg(f"k{i}", "buyer", at(h=i / 100), shop=f"s{i % 5}") for i in range(3000)]
    ahead = [encode_event(decode(orjson.dumps(e)), SOURCES[0]) for e in events]
    rt = PartitionRuntime.load(0, POLICY, CONFIG, SOURCES, Tables({}, {}, {}))
    for r in ahead:
        rt.handle(r)
    tables = Tables({}, {}, {})
    rt.checkpoint_into(tables)
    (stored,) = tables.partitions.values()
    assert len(orjson.dumps(rt.engine.meta())) > META_COMPRESS_BYTES > len(stored)  # compressed
    recovered = Tables(*({k: json.loads(bytes(v).decode("utf-8")) for k, v in t.items()}
                         for t in (tables.conversations, tables.shops, tables.partitions)))
    for t in (tables, recovered):
        assert _state(PartitionRuntime.load(0, POLICY, CONFIG, SOURCES, t)) == _state(rt)


# ---------------------------------------------------------------- issue #10: bounded state
DAY_US = 86_400_000_000
# Short retention, dedupe window and id bound, so that a log of a few weeks evicts conversations
# and overflows the id memory of a chatty one (the defaults do the same over months).
SMALL = EngineConfig(dedupe_window=DAY_US, week_retention=2 * DAY_US, max_remembered_ids=8)


def bounded_log(seed: int = 11) -> list[bytes]:
    """Four weeks of traffic: conversations that go quiet (and get evicted), some that come back
    after eviction, a chatty one with far more events than the id bound, duplicates (producer
    retries) of recent and of old events, a late event into a week still retained."""
    rnd = random.Random(seed)
    events: list[dict] = []
    for k in range(120):
        h = k * 5.3 + rnd.random()  # about 26 days
        shop = ("s1", "s2")[k % 2]
        conv = f"c{k % 9}" if k < 60 else f"c{(k % 5) + 4}"  # c0-c3 go quiet; c4-c8 come back
        sender = rnd.choice(["buyer", "buyer", "seller", "auto_reply", "seller"])
        events.append(msg(conv, sender, at(h=h), shop=shop))
        if k % 3 == 0:  # the chatty conversation: more events within a day than the id bound
            for j in range(12):
                events.append(msg("chatty", ("buyer", "seller")[j % 2], at(h=h, m=j * 7), shop="s1"))
        if k == 69:
            events.append(dict(events[-3]))  # a retried recent event
            # and one of the chatty conversation's from 16 h earlier, forgotten for the bound
            events.append(dict([e for e in events if e["conversation_id"] == "chatty"][-20]))
        if k == 90:  # late into a retained week (R6.4)
            events.append(msg("c5", "buyer", at(h=h - 10), shop="s2"))  # (well within the dedupe window)
    out = []
    for i, e in enumerate(events):
        out.append(encode_event(decode(orjson.dumps(e)), SOURCES[i % 2]))
        if i % 13 == 12:
            out.append(encode_tick(parse_time(e["sent_at"])))
    out.append(encode_tick(parse_time(at(d=40))))
    return out


BOUNDED = bounded_log()
BOUNDED_REFERENCE = run(BOUNDED, [], SMALL)


def test_issue_10_the_bounded_log_evicts_revives_and_overflows() -> None:
    """The log must exercise what the cut tests below are about (else they prove nothing)."""
    rt = PartitionRuntime.load(0, POLICY, SMALL, SOURCES, Tables({}, {}, {}))
    for r in BOUNDED:
        rt.handle(r)
    stats = rt.engine.stats
    assert stats["evicted"] >= 5 and stats["dedupe_overflow"] >= 1 and stats["late"] >= 1
    outputs, state = BOUNDED_REFERENCE
    sessions = {k[1] for k in outputs if k[0] == "session"}
    assert "c4#1" in sessions  # ... and c4 came back after its eviction, numbered afresh
    assert len(state["conversations"]) < 10


def test_issue_10_evicted_conversations_are_deleted_from_the_tables() -> None:
    """A tombstone (None) is written for each evicted conversation; the stored entries are those
    of the live conversations only (what a restart reloads)."""
    tables = Tables({}, {}, {})
    rt = PartitionRuntime.load(0, POLICY, SMALL, SOURCES, tables)
    tombstones = 0
    for i, r in enumerate(BOUNDED):
        rt.handle(r)
        rt.outputs()
        if i % EVERY == 0:
            cp = rt.checkpoint()
            tombstones += sum(v is None for _, v in cp.conversations)
            for k, v in cp.conversations:
                _write(tables.conversations, k, v)
            tables.partitions[cp.meta[0]] = cp.meta[1]
            for k, v in cp.shops:
                tables.shops[k] = v
    rt.checkpoint_into(tables)
    rt.checkpoint_into(tables)  # tombstones go out one checkpoint after the eviction
    assert tombstones >= 5
    assert sorted(k[1:] for k in tables.conversations) == sorted(rt.engine.convs)
    assert _state(PartitionRuntime.load(0, POLICY, SMALL, SOURCES, tables)) == _state(rt)


def test_issue_10_r6_1_a_checkpoint_cut_short_in_any_phase_with_eviction_changes_nothing() -> None:
    """The cut-at-every-phase test of above on a log that evicts conversations (tombstones in the
    conversation phase, landing before or without their meta) and overflows the id bound."""
    for crash in range(EVERY, len(BOUNDED), EVERY):
        for phase in PHASES:
            for landed in ([True, False], [False, True], [True]):
                got = run(BOUNDED, [(crash, phase, landed)], SMALL)
                assert got == BOUNDED_REFERENCE, f"checkpoint at {crash} cut in {phase} with {landed}"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, len(BOUNDED) // EVERY), st.sampled_from(PHASES),
                          st.lists(st.booleans(), min_size=1, max_size=8)), max_size=4))
def test_issue_10_r6_1_repeated_crashes_with_eviction_change_nothing(cuts: list) -> None:
    assert run(BOUNDED, [(n * EVERY, phase, landed) for n, phase, landed in cuts], SMALL) == BOUNDED_REFERENCE


def jump_log() -> list[bytes]:
    """Ticks that move event time by weeks in one checkpoint interval (a backfill's end, a worker
    back after a long outage): conversations with events in that interval are evicted in it.
    Checkpoints fall after records 5, 10 and 15. (The last tick stays within the dedupe window of
    the events it releases: an event applied when the watermark is already more than that ahead
    has its id forgotten at once, so a crash replay would apply it again, with or without
    eviction.)"""
    def ev(conv: str, sender: str, when: str) -> bytes:
        return encode_event(decode(orjson.dumps(msg(conv, sender, when))), SOURCES[0])

    def tick(when: str) -> bytes:
        return encode_tick(parse_time(when))

    return [
        ev("c1", "buyer", at(h=10)), ev("c1", "seller", at(h=10.5)), ev("c2", "buyer", at(h=11)),
        ev("c2", "seller", at(h=11.2)), tick(at(h=12)),
        # c2's buyer writes again (its session awaits the seller), applied at once; then 60 days
        # pass in one tick, applied when the event after it confirms it (time sanity): c1 and c2
        # are evicted in the interval of c2's last event
        tick(at(h=13)), ev("c2", "buyer", at(h=14)), tick(at(h=15)), tick(at(d=60)), ev("c3", "buyer", at(d=60, h=1)),
        ev("c3", "seller", at(d=60, h=1.5)),
        # c1 and c2 come back (sessions #1 again), then the end
        tick(at(d=60, h=2)), ev("c1", "buyer", at(d=61)), ev("c2", "buyer", at(d=61, h=1)),
        tick(at(d=61, h=2)), ev("c1", "seller", at(d=61, h=3)),
        *(tick(at(d=61, h=h)) for h in range(4, 13)),  # the clock runs on, an hour a tick
    ]


JUMP = jump_log()
JUMP_REFERENCE = run(JUMP, [])


def test_issue_10_the_jump_log_evicts_conversations_that_had_events_in_the_same_interval() -> None:
    rt = PartitionRuntime.load(0, POLICY, CONFIG, SOURCES, Tables({}, {}, {}))
    for r in JUMP[:10]:  # up to the tick to day 60 and the event that confirms it (time sanity)
        rt.handle(r)
    assert rt.engine.stats["evicted"] == 2 and not rt.engine.convs  # c3 waits for the watermark
    outputs, state = JUMP_REFERENCE
    assert [c[1] for c in state["conversations"]] == ["c1", "c2", "c3"]  # back, or new
    closed = {k[1]: rec["closed_at"] for k, rec in outputs.items() if k[0] == "session"}
    assert closed["c1#1"] == at(d=61, h=9)  # the second c1#1, after it came back


def test_issue_10_r6_1_crash_cuts_around_a_jump_of_weeks_change_nothing() -> None:
    """Every checkpoint of the jump log cut in every phase, including after all writes but before
    the offset commit: the restart must not replay, into a state that has evicted c1 and c2,
    events that were applied to them before (they would apply again to fresh conversations);
    and a tombstone must never land before a meta that reflects the eviction."""
    for crash in range(EVERY, len(JUMP) + 1, EVERY):
        for phase in PHASES:
            for landed in ([True, False], [False, True], [True], [False]):
                got = run(JUMP, [(crash, phase, landed)])
                assert got == JUMP_REFERENCE, f"checkpoint at {crash} cut in {phase} with {landed}"
