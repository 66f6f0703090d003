"""The one feeding loop (streams/feed.py) the audit and the replay share (issue #11).

Lines (the audit) and records decoded by the Kafka reader (the replay) must be counted the same
way: each invalid record once, under the same reason (R1: nothing dropped silently), and every
valid one applied to the engine; an event the engine counts late is reported (R6.4).
"""

from __future__ import annotations

from collections import Counter

import orjson

from chatsla.core.engine import Engine, EngineConfig
from chatsla.core.policy import load_policy
from chatsla.core.timefmt import MINUTE, parse_time
from chatsla.streams.feed import Feeder, named_shop
from chatsla.schemas.decode import decode
from chatsla.streams.reader import EMPTY
from tests.builders import at, msg

POLICY = load_policy()
LINES = [
    orjson.dumps(msg("c1", "buyer", at(h=1), eid="a")),
    b"",
    b"   ",
    b"not json",
    b'{"schema": "chat.message/v1", "shop_id": "s7"}',
    b'{"schema": "chat.message/v1", "event_id": "x", "event_id": "y"}',
    b"x" * 300,
    orjson.dumps(msg("c1", "seller", at(h=2), eid="b")),
]
REASONS = {"empty_line": 2, "not_json": 1, "missing_field:event_id": 1, "duplicate_key": 1, "too_large": 1}


def as_records(lines: list[bytes], source: str = "chat.messages/0") -> list[tuple]:
    """The lines as the Kafka reader hands them on (chatsla.streams.reader record tuples)."""
    return [(i, 0, "chat.messages", 0, i, source, v, decode(v, 200) if v else EMPTY) for i, v in enumerate(lines)]


def test_lines_are_screened_decoded_and_counted_by_reason() -> None:
    engine = Engine(POLICY)
    seen: list = []
    feeder = Feeder(engine, on_invalid=lambda n, reason, value: seen.append((n, reason)))
    assert feeder.feed_lines(LINES, max_record_bytes=200) == 8
    assert dict(feeder.invalid) == REASONS
    # line numbers count from 1; the too large line's bytes are not passed on
    assert seen == [(2, "empty_line"), (3, "empty_line"), (4, "not_json"), (5, "missing_field:event_id"),
                    (6, "duplicate_key"), (7, "too_large")]
    engine.finish(parse_time(at(d=9)))
    assert engine.stats["valid"] == 2 and engine.stats["sessions_opened"] == 1
    assert feeder.feed_lines([b"", b""]) == 10  # read counts over every call, as the line numbers
    assert feeder.invalid["empty_line"] == 4


def test_records_from_the_reader_are_counted_as_the_audit_counts_lines() -> None:
    """Same input through feed() and feed_lines(): the same reasons and the same engine result."""
    by_lines, by_records = Engine(POLICY), Engine(POLICY, sources=["chat.messages/0"])
    a, b = Feeder(by_lines), Feeder(by_records)
    a.feed_lines(LINES, max_record_bytes=200)
    named: list = []
    b.on_invalid = lambda off, reason, value: named.append((off, named_shop(value)))
    assert b.feed(as_records(LINES)) == 8
    assert a.invalid == b.invalid == Counter(REASONS)
    for e in (by_lines, by_records):
        e.finish(parse_time(at(d=9)))
    assert by_lines.stats == by_records.stats
    assert (4, "s7") in named and (1, None) in named  # the offset, and the shop an invalid record names


def test_an_event_the_engine_counts_late_is_reported_with_its_source_and_offset() -> None:
    """R6.4: an event more than the allowed lateness behind its source's watermark."""
    lines = [orjson.dumps(msg("c1", "buyer", at(h=1), eid="a")), orjson.dumps(msg("c2", "buyer", at(h=2), eid="b")),
             orjson.dumps(msg("c3", "buyer", at(h=1, m=30), eid="late"))]
    engine = Engine(POLICY, EngineConfig(allowed_lateness=2 * MINUTE), sources=["chat.messages/0"])
    late: list = []
    Feeder(engine, on_late=lambda ev, src, off: late.append((ev.event_id, src, off))).feed(as_records(lines))
    assert late == [("late", "chat.messages/0", 2)]
    assert engine.counters["late"] == 1


def test_the_worker_feeds_chatsla_events_items_through_the_same_loop() -> None:
    """issue #11: the live worker's items (an event with its partition tag, a tick, a checkpoint
    request) go through Feeder.feed_items, and give what the audit's loop gives for the same
    events and the same end of time (R6.2: a tick is the wall clock's watermark)."""
    from chatsla.streams.codec import FLUSH, TICK

    events = [decode(line) for line in (LINES[0], LINES[-1])]
    live = Engine(POLICY, EngineConfig(), session_updates=False, sources=["chat.messages/0"])
    feeder = Feeder(live)
    assert feeder.feed_items([("chat.messages/0", events[0]), (FLUSH, 0)]) is True
    assert feeder.feed_items([("chat.messages/0", events[1]), (TICK, parse_time(at(h=2, m=30)))]) is False
    assert feeder.read == 4
    offline = Engine(POLICY, EngineConfig(), session_updates=False)
    Feeder(offline).feed_lines([LINES[0], LINES[-1]])
    offline.finish(parse_time(at(h=2, m=30)) - EngineConfig().allowed_lateness)
    live.finish(parse_time(at(h=2, m=30)) - EngineConfig().allowed_lateness)
    assert live.take() == offline.take() != []
