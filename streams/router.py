"""The worker's input stage (issue #15): the input topics read with aiokafka's batched fetch
(``getmany``), outside Faust's per-record stream machinery.

A Faust agent costs about 55 µs of CPU per Kafka record before any work (BENCHMARKS.md); the
router's work per input event is a decode and a few checks. So the stateless stage that
validates ``chat.messages``, ``shop.events``, ``ticket.events`` and ``aftersale.requests`` (RULES R1,
A.1; the topics are ``TopicNames.inputs``), sends bad records
to ``<input>.dlq`` and re-keys the good ones by shop runs here, on a plain
:class:`aiokafka.AIOKafkaConsumer` in the worker process, in a consumer group of its own
(:func:`router_group`). What it forwards is exactly what the Faust route agent forwarded:
:meth:`Worker.route <chatsla.streams.worker.Worker.route>` groups a fetch's good events by their
shop's ``chatsla.events`` partition, and each partition's items leave as batch records
(``streams/codec.py``). Faust keeps the session agent on ``chatsla.events``, the tables,
recovery and the web server.

**Offsets are committed only behind acknowledged batches** (at-least-once; the engine drops
duplicates by ``event_id``). Each fetch's next offsets are booked (:class:`OffsetBook`) when its
batch records are queued on the router's own producer (an :class:`OutputWriter`, which keeps a
partition's batches in order); a delivery task waits until everything queued so far is
acknowledged by the broker (``acks=all``), marks those fetches delivered and commits their
offsets. Fetching and routing go on meanwhile, so the round trip is not paid per fetch. A crash
anywhere between forwarding and committing forwards those events again at worst
(``tests/integration/test_router.py`` kills a worker exactly there).

**Rebalances.** The router follows its own group's assignment. When partitions are revoked it
stops forwarding (routing and queuing a fetch never awaits, so a revocation falls between two
fetches), waits for what it queued to be acknowledged, commits those offsets, and forgets the
rest, all inside aiokafka's ``on_partitions_revoked``, which every member runs before any member
is assigned partitions: a worker that loses an input partition has stopped forwarding it before
the new owner starts. A fetch that was completed before a revocation but handed to the loop
after it is dropped (its records are the new owner's now).

The pure bookkeeping (:class:`OffsetBook`) and the loop's steps (:class:`Router`, with the
consumer and producer as small interfaces) are unit-tested with in-memory fakes in
``tests/streams/test_router.py``.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
from collections import deque
import signal
from typing import Any, Awaitable, Callable, Iterable, Mapping, Protocol

from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import IllegalStateError, KafkaError

from chatsla.streams.codec import batch_records
from chatsla.streams.topics import router_group  # noqa: F401 (re-exported: where the router is)

log = logging.getLogger("chatsla.router")

TP = tuple  # (topic, partition); aiokafka's TopicPartition is a namedtuple of the two

# A test hook (tests/integration/test_router.py): SIGKILL the process after this many deliveries
# were acknowledged, before their input offsets are committed: the crash the router's at-least-once
# promise is about. Read once, at import; never set in production.
KILL_BEFORE_COMMIT = int(os.environ.get("CHATSLA_TEST_KILL_BEFORE_COMMIT", "0") or 0)


# A partition read to its end holds the others back to this long before the router's wall clock
# (record timestamps are the producers' clocks): a producer's batch for one partition can reach
# the broker a linger and a request later than its batch for another, so a partition that looks
# idle may still get a record older than what another one just returned (see _releasable).
SETTLE_MS = 500




class OffsetBook:
    """Which input offsets may be committed: those of fetches whose batch records the broker
    acknowledged, in fetch order.

    :meth:`forwarded` books a fetch's next offsets and returns its sequence number;
    :meth:`delivered` says every fetch up to a sequence number is acknowledged; :meth:`committable`
    hands out (once) the offsets that became committable. :meth:`drop` forgets what was not
    acknowledged of revoked partitions: the next owner reads it again from the committed offset.
    """

    def __init__(self) -> None:
        self._seq = 0  # sequence number of the last fetch booked
        self._pending: list[tuple[int, dict[TP, int]]] = []  # (seq, next offsets), not yet acknowledged
        self._ready: dict[TP, int] = {}  # acknowledged, not yet handed to a commit
        self.committed: dict[TP, int] = {}  # handed to a commit (the router's view of its group's offsets)

    @property
    def last(self) -> int:
        return self._seq

    def forwarded(self, offsets: Mapping[TP, int]) -> int:
        """Book one fetch whose records were all queued for forwarding; ``offsets``: each input
        partition's offset after the fetch's last record."""
        self._seq += 1
        self._pending.append((self._seq, dict(offsets)))
        return self._seq

    def pending(self) -> bool:
        """Fetches queued but not yet acknowledged."""
        return bool(self._pending)

    def delivered(self, upto: int) -> None:
        """Every fetch booked up to ``upto`` is acknowledged by the broker."""
        keep = []
        for seq, offsets in self._pending:
            if seq <= upto:
                for tp, o in offsets.items():  # fetches are booked in order: later ones are ahead
                    if o > self._ready.get(tp, -1):
                        self._ready[tp] = o
            else:
                keep.append((seq, offsets))
        self._pending = keep

    def committable(self) -> dict[TP, int]:
        """The acknowledged offsets not committed yet, each partition once."""
        ready, self._ready = self._ready, {}
        ready = {tp: o for tp, o in ready.items() if o > self.committed.get(tp, -1)}
        self.committed.update(ready)
        return ready

    def drop(self, tps: Iterable[TP]) -> None:
        """Forget what is booked for revoked partitions ``tps`` (after committing what was
        acknowledged): none of it may be committed by this worker any more."""
        gone = {tuple(tp) for tp in tps}
        self._pending = [(seq, {tp: o for tp, o in offsets.items() if tuple(tp) not in gone})
                         for seq, offsets in self._pending]
        self._pending = [(seq, offsets) for seq, offsets in self._pending if offsets]
        for tp in list(self._ready):
            if tuple(tp) in gone:
                del self._ready[tp]
        for tp in list(self.committed):
            if tuple(tp) in gone:
                del self.committed[tp]


class Consumer(Protocol):
    """What the router uses of :class:`aiokafka.AIOKafkaConsumer`."""

    async def getmany(self, *partitions: Any, timeout_ms: int = 0, max_records: int | None = None) -> dict: ...

    async def commit(self, offsets: dict) -> None: ...

    def assignment(self) -> set: ...

    def highwater(self, tp: Any) -> int | None: ...

    async def position(self, tp: Any) -> int: ...

    def pause(self, *partitions: Any) -> None: ...

    def seek(self, partition: Any, offset: int) -> None: ...

    def resume(self, *partitions: Any) -> None: ...


class Writer(Protocol):
    """What the router uses of :class:`~chatsla.streams.outputs.OutputWriter`."""

    def add(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> None: ...

    def send(self) -> None: ...

    async def flush(self) -> None: ...


class Router(ConsumerRebalanceListener):
    """The input stage's loop: fetch, route (:meth:`Worker.route`), queue batch records, deliver
    and commit in the background, follow rebalances.

    ``worker`` is the process's :class:`~chatsla.streams.worker.Worker` (its ``route``, which
    sends bad records to their DLQ through the worker's producer). ``flush_dead_letters`` waits
    until those are delivered; :meth:`_deliver` awaits it too, so a bad record's offset is
    committed only once the record is in its DLQ. (It must not flush the session agent's output
    writer: that one's flush belongs to the checkpoint.) ``consumer`` is subscribed by the
    caller with this object as its rebalance listener."""

    def __init__(self, worker: Any, consumer: Consumer | None, writer: Writer, events_topic: str,
                 max_records: int | None, flush_dead_letters: Callable[[], Awaitable[Any]],
                 metrics: "RouterMetrics | None" = None) -> None:
        self.worker = worker
        self.flush_dead_letters = flush_dead_letters
        self.consumer = consumer
        self.writer = writer
        self.events_topic = events_topic
        self.max_records = max_records
        self.metrics = metrics
        self.book = OffsetBook()
        self.generation = 0  # bumped by every revocation: a fetch from before one is dropped
        self._delivering = asyncio.Lock()  # one delivery (flush + commit) at a time
        self._delivery: asyncio.Future | None = None
        self._failed: BaseException | None = None
        self._deliveries = 0  # acknowledged deliveries (the crash test's hook counts them)
        self._held: dict[Any, deque] = {}  # fetched, not yet routed (see _releasable)
        self._fetched: dict[Any, tuple[int, int]] = {}  # partition -> (offset after, timestamp) of its last record fetched
        self._paused: set = set()
        self._start: dict[Any, int] = {}  # position of an assigned partition not fetched yet

    # ------------------------------------------------------------------ the loop

    async def step(self, timeout_ms: int = 200) -> int:
        """One fetch: route it, queue its batch records, book its offsets, make sure a delivery
        runs. Returns the number of input records taken. Raises what a delivery raised (a
        failed produce: crash-only, the next owner resumes from the committed offsets)."""
        if self._failed is not None:
            raise self._failed
        assert self.consumer is not None
        await self._positions()
        generation = self.generation
        if any(self._held.values()):  # look again soon: held records may settle without new input
            timeout_ms = min(timeout_ms, 50)
        fetched = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=self.max_records)
        if generation != self.generation:  # a rebalance while the fetch was waiting
            self._put_back(fetched)
            return 0
        return self.forward(fetched)

    def _put_back(self, fetched: Mapping[Any, list]) -> None:
        """A fetch that straddled a rebalance is not routed: this loop's view of the partitions
        (held records, positions) was reset by the revocation. Its records are not dropped
        either. aiokafka waits for the new assignment before it hands records out and moves the
        consumer's position past them, so they were read for the new owner, this worker: left
        there, a partition given back to it resumed after them and they were never forwarded,
        and once later records were, their offsets were committed past them (issue #15: two
        workers starting together lost the tail of two input partitions). Each partition still
        assigned is sought back to the first record of the fetch, so the next fetch hands the
        same records out again; one assigned elsewhere is read by its new owner from the
        committed offset."""
        consumer = self.consumer
        assert consumer is not None
        for tp, msgs in fetched.items():
            if not msgs:
                continue
            try:
                consumer.seek(tp, msgs[0].offset)
            except (IllegalStateError, AssertionError):  # not ours any more: its new owner reads it
                continue
            log.info("router: a fetch of %s/%d from offset %d crossed a rebalance; read again",
                     tp[0], tp[1], msgs[0].offset)

    def forward(self, fetched: Mapping[Any, list]) -> int:
        """Take one fetch, route what may go now (:meth:`_releasable`) and queue its batch
        records (no await: a revocation cannot fall in the middle), then book its offsets.
        Returns the number of input records routed."""
        for tp, msgs in fetched.items():
            if msgs:
                held = self._held.get(tp)
                if held is None:
                    held = self._held[tp] = deque()
                held.extend(msgs)
                self._fetched[tp] = (msgs[-1].offset + 1, msgs[-1].timestamp)
        runs, offsets = self._releasable()
        self._pace()
        if not runs:
            return 0
        if len(runs) == 1:
            records = runs[0]
        else:
            # At equal timestamps (milliseconds: dozens of records in a backfill) the other
            # inputs' records go before chat messages: a shop event routed early waits for the
            # watermark in the engine; routed late it is applied late.
            chat = self.worker.names.chat
            records = list(heapq.merge(*runs, key=lambda r: (r.timestamp, r.topic == chat)))
        batches = 0
        for p, items in self.worker.route(records).items():
            for record in batch_records(items):
                self.writer.add(self.events_topic, None, record, partition=p)
                batches += 1
        self.writer.send()
        self.book.forwarded(offsets)
        if self.metrics is not None:
            self.metrics.routed.inc(len(records))
            self.metrics.batches.inc(batches)
            self.metrics.fetches.inc()
        if self._delivery is None or self._delivery.done():
            self._delivery = asyncio.ensure_future(self._deliver_all())
        return len(records)

    async def _positions(self) -> None:
        """The position of each assigned partition not fetched yet, once its end is known: a
        partition at its end holds nothing back (:meth:`_releasable`)."""
        consumer = self.consumer
        generation = self.generation
        for tp in consumer.assignment():  # type: ignore[union-attr]
            if tp not in self._fetched and tp not in self._start and consumer.highwater(tp) is not None:  # type: ignore[union-attr]
                try:
                    position = await consumer.position(tp)  # type: ignore[union-attr]
                except Exception:  # noqa: BLE001 - revoked meanwhile: the next step looks again
                    return
                if generation != self.generation:  # a rebalance while waiting: stale
                    return
                self._start[tp] = position

    def _releasable(self) -> tuple[list[list], dict[Any, int]]:
        """The held records that may be routed now, as one run per partition, and each such
        partition's next offset.

        The input topics are read independently, and a fetch is a snapshot of each partition's
        log: a chat partition's records may already run hours of event time past a shop event
        that its producer wrote earlier but the broker had not appended to ``shop.events`` when
        the fetch was answered. Routed as fetched, that shop event would reach the engine after
        the chat partitions moved the watermark past it, and be late (R6.4) where the audit has
        it on time. So records are released in record-timestamp order across the partitions,
        the order ``chatsla replay`` merges the topics in: a record goes once every assigned
        partition that has more to read (its end, as the last fetch reported, is past what was
        fetched) has been fetched up to its timestamp; one not fetched yet since its assignment
        holds everything (a restart's first fetch may answer for the chat partitions before
        ``shop.events`` is fetchable). A partition read to its end holds back only records
        younger than ``SETTLE_MS`` by the router's clock (an idle ``shop.events`` must not stall
        a backfill; live, this is the latency it adds)."""
        bound = None  # the smallest timestamp fetched last from a partition that is not at its end
        consumer = self.consumer
        settled = self.worker.clock.wall_us() // 1000 - SETTLE_MS  # what a partition at its end allows
        for tp in consumer.assignment() if consumer is not None else ():
            fetched = self._fetched.get(tp)
            high = consumer.highwater(tp)  # type: ignore[union-attr]
            if fetched is None:
                # Nothing fetched since it was assigned: it holds everything back unless it is
                # known to have nothing to read (its position at its end, once its first fetch
                # answered; an idle shop.events must not stall the router).
                start = self._start.get(tp)
                if start is not None and high is not None and start >= high:
                    bound = settled if bound is None else min(bound, settled)
                    continue
                bound = -1
                break
            if high is not None and fetched[0] >= high:  # read to its end: it holds back only the
                bound = settled if bound is None else min(bound, settled)  # last moments
                continue
            bound = fetched[1] if bound is None else min(bound, fetched[1])
        runs, offsets = [], {}
        for tp, held in self._held.items():
            if not held:
                continue
            if bound is None or held[-1].timestamp <= bound:
                run = list(held)
                held.clear()
            else:
                run = []
                while held and held[0].timestamp <= bound:
                    run.append(held.popleft())
            if run:
                runs.append(run)
                offsets[tp] = run[-1].offset + 1
        return runs, offsets

    def _pace(self) -> None:
        """Pause fetching the partitions with records still held (they are ahead of another
        partition): what is held stays at about one fetch per partition. Resumed once released."""
        consumer = self.consumer
        if consumer is None:
            return
        held = [tp for tp, q in self._held.items() if q]
        free = [tp for tp, q in self._held.items() if not q and tp in self._paused]
        try:
            if held:
                consumer.pause(*held)
            if free:
                consumer.resume(*free)
        except (IllegalStateError, AssertionError):  # a partition revoked meanwhile (aiokafka asserts
            return                                    # on an assignment in transition): its pause state went with it
        self._paused = set(held)

    async def _deliver_all(self) -> None:
        try:
            while self.book.pending():
                async with self._delivering:
                    await self._deliver()
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # kept for the loop to raise (crash-only)
            self._failed = e
            log.critical("forwarding input records failed: %r", e)

    async def _deliver(self) -> None:
        """Wait until everything queued so far is acknowledged, then commit those fetches'
        offsets. Caller holds ``_delivering``."""
        upto = self.book.last
        await self.writer.flush()
        await self.flush_dead_letters()  # the dead letters of those fetches
        self.book.delivered(upto)
        self._deliveries += 1
        if KILL_BEFORE_COMMIT and self._deliveries >= KILL_BEFORE_COMMIT:
            log.warning("test hook: SIGKILL after a delivery, before its input offsets are committed")
            os.kill(os.getpid(), signal.SIGKILL)
        await self.commit()

    async def commit(self) -> None:
        """Commit the acknowledged offsets. A commit the group refuses (a rebalance began: the
        generation moved on, or a partition is no longer ours) is not an error: those records
        are forwarded again by whoever reads them next, and the engine drops the copies."""
        offsets = self.book.committable()
        if offsets:
            assert self.consumer is not None
            try:
                await self.consumer.commit(offsets)
            except (KafkaError, IllegalStateError) as e:
                log.warning("router: commit refused (%r); those input records will be forwarded again", e)

    async def drain(self) -> None:
        """Deliver and commit what is queued (a graceful stop)."""
        if self._delivery is not None:
            await asyncio.gather(self._delivery, return_exceptions=True)
        async with self._delivering:
            if self.book.pending():
                await self._deliver()

    # ------------------------------------------------------------------ rebalances (aiokafka's listener)

    async def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
        """Stop forwarding the revoked partitions before their next owner starts: what was
        queued is delivered and its offsets committed; what could not be delivered is dropped
        (not committed: the next owner forwards it again)."""
        revoked = list(revoked)
        self.generation += 1
        try:
            async with self._delivering:
                if self.book.pending():
                    await self._deliver()
        except Exception as e:  # noqa: BLE001 - nothing more is committed; the loop stops the worker
            log.warning("delivering before a revocation failed (%r): its offsets are not committed", e)
            self._failed = self._failed or e
        self.book.drop(revoked)
        for tp in revoked:  # fetched, not routed: the next owner reads them again
            self._held.pop(tp, None)
            self._fetched.pop(tp, None)
            self._start.pop(tp, None)
            self._paused.discard(tp)
        for tp in revoked:
            self.worker.position.pop(tuple(tp), None)
        log.info("router: input partitions revoked: %s", sorted(map(tuple, revoked)))

    async def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
        log.info("router: input partitions assigned: %s", sorted(map(tuple, assigned)))

    # ------------------------------------------------------------------ lag

    def lags(self) -> dict[tuple[str, int], int]:
        """Input records between what the router has taken (or its group committed) and the end
        of each input partition it reads (``chatsla_consumer_lag_records``)."""
        if self.consumer is None:
            return {}
        # right after a start (or a rebalance) nothing is taken yet: the position the partition
        # starts from (its group's committed offset) is what is done (issue #10 finding 8)
        return self.worker.lags(self.consumer.assignment(), self.consumer.highwater, {**self._start, **self.book.committed})


class RouterMetrics:
    """The router's throughput, on the worker's registry (the consumer lag of its input
    partitions is ``chatsla_consumer_lag_records``, as before)."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter

        self.routed = Counter("chatsla_router_records", "Input records the router took (valid or not).",
                              registry=registry)
        self.batches = Counter("chatsla_router_batches", "Batch records the router forwarded to chatsla.events.",
                               registry=registry)
        self.fetches = Counter("chatsla_router_fetches", "Fetches (getmany) that returned records.",
                               registry=registry)


async def run_router(router: Router, stopping: Any) -> None:
    """The loop until ``stopping()``; then what is queued is delivered and committed."""
    while not stopping():
        await router.step()
    await router.drain()
