"""The encodings of ``chatsla.events`` (streams/codec.py): batch records from the router, single
records (ticks, flush requests, records of an older router) and their order (RULES R6.2: the
worker must see each source's events in log order)."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from chatsla.core.engine import _event_to_list
from schemas.decode import decode
from streams.codec import (
    FLUSH, TICK, batch_records, decode_internal, encode_batch, encode_event, encode_flush, encode_tick,
)


def _chat(i: int) -> bytes:
    return orjson.dumps({
        "schema": "chat.message/v1", "event_id": f"e{i}", "shop_id": f"s{i % 3}", "conversation_id": f"c{i}",
        "sender": "buyer", "sent_at": "2026-11-16T08:00:00Z", "platform": "tiktok_shop",
    })


def test_r6_2_batch_record_keeps_every_event_its_source_and_order() -> None:
    items = [encode_event(decode(_chat(i)), f"chat.messages/{i % 2}") for i in range(5)]
    got = decode_internal(encode_batch(items))
    assert [(src, ev.event_id) for src, ev in got] == [(f"chat.messages/{i % 2}", f"e{i}") for i in range(5)]
    singles = [decode_internal(item)[0] for item in items]  # the same as one record each
    assert [(src, _event_to_list(ev)) for src, ev in got] == [(src, _event_to_list(ev)) for src, ev in singles]


def test_r6_2_single_records_still_decode() -> None:
    assert decode_internal(encode_tick(123)) == [(TICK, 123)]
    assert decode_internal(encode_flush()) == [(FLUSH, 0)]
    (source, ev), = decode_internal(encode_event(decode(_chat(7)), "chat.messages/3"))
    assert source == "chat.messages/3" and ev.event_id == "e7"


@given(sizes=st.lists(st.integers(min_value=1, max_value=300), max_size=40),
       limit=st.integers(min_value=1, max_value=2_000))
def test_batch_records_split_in_order_and_under_the_limit(sizes: list[int], limit: int) -> None:
    items = [orjson.dumps(["src", "x" * n]) for n in sizes]
    records = list(batch_records(items, max_bytes=limit))
    back = [orjson.dumps(item) for r in records for item in orjson.loads(r)[1]]
    assert back == items  # nothing lost, duplicated or reordered
    for r in records:
        inner = orjson.loads(r)[1]
        # over the limit only when a single item alone is larger than it
        assert len(r) <= limit + len(b'["batch",[]]') or len(inner) == 1
