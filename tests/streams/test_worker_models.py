"""The live worker hosting the four models (issue #12, live side; issue #14): Douyin tickets (R9),
AliExpress waits (R10) and TikTok Shop after-sales requests (R11) beside TikTok chat sessions on
every ``chatsla.events`` partition.

A mixed log from the simulator (all four platforms, shop events, jitter within the lateness, late
events) goes through the worker of ``tests/streams/test_worker.py`` (in-memory store, producer and
journal). The checks: the ticket, wait and period records equal an in-process engine run of the
same events with the same policies (the after-sales request records too, R11.5.1); a crash before *any* effect of the worker, followed by a
restart from the stored tables and the committed offset (or offset 0), gives the uninterrupted
run's outputs (latest per key) and state (RULES R6.1; docs/pipeline.md, "Crash safety"); a worker
loaded from the tables at any checkpoint holds exactly the state of the run at that point.
"""

from __future__ import annotations

import asyncio
import re

import orjson

from chatsla.core.engine import Engine, EngineConfig
from chatsla.core.models import IM_WAITS, SERVICE_TICKETS
from chatsla.schemas.decode import decode
from chatsla.simulate import SimConfig, generate
from chatsla.streams.codec import encode_batch, encode_event, encode_flush, encode_tick, source_tag
from chatsla.streams.runtime import PartitionRuntime, Tables
from chatsla.core.policy import policies_for
from tests.streams.test_worker import (
    CHECKPOINT, SETTINGS, Broker, Crash, Journal, drain, feed, make_worker, shape, state,
)

BATCH = 6  # events per batch record
LAST_TICK = 30 * 86_400_000_000  # the last tick's step past the last event
POLICIES = policies_for(())


def _events(late_fraction: float) -> list[tuple[str, object]]:
    sim = SimConfig(seed=3, shops=2, conversations_per_shop=6, days=2, vacation_shop=None, jitter_seconds=60,
                    late_fraction=late_fraction, platforms=("tiktok_shop", "douyin", "aliexpress", "aftersale"),
                    douyin_shops=1, tickets_per_shop=25, aliexpress_shops=1, aliexpress_conversations=15,
                    aftersale_shops=1, aftersale_requests=12)
    out = []
    for i, (topic, _, value) in enumerate(generate(sim)):
        # the router's source tags: chat.messages partitions 0/1 hold the watermark (R6.2)
        src = source_tag("chat.messages", i % 2) if topic == "chat.messages" else source_tag(topic, 0)
        out.append((src, decode(value)))
    return out


def _log(events: list[tuple[str, object]]) -> list[bytes]:
    """Batch records of BATCH events, a tick (the largest time so far) every third batch, and a
    last tick thirty days on, so every day and week period, every deadline and the after-sales
    month (R11.6.3) comes due."""
    records, top = [], 0
    for n, i in enumerate(range(0, len(events), BATCH)):
        chunk = events[i:i + BATCH]
        records.append(encode_batch([encode_event(ev, src) for src, ev in chunk]))
        top = max([top, *(ev.t for _, ev in chunk)])  # type: ignore[attr-defined]
        if n % 3 == 2:
            records.append(encode_tick(top))
    records.append(encode_tick(top + LAST_TICK))
    return records + [encode_flush()]


EVENTS = _events(0.0)
MIXED = _log(_events(0.05))  # with late events (R6.4): replays must flag them identically


def latest(broker: Broker) -> dict:
    """The latest record per key, for every output kind (docs/pipeline.md)."""
    out = {}
    for kind, _, value in broker.delivered:
        rec = orjson.loads(value)
        out[_key(kind, rec)] = rec
    return out


def _key(kind: str, rec: dict) -> tuple:
    """A record's identity: an after-sales period's row is its request type or group (R11.5.2, R11.6.3)."""
    ident = rec.get("session_id") or rec.get("ticket_id") or rec.get("wait_id") or rec.get("request_id")
    return (kind, rec["shop_id"], ident, rec.get("week_start"), rec.get("period"), rec.get("start"),
            rec.get("request_type") or rec.get("group"))
    return out


def run(records: list[bytes], crash_at: int | None = None, from_zero: bool = False) -> tuple[dict, dict, Journal]:
    async def go() -> tuple[dict, dict, Journal]:
        broker, journal = Broker(), Journal(crash_at)
        worker = make_worker(broker, journal)
        log = list(records)
        try:
            await feed(worker, broker, log)
        except Crash:
            journal.crash_at = None
            worker = make_worker(broker, journal)
            await feed(worker, broker, log, 0 if from_zero else broker.committed())
        await drain(worker, broker, log)
        assert broker.committed() == len(log)
        return latest(broker), state(worker), journal
    return asyncio.run(go())


REFERENCE = run(MIXED)


def test_the_worker_hosts_every_model_and_the_mixed_log_exercises_them() -> None:
    """Every kind of output comes out of the mixed log, and the state holds tickets, waits and
    periods: the crash tests below would prove nothing otherwise."""
    outputs, final, journal = REFERENCE
    kinds = {k[0] for k in outputs}
    assert kinds == {"session", "assessment", "ticket", "wait", "period", "request"}, kinds
    assert [p.model for p in POLICIES] == ["chat_sessions", SERVICE_TICKETS, IM_WAITS, "aftersale"]  # (R11: issue #14)
    tags = {k[0] for k, _ in final["parts"]}
    assert {"ticket", "ticket_period", "wait", "wait_period", "aftersale_req", "aftersale_period"} <= tags, tags
    assert any(r.get("group") for k, r in outputs.items() if k[0] == "period")  # R11.6.3 months too
    assert any(r["late"] for k, r in outputs.items() if k[0] in ("ticket", "wait"))  # late events flagged
    assert re.fullmatch(f"(?:{CHECKPOINT})+", shape(journal))


def test_issue_12_worker_records_equal_an_in_process_engine_run_with_the_same_policies() -> None:
    """Live equals the engine: ticket, wait and period records (latest per key) of the worker on
    a log without late events equal those of one Engine hosting the same policies, fed the same
    events in log order and the same last tick."""
    records = _log(EVENTS)
    outputs, _, _ = run(records)
    engine = Engine(POLICIES[0], EngineConfig(), policies=POLICIES[1:])
    for _, ev in EVENTS:
        engine.apply(ev)
    engine.advance(max(ev.t for _, ev in EVENTS) + LAST_TICK)  # type: ignore[attr-defined]
    expected = {}
    for kind, raw in engine.take():
        if type(raw) is dict:
            expected[_key(kind, raw)] = raw
    got = {k: v for k, v in outputs.items() if k[0] in ("ticket", "wait", "period", "request")}
    assert any(k[0] == "request" for k in got)
    assert len(expected) > 50 and got == expected


def test_r6_1_a_crash_between_any_two_effects_with_tickets_and_waits_changes_no_output() -> None:
    """Kill the worker before each effect of the mixed run in turn; a new worker restarts from the
    stored tables and the committed offset (and, every third cut, from offset 0): outputs latest
    per key and final state (chat, tickets, waits, periods) are the uninterrupted run's."""
    outputs, final, journal = REFERENCE
    assert len(journal.ops) > 100
    for cut in range(len(journal.ops)):
        got = run(MIXED, crash_at=cut)
        assert got[:2] == (outputs, final), f"crash before effect {cut}: {journal.ops[cut][:2]}"
        if cut % 3 == 0:
            got = run(MIXED, crash_at=cut, from_zero=True)
            assert got[:2] == (outputs, final), f"crash before effect {cut}, replay from 0"


def test_r6_1_restore_at_every_checkpoint_is_the_running_state() -> None:
    """After each checkpoint the tables alone rebuild the partition: the loaded engine's meta and
    every model's entries equal the running engine's (incremental entries ride in the meta, so
    nothing is ahead of or behind the commit point)."""
    tables = Tables({}, {}, {})
    rt = PartitionRuntime.load(0, POLICIES[0], EngineConfig(), None, tables, POLICIES[1:])
    checked = 0
    for offset, r in enumerate(MIXED):
        rt.handle(r, offset)
        rt.outputs()
        if offset % 2 == 1:
            rt.checkpoint_into(tables)
            back = PartitionRuntime.load(0, POLICIES[0], EngineConfig(), None, tables, POLICIES[1:])
            for a, b in zip(rt.engine.models[1:], back.engine.models[1:]):
                assert a.parts() == b.parts(), f"offset {offset}: {a.kind}"
                assert a.stats() == b.stats()
            assert back.engine.meta() == rt.engine.meta()
            checked += 1
    assert checked > 15
