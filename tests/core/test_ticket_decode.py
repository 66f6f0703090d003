"""``ticket.event/v1`` decoding (RULES R9.1): the R9.1 reasons, R1's generic ones, and the JSON
Schema file agreeing with the decoder on every case it can express (due_at before at is the one
rule JSON Schema cannot state)."""

from __future__ import annotations

import orjson
import pytest
from jsonschema import Draft202012Validator

from chatsla.core.events import TicketEvent, ticket_from_list, ticket_to_list
from chatsla.schemas.decode import decode
from chatsla.schemas.registry import load_schema

BASE = {"schema": "ticket.event/v1", "event_id": "e1", "shop_id": "S1", "ticket_id": "T1", "type": "created",
        "at": "2026-11-02T12:00:00Z", "priority": "normal"}
DEL = object()
SCHEMA = Draft202012Validator(load_schema("ticket.event.v1"))


def raw(**changes) -> bytes:
    return orjson.dumps({k: v for k, v in {**BASE, **changes}.items() if v is not DEL})


CASES = [
    # valid
    (raw(), None),
    (raw(priority="agreed", sla_minutes=240), None),
    (raw(due_at="2026-11-02T13:00:00+08:00".replace("13:00", "21:00")), None),
    (raw(due_at="2026-11-02T12:00:00Z"), None),  # not before at: equal is fine
    (raw(type="handled", priority=DEL, result="returned"), None),
    (raw(type="handled", priority=DEL, result="resolved", sla_minutes="junk"), None),  # R9.1: ignored
    (raw(type="closed", priority=DEL), None),
    (raw(category="refund", platform="douyin"), None),
    # R9.1 reasons
    (raw(priority=DEL), "missing_field:priority"),
    (raw(priority="agreed"), "missing_field:sla_minutes"),
    (raw(type="handled", priority=DEL), "missing_field:result"),
    (raw(sla_minutes=0), "bad_value:sla_minutes"),
    (raw(sla_minutes=-5), "bad_value:sla_minutes"),
    (raw(sla_minutes=1.5), "bad_value:sla_minutes"),
    (raw(sla_minutes="120"), "bad_value:sla_minutes"),
    (raw(sla_minutes=True), "bad_value:sla_minutes"),
    (raw(sla_minutes=10**7), "bad_value:sla_minutes"),
    (raw(due_at="tomorrow"), "bad_value:due_at"),
    (raw(due_at=5), "bad_value:due_at"),
    (raw(due_at="2026-11-02T11:59:59Z"), "bad_value:due_at"),  # before at (decoder only)
    # R1 generic
    (raw(ticket_id=DEL), "missing_field:ticket_id"),
    (raw(ticket_id=""), "bad_type:ticket_id"),
    (raw(event_id=7), "bad_type:event_id"),
    (raw(type="reopened"), "bad_value:type"),
    (raw(type=DEL), "missing_field:type"),
    (raw(at="2026-11-02 12:00"), "bad_time:at"),
    (raw(at=DEL), "missing_field:at"),
    (raw(priority="high"), "bad_value:priority"),
    (raw(type="handled", priority=DEL, result="done"), "bad_value:result"),
    (raw(platform=""), "bad_type:platform"),
    (raw(category=3), "bad_type:category"),
    (raw(schema="ticket.event/v2"), "unknown_schema:schema"),
    (b'{"schema":"ticket.event/v1","event_id":"e1","event_id":"e2","shop_id":"S1","ticket_id":"T1",'
     b'"type":"closed","at":"2026-11-02T12:00:00Z"}', "duplicate_key"),
]


@pytest.mark.parametrize(("data", "reason"), CASES)
def test_decoder_reasons(data: bytes, reason: str | None) -> None:
    """R9.1: every invalid event gets its machine-readable reason."""
    ev = decode(data)
    if reason is None:
        assert type(ev) is TicketEvent, ev
    else:
        assert getattr(ev, "reason", None) == reason


@pytest.mark.parametrize(("data", "reason"), [c for c in CASES if c[1] not in
                                              ("bad_value:due_at", "duplicate_key", "unknown_schema:schema")
                                              or c[0] == raw(due_at="tomorrow")])
def test_schema_file_agrees_with_the_decoder(data: bytes, reason: str | None) -> None:
    assert SCHEMA.is_valid(orjson.loads(data)) == (reason is None)


def test_decoded_fields_and_list_codec() -> None:
    ev = decode(raw(priority="agreed", sla_minutes=240, due_at="2026-11-02T20:00:00+08:00", category="refund",
                    result="ignored"))
    assert (ev.type, ev.priority, ev.sla_minutes, ev.due_at - ev.t, ev.category, ev.result, ev.platform) == (
        "created", "agreed", 240, 0, "refund", None, "douyin")
    back = ticket_from_list(orjson.loads(orjson.dumps(ticket_to_list(ev))))
    assert ticket_to_list(back) == ticket_to_list(ev)
