"""The replay reader process's transport without Kafka (issue #11: one event encoding, the core's).

The child sends the merged records in chunks, events in the core's list encoding
(``event_to_list``, as checkpoints store them); the parent turns them back into reader records
and feeds them. The round trip must give the parent exactly the records the child read, so that
``--reader-process on`` and ``off`` give identical results (R6.1).
"""

from __future__ import annotations

import pickle
from collections import Counter
from collections import namedtuple

import orjson

from chatsla.core.engine import Engine, event_to_list
from chatsla.core.events import Invalid
from chatsla.core.policy import load_policy
from chatsla.core.timefmt import parse_time
from chatsla.streams.feed import Feeder
from chatsla.replay.child import decode_chunk, encode_chunk
from chatsla.schemas.decode import decode
from chatsla.streams.reader import EVENT, OFFSET, SOURCE, VALUE, PartitionRange, PartitionState
from tests.builders import at, msg, shop_event

Rec = namedtuple("Rec", "offset timestamp value")


def read_records() -> list[tuple]:
    values = [orjson.dumps(shop_event("timezone", at(), tz="Asia/Bangkok", eid="z")),
              orjson.dumps(msg("c1", "buyer", at(h=1), eid="a", message_type="order_card")),
              b"", b"  ", b'{"shop_id": "s1", "schema": "chat.message/v1"}', b"not json",
              orjson.dumps(msg("c1", "seller", at(h=2), eid="b", platform="tiktok_shop"))]
    st = PartitionState(("chat.messages", 2), PartitionRange("chat.messages", 2, 0, len(values)))
    st.take([Rec(i, i, v) for i, v in enumerate(values)], decode, 1 << 62, False, 0, [])
    return st.pending


def test_the_child_transport_gives_back_the_records_it_read() -> None:
    records = read_records()
    sources = ["chat.messages/0", "chat.messages/2"]
    wire = pickle.loads(pickle.dumps(encode_chunk(records, {s: i for i, s in enumerate(sources)})))
    back = decode_chunk(wire, sources)
    assert len(back) == len(records)
    for got, sent in zip(back, records):
        assert (got[SOURCE], got[OFFSET]) == (sent[SOURCE], sent[OFFSET])
        if type(sent[EVENT]) is Invalid:
            assert type(got[EVENT]) is Invalid and got[EVENT].reason == sent[EVENT].reason
            assert got[VALUE] == sent[VALUE]  # for the shop an invalid record names
        else:
            assert event_to_list(got[EVENT]) == event_to_list(sent[EVENT])


def test_feeding_the_transported_records_gives_the_same_engine_state() -> None:
    """Same records, same order: same counters and invalid reasons either way (R6.1)."""
    records = read_records()
    sources = ["chat.messages/0", "chat.messages/2"]
    back = decode_chunk(encode_chunk(records, {s: i for i, s in enumerate(sources)}), sources)
    results = []
    for recs in (records, back):
        engine = Engine(load_policy(), sources=sources)
        invalid: Counter[str] = Counter()
        seen: list = []
        Feeder(engine, invalid, lambda off, reason, value: seen.append((off, reason, value))).feed(recs)
        engine.finish(parse_time(at(d=9)))  # chat.messages/0 never spoke: finishing releases the buffer
        results.append((dict(engine.stats), dict(invalid), seen, engine.snapshot()))
    assert results[0] == results[1]
    assert results[0][0]["valid"] == 3
    assert results[0][1] == {"empty_line": 2, "missing_field:event_id": 1, "not_json": 1}
