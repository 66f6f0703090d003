"""The one feeding loop: records in, engine applied, invalid records counted by reason (issue #11).

``chatsla audit`` (lines of a file), ``chatsla replay`` (records read from Kafka) and the live
worker (``chatsla.events`` records) feed the core's :class:`~chatsla.core.engine.Engine` through a
:class:`Feeder`, so that what counts as invalid and under which reason, what is too large, and how
late events are noticed is written once:

* :meth:`Feeder.feed_lines` decodes raw lines (R1) and screens them: a line longer than
  ``max_record_bytes`` is ``too_large`` and not parsed, a blank one ``empty_line``, a record that
  names a key twice ``duplicate_key`` (``schemas/decode.py``); the valid events go to the engine a
  chunk at a time (``Engine.apply_many``, the audit's hot path, one source).
* :meth:`Feeder.feed` takes records already decoded by the Kafka reader
  (``chatsla.streams.reader`` record tuples: offset, source, value, event), so that decoding can
  run in the replay's reader process; each event is applied with its partition's source tag
  (R6.2), and an event the engine counts late (R6.4) is reported to ``on_late``.

* :meth:`Feeder.feed_items` takes the items of one ``chatsla.events`` record, which the worker's
  router decoded and screened with the same :func:`~chatsla.schemas.decode.decode` (its invalid
  records went to their input's dead-letter topic with that reason): events with their source
  tag, ticks (R6.2 live mode) and checkpoint requests.

Invalid records are counted in ``invalid`` by reason (``Engine.stats`` adds the engine's own
rejections) and reported to ``on_invalid(position, reason, value)``: the line number or offset,
the reason, the record's bytes (None where unknown). Nothing is dropped silently.

Not in ``chatsla.core``: decoding is ``chatsla.schemas``' job, and the core imports neither.
"""

from __future__ import annotations

from collections import Counter
from itertools import islice
from typing import Callable, Iterable

import orjson

from chatsla.core.engine import Engine
from chatsla.streams.codec import FLUSH, TICK
from chatsla.core.events import CHAT_SCHEMA, TICKET_SCHEMA, ChatMessage, Invalid, ShopEvent
from chatsla.schemas.decode import (DUPLICATE_KEY, MAX_RECORD_BYTES, decode, decode_chat, decode_ticket,
                                    has_duplicate_keys)

InvalidHook = Callable[[int, str, "bytes | None"], None]  # (line number or offset, reason, record)
LateHook = Callable[[ChatMessage | ShopEvent, str, int], None]  # (event, source, offset)

TOO_LARGE = Invalid("too_large")  # stands in for a line longer than max_record_bytes
CHUNK = 2048  # lines decoded before their events go to the engine
_OFFSET, _SOURCE, _VALUE, _EVENT = 4, 5, 6, 7  # chatsla.streams.reader record tuples


def empty_reason(value: bytes | None, ev: Invalid) -> str:
    """The reason for an invalid record: a blank one is ``empty_line`` (docs/rules.md, readings)."""
    return "empty_line" if not value or not value.strip() else ev.reason


def named_shop(value: bytes | None) -> str | None:
    """The shop an invalid record names: its ``shop_id`` if it is a JSON object with a string there."""
    if not value:
        return None
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    shop = obj.get("shop_id") if isinstance(obj, dict) else None
    return shop if isinstance(shop, str) else None


class Feeder:
    """Feeds records to ``engine``, counting invalid ones in ``invalid`` by reason (module docs).

    ``read`` is the number of records fed so far, valid or not.
    """

    def __init__(self, engine: Engine, invalid: Counter[str] | None = None, on_invalid: InvalidHook | None = None,
                 on_late: LateHook | None = None) -> None:
        self.engine = engine
        self.invalid: Counter[str] = Counter() if invalid is None else invalid
        self.on_invalid = on_invalid
        self.on_late = on_late
        self.read = 0

    def feed_lines(self, lines: Iterable[bytes], max_record_bytes: int = MAX_RECORD_BYTES) -> int:
        """Decode, screen and apply ``lines`` (one R1 record each, in log order); returns ``read``.

        ``on_invalid`` gets the 1-based line number (counted over every call).
        """
        apply_many = self.engine.apply_many
        invalid, on_invalid = self.invalid, self.on_invalid
        loads, JSONDecodeError = orjson.loads, orjson.JSONDecodeError
        read = self.read
        chunk: list = []
        push = chunk.append
        source = iter(lines)
        # Lines are decoded a chunk at a time and the chunk's events handed to the engine in one
        # call (Engine.apply_many runs its hot path on local variables).
        while block := list(islice(source, CHUNK)):
            # The size limit a chunk at a time, in C: the loop below never pays for it.
            if max(map(len, block)) > max_record_bytes:
                block = [line if len(line) <= max_record_bytes else TOO_LARGE for line in block]
            for read, line in enumerate(block, read + 1):
                # decode(line), with its hot case (a chat message) inlined: one call less per event.
                # ``obj["schema"]`` raises TypeError unless obj is a JSON object, KeyError if it
                # has no schema: both cases go through decode, which finds the reason.
                try:
                    obj = loads(line)
                    schema = obj["schema"]
                except (JSONDecodeError, KeyError, TypeError):  # TypeError: TOO_LARGE too
                    schema = None
                if schema == CHAT_SCHEMA:
                    ev = decode_chat(obj, line)  # a valid message is checked for repeated keys
                    if type(ev) is Invalid and ev is not DUPLICATE_KEY and has_duplicate_keys(line, obj):
                        ev = DUPLICATE_KEY  # an invalid one too: which value is meant is unknown
                elif schema == TICKET_SCHEMA:  # parsed once, as decode would (issue #12)
                    ev = decode_ticket(obj, line)
                else:
                    ev = line if line is TOO_LARGE else decode(line, max_record_bytes)
                if type(ev) is Invalid:
                    reason = ev.reason if line is TOO_LARGE or line.strip() else "empty_line"
                    invalid[reason] += 1
                    if on_invalid is not None:
                        on_invalid(read, reason, None if line is TOO_LARGE else line)
                    continue
                push(ev)
            apply_many(chunk)
            chunk.clear()
        self.read = read
        return read

    def feed(self, records: list[tuple]) -> int:
        """Apply decoded records (``chatsla.streams.reader`` tuples), each with its source; returns
        the number of records in ``records``.

        ``on_invalid`` gets the record's offset; ``on_late`` every event the engine counted late.
        The tuple indexes are literals (``_EVENT`` is 7, ``_SOURCE`` 5, ``_OFFSET`` 4): this loop
        runs once per record read.
        """
        engine = self.engine
        apply, counters = engine.apply, engine.counters
        on_late = self.on_late
        _Invalid = Invalid
        if on_late is None:
            for rec in records:
                ev = rec[7]
                if type(ev) is _Invalid:
                    self._invalid(rec, ev)
                    continue
                apply(ev, rec[5])
        else:
            for rec in records:
                ev = rec[7]
                if type(ev) is _Invalid:
                    self._invalid(rec, ev)
                    continue
                before = counters["late"]
                apply(ev, rec[5])
                if counters["late"] != before:
                    on_late(ev, rec[5], rec[4])
        n = len(records)
        self.read += n
        return n

    def _invalid(self, rec: tuple, ev: Invalid) -> None:
        value = rec[_VALUE]
        reason = empty_reason(value, ev)
        self.invalid[reason] += 1
        if self.on_invalid is not None:
            self.on_invalid(rec[_OFFSET], reason, value)

    def feed_items(self, items: list[tuple]) -> bool:
        """Apply the ``(source, body)`` items of one ``chatsla.events`` record in order: an event
        read from ``source`` (an input partition's tag), a tick ``(TICK, t)`` or a checkpoint
        request ``(FLUSH, _)``. Returns True if the record asked for a checkpoint."""
        engine = self.engine
        apply = engine.apply
        flush = False
        for source, body in items:
            if source == TICK:
                engine.advance(body)  # type: ignore[arg-type]
            elif source == FLUSH:
                flush = True
            else:
                apply(body, source)  # type: ignore[arg-type]
        self.read += len(items)
        return flush
