"""The encodings of ``chatsla.events`` (streams/codec.py): batch records from the router, single
records (ticks, flush requests, records of an older router) and their order (RULES R6.2: the
worker must see each source's events in log order)."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from chatsla.core.engine import event_to_list
from chatsla.schemas.decode import decode
from chatsla.streams.codec import (
    FLUSH, TICK, PoisonRecord, batch_records, decode_internal, encode_batch, encode_event, encode_flush, encode_tick,
    split_poison,
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
    assert [(src, event_to_list(ev)) for src, ev in got] == [(src, event_to_list(ev)) for src, ev in singles]


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


# Issue #10 finding 2: a record of chatsla.events that cannot be decoded must be told apart from an
# engine bug. decode_internal raises PoisonRecord, and only PoisonRecord, for every such record,
# checked down to every field the engine reads; split_poison keeps the good items of a batch.

_GOOD_ITEM = ["chat.messages/0", ["c", "e1", "s1", "c1", "buyer", 1_700_000_000_000_000, "message", "text", "tiktok_shop"]]
_SHOP_ITEM = ["shop.events/0", ["s", "e2", "s1", "timezone", 1_700_000_000_000_000, "Asia/Bangkok"]]
# issue #14 (R11.1, R11.2): an after-sales request and an aftersale_rules shop event
_AFTERSALE_ITEM = ["aftersale.requests/0", ["a", "e3", "s1", "r1", "tiktok_shop", "requested", 1_700_000_000_000_000,
                                            "refund_only", "damaged", "home", "98.00", "USD", "vase-1", "b-9", 70,
                                            False, None, None, True, None, None]]
_RULES_ITEM = ["shop.events/0", ["s", "e4", "s1", "aftersale_rules", 1_700_000_000_000_000, None, "x@1"]]

POISON = {
    b"{not json": "not_json",
    b"": "not_json",
    b"42": "bad_shape",
    b'["tick", 1, 2]': "bad_shape",
    b'["batch", {"a": 1}]': "bad_batch",
    b'["tick", "soon"]': "bad_tick",
    b'["tick", -1]': "bad_tick",
    b'["tick", 253402300799000000]': "bad_tick",  # year 9999 (issue #10 finding 5)
    b'["tick", true]': "bad_tick",
    b'[["x"], []]': "bad_head",
    b'["chat.messages/0", ["c", "e1", "s1"]]': "bad_length",
    b'["chat.messages/0", ["x", "e1", "s1", "c1", "buyer", 1, "message", "text", "p"]]': "bad_kind",
    b'["chat.messages/0", ["c", "e1", "s1", "c1", "buyer", "2026", "message", "text", "p"]]': "bad_time",
    b'["chat.messages/0", ["c", "e1", "s1", "c1", "buyer", 253402300799000000, "message", "text", "p"]]': "bad_time",
    b'["chat.messages/0", ["c", 7, "s1", "c1", "buyer", 1, "message", "text", "p"]]': "bad_type",
    b'["chat.messages/0", ["c", "e1", "s1", "c1", "robot", 1, "message", "text", "p"]]': "bad_value",
    b'["shop.events/0", ["s", "e1", "s1", "timezone", 1, "Mars/Olympus"]]': "bad_timezone",
    b'["shop.events/0", ["s", "e1", "s1", "timezone", 1, null]]': "bad_type",
    b'["chat.messages/0", "not a list"]': "bad_event",
    b'["batch", [["tick", ["c", "e1", "s1", "c1", "buyer", 1, "message", "text", "p"]]]]': "batch_item:0:bad_source",
    b'["batch", [1]]': "batch_item:0:bad_item",
}


def test_finding_2_every_undecodable_record_raises_poison_with_its_reason() -> None:
    for value, reason in POISON.items():
        try:
            decode_internal(value)
        except PoisonRecord as e:
            assert e.reason == reason, (value, e.reason)
        else:
            raise AssertionError(f"{value!r} decoded")


_JSON = st.recursive(st.none() | st.booleans() | st.integers(min_value=-2**63, max_value=2**63 - 1)
                     | st.text(max_size=5), lambda inner: st.lists(inner, max_size=10), max_leaves=30)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    """A good single or batch record with one field of one event replaced by any JSON value."""
    item = draw(st.sampled_from([_GOOD_ITEM, _SHOP_ITEM, _AFTERSALE_ITEM, _RULES_ITEM]))
    ev = list(item[1])
    ev[draw(st.integers(0, len(ev) - 1))] = draw(_JSON)
    bad = [item[0], ev]
    return orjson.dumps(draw(st.sampled_from([bad, ["batch", [_GOOD_ITEM, bad]]])))


@given(st.binary(max_size=200) | _JSON.map(orjson.dumps) | _mutated())
def test_finding_2_decode_internal_raises_nothing_but_poison(value: bytes) -> None:
    try:
        items = decode_internal(value)
    except PoisonRecord:
        return
    for source, body in items:  # what decodes is what the engine can take
        assert type(source) is str
        if source == TICK:
            assert type(body) is int and 0 <= body
        elif source != FLUSH:
            assert type(body.t) is int


def test_finding_2_split_poison_keeps_the_good_items_of_a_batch_in_order() -> None:
    record = orjson.dumps(["batch", [_GOOD_ITEM, ["chat.messages/0", ["c", "e9"]], _SHOP_ITEM, 5]])
    try:
        decode_internal(record)
        raise AssertionError("decoded")
    except PoisonRecord as e:
        assert e.reason == "batch_item:1:bad_length"
    good, bad = split_poison(record)
    assert bad == [(1, "bad_length"), (3, "bad_item")]
    assert [(s, ev.event_id) for s, ev in decode_internal(good)] == [("chat.messages/0", "e1"), ("shop.events/0", "e2")]
    assert split_poison(b"{") == (None, [(0, "not_json")])
    assert split_poison(encode_tick(5)) == (encode_tick(5), [])
    assert split_poison(orjson.dumps(["batch", [1]])) == (None, [(0, "bad_item")])


def test_finding_2_strict_decode_gives_the_same_events_as_before() -> None:
    items = [encode_event(decode(_chat(i)), f"chat.messages/{i % 2}") for i in range(5)]
    got = decode_internal(encode_batch(items))
    assert [event_to_list(ev) for _, ev in got] == [orjson.loads(item)[1] for item in items]
    (src, ev), = decode_internal(orjson.dumps(_SHOP_ITEM))
    assert event_to_list(ev) == _SHOP_ITEM[1]
