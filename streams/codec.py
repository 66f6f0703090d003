"""Encodings on the pipeline's own topics.

``chatsla.events`` carries validated events in a compact list form (no second validation, cheap
to decode) tagged with the input partition they came from, plus heartbeat ticks. Because ticks are
records of that topic, a replay of it sees exactly the ticks the live run saw (RULES R6.2).

The router writes the events it takes from one fetch for one partition as a single *batch*
record, in their log order. Each Kafka record costs a Faust worker far more than the engine's
work on an event (a produce on one side, the consumer's per-message machinery on the other;
BENCHMARKS.md, "Live worker"), so batching is what lets the two hops cost less than a plain
one-record-per-event agent. Single-event records are still read, so a topic written by an older
router, or by hand, stays valid.
Output records are the JSON objects of ``schemas/session.schema.json`` and
``schemas/assessment.schema.json``.
"""

from __future__ import annotations

from typing import Iterator

import orjson

from chatsla.core.calendar import zone
from chatsla.core.engine import event_to_list
import re

from chatsla.core.events import (
    AFTERSALE_DECISIONS, AFTERSALE_REQUEST_TYPES, AFTERSALE_REVIEWERS, AFTERSALE_TYPES, KINDS, MESSAGE_TYPES,
    SENDERS, SHOP_EVENT_TYPES, TICKET_PRIORITIES, TICKET_RESULTS, TICKET_TYPES, AftersaleRequest, ChatMessage,
    ShopEvent, TicketEvent, aftersale_from_list, new_chat_message,
)

TICK = "tick"
FLUSH = "flush"  # asks the owner of the partition to checkpoint now (no effect on results)
BATCH = "batch"  # ["batch", [item, ...]], each item as encode_event writes it
_HEADS = frozenset({TICK, FLUSH, BATCH})  # never the source of an event item

# The times this topic may carry. The engine's calendar works with Python datetimes (years 1 to
# 9999) and adds weeks, days and retention periods to them, so a time near either end overflows
# inside the engine (a tick at year 9999 did, issue #10 finding 5). Event times keep a week's
# margin from year 1 (RULES R1 allows any RFC 3339 time; the router's future check stops the far
# side in live mode); ticks are wall-clock readings, so before 1970 or after year 9000 they can
# only be corrupt.
TIME_MIN_US = -62_135_596_800_000_000 + 7 * 86_400_000_000  # 0001-01-08T00:00:00Z
TIME_MAX_US = 221_845_392_000_000_000  # 9000-01-01T00:00:00Z
TICK_MIN_US = 0

_dumps, _loads = orjson.dumps, orjson.loads


class PoisonRecord(ValueError):
    """A record of ``chatsla.events`` (or an item of a batch record) that cannot be decoded.

    Kept apart from every other exception on purpose: a poison record is bad *input* (written by
    hand, by a buggy or foreign producer, or corrupted) and goes to ``chatsla.events.dlq`` while
    processing goes on; anything else raised while applying a record is a bug of ours and still
    stops the worker (crash-only, ``streams/app.py``). ``reason`` is machine-readable, in the
    style of the input DLQs' reasons (``schemas/decode.py``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def source_tag(topic: str, partition: int) -> str:
    """Identity of an input partition: the unit of R6.2's per-partition watermark."""
    return f"{topic}/{partition}"


def encode_event(ev: ChatMessage | ShopEvent | TicketEvent | AftersaleRequest, source: str) -> bytes:
    return _dumps([source, event_to_list(ev)])


BATCH_BYTES = 256 * 1024  # a batch record stays far below Kafka's default 1 MB message limit


def encode_batch(items: list[bytes]) -> bytes:
    """One record for several ``encode_event`` outputs, kept in order (joined, not re-encoded)."""
    return b'["batch",[' + b",".join(items) + b"]]"


def batch_records(items: list[bytes], max_bytes: int = BATCH_BYTES) -> Iterator[bytes]:
    """``items`` as batch records in order, each under ``max_bytes`` unless one item alone is
    larger (it then travels in a batch of its own)."""
    start, size = 0, 0
    for i, item in enumerate(items):
        if size + len(item) > max_bytes and i > start:
            yield encode_batch(items[start:i])
            start, size = i, 0
        size += len(item) + 1
    if start < len(items):
        yield encode_batch(items[start:])


def encode_tick(t: int) -> bytes:
    return _dumps([TICK, t])


def encode_flush() -> bytes:
    return _dumps([FLUSH, 0])


def decode_internal(value: bytes) -> list[tuple[str, ChatMessage | ShopEvent | TicketEvent | int]]:
    """The items of one record, in order: ``(source, event)``, ``("tick", time_us)`` or
    ``("flush", 0)``; a batch record gives one ``(source, event)`` per event.

    Raises :class:`PoisonRecord` (and nothing else) for a record that is not one of these, checked
    down to every field the engine reads, so that a record that decodes can never fail inside the
    engine for its shape. For a batch it names the first bad item; :func:`split_poison` keeps
    the good items of such a batch."""
    try:
        head, body = _loads(value)
    except ValueError:  # orjson.JSONDecodeError is a ValueError; so is unpacking the wrong length
        raise PoisonRecord("not_json" if not _is_json(value) else "bad_shape") from None
    except TypeError:  # not a sequence (a number, null)
        raise PoisonRecord("bad_shape") from None
    if head == BATCH:
        if type(body) is not list:
            raise PoisonRecord("bad_batch")
        try:
            return [_item(item) for item in body]
        except PoisonRecord as e:  # find which one (slow path, poison only)
            for i, item in enumerate(body):
                try:
                    _item(item)
                except PoisonRecord:
                    raise PoisonRecord(f"batch_item:{i}:{e.reason}") from None
            raise
    if head == TICK:
        if type(body) is not int or not TICK_MIN_US <= body <= TIME_MAX_US:
            raise PoisonRecord("bad_tick")
        return [(TICK, body)]
    if head == FLUSH:
        return [(FLUSH, 0)]
    if type(head) is not str:
        raise PoisonRecord("bad_head")
    return [_item([head, body])]


def _is_json(value: bytes) -> bool:
    try:
        _loads(value)
    except ValueError:
        return False
    return True


def _item(item: object) -> tuple[str, ChatMessage | ShopEvent | TicketEvent]:
    """One ``[source, event list]`` item (the inverse of :func:`encode_event`), fully checked.

    On the hot path: a few type checks per event (well under a microsecond), against a crash loop
    of the whole worker for one bad record (issue #10 finding 2)."""
    if type(item) is not list or len(item) != 2:
        raise PoisonRecord("bad_item")
    source, v = item
    if type(source) is not str or source in _HEADS:
        raise PoisonRecord("bad_source")
    if type(v) is not list:
        raise PoisonRecord("bad_event")
    n = len(v)
    if n == 9 and v[0] == "c":
        _, eid, shop, conv, sender, t, kind, mtype, platform = v
        if type(t) is not int or not TIME_MIN_US <= t <= TIME_MAX_US:
            raise PoisonRecord("bad_time")
        # Membership in the sets of allowed strs is also the type check of sender, kind and
        # message type (a JSON list is unhashable: TypeError, caught as a bad type).
        try:
            known = sender in SENDERS and kind in KINDS and mtype in MESSAGE_TYPES
        except TypeError:
            known = False
        if (not known or type(eid) is not str or type(shop) is not str or type(conv) is not str
                or type(platform) is not str):
            raise PoisonRecord("bad_type" if _not_all_str(sender, kind, mtype, eid, shop, conv, platform)
                               else "bad_value")
        return source, new_chat_message(eid, shop, conv, sender, t, kind, mtype, platform)
    if (n == 6 or n == 7) and v[0] == "s":  # shop events are rare: the zone lookup is cached anyway
        # 7 items: an ``aftersale_rules`` event with its ``rules`` (R11.2, event_to_list)
        _, eid, shop, type_, t, tz = v[:6]
        rules = v[6] if n == 7 else None
        if type(t) is not int or not TIME_MIN_US <= t <= TIME_MAX_US:
            raise PoisonRecord("bad_time")
        if type(eid) is not str or type(shop) is not str or type(type_) is not str:
            raise PoisonRecord("bad_type")
        if type_ not in SHOP_EVENT_TYPES:
            raise PoisonRecord("bad_value")
        if type_ == "timezone" or tz is not None:
            if type(tz) is not str:
                raise PoisonRecord("bad_type")
            try:
                zone(tz)
            except Exception:  # ZoneInfoNotFoundError, or a name the file system rejects
                raise PoisonRecord("bad_timezone") from None
        if type_ == "aftersale_rules" or rules is not None:
            if type(rules) is not str:
                raise PoisonRecord("bad_type")
            if type_ != "aftersale_rules":
                raise PoisonRecord("bad_value")
        return source, ShopEvent(eid, shop, type_, t, tz, rules)
    if n == 12 and v[0] == "t":  # a ticket event (ticket_to_list): after the chat path, not in its way
        return source, _ticket(v)
    if n == _AFTERSALE_LEN and v[0] == "a":  # an after-sales event (aftersale_to_list, issue #14)
        return source, _aftersale(v)
    raise PoisonRecord("bad_kind" if n and v[0] not in ("c", "s", "t", "a") else "bad_length")


def _ticket(v: list) -> TicketEvent:
    """A ticket event's list (``ticket_to_list``), checked down to what the service_tickets model
    reads: the value sets it indexes by (type, priority), the ints it computes with (times, SLA)."""
    _, eid, shop, ticket, type_, t, priority, category, sla, due, result, platform = v
    if type(t) is not int or not TIME_MIN_US <= t <= TIME_MAX_US:
        raise PoisonRecord("bad_time")
    if (type(eid) is not str or type(shop) is not str or type(ticket) is not str or type(type_) is not str
            or type(platform) is not str):
        raise PoisonRecord("bad_type")
    if not (priority is None or type(priority) is str) or not (category is None or type(category) is str) \
            or not (result is None or type(result) is str) or not (sla is None or type(sla) is int) \
            or not (due is None or type(due) is int):
        raise PoisonRecord("bad_type")
    if type_ not in TICKET_TYPES or (result is not None and result not in TICKET_RESULTS):
        raise PoisonRecord("bad_value")
    if type_ == "created" and (priority not in TICKET_PRIORITIES or (sla is not None and sla < 1)
                               or (priority == "agreed" and sla is None)
                               or (due is not None and not t <= due <= TIME_MAX_US)):
        raise PoisonRecord("bad_value")
    return TicketEvent(eid, shop, ticket, type_, t, priority, category, sla, due, result, platform)


_AFTERSALE_LEN = 1 + len(AftersaleRequest.__slots__)
_DECIMAL = re.compile(r"(0|[1-9][0-9]{0,17})(\.[0-9]{1,6})?")  # as the decoder's (schemas/decode.py, R11.1)


def _aftersale(v: list) -> AftersaleRequest:
    """An after-sales event's list (``aftersale_to_list``), checked down to what the aftersale
    model reads (RULES R11.1): the sets it indexes by (type, request_type, by, decision), the ints
    it computes with (times, credit), the decimal strings it turns into ``Decimal``, the flags."""
    (_, eid, shop, request, platform, type_, t, rtype, reason, category, amount, currency, sku, buyer, credit,
     shipped, delivered, cost, awaiting, by, decision) = v
    if type(t) is not int or not TIME_MIN_US <= t <= TIME_MAX_US:
        raise PoisonRecord("bad_time")
    if not (delivered is None or (type(delivered) is int and TIME_MIN_US <= delivered <= TIME_MAX_US)):
        raise PoisonRecord("bad_time")
    if _not_all_str(eid, shop, request, platform, type_):
        raise PoisonRecord("bad_type")
    for x in (rtype, reason, category, amount, currency, sku, buyer, cost, by, decision):
        if x is not None and type(x) is not str:
            raise PoisonRecord("bad_type")
    if not (credit is None or type(credit) is int) or not (shipped is None or type(shipped) is bool) \
            or not (awaiting is None or type(awaiting) is bool):
        raise PoisonRecord("bad_type")
    if type_ not in AFTERSALE_TYPES:
        raise PoisonRecord("bad_value")
    if type_ == "requested":
        if (rtype not in AFTERSALE_REQUEST_TYPES or reason is None or currency is None or amount is None
                or _DECIMAL.fullmatch(amount) is None or (cost is not None and _DECIMAL.fullmatch(cost) is None)
                or awaiting is None or (credit is not None and not 0 <= credit <= 100)):
            raise PoisonRecord("bad_value")
    elif by not in AFTERSALE_REVIEWERS or decision not in AFTERSALE_DECISIONS:
        raise PoisonRecord("bad_value")
    return aftersale_from_list(v)


def _not_all_str(*values: object) -> bool:
    return any(type(v) is not str for v in values)


def split_poison(value: bytes) -> tuple[bytes | None, list[tuple[int, str]]]:
    """A record :func:`decode_internal` rejected, item by item (the slow path, only for poison):
    ``(record of the good items or None, [(index, reason), ...] of the bad ones)``.

    Only a batch record has items that can be kept: the good ones, re-encoded in their order as a
    batch record, are applied as if the bad ones had never been written (each event carries its
    own source, so nothing else depends on them). Any other record is bad as a whole, index 0."""
    try:
        decode_internal(value)
        return value, []
    except PoisonRecord as e:
        whole = e.reason
    try:
        head, body = _loads(value)
    except (ValueError, TypeError):
        return None, [(0, whole)]
    if head != BATCH or type(body) is not list:
        return None, [(0, whole)]
    good: list[bytes] = []
    bad: list[tuple[int, str]] = []
    for i, item in enumerate(body):
        try:
            _item(item)
            good.append(_dumps(item))
        except PoisonRecord as e:
            bad.append((i, e.reason))
    return (encode_batch(good) if good else None), bad


def event_json(ev: ChatMessage | ShopEvent | TicketEvent | AftersaleRequest) -> bytes:
    """An event as its input schema's JSON (R1): what a dead-letter record carries for an event the
    engine rejected after routing (``future_time``), whose original bytes stay on the input topic
    at the offset its ``chatsla-source`` header names."""
    from chatsla.core.timefmt import format_time

    if type(ev) is ShopEvent:
        obj: dict = {"schema": "shop.event/v1", "event_id": ev.event_id, "shop_id": ev.shop_id, "type": ev.type}
        if ev.timezone is not None:
            obj["timezone"] = ev.timezone
        if ev.rules is not None:  # an aftersale_rules event (R11.2)
            obj["rules"] = ev.rules
        obj["at"] = format_time(ev.t)
        return _dumps(obj)
    if type(ev) is AftersaleRequest:  # R11.1: the fields the event carries, in the schema's names
        obj = {"schema": "aftersale.request/v1"}
        for k in AftersaleRequest.__slots__:
            x = getattr(ev, k)
            if x is None:
                continue
            if k == "t":
                obj["at"] = format_time(x)
            elif k == "delivered_at":
                obj[k] = format_time(x)
            else:
                obj[k] = x
        return _dumps(obj)
    if type(ev) is TicketEvent:
        obj = {"schema": "ticket.event/v1", "event_id": ev.event_id, "shop_id": ev.shop_id, "ticket_id": ev.ticket_id,
               "platform": ev.platform, "type": ev.type, "at": format_time(ev.t)}
        for k in ("priority", "category", "sla_minutes", "result"):
            if getattr(ev, k) is not None:
                obj[k] = getattr(ev, k)
        if ev.due_at is not None:
            obj["due_at"] = format_time(ev.due_at)
        return _dumps(obj)
    return _dumps({"schema": "chat.message/v1", "event_id": ev.event_id, "shop_id": ev.shop_id,
                   "conversation_id": ev.conversation_id, "platform": ev.platform, "sender": ev.sender,
                   "kind": ev.kind, "message_type": ev.message_type, "sent_at": format_time(ev.t)})


def encode_record(record: dict) -> bytes:
    return _dumps(record)
