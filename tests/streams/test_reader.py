"""The offline Kafka reader's pure parts without a broker (issue #11: replay's merge had no unit test).

``chatsla.streams.reader`` fetches each partition in log order and merges the partitions by a key
that is the running maximum of (Kafka timestamp, event time), then topic, partition and offset
(R6.1: the same log gives the same order, whatever the fetch sizes). These tests feed
:class:`PartitionState.take` fetched records as aiokafka would return them and check what
:func:`merge_ready` releases, how the horizon stops a partition, and :func:`flow_control`.
The broker-side behaviour is in tests/integration/test_replay.py.
"""

from __future__ import annotations

import random
from collections import namedtuple

import orjson

from chatsla.core.timefmt import parse_time
from chatsla.schemas.decode import decode
from chatsla.streams.reader import (
    EVENT, NOT_DECODED, OFFSET, SOURCE, PartitionRange, PartitionState, flow_control, merge_ready,
)
from tests.builders import at, msg

Rec = namedtuple("Rec", "offset timestamp value")  # the fields of an aiokafka ConsumerRecord the reader uses
NO_HORIZON = 1 << 62


def value(conv: str, minute: float, eid: str) -> bytes:
    return orjson.dumps(msg(conv, "buyer", at(m=minute), eid=eid))


def state(partition: int, records: list[Rec], topic: str = "chat.messages") -> PartitionState:
    end = records[-1].offset + 1 if records else 0
    return PartitionState((topic, partition), PartitionRange(topic, partition, 0, end))


def drain(parts: dict[int, list[Rec]], chunking: random.Random | None = None,
          horizon: int = NO_HORIZON) -> list[tuple[str, int]]:
    """Fetch every partition in chunks (random sizes, random partition order, as getmany does),
    merging after each fetch as InputReader.batches does; (source, offset) in release order."""
    states = [state(p, recs) for p, recs in sorted(parts.items())]
    todo = {st.range.partition: list(recs) for st, recs in zip(states, (parts[p] for p in sorted(parts)))}
    out: list[tuple[str, int]] = []
    tail: list = []
    for st in states:
        st.done = not todo[st.range.partition]
    while True:
        live = [st for st in states if not st.done]
        if live:
            st = (chunking or random.Random(0)).choice(live) if chunking else live[0]
            recs = todo[st.range.partition]
            n = chunking.randint(1, 3) if chunking else len(recs)
            batch, todo[st.range.partition] = recs[:n], recs[n:]
            st.take(batch, decode, horizon, False, 0, tail)
            if st.next >= st.range.end or st.stopped:
                st.done = True
        out += [(r[SOURCE], r[OFFSET]) for r in merge_ready(states)]
        if all(st.done for st in states) and not any(st.pending for st in states):
            return out


def test_the_merge_order_does_not_depend_on_how_the_partitions_are_fetched() -> None:
    """R6.1: any interleaving and any fetch sizes release the records in one order."""
    rnd = random.Random(7)
    parts = {}
    for p in range(3):
        ts = 1_000
        recs = []
        for off in range(12):
            ts += rnd.choice([0, 0, 1, 5])  # a bulk load writes many records per millisecond
            recs.append(Rec(off, ts, value(f"c{p}", rnd.randint(0, 30), f"p{p}-{off}")))
        parts[p] = recs
    once = drain(parts)
    assert sorted(once) == sorted((f"chat.messages/{p}", o) for p in parts for o in range(12))
    for seed in range(20):
        assert drain(parts, random.Random(seed)) == once


def test_ties_on_the_kafka_timestamp_are_merged_by_event_time_then_partition() -> None:
    """Records produced within one millisecond merge by event time, not by partition number
    (which would reorder them by minutes); equal event times by topic, partition, offset."""
    parts = {0: [Rec(0, 5, value("a", 10, "a0")), Rec(1, 5, value("a", 20, "a1"))],
             1: [Rec(0, 5, value("b", 15, "b0")), Rec(1, 5, value("b", 20, "b1"))]}
    assert drain(parts) == [("chat.messages/0", 0), ("chat.messages/1", 0),
                            ("chat.messages/0", 1), ("chat.messages/1", 1)]


def test_a_partitions_own_order_is_kept_when_its_clock_goes_back() -> None:
    """The key is the running maximum over the partition: a producer clock stepping back (or an
    older event time) never moves a record before its predecessors in the same partition."""
    parts = {0: [Rec(0, 100, value("a", 30, "a0")), Rec(1, 50, value("a", 1, "a1"))],
             1: [Rec(0, 70, value("b", 5, "b0"))]}
    assert drain(parts) == [("chat.messages/1", 0), ("chat.messages/0", 0), ("chat.messages/0", 1)]


def test_an_unfinished_partition_with_nothing_pending_holds_the_merge_back() -> None:
    """It may still deliver an earlier record; a finished empty one holds nothing back."""
    a = state(0, [Rec(0, 10, b"")])
    b = state(1, [Rec(0, 1, b"")])
    a.take([Rec(0, 10, value("a", 0, "x"))], decode, NO_HORIZON, False, 0, [])
    assert merge_ready([a, b]) == []  # b has delivered nothing yet
    b.done = True  # b was empty after all (e.g. only control records)
    released = merge_ready([a, b])
    assert [(r[SOURCE], r[OFFSET]) for r in released] == [("chat.messages/0", 0)]
    assert a.pending == []


def test_the_horizon_stops_a_partition_at_its_first_event_beyond_it() -> None:
    """The replay reads each partition up to the first event after ``to + lateness`` (module docs
    of chatsla.replay, "End of input"); with tail=True the rest is read for late arrivals."""
    horizon = parse_time(at(m=10))
    recs = [Rec(0, 1, value("a", 1, "e0")), Rec(1, 2, b"not json"), Rec(2, 3, value("a", 11, "e2")),
            Rec(3, 4, value("a", 5, "e3")), Rec(4, 5, value("a", 20, "e4"))]
    st = state(0, recs)
    st.take(recs, decode, horizon, False, horizon, [])
    assert st.stopped and st.range.stop == 2 and st.range.read == 2 and st.next == 3
    assert [r[OFFSET] for r in st.pending] == [0, 1]
    late: list = []
    st = state(0, recs)
    st.take(recs, decode, horizon, True, horizon, late)  # tail: the events before `to` logged after the stop
    assert st.range.tail == 3 and [(ev.event_id, off) for ev, _, off in late] == [("e3", 3)]
    assert [r[OFFSET] for r in st.pending] == [0, 1]
    # an invalid record takes the event time of the one before it in the merge key
    assert st.pending[1][:2] == (2, parse_time(at(m=1)))


def test_without_a_decoder_every_record_is_read_undecoded() -> None:
    """Verify reads the output topics this way: no horizon, every record passed on."""
    recs = [Rec(0, 1, b'{"x": 1}'), Rec(1, 2, b"")]
    st = state(0, recs)
    st.take(recs, lambda v: NOT_DECODED, NO_HORIZON, False, 0, [])
    assert [r[EVENT].reason for r in st.pending] == ["not_decoded", "not_json"]


def test_flow_control_pauses_a_partition_far_ahead_and_resumes_it_at_half() -> None:
    paused, resumed = [], []
    a, b, c = state(0, [Rec(0, 0, b"")]), state(1, [Rec(0, 0, b"")]), state(2, [Rec(0, 0, b"")])
    a.pending = [()] * 10
    b.pending = [()] * 9
    c.pending = [()] * 10
    c.done = True  # finished partitions are left alone
    flow_control([a, b, c], paused.append, resumed.append, limit=10)
    assert paused == [a.tp] and a.paused and not b.paused and not c.paused
    a.pending = [()] * 5
    flow_control([a, b, c], paused.append, resumed.append, limit=10)
    assert resumed == [] and a.paused  # not yet below half
    a.pending = [()] * 4
    flow_control([a, b, c], paused.append, resumed.append, limit=10)
    assert resumed == [a.tp] and not a.paused
