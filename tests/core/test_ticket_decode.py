"""``ticket.event/v1`` decoding (RULES R9.1): the R9.1 reasons, R1's generic ones, and the JSON
Schema file agreeing with the decoder on every case it can express (due_at before at is the one
rule JSON Schema cannot state)."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from chatsla.core.events import TicketEvent, ticket_from_list, ticket_to_list
from chatsla.core.timefmt import format_time
from chatsla.schemas.decode import decode, decode_ticket
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


# ------------------------------------------------- the feeder's one-parse path (issue #12 speed)
def _same(a: object, b: object) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, TicketEvent):
        return ticket_to_list(a) == ticket_to_list(b)  # type: ignore[arg-type]
    return (a.reason, a.detail) == (b.reason, b.detail)  # type: ignore[attr-defined]


_EXTRA_CASES = [
    b'{"schema":"ticket.event/v1","event_id":"e1","shop_id":"S1","ticket_id":"T1","type":"closed",'
    b'"at":"2026-11-02T12:00:00Z","type":"closed"}',  # a repeated key, same value: still duplicate_key
    b'{"schema":"ticket.event/v1","event_id":"e\\"1","shop_id":"S1","ticket_id":"T1","type":"closed",'
    b'"at":"2026-11-02T12:00:00.250000Z"}',  # an escaped quote: the count differs, no key repeats
    b'{"schema":"ticket.event/v1","event_id":"e1","shop_id":"S1","ticket_id":"T1","type":"handled",'
    b'"at":"2026-11-02T12:00:00Z","result":"resolved","result":"nonsense"}',
    b'{"schema":"ticket.event/v1","event_id":"e1","shop_id":"S1","ticket_id":"T1","type":"created",'
    b'"at":"2026-11-02T12:00:00Z","priority":"agreed","sla_minutes":true}',
    b'{"schema":"ticket.event/v1","event_id":"e1","shop_id":"S1","ticket_id":"T1","type":"created",'
    b'"at":"2026-11-02T12:00:00Z","priority":"normal","sla_minutes":{"a":"b"}}',
    b'{"schema":"ticket.event/v1","event_id":"","shop_id":"S1","ticket_id":"T1","type":"closed","at":"x"}',
]


def _is_ticket(data: bytes) -> bool:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return type(obj) is dict and obj.get("schema") == "ticket.event/v1"  # (decode_ticket's precondition)


@pytest.mark.parametrize("data", [c[0] for c in CASES if _is_ticket(c[0])] + _EXTRA_CASES)
def test_decode_ticket_answers_what_decode_answers(data: bytes) -> None:
    """Issue #12 (the audit path's speed): the feeder parses a ticket line once and calls
    ``decode_ticket(obj, line)``, whose fast path covers the common shapes; its answer (event or
    reason, ``duplicate_key`` included) must be ``decode(line)``'s for every case."""
    assert _same(decode_ticket(orjson.loads(data), data), decode(data)), data


_values = st.one_of(st.sampled_from(["created", "handled", "closed", "normal", "urgent", "agreed", "resolved",
                                     "returned", "", "douyin", "2026-11-02T12:00:00Z", "2026-11-02T12:00:00.123456Z",
                                     "2026-11-02T12:00:00.12345Z", "2026-11-02T25:00:00.123456Z", 'e"q']),
                    st.integers(-2, 600000), st.booleans(), st.none(), st.just({"k": "v"}))
_keys = st.sampled_from(["event_id", "shop_id", "ticket_id", "type", "at", "priority", "sla_minutes", "result",
                         "category", "due_at", "platform", "extra"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_keys, _values), max_size=4), st.sampled_from(["created", "handled", "closed"]),
       st.booleans())
def test_decode_ticket_agrees_with_decode_on_any_record(changes, typ, repeat) -> None:
    """Issue #12: ``decode_ticket`` = ``decode`` on records built from a valid one by changed,
    added, wrongly typed and (``repeat``) repeated fields, written as text so keys can repeat."""
    fields = {**BASE, "type": typ, "result": "resolved"} if typ == "handled" else {**BASE, "type": typ}
    if typ == "closed":
        del fields["priority"]
    pairs = list(fields.items())
    for k, v in changes:
        if repeat:
            pairs.append((k, v))
        else:
            pairs = [(a, b) for a, b in pairs if a != k] + [(k, v)]
    data = b"{" + b",".join(orjson.dumps(k) + b":" + orjson.dumps(v) for k, v in pairs) + b"}"
    assert _same(decode_ticket(orjson.loads(data), data), decode(data)), data


_at_texts = st.one_of(
    st.builds(lambda us: format_time(us), st.integers(1_700_000_000 * 10**6, 1_900_000_000 * 10**6)),
    st.builds(lambda d, h, ms, sep, z, frac: f"2026-11-{d:02d}{sep}{h:02d}:{ms}{frac}{z}",
              st.integers(1, 30), st.integers(0, 23), st.sampled_from(["00:00", "59:59", "07:30", "60:00"]),
              st.sampled_from(["T", "t"]), st.sampled_from(["Z", "z", "+00:00", "+08:00"]),
              st.sampled_from(["", ".123456", ".123000", ".120000", ".000000", ".5", ".123", ".1234567", ".12a456"])))


@settings(max_examples=600, deadline=None)
@given(_at_texts, st.sampled_from(["created", "handled", "closed"]))
def test_at_text_is_the_canonical_text_or_none(at: str, typ: str) -> None:
    """Issue #12 (a ticket's record reuses the input's ``at`` as ``created_at``): ``at_text`` is
    set only when it is exactly what ``format_time(t)`` writes, whatever form ``at`` had (``t``,
    ``z``, offsets, fractions with trailing zeros or of other lengths), and the canonical forms
    (whole seconds, six digits) are recognised on the fast path once their hour is in the hour
    cache (the first line of an hour goes through parse_time, which fills it: hence two decodes)."""
    fields = {**BASE, "type": typ, "at": at}
    if typ == "handled":
        fields["result"] = "resolved"
    if typ != "created":
        del fields["priority"]
    data = orjson.dumps(fields)
    first = decode_ticket(orjson.loads(data), data)
    ev = decode_ticket(orjson.loads(data), data)
    assert _same(ev, first)
    if not isinstance(ev, TicketEvent):
        return
    assert ev.at_text in (None, format_time(ev.t)), (at, ev.at_text)
    if at == format_time(ev.t) and len(at) in (20, 27):  # (whole seconds, µs; ms: not on the fast path)
        assert ev.at_text == at
