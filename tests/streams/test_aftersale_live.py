"""After-sales requests on the live side (issue #14; RULES R11.1, A.1): the topics, the router's
validation and dead letters, the ``chatsla.events`` encoding of an ``aftersale.request/v1`` and of
an ``aftersale_rules`` shop event (R11.2), and that the worker's engine gets exactly the decoded
events. The worker's outputs, checkpoints and crashes with after-sales state are in
``tests/streams/test_worker_models.py``."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatsla.core.engine import Engine, EngineConfig, event_to_list
from chatsla.core.policy import policies_for
from chatsla.schemas.decode import decode
from chatsla.streams.codec import PoisonRecord, decode_internal, encode_batch, encode_event, event_json
from chatsla.streams.runtime import KIND_TOPIC
from chatsla.streams.topics import TopicNames, topic_specs, watermark_sources
from tests.streams.test_worker import Broker, Journal, Msg, make_worker

REQUESTED = {"schema": "aftersale.request/v1", "event_id": "a1", "shop_id": "S9", "request_id": "v1",
             "type": "requested", "at": "2026-11-03T08:00:00Z", "request_type": "refund_only", "reason": "damaged",
             "category": "home", "amount": "98.00", "currency": "USD", "sku_id": "vase-1", "buyer_ref": "b-9",
             "buyer_credit": 70, "shipped": True, "delivered_at": "2026-11-01T08:00:00Z",
             "return_shipping_cost": "5.50"}
REVIEWED = {"schema": "aftersale.request/v1", "event_id": "a2", "shop_id": "S9", "request_id": "v1",
            "type": "reviewed", "at": "2026-11-03T09:00:00Z", "by": "seller_rule", "decision": "approved"}
RULES = {"schema": "shop.event/v1", "event_id": "s1", "shop_id": "S9", "type": "aftersale_rules",
         "rules": "shop-S9-aftersale@2026-01-22", "at": "2026-11-01T00:00:00Z"}


def test_a1_the_aftersale_topics_are_created_with_the_other_inputs_and_outputs() -> None:
    """R11.1 / A.1: aftersale.requests (partitioned like the other inputs, kept forever: replays
    read it), its .dlq, and chatsla.aftersale for the per-request records (R11.5.1); the router
    reads it; request records go to chatsla.aftersale and after-sales periods to chatsla.periods."""
    names = TopicNames.prefixed("p.")
    specs = {s.name: s for s in topic_specs(names, 4)}
    assert specs["p.aftersale.requests"].partitions == 4
    assert specs["p.aftersale.requests"].config["retention.ms"] == "-1"
    assert specs["p.aftersale.requests.dlq"].partitions == 1
    assert specs["p.chatsla.aftersale"].partitions == 4
    assert "p.aftersale.requests.dlq" in names.dlqs
    assert names.inputs == ("p.chat.messages", "p.shop.events", "p.ticket.events", "p.aftersale.requests")
    assert getattr(names, KIND_TOPIC["request"]) == "p.chatsla.aftersale"
    assert getattr(names, KIND_TOPIC["period"]) == "p.chatsla.periods"


def test_a2_aftersale_partitions_do_not_hold_the_watermark() -> None:
    """The watermark_sources rule (streams/topics.py): chat partitions only; an idle
    aftersale.requests partition (most deployments have none) must not stall the engine."""
    assert not any("aftersale" in s for s in watermark_sources(TopicNames(), range(4)))


@pytest.mark.parametrize("record", [REQUESTED, REVIEWED, RULES, {**REQUESTED, "awaiting_seller": False,
                                                                   "amount": "0.5", "platform": "tiktok_shop"}])
def test_r11_1_events_cross_chatsla_events_unchanged(record: dict) -> None:
    """An after-sales event and an aftersale_rules shop event (R11.2) decode on the worker's side
    to exactly what the router decoded (the rules ref included: it was a poison bad_length before)."""
    ev = decode(orjson.dumps(record))
    (src, back), = decode_internal(encode_batch([encode_event(ev, "aftersale.requests/2")]))
    assert src == "aftersale.requests/2"
    assert event_to_list(back) == event_to_list(ev)
    assert event_to_list(decode(event_json(ev))) == event_to_list(ev)  # a future_time dead letter's body


_ITEM = orjson.loads(encode_event(decode(orjson.dumps(REQUESTED)), "aftersale.requests/0"))
_REVIEW_ITEM = orjson.loads(encode_event(decode(orjson.dumps(REVIEWED)), "aftersale.requests/0"))


def _with(item: list, i: int, value: object) -> bytes:
    v = list(item[1])
    v[i] = value
    return orjson.dumps([item[0], v])


@pytest.mark.parametrize("value, reason", [
    (_with(_ITEM, 6, "soon"), "bad_time"),
    (_with(_ITEM, 16, "2026"), "bad_time"),  # delivered_at
    (_with(_ITEM, 1, 5), "bad_type"),
    (_with(_ITEM, 10, 98.0), "bad_type"),  # an amount as a float
    (_with(_ITEM, 14, "70"), "bad_type"),  # buyer_credit
    (_with(_ITEM, 5, "opened"), "bad_value"),
    (_with(_ITEM, 7, "gift"), "bad_value"),  # request_type the model indexes its windows by
    (_with(_ITEM, 10, "1e3"), "bad_value"),  # not a decimal string: Decimal would take it, the rules not
    (_with(_ITEM, 18, None), "bad_value"),  # awaiting_seller is set on every requested
    (_with(_REVIEW_ITEM, 19, "robot"), "bad_value"),
    (orjson.dumps(["shop.events/0", ["s", "e", "S9", "aftersale_rules", 1, None, 7]]), "bad_type"),
    (orjson.dumps(["shop.events/0", ["s", "e", "S9", "vacation_on", 1, None, "x@1"]]), "bad_value"),
    (orjson.dumps(["aftersale.requests/0", ["a", "e"]]), "bad_length"),
])
def test_issue_10_finding_2_a_bad_aftersale_item_is_poison(value: bytes, reason: str) -> None:
    """Checked down to what the aftersale model reads, so a record that decodes cannot fail in the
    engine for its shape (the worker's crash-only rule)."""
    with pytest.raises(PoisonRecord) as e:
        decode_internal(value)
    assert e.value.reason == reason


def test_r11_1_the_router_forwards_requests_by_shop_and_dead_letters_bad_ones() -> None:
    """route(): a valid request is forwarded to its shop's chatsla.events partition tagged with its
    aftersale.requests partition; an invalid one goes to aftersale.requests.dlq with its original
    key and bytes and the R11.1 reason (R1)."""
    bad = orjson.dumps({**REQUESTED, "amount": 98})
    missing = orjson.dumps({k: v for k, v in REQUESTED.items() if k != "currency"})
    inputs = [Msg(0, orjson.dumps(REQUESTED), topic="aftersale.requests", partition=1, key=b"v1"),
              Msg(1, bad, topic="aftersale.requests", partition=1, key=b"v1"),
              Msg(2, missing, topic="aftersale.requests", partition=1, key=b"v1"),
              Msg(5, orjson.dumps(RULES), topic="shop.events", partition=0, key=b"S9")]
    broker = Broker()
    w = make_worker(broker, Journal())
    routed = w.route(inputs)
    asyncio.run(w.producer.flush())
    (p, items), = routed.items()
    assert [orjson.loads(i)[0] for i in items] == ["aftersale.requests/1", "shop.events/0"]
    assert [(t, k, v, h["chatsla-reason"], h["chatsla-source"]) for t, k, v, h in broker.dead] == [
        ("aftersale.requests.dlq", b"v1", bad, b"bad_type:amount", b"aftersale.requests/1@1"),
        ("aftersale.requests.dlq", b"v1", missing, b"missing_field:currency", b"aftersale.requests/1@2")]
    assert w.metrics.registry.get_sample_value("chatsla_dlq_records_total", {"topic": "aftersale.requests.dlq"}) == 2
    assert w.position[("aftersale.requests", 1)] == 3


def test_the_worker_hosts_the_aftersale_model() -> None:
    """policies_for gives tiktok_aftersale, so every partition's engine hosts R11 beside the rest."""
    assert [p.model for p in policies_for(())][-1] == "aftersale"
    assert policies_for(())[-1].ref == "tiktok_aftersale@2026-01"


_JSON = st.none() | st.booleans() | st.integers(min_value=-2**63, max_value=2**63 - 1) | st.text(max_size=5) \
    | st.sampled_from(["12.50", "cancel", "exchange", "platform", "rejected", "reviewed", "USD"])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([_ITEM, _REVIEW_ITEM]), st.lists(st.tuples(st.integers(1, 20), _JSON), min_size=1, max_size=3))
def test_issue_10_finding_2_an_aftersale_item_that_decodes_cannot_fail_in_the_engine(item: list, changes: list) -> None:
    """Any field of an after-sales item replaced by any JSON value: either poison, or an event the
    engine hosting every model applies and runs to its deadlines without raising (a raise there
    would stop the worker: crash-only)."""
    v = list(item[1])
    for i, x in changes:
        v[i] = x
    try:
        (src, ev), = decode_internal(orjson.dumps([item[0], v]))
    except PoisonRecord:
        return
    policies = policies_for(())
    engine = Engine(policies[0], EngineConfig(), policies=policies[1:])
    engine.apply(decode(orjson.dumps(RULES)))
    engine.apply(decode(orjson.dumps(REQUESTED)))
    engine.apply(ev, src)
    engine.advance(ev.t + 70 * 86_400_000_000)
    engine.take()
