"""The live worker (``streams/worker.py``) without Faust or Kafka (issue #11 finding 4).

The worker talks to the outside through a store (the three tables), a producer (outputs and dead
letters) and a clock. The fakes here are those interfaces, in memory, and they write every effect
into one shared journal, in order: what a broker would have seen. The tests check that journal:
the checkpoint sequence crash safety depends on (RULES R6.1, issue #10: outputs, conversation
entries, meta with the next offset, shops, acknowledgements; tombstones one checkpoint late), a
crash between *any* two effects followed by a restart from the stored tables and the committed
offset, a partition revoked and taken over by another worker, ticks, and bad input (dead letters
for rejected events and poison records, issue #10 findings 2 and 4-5).

``tests/streams/test_runtime.py`` cuts checkpoints with arbitrary subsets of one phase's writes landed;
here the cut is anywhere in the worker's own sequence, including between the acknowledgements.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

import orjson
import pytest

from chatsla.core.engine import EngineConfig
from chatsla.core.timefmt import parse_time
from chatsla.schemas.decode import decode
from chatsla.streams.codec import encode_batch, encode_event, encode_flush, encode_tick
from chatsla.streams.runtime import Tables
from chatsla.streams.settings import WorkerSettings
from chatsla.streams.worker import Worker
from tests.builders import at, msg
from tests.streams import test_runtime
from tests.streams.test_runtime import SMALL

EVENTS = "chatsla.events"
P = 0
EVERY = 5  # events between checkpoints (checkpoint_events)
# two chat.messages partitions: the sources of tests/streams/test_runtime.py's logs
SETTINGS = WorkerSettings(partitions=2, checkpoint_events=EVERY)
NOW_US = parse_time("2030-06-01T00:00:00Z")  # the fake wall clock: every tick of the logs is behind it


class Crash(Exception):
    """The process dies here: the effect about to happen does not."""


class Journal:
    """Every effect on the outside, in order; ``crash_at`` kills the worker before effect n."""

    def __init__(self, crash_at: int | None = None) -> None:
        self.ops: list[tuple] = []
        self.crash_at = crash_at

    def do(self, *op: object) -> None:
        if self.crash_at is not None and len(self.ops) == self.crash_at:
            raise Crash(f"before {op}")
        self.ops.append(op)


@dataclass
class Broker:
    """What survives a worker: the tables (changelogs), delivered records, acknowledged offsets."""

    tables: Tables = field(default_factory=lambda: Tables({}, {}, {}))
    delivered: list[tuple[str, bytes, bytes]] = field(default_factory=list)  # (kind or DLQ topic, key, value)
    dead: list[tuple[str, bytes | None, bytes | None, dict]] = field(default_factory=list)
    acked: set[int] = field(default_factory=set)

    def committed(self) -> int:
        """The offset a new owner starts from: the first one not acknowledged."""
        n = 0
        while n in self.acked:
            n += 1
        return n


class FakeStore:
    """The Store interface on plain dicts: a write lands at once (and is journalled)."""

    def __init__(self, broker: Broker, journal: Journal) -> None:
        self.tables = broker.tables
        self.journal = journal
        self.gate: asyncio.Event | None = None  # when set up, the next flush waits for it

    def write(self, table: str, partition: int, key: tuple, value: bytes | None) -> None:
        self.journal.do("write", table, key, value)
        target = getattr(self.tables, table)
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value

    async def flush(self) -> None:
        self.journal.do("flush-store")
        if self.gate is not None:
            gate, self.gate = self.gate, None
            await gate.wait()
        await asyncio.sleep(0)


class FakeProducer:
    """The Producer interface: records are queued, and delivered (visible to consumers) by a
    flush; a crash before it loses them, as an unsent buffer would."""

    def __init__(self, broker: Broker, journal: Journal) -> None:
        self.broker = broker
        self.journal = journal
        self.queued: list = []
        self.fail: Exception | None = None

    def output(self, kind: str, key: bytes, value: bytes) -> None:
        self.queued.append(("out", kind, key, value))

    def dead_letter(self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        self.queued.append(("dlq", topic, key, value, dict(headers)))

    def send(self) -> None:
        pass

    async def flush(self) -> None:
        if self.fail is not None:
            raise self.fail
        self.journal.do("flush-producer", len(self.queued))
        for q in self.queued:
            if q[0] == "out":
                self.broker.delivered.append(q[1:])
            else:
                self.broker.dead.append(q[1:])
        self.queued = []
        await asyncio.sleep(0)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.wall = NOW_US

    def monotonic(self) -> float:
        return self.t

    def wall_us(self) -> int:
        return self.wall


@dataclass
class Msg:
    """A consumed record (the fields of Faust's Message the worker reads)."""

    offset: int
    value: bytes | None
    topic: str = EVENTS
    partition: int = P
    key: bytes | None = None
    timestamp: float = NOW_US / 1e6


@dataclass
class Ack:
    broker: Broker
    journal: Journal
    offset: int

    def ack(self) -> None:
        self.journal.do("ack", self.offset)
        self.broker.acked.add(self.offset)


def make_worker(broker: Broker, journal: Journal, config: EngineConfig | None = None,
                settings: WorkerSettings = SETTINGS, rewind=None) -> Worker:  # type: ignore[no-untyped-def]
    return Worker(settings, FakeStore(broker, journal), FakeProducer(broker, journal), FakeClock(), config=config,
                  rewind=rewind)


async def feed(worker: Worker, broker: Broker, records: list[bytes], start: int = 0, stop: int | None = None) -> None:
    journal = worker.store.journal  # type: ignore[attr-defined]
    for offset in range(start, len(records) if stop is None else stop):
        await worker.handle(Msg(offset, records[offset]), Ack(broker, journal, offset))


async def drain(worker: Worker, broker: Broker, records: list[bytes]) -> None:
    """What the app's timer does once input pauses: a flush record to each partition with
    records not yet covered by a checkpoint (the last ones may have been skipped as already
    stored, which asks for no checkpoint of its own)."""
    worker.clock.t += worker.settings.checkpoint_idle  # type: ignore[attr-defined]
    for _ in worker.due_checkpoints():
        records.append(encode_flush())
        await feed(worker, broker, records, len(records) - 1)


def latest(broker: Broker) -> dict:
    """The outputs as a consumer keeps them: the latest record per key (docs/pipeline.md)."""
    out = {}
    for kind, _, value in broker.delivered:
        rec = orjson.loads(value)
        out[(kind, rec.get("session_id"), rec["shop_id"], rec.get("week_start"))] = rec
    return out


def state(worker: Worker) -> dict:
    """The partition's state: the runner's envelope, the chat model's parts, and (when there are
    any) every other model's stored entries (the worker hosts all three models, issue #12)."""
    engine = worker.runtimes[P].engine
    snap = engine.meta()
    for k in ("counters", "model_counters", "policies"):  # a replayed duplicate is counted as one
        snap.pop(k, None)
    snap.update(engine.chat.snapshot())
    snap["conversations"] = sorted(snap["conversations"], key=lambda c: (c[0], c[1]))
    snap["shops"] = sorted(snap["shops"], key=lambda s: s[0])
    parts = [kv for m in engine.models[1:] for kv in m.parts()]
    if parts:
        snap["parts"] = parts
    return snap


def run(records: list[bytes], config: EngineConfig | None = None, crash_at: int | None = None,
        replay_from_zero: bool = False) -> tuple[dict, dict, Journal]:
    """Outputs and final state of a run killed before effect ``crash_at`` and restarted by a
    new worker on the surviving tables, from the committed offset (or, ``replay_from_zero``,
    from offset 0: Kafka's commit lags the acknowledgements, by up to everything)."""
    async def go() -> tuple[dict, dict, Journal]:
        broker = Broker()
        journal = Journal(crash_at)
        worker = make_worker(broker, journal, config)
        log = list(records)
        try:
            await feed(worker, broker, log)
        except Crash:
            journal.crash_at = None
            worker = make_worker(broker, journal, config)
            await feed(worker, broker, log, 0 if replay_from_zero else broker.committed())
        await drain(worker, broker, log)
        assert broker.committed() == len(log)  # everything taken is covered by a checkpoint
        return latest(broker), state(worker), journal
    return asyncio.run(go())


# the logs of tests/streams/test_runtime.py (the same records: event ids come from a global counter)
RECORDS = test_runtime.RECORDS + [encode_flush()]
REFERENCE = run(RECORDS)
BOUNDED = test_runtime.BOUNDED + [encode_flush()]
BOUNDED_REFERENCE = run(BOUNDED, SMALL)


def test_the_references_are_the_runtimes_own_results() -> None:
    """The crash tests below compare with the worker's own uninterrupted run; that run must give
    what the partition runtime gives fed directly (tests/streams/test_runtime.py), or a worker that lost
    or withheld outputs everywhere would pass them."""
    outputs, final, _ = REFERENCE
    # the worker hosts all the models (issue #12, #14): on a chat-only log the chat outputs and the
    # chat state are the chat-only runtime's, and the other models hold only what shop events
    # gave every model (the shops' zones and event ids)
    parts = final.get("parts", [])
    assert (outputs, {k: v for k, v in final.items() if k != "parts"}) == test_runtime.REFERENCE
    assert parts and {k[0] for k, _ in parts} == {"ticket_shop", "wait_shop", "aftersale_shop"}  # (+ R11, issue #14)
    assert BOUNDED_REFERENCE[:2] == test_runtime.BOUNDED_REFERENCE
    assert len(REFERENCE[0]) > 40


# ---------------------------------------------------------------- the checkpoint sequence

def shape(journal: Journal) -> str:
    """The journal as letters: P outputs delivered, C conversation entry, T tombstone, F store
    flush, M meta, S shop entry, A acknowledgement."""
    letters = []
    for op in journal.ops:
        if op[0] == "flush-producer":
            letters.append("P")
        elif op[0] == "flush-store":
            letters.append("F")
        elif op[0] == "ack":
            letters.append("A")
        else:
            letters.append({"conversations": "T" if op[3] is None else "C", "partitions": "M", "shops": "S"}[op[1]])
    return "".join(letters)


CHECKPOINT = r"P[CT]*FMFS*FA+"


def test_r6_1_every_checkpoint_writes_in_the_order_crash_safety_depends_on() -> None:
    """streams/runtime.py steps 1-5: outputs delivered, conversation entries, flush, the meta
    (commit point), flush, the shops, flush, and only then the acknowledgements. Nothing else
    happens in between, and nothing is acknowledged outside a checkpoint."""
    _, _, journal = REFERENCE
    letters = shape(journal)
    assert re.fullmatch(f"(?:{CHECKPOINT})+", letters), letters
    assert letters.count("M") >= len(RECORDS) // EVERY - 2  # a checkpoint every EVERY events
    assert "S" in letters and "C" in letters


def test_r6_1_the_meta_names_the_next_offset_and_the_acks_stop_just_before_it() -> None:
    """A restart skips the input before the meta's offset (runtime.py step 3): the records a
    checkpoint acknowledges are exactly those up to that offset, none after it."""
    _, _, journal = REFERENCE
    acked_before = -1
    offsets = []
    for op in journal.ops:
        if op[:2] == ("write", "partitions"):
            offsets.append(orjson.loads(op[3])["offset"])
        elif op[0] == "ack":
            assert op[1] == acked_before + 1  # in order, none skipped
            assert op[1] < offsets[-1]
            acked_before = op[1]
    assert offsets == sorted(offsets) and offsets[-1] == len(RECORDS)


def test_issue_10_a_tombstone_goes_out_one_checkpoint_after_the_evicted_conversations_final_entry() -> None:
    """An evicted conversation is stored in its final state by the checkpoint of its eviction,
    and deleted by the next one, on top of a meta that already reflects the eviction."""
    _, _, journal = BOUNDED_REFERENCE
    checkpoints: list[dict] = [{}]
    for op in journal.ops:
        if op[0] == "write" and op[1] == "conversations":
            checkpoints[-1][op[2]] = op[3]
        elif op[0] == "ack" and checkpoints[-1]:
            checkpoints.append({})
    tombstones = 0
    for i, writes in enumerate(checkpoints):
        for key, value in writes.items():
            if value is None:
                tombstones += 1
                assert checkpoints[i - 1].get(key) is not None, f"{key}: no final entry the checkpoint before"
    assert tombstones >= 5
    assert re.fullmatch(f"(?:{CHECKPOINT})+", shape(journal))


def test_a_failed_delivery_stores_and_acknowledges_nothing() -> None:
    """Crash-only: when the outputs cannot be delivered (after the producer's retries) the
    checkpoint does not happen and the exception reaches the agent, which stops the worker."""
    async def go() -> tuple[Journal, Broker]:
        broker, journal = Broker(), Journal()
        worker = make_worker(broker, journal)
        worker.producer.fail = OSError("broker gone")  # type: ignore[attr-defined]
        with pytest.raises(OSError):
            await feed(worker, broker, RECORDS)
        return journal, broker
    journal, broker = asyncio.run(go())
    assert journal.ops == [] and broker.acked == set() and broker.tables == Tables({}, {}, {})


# ---------------------------------------------------------------- crashes at every cut point

def test_r6_1_a_crash_between_any_two_effects_changes_no_output() -> None:
    """Kill the worker before each effect of the reference run in turn (an output delivery, a
    table write, a flush, an acknowledgement); a new worker restarts from the stored tables and
    the committed offset: the outputs, latest per key, and the final state are the reference's."""
    outputs, final, journal = REFERENCE
    for cut in range(len(journal.ops)):
        got_outputs, got_state, _ = run(RECORDS, crash_at=cut)
        assert got_outputs == outputs, f"crash before effect {cut}: {journal.ops[cut][:2]}"
        assert got_state == final, f"crash before effect {cut}"


def test_r6_1_a_crash_anywhere_with_the_commit_far_behind_changes_no_output() -> None:
    """The same cuts with the committed offset at 0 (Kafka commits acknowledged offsets later,
    or not at all before the crash): the meta's offset skips what the state already holds."""
    outputs, final, journal = REFERENCE
    for cut in range(0, len(journal.ops), 3):
        got = run(RECORDS, crash_at=cut, replay_from_zero=True)
        assert got[:2] == (outputs, final), f"crash before effect {cut}: {journal.ops[cut][:2]}"


def checkpoints(journal: Journal) -> list[range]:
    """The effects of each checkpoint (from its output delivery to its last acknowledgement)."""
    out, start = [], 0
    for m in re.finditer(CHECKPOINT, shape(journal)):
        out.append(range(m.start(), m.end()))
        start = m.end()
    assert start == len(journal.ops)
    return out


def test_issue_10_r6_1_a_crash_anywhere_in_a_log_that_evicts_changes_no_output() -> None:
    """Every cut in the checkpoints of the bounded-state log that store an evicted conversation's
    final entry or its tombstone (the other cuts are those of the test above): evictions, the
    conversations that come back, a chatty one past the id bound, duplicates. A tombstone must
    never land before a meta that reflects the eviction."""
    outputs, final, journal = BOUNDED_REFERENCE
    spans = checkpoints(journal)
    letters = shape(journal)
    with_tombstones = [i for i in range(1, len(spans)) if "T" in letters[spans[i].start:spans[i].stop]]
    # the first few such pairs of checkpoints, all of whose cuts take about as long as the rest
    # of the suite: 651 records, 1,787 effects
    cuts = [cut for i in with_tombstones[:5] for cut in (*spans[i - 1], *spans[i])]
    assert len(with_tombstones) >= 5 and len(cuts) > 50
    for cut in cuts:
        got = run(BOUNDED, SMALL, crash_at=cut)
        assert got[:2] == (outputs, final), f"crash before effect {cut}: {journal.ops[cut][:2]}"


def test_issue_10_r6_1_a_crash_anywhere_around_a_jump_of_weeks_changes_no_output() -> None:
    """The jump log of tests/streams/test_runtime.py (one tick moves event time by weeks and evicts
    conversations that had events in the same interval, which then come back): a replay must
    never apply to fresh conversations events that the evicted ones had applied."""
    records = test_runtime.JUMP + [encode_flush()]
    outputs, final, journal = run(records)
    for cut in range(len(journal.ops)):
        for from_zero in (False, True):
            got = run(records, crash_at=cut, replay_from_zero=from_zero)
            assert got[:2] == (outputs, final), f"crash before effect {cut} (replay from 0: {from_zero})"


# ---------------------------------------------------------------- rebalances

def test_r6_1_a_partition_revoked_mid_stream_continues_exactly_on_another_worker() -> None:
    """Worker A takes records up to n, loses the partition (what it took since its last
    checkpoint is never acknowledged), worker B is assigned it, loads the tables and continues
    from the committed offset: outputs and state as if nothing had moved."""
    outputs, final, _ = REFERENCE

    async def go(n: int) -> tuple[dict, dict, Worker]:
        broker = Broker()
        a = make_worker(broker, Journal())
        a.assigned([(EVENTS, P)])
        a.serve_owned([(EVENTS, P)])
        await feed(a, broker, RECORDS, 0, n)
        await a.revoked([(EVENTS, P), ("chat.messages", 0)])
        b = make_worker(broker, Journal())
        b.assigned([(EVENTS, P)])
        b.serve_owned([(EVENTS, P)])
        await feed(b, broker, RECORDS, broker.committed())
        return latest(broker), state(b), a

    for n in range(1, len(RECORDS), 3):
        got_outputs, got_state, a = asyncio.run(go(n))
        assert (got_outputs, got_state) == (outputs, final), f"revoked after {n} records"
        assert a.runtimes == {} and a.owned == set() and not a.unacked.get(P) and not a.rebalanced


def test_issue_15_records_the_consumer_skipped_after_a_rebalance_are_read_again_not_lost() -> None:
    """Issue #15, found by the scale-out test with input arriving. A partition handed back to
    the same worker restarts from the committed offset, but Faust's consumer may deliver it from
    further on (its mark of what it has read survives the rebalance). The worker notices the
    hole against the stored meta's offset, asks to read again from there, drops the records
    that arrive before it, and the outcome is as if nothing had been skipped. Without the check
    (no ``rewind``) the same delivery loses those records."""
    outputs, final, _ = REFERENCE

    async def go(n: int, skip: int, guard: bool) -> tuple[dict, dict, list, int]:
        broker = Broker()
        calls: list[tuple[int, int, int]] = []

        async def rewind(p: int, offset: int, arrived: int) -> int | None:
            calls.append((p, offset, arrived))
            return offset

        w = make_worker(broker, Journal(), rewind=rewind if guard else None)
        w.assigned([(EVENTS, P)])
        w.serve_owned([(EVENTS, P)])
        await feed(w, broker, RECORDS, 0, n)
        await w.revoked([(EVENTS, P)])
        w.assigned([(EVENTS, P)])
        w.serve_owned([(EVENTS, P)])
        due = w.expected[P]  # the stored meta's offset (0 before any checkpoint)
        ahead = min(due + skip, len(RECORDS) - 1)
        await feed(w, broker, RECORDS, ahead, min(ahead + 3, len(RECORDS)))  # delivered past the hole
        if guard:
            await feed(w, broker, RECORDS, due)  # the consumer, sought back, reads on from there
        else:
            await feed(w, broker, RECORDS, min(ahead + 3, len(RECORDS)))
        log = list(RECORDS)
        await drain(w, broker, log)
        return latest(broker), state(w), calls, due

    lost = 0
    for n in range(2, len(RECORDS), 5):
        got_outputs, got_state, calls, due = asyncio.run(go(n, 4, True))
        assert (got_outputs, got_state) == (outputs, final), f"revoked after {n} records"
        assert calls == [(P, due, min(due + 4, len(RECORDS) - 1))], calls
        got_outputs, got_state, _, _ = asyncio.run(go(n, 4, False))
        lost += (got_outputs, got_state) != (outputs, final)
    assert lost, "skipping records without the check must lose something, or this test proves nothing"


def test_issue_15_records_gone_from_the_log_are_not_waited_for() -> None:
    """A hole that retention made (the records before the log's start are deleted) cannot be
    read again: ``rewind`` says so, and the record that arrived is applied, not dropped."""
    async def go() -> tuple[Worker, Broker]:
        broker = Broker()

        async def rewind(p: int, offset: int, arrived: int) -> int | None:
            return None

        w = make_worker(broker, Journal(), rewind=rewind)
        w.assigned([(EVENTS, P)])
        w.serve_owned([(EVENTS, P)])
        await feed(w, broker, RECORDS, 3)
        return w, broker

    w, broker = asyncio.run(go())
    assert w.expected[P] == len(RECORDS) and w.position[(EVENTS, P)] == len(RECORDS)
    assert w.metrics.registry.get_sample_value("chatsla_events_rewinds_total") == 0


def test_r6_1_a_revocation_waits_for_a_checkpoint_under_way_which_then_stops_before_its_meta() -> None:
    """The revocation of a partition whose checkpoint is writing returns only when the
    checkpoint has stopped, and that checkpoint writes no meta and acknowledges nothing: the
    next owner must not find its tables changing under it (docs/pipeline.md, "Crash safety")."""
    outputs, final, _ = REFERENCE

    async def go() -> tuple[dict, dict, list]:
        broker, journal = Broker(), Journal()
        a = make_worker(broker, journal)
        await feed(a, broker, RECORDS, 0, 3 * EVERY - 1)  # the next record triggers a checkpoint
        gate = asyncio.Event()
        a.store.gate = gate  # type: ignore[attr-defined]
        handling = asyncio.ensure_future(feed(a, broker, RECORDS, 3 * EVERY - 1, 3 * EVERY))
        while not journal.ops or journal.ops[-1] != ("flush-store",):
            await asyncio.sleep(0)  # the checkpoint's conversation entries are written, it waits
        mark = len(journal.ops)
        revoking = asyncio.ensure_future(a.revoked([(EVENTS, P)]))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not revoking.done()  # it waits for the checkpoint
        gate.set()
        await revoking
        await handling
        after = journal.ops[mark:]
        b = make_worker(broker, Journal())
        await feed(b, broker, RECORDS, broker.committed())
        return latest(broker), state(b), after

    got_outputs, got_state, after = asyncio.run(go())
    assert after == []  # no meta, no shops, no acknowledgement after the revocation
    assert (got_outputs, got_state) == (outputs, final)


def test_an_assignment_drops_a_runtime_loaded_after_its_revocation() -> None:
    """An event of a revoked partition already handed to the agent loads its runtime again; the
    next assignment, without that partition, drops it (and its unacknowledged records)."""
    async def go() -> Worker:
        broker = Broker()
        w = make_worker(broker, Journal())
        w.assigned([(EVENTS, 0), (EVENTS, 1)])
        await w.revoked([(EVENTS, 0), (EVENTS, 1)])
        await w.handle(Msg(0, RECORDS[0], partition=1), Ack(broker, w.store.journal, 0))  # type: ignore[attr-defined]
        assert 1 in w.runtimes
        w.assigned([(EVENTS, 0)])
        return w
    w = asyncio.run(go())
    assert w.owned == {0} and 1 not in w.runtimes and not w.unacked.get(1)


def test_issue_10_finding_8_lag_counts_from_the_later_of_taken_and_committed() -> None:
    async def go() -> Worker:
        broker = Broker()
        w = make_worker(broker, Journal())
        await feed(w, broker, RECORDS, 0, 4)
        return w
    w = asyncio.run(go())
    high = {(EVENTS, 0): 10, (EVENTS, 1): 7, ("chat.messages", 0): 5, ("other", 0): 9}
    lags = w.lags(list(high), high.get, {(EVENTS, 1): 3, (EVENTS, 0): 2})
    assert lags == {(EVENTS, 0): 6, (EVENTS, 1): 4}  # chat.messages/0: nothing known yet


# ---------------------------------------------------------------- ticks and checkpoint pacing

def test_r6_2_ticks_walk_an_idle_partition_past_its_deadlines() -> None:
    """Live ticks advance a partition with no further events: the seller-timeout deadline of an
    unanswered buyer message fires (R2.4) and the session is closed in the outputs."""
    records = [encode_event(decode(orjson.dumps(msg("c1", "buyer", at(h=1)))), "chat.messages/0")]
    records += [encode_tick(parse_time(at(h=1 + h / 2))) for h in range(1, 2 * 80)]
    records.append(encode_flush())

    async def go() -> Broker:
        broker = Broker()
        await feed(make_worker(broker, Journal(), settings=WorkerSettings(partitions=1)), broker, records)
        return broker
    closed = [r for r in latest(asyncio.run(go())).values() if r.get("closed_at")]
    assert [(r["session_id"], r["close_reason"]) for r in closed] == [("c1#1", "seller_timeout")]


def test_issue_10_finding_5_a_tick_far_ahead_of_the_wall_clock_is_ignored_and_counted() -> None:
    async def go() -> tuple[Worker, Broker]:
        broker = Broker()
        w = make_worker(broker, Journal(), settings=WorkerSettings(partitions=1))
        records = [encode_event(decode(orjson.dumps(msg("c1", "buyer", at(h=1)))), "chat.messages/0"),
                   encode_tick(NOW_US + SETTINGS.max_future_us + 1), encode_flush()]
        await feed(w, broker, records)
        return w, broker
    w, broker = asyncio.run(go())
    assert w.metrics.registry.get_sample_value("chatsla_rejected_ticks_total") == 1
    assert w.runtimes[P].engine.watermark < parse_time(at(h=1))  # held by its lateness only
    assert broker.acked == {0, 1, 2}  # ignored, not lost: acknowledged with its checkpoint


def test_a_quiet_partition_asks_for_a_checkpoint_once() -> None:
    """due_checkpoints: a partition with unacknowledged records whose input paused for
    checkpoint_idle gets one flush request until a record is handled; none without pending
    records."""
    async def go() -> list:
        broker = Broker()
        w = make_worker(broker, Journal())
        clock = w.clock
        seen = [w.due_checkpoints()]
        await feed(w, broker, RECORDS, 0, 2)
        seen.append(w.due_checkpoints())  # no pause yet
        clock.t += SETTINGS.checkpoint_idle  # type: ignore[attr-defined]
        seen.append(w.due_checkpoints())
        seen.append(w.due_checkpoints())  # already requested
        await w.handle(Msg(2, encode_flush()), Ack(broker, w.store.journal, 2))  # type: ignore[attr-defined]
        seen.append(w.due_checkpoints())  # checkpointed: nothing pending
        seen.append(sorted(broker.acked))
        return seen
    assert asyncio.run(go()) == [[], [], [P], [], [], [0, 1, 2]]


def test_a_partition_with_records_waiting_has_not_paused() -> None:
    """Issue #15: a partition whose next records are already on the broker is not idle, however
    long since the agent took its last one (the agent was busy with another partition's
    checkpoint): no flush request for it, until it has caught up or its checkpoint_interval is
    over."""
    async def go() -> list:
        broker = Broker()
        w = make_worker(broker, Journal())
        clock = w.clock
        await feed(w, broker, RECORDS, 0, 2)
        clock.t += SETTINGS.checkpoint_idle  # type: ignore[attr-defined]
        seen = [w.due_checkpoints(lambda p: False)]  # behind: more records waiting
        seen.append(w.due_checkpoints(lambda p: True))  # caught up and quiet: one request
        clock.t += SETTINGS.checkpoint_interval  # type: ignore[attr-defined]
        w.flush_requested.clear()
        seen.append(w.due_checkpoints(lambda p: False))  # behind, but its interval is over
        return seen
    assert asyncio.run(go()) == [[], [P], [P]]


def test_a_partition_checkpoints_after_checkpoint_interval() -> None:
    async def go() -> set:
        broker = Broker()
        w = make_worker(broker, Journal(), settings=WorkerSettings(partitions=2, checkpoint_events=10**6))
        await feed(w, broker, RECORDS, 0, 3)
        assert broker.acked == set()
        w.clock.t += w.settings.checkpoint_interval  # type: ignore[attr-defined]
        await feed(w, broker, RECORDS, 3, 4)
        return broker.acked
    assert asyncio.run(go()) == {0, 1, 2, 3}


# ---------------------------------------------------------------- bad input

def test_issue_10_finding_4_an_event_rejected_as_future_time_goes_to_its_inputs_dlq() -> None:
    """A step into the future that its own input partition contradicted (engine.py, "Time
    sanity") is re-encoded into chat.messages.dlq with the reason, counted as invalid, and
    delivered before the checkpoint that records the rejection."""
    source = "chat.messages/1"
    events = [msg("c1", "buyer", at(h=10)), msg("c2", "buyer", "2030-01-01T00:00:00Z", eid="bogus")]
    events += [msg(f"c{m + 2}", "buyer", at(h=10, m=m)) for m in (1, 2, 3)]
    records = [encode_event(decode(orjson.dumps(e)), source) for e in events] + [encode_flush()]

    async def go() -> tuple[Worker, Broker, Journal]:
        broker, journal = Broker(), Journal()
        w = make_worker(broker, journal)
        await feed(w, broker, records)
        return w, broker, journal
    w, broker, journal = asyncio.run(go())
    (topic, key, value, headers), = broker.dead
    assert (topic, key, headers["chatsla-reason"]) == ("chat.messages.dlq", b"c2", b"future_time")
    assert decode(value).event_id == "bogus"
    assert headers["chatsla-source"].startswith(b"chat.messages (held and rejected in chatsla.events/0@")
    assert w.metrics.registry.get_sample_value("chatsla_events_total", {"outcome": "invalid"}) == 1
    assert w.metrics.registry.get_sample_value("chatsla_dlq_records_total", {"topic": "chat.messages.dlq"}) == 1
    first_meta = next(i for i, op in enumerate(journal.ops) if op[:2] == ("write", "partitions"))
    assert journal.ops[0] == ("flush-producer", 1) and first_meta > 0  # the dead letter before any state


def test_issue_10_finding_2_poison_records_go_to_the_events_dlq_and_processing_goes_on() -> None:
    """An undecodable record goes to chatsla.events.dlq with its original bytes and a reason,
    is counted, and acknowledged with the next checkpoint; in a batch with a bad item the good
    items are applied as if the bad one had never been written."""
    good = [encode_event(decode(orjson.dumps(msg("c1", s, at(h=1, m=m)))), "chat.messages/0")
            for m, s in ((0, "buyer"), (5, "seller"))]
    end = [encode_tick(parse_time(at(h=2))), encode_flush()]
    clean = [encode_batch(good)] + end
    poisoned = [b"not json", None, encode_batch([good[0], b'["chat.messages/0",[1,2]]', good[1]])] + end

    async def go(records: list) -> tuple[Worker, Broker]:
        broker = Broker()
        w = make_worker(broker, Journal())
        await feed(w, broker, records)
        return w, broker
    _, want = asyncio.run(go(clean))
    w, broker = asyncio.run(go(poisoned))
    assert latest(broker) == latest(want) and latest(want)
    assert broker.acked == set(range(len(poisoned)))
    reasons = [(t, v, h["chatsla-reason"], h.get("chatsla-bad-items")) for t, _, v, h in broker.dead]
    assert reasons == [("chatsla.events.dlq", b"not json", b"not_json", None),
                       ("chatsla.events.dlq", None, b"not_json", None),  # a null value is poison too
                       ("chatsla.events.dlq", poisoned[2], b"batch_item:1:bad_kind", b"1")]
    sample = w.metrics.registry.get_sample_value
    assert sample("chatsla_poison_records_total", {"reason": "not_json"}) == 2
    assert sample("chatsla_poison_records_total", {"reason": "bad_kind"}) == 1  # the kind, not the index
    assert sample("chatsla_dlq_records_total", {"topic": "chatsla.events.dlq"}) == 3


def test_r1_the_router_forwards_valid_events_by_shop_and_dead_letters_the_rest() -> None:
    """route(): invalid input to its topic's DLQ with the reason (R1), an event more than
    max_future ahead of the wall clock as future_time (issue #10 finding 4), the rest grouped by
    their shop's chatsla.events partition, in log order, tagged with their source."""
    far = "2031-01-01T00:00:00Z"  # beyond the fake wall clock + 1 h
    inputs = [Msg(0, orjson.dumps(msg("c1", "buyer", at(h=1), shop="s1")), topic="chat.messages", partition=1),
              Msg(1, b"{", topic="chat.messages", partition=1),
              Msg(2, orjson.dumps(msg("c2", "buyer", far, shop="s1")), topic="chat.messages", partition=1),
              Msg(7, orjson.dumps(msg("c3", "buyer", at(h=2), shop="s1")), topic="chat.messages", partition=0)]
    broker = Broker()
    w = make_worker(broker, Journal())
    routed = w.route(inputs)
    asyncio.run(w.producer.flush())
    (p, items), = routed.items()
    assert [orjson.loads(i)[0] for i in items] == ["chat.messages/1", "chat.messages/0"]
    assert [(t, h["chatsla-reason"], h["chatsla-source"]) for t, _, _, h in broker.dead] == [
        ("chat.messages.dlq", b"not_json", b"chat.messages/1@1"),
        ("chat.messages.dlq", b"future_time", b"chat.messages/1@2")]
    assert w.position == {("chat.messages", 1): 3, ("chat.messages", 0): 8}


# ---------------------------------------------------------------- live views stay bounded


def test_rolling_rates_stay_one_window_when_nothing_scrapes() -> None:
    """State is bounded by what is live (issue #15's backfill, R8): the rolling 7-day rate of a
    shop held every session it ever saw decided until /metrics was scraped, so a worker nobody
    scraped grew with history. Checkpoints now let it forget what the partition's watermark has
    left behind: after four weeks of one answered conversation an hour, the rate holds about a
    week's sessions, not four, and it still equals the rate over the last seven days.
    A revoked partition's rates go with it."""
    sources = test_runtime.SOURCES
    records = []
    for h in range(28 * 24):  # four weeks, one conversation an hour, answered after 10 minutes
        for e in (msg(f"r{h}", "buyer", at(h=h)), msg(f"r{h}", "seller", at(h=h, m=10))):
            records.append(encode_event(decode(orjson.dumps(e)), sources[h % 2]))

    async def go() -> Worker:
        broker, journal = Broker(), Journal()
        worker = make_worker(broker, journal)
        await feed(worker, broker, records)
        await drain(worker, broker, records)
        return worker

    worker = asyncio.run(go())
    rolling = worker.views.rolling["s1"]
    wm = worker.runtimes[P].engine.watermark
    assert 7 * 24 - 2 <= len(rolling) <= 8 * 24, len(rolling)  # one window (+ what the watermark has not passed)
    replied, decided = rolling.counts(wm)
    assert replied == decided and 7 * 24 - 2 <= decided <= 7 * 24  # every one answered in 10 minutes
    worker.assigned([])  # the partition moved to another worker
    assert "s1" not in worker.views.rolling


def test_each_checkpoint_exports_the_conversations_a_partition_holds() -> None:
    """chatsla_state_conversations (issue #15, bounded state): set at every checkpoint to the
    conversations the partition's engine holds, and gone with the partition."""
    async def go() -> Worker:
        broker, journal = Broker(), Journal()
        worker = make_worker(broker, journal)
        log = list(RECORDS)
        await feed(worker, broker, log)
        await drain(worker, broker, log)
        return worker
    worker = asyncio.run(go())
    held = len(worker.runtimes[P].engine.convs)
    assert held > 0
    assert worker.metrics.registry.get_sample_value("chatsla_state_conversations", {"partition": str(P)}) == held
    worker.assigned([])
    assert worker.metrics.registry.get_sample_value("chatsla_state_conversations", {"partition": str(P)}) is None
