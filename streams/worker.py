"""The live worker's logic as a plain class: routing, the session agent's per-record work,
checkpoints and rebalances, with no Faust or Kafka import (issue #11 finding 4).

``streams/app.py`` is the Faust wiring only: its agents, timers and rebalance signals call a
:class:`Worker`, which talks to the outside through three small interfaces, so the checkpoint
sequence that crash safety depends on is unit-tested with in-memory fakes
(``tests/streams/test_worker.py``):

* a :class:`Store`: the three changelog-backed tables (read when a partition is loaded) plus
  ordered writes and a ``flush`` that waits until every write so far is durable;
* a :class:`Producer`: output records, dead-letter records, ``send`` (start sending) and
  ``flush`` (wait until everything queued is delivered, raise if anything failed);
* a :class:`Clock`: the monotonic clock that paces checkpoints, and the wall clock that the live
  checks on ticks and the latency histogram read.

Metrics go to the worker's own :class:`WorkerMetrics` registry (in memory; the app serves it).

**The checkpoint write order lives in** :meth:`Worker._checkpoint` (why each step is where it
is: ``streams/runtime.py``, RULES R6.1, issue #10): outputs and dead letters delivered; the
changed conversation entries (and the tombstones of the previous checkpoint's evictions),
flushed; the meta with the next input offset (the commit point, carrying the changed shops),
flushed; the shop entries, flushed; only then the input records acknowledged, so Kafka commits
offsets behind stored state. A revocation waits for a checkpoint under way (the ``_writing``
lock), and a checkpoint whose partition was revoked meanwhile stops before its meta, so no
table write of an old owner lands after the next owner started reading.

Delivery is at-least-once: the record's acknowledgement is held until a checkpoint has stored
its effects; a crash anywhere repeats identical outputs at worst (docs/pipeline.md, "Crash
safety").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Awaitable, Callable, Hashable, Iterable, Mapping, Protocol

from chatsla.core.engine import EngineConfig
from chatsla.core.events import Invalid
from chatsla.core.policy import Policy, policies_for
from chatsla.schemas.decode import decode
from chatsla.streams.clock import wall_clock_us
from chatsla.streams.codec import (
    BATCH, TICK, PoisonRecord, decode_internal, encode_event, source_tag, split_poison,
)
from chatsla.streams.metrics import ShopViews, WorkerMetrics
from chatsla.streams.outputs import default_partition
from chatsla.streams.runtime import PartitionRuntime, Tables
from chatsla.streams.settings import WorkerSettings
from chatsla.streams.topics import watermark_sources

log = logging.getLogger("chatsla.worker")

TopicPartition = tuple  # (topic, partition); Faust's TP is a namedtuple of the two, equal and hashed alike
BATCH_HEAD = b'["' + BATCH.encode() + b'",'
CONVERSATIONS, META, SHOPS = "conversations", "partitions", "shops"  # Store.write's table names


class Record(Protocol):
    """What the worker reads of a consumed Kafka record (Faust's ``Message`` has these)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float  # seconds


class Ack(Protocol):
    """A consumed record's acknowledgement: once called, Kafka may commit its offset."""

    def ack(self) -> object: ...


class Store(Protocol):
    """The worker's tables: ``tables`` is read when a partition is loaded; checkpoints write
    through :meth:`write` and :meth:`flush` (``table`` is ``conversations``, ``partitions`` or
    ``shops``; a value None deletes the key and leaves a changelog tombstone)."""

    tables: Tables

    def write(self, table: str, partition: int, key: tuple, value: bytes | None) -> None: ...

    async def flush(self) -> None:
        """Return once every write so far is durable (in its changelog); raise if one failed."""


class Producer(Protocol):
    """Records the worker produces besides its tables."""

    def output(self, kind: str, key: bytes, value: bytes) -> None:
        """Queue an output record (``session`` or ``assessment``) for its topic."""

    def dead_letter(self, topic: str, key: bytes | None, value: bytes | None,
                    headers: list[tuple[str, bytes]]) -> None:
        """Queue a record for the dead-letter topic ``topic``."""

    def send(self) -> None:
        """Start sending what is queued, without waiting."""

    async def flush(self) -> None:
        """Return once every record queued so far is delivered; raise if one failed."""


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def wall_us(self) -> int: ...


# ``rewind(partition, offset, arrived)``: read ``partition`` again from ``offset`` (or from the
# log's start, if later); returns where it reads from, or None if that is not before ``arrived``
# (the records between are gone), and then nothing is read again.
Rewind = Callable[[int, int, int], Awaitable["int | None"]]


class SystemClock:
    """The process's clocks (``streams/clock.py`` is the one wall-clock reading)."""

    monotonic = staticmethod(time.monotonic)
    wall_us = staticmethod(wall_clock_us)


# Each model's default policy: its platform's bundled current version (a bare id names it; the
# same rule as ``chatsla audit``'s, issue #12), chat sessions first.
class Worker:
    """One worker's state and logic: a :class:`PartitionRuntime` per owned ``chatsla.events``
    partition, the records taken but not yet covered by a checkpoint, and the pacing of
    checkpoints. Faust-free; ``streams/app.py`` calls it."""

    def __init__(self, settings: WorkerSettings, store: Store, producer: Producer, clock: Clock | None = None,
                 *, policy: Policy | None = None, config: EngineConfig | None = None,
                 stopping: Callable[[], bool] = lambda: False, policies: list | None = None,
                 rewind: Rewind | None = None) -> None:
        """``policies`` (one per model, chat sessions first) and ``config`` default to what
        ``settings`` names (tests pass others; ``policy`` alone: a chat-only worker);
        ``stopping`` tells when the process is shutting down (its shops are then exported by
        nobody: it may already have left the group); ``rewind`` reads a partition again from
        an offset when the consumer skipped records (:meth:`handle`; None: not checked)."""
        self.settings = settings
        self.names = settings.topics
        self.store = store
        self.producer = producer
        self.clock = clock or SystemClock()
        if policies is None:
            policies = [policy] if policy is not None else policies_for(settings.policies)
        # the chat policy leads (it counts shop events, its id labels the metrics); the others
        # are the models hosted beside it on every partition's engine (issue #12)
        self.policy: Policy = policies[0]
        self.other_policies = list(policies[1:])
        self.config = config or EngineConfig(allowed_lateness=settings.allowed_lateness_us,
                                             default_timezone=settings.default_timezone,
                                             max_future=settings.max_future_us)
        # which partitions hold the watermark: written once, in streams/topics.py (R6.2)
        self.sources: list[Hashable] = list(watermark_sources(self.names, range(settings.partitions)))
        self.dlq = {self.names.chat: self.names.chat_dlq, self.names.shop: self.names.shop_dlq,
                    self.names.tickets: self.names.ticket_dlq, self.names.aftersale: self.names.aftersale_dlq,
                    self.names.events: self.names.events_dlq}
        self.runtimes: dict[int, PartitionRuntime] = {}
        # chatsla.events partitions assigned to this worker now (Kafka's word, kept from the
        # rebalance signals): /metrics and /shops export only these, and nothing once the worker
        # is stopping (it may already have left the group while its web server still answers).
        self.owned: set[int] = set()
        self.rebalanced = False  # the last rebalance is complete and the owned partitions loaded
        self.position: dict[TopicPartition, int] = {}  # offset after the last record taken (consumer lag)
        self.unacked: dict[int, list[Ack]] = defaultdict(list)  # taken, not yet covered by a checkpoint
        self.rewind = rewind
        # per owned partition, the offset after the last record taken in order (gap check, handle).
        # Not the runtime's next_offset: that one stays put on a record the engine never applies
        # (wholly poison, a rejected tick), which is no hole and must not be read again.
        self.expected: dict[int, int] = {}
        self.rewinding: dict[int, int] = {}  # partition -> offset it is being read again from
        self.flush_requested: set[int] = set()
        self.last_checkpoint: dict[int, float] = defaultdict(float)
        self.last_event: dict[int, float] = defaultdict(float)  # when the session agent last took a record
        self._writing = asyncio.Lock()  # held while a checkpoint writes tables (see revoked)
        self.views = ShopViews(self.runtimes, owned=lambda: () if stopping() else self.owned)
        self.metrics = WorkerMetrics(self.views, settings.shop_metrics, self.policy.id, self.policy.version)

    # ------------------------------------------------------------------ routing

    def route(self, records: Iterable[Record]) -> dict[int, list[bytes]]:
        """Validate input records (R1) and group the good ones, encoded with their source tag,
        by their shop's ``chatsla.events`` partition, in log order; bad ones go to their input's
        DLQ. The caller (``streams/router.py``, one fetch at a time) forwards each partition's
        items as batch records."""
        out: dict[int, list[bytes]] = defaultdict(list)
        # one clock reading per fetch: an event further ahead than max_future is a clock or
        # producer error, and forwarding it would move its partition's watermark (and every
        # deadline behind it) into the future (issue #10 finding 4)
        latest = self.clock.wall_us() + self.settings.max_future_us
        position, n = self.position, self.settings.partitions
        for msg in records:
            position[(msg.topic, msg.partition)] = msg.offset + 1
            ev = decode(msg.value)
            if type(ev) is Invalid:
                self.to_dlq(msg, ev.reason)
                continue
            if ev.t > latest:
                self.to_dlq(msg, "future_time")
                continue
            # the shop's partition: where a router keying single records by shop put them
            p = default_partition(ev.shop_id.encode(), n)
            out[p].append(encode_event(ev, source_tag(msg.topic, msg.partition)))
        return out

    def to_dlq(self, msg: Record, reason: str, *headers: tuple[str, bytes]) -> None:
        """Send a record that cannot be processed to its topic's DLQ: the original key and bytes,
        the reason and where it came from in headers (R1), counted."""
        topic = self.dlq[msg.topic]
        metrics = self.metrics
        if msg.topic == self.names.events:  # a poison record (issue #10 finding 2)
            # the reason's kind as the label (a batch's item index would make labels unbounded)
            kind = reason.split(":")[2] if reason.startswith("batch_item:") else reason
            metrics.poison.labels(kind).inc()
            log.warning("undecodable record %s/%d@%d sent to %s: %s", msg.topic, msg.partition, msg.offset, topic, reason)
        else:
            metrics.events.labels("invalid").inc()
        metrics.dlq.labels(topic).inc()
        where = f"{msg.topic}/{msg.partition}@{msg.offset}"
        self.producer.dead_letter(topic, msg.key, msg.value, [
            ("chatsla-reason", reason.encode()), ("chatsla-source", where.encode()), *headers])

    def _rejected_to_dlq(self, topic: str, key: bytes, value: bytes, msg: Record) -> None:
        """An event the engine rejected as ``future_time`` (engine.py, "Time sanity"): far ahead of
        everything its partition carried, and contradicted by what came after it. Its input
        topic's DLQ gets it re-encoded (the original bytes were routed in a batch); delivered
        before the checkpoint that records the rejection, as outputs are."""
        target = self.dlq.get(topic)
        if target is None:  # not an input of this worker (a source tag from another deployment)
            log.warning("future_time event of unknown input %r dropped from the dead-letter path", topic)
            return
        self.metrics.events.labels("invalid").inc()
        self.metrics.dlq.labels(target).inc()
        where = f"{topic} (held and rejected in {msg.topic}/{msg.partition}@{msg.offset})"
        self.producer.dead_letter(target, key, value, [
            ("chatsla-reason", b"future_time"), ("chatsla-source", where.encode())])

    # ------------------------------------------------------------------ the session agent

    def _accept_single(self, value: bytes) -> bool:
        """False for a tick more than max_future ahead of this worker's clock: it is ignored
        (counted, logged rate-limited), or the partition's watermark would jump ahead and close
        every open session at once. Raises PoisonRecord for an undecodable record (a tick
        outside the representable range among them)."""
        items = decode_internal(value)
        if items[0][0] == TICK and items[0][1] > self.clock.wall_us() + self.settings.max_future_us:  # type: ignore[operator]
            self.metrics.rejected_ticks.inc()
            log.warning("tick ignored: %d µs is more than --max-future ahead of this worker's clock", items[0][1])
            return False
        return True

    async def handle(self, msg: Record, ack: Ack) -> None:
        """Apply one record of ``chatsla.events`` to its partition, deliver what it produced, and
        checkpoint when due. ``ack`` is called only once a checkpoint has stored the record's
        effects. A poison record goes to the DLQ (the good items of a batch are applied); any
        other exception is a bug or a failed delivery, and the caller stops the worker
        (crash-only: the state here may be ahead of what is stored)."""
        p = msg.partition
        rt = self.runtimes.get(p)
        if rt is None:
            rt = self.load(p, f"first offset {msg.offset}")
        if self.rewind is not None and await self._skipped_ahead(p, msg.offset):
            return  # never acknowledged: its offset is not committed, and it comes again
        self.position[(msg.topic, msg.partition)] = msg.offset + 1
        now = self.last_event[p] = self.clock.monotonic()
        value = msg.value if msg.value is not None else b""  # a null value is poison too
        try:
            # Batch records (nearly all) go straight to the engine. The others are ticks, flush
            # requests and records of an older router, rare and small: decoded here first to
            # check a tick against the wall clock.
            if value[:9] != BATCH_HEAD and not self._accept_single(value):
                flush = False
            else:
                # decode_internal runs to completion before the engine sees any item, so a
                # PoisonRecord from handle has changed nothing
                flush = rt.handle(value, msg.offset)
        except PoisonRecord as e:
            # Bad input, not a bug of ours: to the DLQ with the original bytes; the good items
            # of a batch are applied as if the bad ones had never been written.
            good, bad = split_poison(value)
            extra = [("chatsla-bad-items", ",".join(str(i) for i, _ in bad).encode())] if good is not None else []
            self.to_dlq(msg, e.reason, *extra)
            flush = rt.handle(good, msg.offset) if good is not None else False
        self.metrics.latency.observe(max(0.0, self.clock.wall_us() / 1e6 - msg.timestamp))
        self.unacked[p].append(ack)
        producer = self.producer
        for kind, key, out in rt.outputs():
            producer.output(kind, key, out)
        for topic, key, out in rt.rejected():  # time sanity: a step nothing confirmed
            self._rejected_to_dlq(topic, key, out, msg)
        producer.send()
        settings = self.settings
        if (flush or rt.pending_acks >= settings.checkpoint_events or rt.needs_checkpoint()
                or now - self.last_checkpoint[p] >= settings.checkpoint_interval):
            await self.checkpoint(p, rt)
        self.flush_requested.discard(p)

    async def _skipped_ahead(self, p: int, offset: int) -> bool:
        """True if the record at ``offset`` must be dropped because records before it that the
        state needs were not delivered; the partition is then read again from the first of them.

        A partition's records must reach the engine without a hole: from the stored meta's
        offset (or the log's start), one after the other (a record before that is already in
        the state and is skipped, module ``runtime``). Faust can break this across a
        rebalance: it drops every record below the highest offset its fetch loop last passed
        through, and a fetch in flight while the group rebalances can leave that mark ahead of
        the committed offset the partition restarts from (issue #15: with input arriving while
        a second worker joined, a partition handed back to the same worker lost tens of
        records, silently, and their offsets were committed by the ones after them). So the
        worker checks every offset and, on a hole, seeks back; records after the hole that were
        already fetched are dropped unacknowledged until the first missing one arrives."""
        expected = self.expected[p]  # set by load, which handle has called
        since = self.rewinding.get(p)
        if since is not None:
            if offset > since:
                return True
            del self.rewinding[p]
        elif offset > expected:
            since = await self.rewind(p, expected, offset)  # type: ignore[misc]
            if since is not None:
                log.warning("partition %d: record %d arrived where %d was due; reading again from %d",
                            p, offset, expected, since)
                self.metrics.rewinds.inc()
                self.rewinding[p] = since
                return True
            # the records between are gone from the log (retention): nothing to read again
            log.warning("partition %d: records %d to %d are no longer in the log; continuing from %d",
                        p, expected, offset - 1, offset)
        if offset >= expected:
            self.expected[p] = offset + 1
        return False

    def load(self, p: int, why: str) -> PartitionRuntime:
        """Rebuild partition ``p``'s engine from the (recovered) tables and start serving it."""
        rt = self.runtimes[p] = PartitionRuntime.load(p, self.policy, self.config, self.sources, self.store.tables,
                                                      self.other_policies)
        rt.observer = self._observe
        self.expected[p] = rt.next_offset or 0
        self.last_checkpoint[p] = self.clock.monotonic()
        self.metrics.account(p, rt.engine.stats)
        log.info("partition %d: state loaded (%d conversations, watermark %s), %s",
                 p, len(rt.engine.convs), rt.engine.watermark, why)
        return rt

    def _observe(self, kind: str, record: dict, raw: object) -> None:
        if kind == "session" and record["replied_within_24h"] is not None:
            self.views.observe(record, opened_at=raw[3])  # type: ignore[index]  # session_raw: opened_at

    # ------------------------------------------------------------------ checkpoints

    async def checkpoint(self, p: int, rt: PartitionRuntime) -> None:
        async with self._writing:
            await self._checkpoint(p, rt)

    async def _checkpoint(self, p: int, rt: PartitionRuntime) -> None:
        """THE write order that makes a crash at any point recoverable (streams/runtime.py, R6.1).
        Tested step by step, with a crash between any two steps, in tests/streams/test_worker.py."""
        await self.producer.flush()  # 1. outputs and dead letters first: state never runs ahead of them
        cp = rt.checkpoint()
        store = self.store
        for k, v in cp.conversations:  # 2. conversation entries; None: an evicted one's tombstone
            store.write(CONVERSATIONS, p, k, v)
        await store.flush()
        if self.runtimes.get(p) is not rt:
            return  # revoked meanwhile: the new owner continues from the last complete checkpoint
        store.write(META, p, *cp.meta)  # 3. the commit point, with the next offset and the changed shops
        await store.flush()
        for k, v in cp.shops:  # 4. the shops to their own table
            store.write(SHOPS, p, k, v)
        await store.flush()
        if self.runtimes.get(p) is not rt:
            return
        for ev in self.unacked.pop(p, ()):  # 5. only now may Kafka commit the input offsets
            ev.ack()
        rt.pending_acks = 0
        self.last_checkpoint[p] = self.clock.monotonic()
        metrics = self.metrics
        metrics.account(p, rt.engine.stats)
        metrics.watermark_now(p, rt.engine.watermark)
        metrics.conversations.labels(str(p)).set(len(rt.engine.convs))
        metrics.owned.set(len(self.runtimes))
        self.views.advance(rt.engine.shops, rt.engine.watermark)

    def due_checkpoints(self, caught_up: Callable[[int], bool] | None = None) -> list[int]:
        """Partitions to send a flush record to (the app's timer does). Checkpoints run inside
        stream processing (table writes need the partition's event), so when a partition's input
        pauses (``checkpoint_idle``), or its last checkpoint is older than
        ``checkpoint_interval``, a flush record asks for one; otherwise its last events would
        stay uncommitted until more input came. So does a quiet partition that owes tombstones.
        One request per partition until it is handled.

        ``caught_up(p)`` says whether the agent has taken every record of ``p`` the consumer
        knows of. A partition with records still waiting has not paused, however long since its
        last one: the agent was busy elsewhere (a checkpoint of another partition, in a backfill
        up to half a second), and a flush request for it then forced a needless checkpoint,
        whose own pause made others look idle in turn (issue #15: 6 of 20 checkpoints of the
        220k-event benchmark). Such a partition checkpoints by events or by interval."""
        now = self.clock.monotonic()
        settings = self.settings
        due = []
        for p, pending in list(self.unacked.items()):
            if pending and p not in self.flush_requested and (
                    now - self.last_checkpoint[p] >= settings.checkpoint_interval
                    or (now - self.last_event[p] >= settings.checkpoint_idle
                        and (caught_up is None or caught_up(p)))):
                self.flush_requested.add(p)
                due.append(p)
        # A partition gone quiet right after a checkpoint that evicted conversations still owes
        # their tombstones (the checkpoint after the eviction's writes them, streams/runtime.py):
        # without this they waited for the partition's next input, however long that took.
        for p, rt in list(self.runtimes.items()):
            if rt.evicted and p not in self.flush_requested and p not in due and (
                    now - self.last_event.get(p, 0.0) >= settings.checkpoint_idle):
                self.flush_requested.add(p)
                due.append(p)
        return due

    # ------------------------------------------------------------------ rebalances

    async def revoked(self, revoked: Iterable[TopicPartition]) -> None:
        """Drop what this worker held of revoked partitions; the next owner resumes from the
        committed offsets and the stored state. Returns once a checkpoint under way has finished
        (or stopped at its next step), so no table write of ours lands after the next owner
        started reading."""
        self.rebalanced = False
        for tp in revoked:
            # What an agent took from a partition before is stale once it is revoked: were it
            # assigned back later, the lag would be computed from it (issue #10 finding 8).
            self.position.pop(tuple(tp), None)
            topic, p = tp
            if topic == self.names.events:
                self.owned.discard(p)
                self._drop(p)
                self.unacked.pop(p, None)
                self.metrics.forget(p)
        self.metrics.owned.set(len(self.runtimes))
        async with self._writing:
            pass

    def assigned(self, assigned: Iterable[TopicPartition]) -> None:
        """An assignment replaces the previous one; a runtime loaded by an in-flight event after
        its partition's revocation is dropped."""
        self.owned.clear()
        self.owned.update(p for topic, p in assigned if topic == self.names.events)
        for p in self.runtimes.keys() - self.owned:
            self._drop(p)
            self.unacked.pop(p, None)
            self.metrics.forget(p)

    def _drop(self, p: int) -> None:
        self.expected.pop(p, None)
        self.rewinding.pop(p, None)
        rt = self.runtimes.pop(p, None)
        if rt is not None:
            self.views.drop(rt.engine.shops)

    def serve_owned(self, assignment: Iterable[TopicPartition]) -> None:
        """Serve every owned partition as soon as the rebalance is complete, tables recovered,
        not only when its next event arrives: with the eager rebalance protocol every rebalance
        revokes *all* partitions, so without this a quiet partition's shops (a backfill, or
        --no-ticks) vanished from every worker's /metrics and /shops after any rebalance until
        new input came. ``assignment`` is the consumer's, read again in case recovery finished
        before the assignment reached :meth:`assigned`."""
        self.owned.clear()
        self.owned.update(p for topic, p in assignment if topic == self.names.events)
        for p in sorted(self.owned - self.runtimes.keys()):
            self.load(p, "after the rebalance")
        self.metrics.owned.set(len(self.runtimes))
        self.rebalanced = True

    # ------------------------------------------------------------------ lag

    def lags(self, assignment: Iterable[TopicPartition], highwater: Callable[[TopicPartition], int | None],
             committed: Mapping[TopicPartition, int]) -> dict[tuple[str, int], int]:
        """Records between what this worker has done and the end of each input partition it
        reads. "Done" is the later of the offset after the last record taken and the group's
        committed offset: right after a start or a rebalance nothing was taken yet and the
        committed offset is what is done (issue #10 finding 8)."""
        names = self.names
        lags = {}
        for tp in assignment:
            if tp[0] not in (*names.inputs, names.events):
                continue
            high = highwater(tp)
            done = max((o for o in (self.position.get(tuple(tp)), committed.get(tp)) if o is not None), default=None)
            if high is None or high < 0 or done is None:
                continue  # nothing known about it yet
            lags[(tp[0], tp[1])] = max(0, high - done)
        return lags
