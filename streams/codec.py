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

from chatsla.core.engine import _event_from_list, _event_to_list
from schemas.events import ChatMessage, ShopEvent

TICK = "tick"
FLUSH = "flush"  # asks the owner of the partition to checkpoint now (no effect on results)
BATCH = "batch"  # ["batch", [item, ...]], each item as encode_event writes it

_dumps, _loads = orjson.dumps, orjson.loads


def source_tag(topic: str, partition: int) -> str:
    """Identity of an input partition: the unit of R6.2's per-partition watermark."""
    return f"{topic}/{partition}"


def encode_event(ev: ChatMessage | ShopEvent, source: str) -> bytes:
    return _dumps([source, _event_to_list(ev)])


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


def decode_internal(value: bytes) -> list[tuple[str, ChatMessage | ShopEvent | int]]:
    """The items of one record, in order: ``(source, event)``, ``("tick", time_us)`` or
    ``("flush", 0)``; a batch record gives one ``(source, event)`` per event."""
    head, body = _loads(value)
    if head == BATCH:
        return [(source, _event_from_list(ev)) for source, ev in body]
    if head == TICK or head == FLUSH:
        return [(head, body)]
    return [(head, _event_from_list(body))]


def encode_record(record: dict) -> bytes:
    return _dumps(record)
