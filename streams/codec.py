"""Encodings on the pipeline's own topics.

``chatsla.events`` carries validated events in a compact list form (no second validation, cheap
to decode) tagged with the input partition they came from, plus heartbeat ticks. Because ticks are
records of that topic, a replay of it sees exactly the ticks the live run saw (RULES R6.2).
Output records are the JSON objects of ``schemas/session.schema.json`` and
``schemas/assessment.schema.json``.
"""

from __future__ import annotations

import orjson

from chatsla.core.engine import _event_from_list, _event_to_list
from schemas.events import ChatMessage, ShopEvent

TICK = "tick"
FLUSH = "flush"  # asks the owner of the partition to checkpoint now (no effect on results)

_dumps, _loads = orjson.dumps, orjson.loads


def source_tag(topic: str, partition: int) -> str:
    """Identity of an input partition: the unit of R6.2's per-partition watermark."""
    return f"{topic}/{partition}"


def encode_event(ev: ChatMessage | ShopEvent, source: str) -> bytes:
    return _dumps([source, _event_to_list(ev)])


def encode_tick(t: int) -> bytes:
    return _dumps([TICK, t])


def encode_flush() -> bytes:
    return _dumps([FLUSH, 0])


def decode_internal(value: bytes) -> tuple[str, ChatMessage | ShopEvent | int]:
    """``(source, event)``, ``("tick", time_us)`` or ``("flush", 0)``."""
    head, body = _loads(value)
    if head == TICK or head == FLUSH:
        return head, body
    return head, _event_from_list(body)


def encode_record(record: dict) -> bytes:
    return _dumps(record)
