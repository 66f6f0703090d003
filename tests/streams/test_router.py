"""The router (``streams/router.py``, issue #15) without Kafka: its offset bookkeeping, batching,
the commit only after the broker acknowledged what was forwarded, revocation, and the
record-timestamp order across input partitions.

The fakes are the consumer (fetches handed out one by one, high watermarks, commits journalled)
and the producer of batch records (``FakeWriter``: records queued by ``add`` are acknowledged
only when the test opens its gate, or fail). The worker is the real :class:`Worker` on the
in-memory fakes of ``tests/streams/test_worker.py`` (its ``route`` is what the router calls).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import orjson
import pytest
from aiokafka.errors import IllegalStateError

from chatsla.streams.codec import decode_internal
from chatsla.streams.router import OffsetBook, Router
from chatsla.streams.settings import WorkerSettings
from chatsla.streams.topics import TopicNames
from tests.builders import at, msg, shop_event
from tests.streams.test_worker import Broker, Journal, make_worker

NAMES = TopicNames()
CHAT0, CHAT1, SHOP0 = (NAMES.chat, 0), (NAMES.chat, 1), (NAMES.shop, 0)
SETTINGS = WorkerSettings(partitions=2)


@dataclass
class Rec:
    """A consumed record as aiokafka gives it (timestamp in ms)."""

    topic: str
    partition: int
    offset: int
    value: bytes
    timestamp: int
    key: bytes | None = None


def rec(tp: tuple, offset: int, event: dict, ts: int) -> Rec:
    return Rec(tp[0], tp[1], offset, orjson.dumps(event), ts)


class FakeConsumer:
    def __init__(self, assignment: set) -> None:
        self.assigned = set(assignment)
        self.high: dict = {}
        self.fetches: list[dict] = []
        self.commits: list[dict] = []
        self.paused: set = set()
        self.start: dict = {}  # committed offsets (where a partition's reading starts)
        self.seeks: list[tuple] = []

    async def getmany(self, *partitions, timeout_ms: int = 0, max_records=None) -> dict:
        await asyncio.sleep(0)
        return self.fetches.pop(0) if self.fetches else {}

    async def commit(self, offsets: dict) -> None:
        self.commits.append(dict(offsets))

    def assignment(self) -> set:
        return set(self.assigned)

    def highwater(self, tp):
        return self.high.get(tp)

    async def position(self, tp) -> int:
        return self.start.get(tp, 0)

    def pause(self, *tps) -> None:
        self.paused.update(tps)

    def seek(self, tp, offset: int) -> None:
        if tp not in self.assigned:
            raise IllegalStateError(f"{tp} is not assigned")
        self.seeks.append((tp, offset))

    def resume(self, *tps) -> None:
        self.paused.difference_update(tps)


class FakeWriter:
    """Batch records to chatsla.events: delivered (``acked``) only through the gate."""

    def __init__(self) -> None:
        self.queued: list[tuple[int, bytes]] = []
        self.acked: list[tuple[int, bytes]] = []
        self.gate = asyncio.Event()
        self.fail: Exception | None = None

    def add(self, topic: str, key, value: bytes, partition=None) -> None:
        assert topic == NAMES.events and key is None
        self.queued.append((partition, value))

    def send(self) -> None:
        pass

    async def flush(self) -> None:
        upto = len(self.queued)
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.acked.extend(self.queued[len(self.acked):upto])


def make_router(consumer: FakeConsumer, writer: FakeWriter) -> Router:
    worker = make_worker(Broker(), Journal(), settings=SETTINGS)

    async def flush_dead_letters() -> None:
        await worker.producer.flush()

    return Router(worker, consumer, writer, NAMES.events, None, flush_dead_letters)


def routed_ids(writer: FakeWriter, acked: bool = True) -> list[str]:
    """Event ids in the batch records, in the order the engine would read them."""
    return [ev.event_id for _, value in (writer.acked if acked else writer.queued)
            for _, ev in decode_internal(value)]


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


# ---------------------------------------------------------------------- OffsetBook


def test_offsets_become_committable_only_once_their_fetch_is_delivered_in_order() -> None:
    """Issue #15: input offsets are committed only after the forwarded batches are acknowledged."""
    book = OffsetBook()
    first = book.forwarded({CHAT0: 10, CHAT1: 5})
    second = book.forwarded({CHAT0: 20})
    assert book.committable() == {} and book.pending()
    book.delivered(first)
    assert book.committable() == {CHAT0: 10, CHAT1: 5}
    assert book.committable() == {}  # each handed out once
    book.delivered(second)
    assert book.committable() == {CHAT0: 20} and not book.pending()
    assert book.committed == {CHAT0: 20, CHAT1: 5}


def test_a_revoked_partitions_unacknowledged_offsets_are_dropped() -> None:
    """Issue #15: a worker that loses input partitions commits what was acknowledged and drops the rest."""
    book = OffsetBook()
    book.delivered(book.forwarded({CHAT0: 10, CHAT1: 5}))
    book.committable()
    book.forwarded({CHAT0: 20, CHAT1: 9})
    book.drop([CHAT0])
    book.delivered(book.last)
    assert book.committable() == {CHAT1: 9}  # nothing more of CHAT0, ever
    assert CHAT0 not in book.committed


# ---------------------------------------------------------------------- the loop


def test_batches_per_partition_and_the_commit_waits_for_the_brokers_acknowledgement() -> None:
    """Issue #15 / R1: good events re-keyed by shop into one batch record per chatsla.events
    partition, a bad record to its DLQ; offsets committed only after both were delivered."""
    async def run() -> None:
        consumer, writer = FakeConsumer({CHAT0}), FakeWriter()
        router = make_router(consumer, writer)
        shops = ["s1", "s2", "s3", "s4"]
        fetch = [rec(CHAT0, i, msg(f"c{i}", "buyer", at(m=i), shop=shops[i % 4], eid=f"e{i}"), 1000 + i) for i in range(8)]
        fetch.append(Rec(NAMES.chat, 0, 8, b'{"schema": "chat.message/v1"}', 1008))
        consumer.high[CHAT0] = 9
        consumer.fetches.append({CHAT0: fetch})
        assert await router.step() == 9
        await settle()
        assert consumer.commits == [] and writer.acked == []  # queued, not acknowledged: nothing committed
        assert len({p for p, _ in writer.queued}) == len(writer.queued) == 2  # one batch record per partition
        writer.gate.set()
        await settle()
        assert consumer.commits == [{CHAT0: 9}]
        assert sorted(routed_ids(writer)) == [f"e{i}" for i in range(8)]
        dead = router.worker.producer.broker.dead
        assert [d[0] for d in dead] == [NAMES.chat_dlq] and dead[0][3]["chatsla-source"] == f"{NAMES.chat}/0@8".encode()

    asyncio.run(run())


def test_a_failed_delivery_commits_nothing_and_stops_the_loop() -> None:
    """Crash-only: a batch the broker did not take must not have its input offsets committed."""
    async def run() -> None:
        consumer, writer = FakeConsumer({CHAT0}), FakeWriter()
        router = make_router(consumer, writer)
        consumer.high[CHAT0] = 1
        consumer.fetches.append({CHAT0: [rec(CHAT0, 0, msg("c", "buyer", at(), eid="e0"), 1)]})
        await router.step()
        writer.fail = RuntimeError("broker said no")
        writer.gate.set()
        await settle()
        assert consumer.commits == []
        with pytest.raises(RuntimeError, match="broker said no"):
            await router.step()

    asyncio.run(run())


def test_revocation_delivers_and_commits_what_was_queued_then_drops_a_late_fetch() -> None:
    """Issue #15: the old owner stops forwarding a revoked partition before the new owner starts."""
    async def run() -> None:
        consumer, writer = FakeConsumer({CHAT0}), FakeWriter()
        router = make_router(consumer, writer)
        consumer.high[CHAT0] = 3
        consumer.fetches.append({CHAT0: [rec(CHAT0, 0, msg("c", "buyer", at(), eid="e0"), 1)]})
        await router.step()
        writer.gate.set()
        await router.on_partitions_revoked([CHAT0])
        assert consumer.commits == [{CHAT0: 1}]  # acknowledged, then committed, inside the callback
        # a fetch completed before the revocation but handed to the loop after it
        stale = {CHAT0: [rec(CHAT0, 1, msg("c", "seller", at(m=1), eid="e1"), 2)]}

        async def late_getmany(*a, **k):
            await router.on_partitions_revoked([CHAT0])  # the rebalance runs while the loop waits
            return stale
        consumer.getmany = late_getmany  # type: ignore[method-assign]
        consumer.assigned.clear()  # the partition went to another worker
        assert await router.step() == 0
        await settle()
        assert routed_ids(writer, acked=False) == ["e0"] and consumer.commits == [{CHAT0: 1}]
        assert consumer.seeks == []  # its new owner reads it from the committed offset

    asyncio.run(run())


def test_a_fetch_that_crosses_a_rebalance_giving_the_partition_back_is_read_again_not_lost() -> None:
    """Issue #15, found with two workers starting together: aiokafka hands a fetch out only
    once the new assignment is in place, and moves the position past its records. The router
    ignored a fetch that crossed a rebalance, so when the partition came back to the same worker
    those records were never forwarded: the tail of two input partitions stayed unrouted and
    uncommitted, and any later record's commit would have gone past them. The fetch is sought
    back instead; the next one hands the same records out, and they are routed and committed."""
    async def run() -> None:
        consumer, writer = FakeConsumer({CHAT0}), FakeWriter()
        router = make_router(consumer, writer)
        writer.gate.set()
        consumer.high[CHAT0] = 2
        refetched = {CHAT0: [rec(CHAT0, 0, msg("c", "buyer", at(), eid="e0"), 1),
                             rec(CHAT0, 1, msg("c", "seller", at(m=1), eid="e1"), 2)]}

        async def crossing_getmany(*a, **k):
            await router.on_partitions_revoked([CHAT0])  # the rebalance; CHAT0 assigned back
            return refetched
        consumer.getmany = crossing_getmany  # type: ignore[method-assign]
        assert await router.step() == 0
        assert consumer.seeks == [(CHAT0, 0)]  # put back where the fetch began
        del consumer.getmany  # the class's: the queued fetches
        consumer.fetches.append(refetched)  # what the consumer hands out after the seek
        assert await router.step() == 2
        await settle()
        assert routed_ids(writer) == ["e0", "e1"] and consumer.commits[-1] == {CHAT0: 2}

    asyncio.run(run())


def test_revocation_whose_delivery_fails_commits_nothing_more() -> None:
    async def run() -> None:
        consumer, writer = FakeConsumer({CHAT0}), FakeWriter()
        router = make_router(consumer, writer)
        consumer.high[CHAT0] = 1
        consumer.fetches.append({CHAT0: [rec(CHAT0, 0, msg("c", "buyer", at(), eid="e0"), 1)]})
        await router.step()
        writer.fail = RuntimeError("gone")
        writer.gate.set()
        await router.on_partitions_revoked([CHAT0])
        assert consumer.commits == [] and router.book.committable() == {} and not router.book.pending()

    asyncio.run(run())


def test_records_go_in_timestamp_order_across_partitions_held_back_by_a_partition_not_read_to_its_end() -> None:
    """R6.4 / issue #15: a shop event written before chat messages that a fetch returned first is
    not overtaken by them; a partition read to its end holds nothing back."""
    async def run() -> None:
        consumer, writer = FakeConsumer({CHAT0, SHOP0}), FakeWriter()
        writer.gate.set()
        router = make_router(consumer, writer)
        consumer.high.update({CHAT0: 3, SHOP0: 2})
        chat = [rec(CHAT0, i, msg("c", "buyer", at(h=i), eid=f"c{i}"), 100 * (i + 1)) for i in range(3)]  # ts 100, 200, 300
        shop = [rec(SHOP0, 0, shop_event("vacation_on", at(m=30), eid="v0"), 50),
                rec(SHOP0, 1, shop_event("vacation_off", at(h=1, m=30), eid="v1"), 250)]
        consumer.fetches.append({CHAT0: chat, SHOP0: shop[:1]})  # shop.events fetched up to ts 50 only
        assert await router.step() == 1  # only what is at or before ts 50 may go
        assert routed_ids(writer, acked=False) == ["v0"]
        assert consumer.paused == {CHAT0}  # held records: no more fetching of that partition
        consumer.fetches.append({SHOP0: shop[1:]})  # shop.events now read to its end
        assert await router.step() == 4
        await settle()
        assert routed_ids(writer) == ["v0", "c0", "c1", "v1", "c2"]  # merged by record timestamp
        assert consumer.paused == set()
        assert router.book.committed == {CHAT0: 3, SHOP0: 2}

    asyncio.run(run())


def test_an_idle_partition_read_to_its_end_does_not_stall_the_others() -> None:
    async def run() -> None:
        consumer, writer = FakeConsumer({CHAT0, SHOP0}), FakeWriter()
        writer.gate.set()
        router = make_router(consumer, writer)
        consumer.high.update({CHAT0: 2, SHOP0: 0})  # shop.events empty
        consumer.fetches.append({CHAT0: [rec(CHAT0, i, msg("c", "buyer", at(h=i), eid=f"c{i}"), i) for i in range(2)]})
        assert await router.step() == 2
        await settle()
        assert routed_ids(writer) == ["c0", "c1"] and router.book.committed == {CHAT0: 2}

    asyncio.run(run())


def test_a_partition_not_fetched_yet_holds_everything_until_its_first_fetch() -> None:
    """R6.4 / issue #15: a restarted worker's first fetch can answer for the chat partitions
    before shop.events is fetchable; routing them then would make the shop events late."""
    async def run() -> None:
        consumer, writer = FakeConsumer({CHAT0, SHOP0}), FakeWriter()
        writer.gate.set()
        router = make_router(consumer, writer)
        consumer.high.update({CHAT0: 2})  # shop.events: no fetch answered yet (end unknown)
        chat = [rec(CHAT0, i, msg("c", "buyer", at(h=i), eid=f"c{i}"), 100 * (i + 1)) for i in range(2)]
        consumer.fetches.append({CHAT0: chat})
        assert await router.step() == 0
        consumer.high[SHOP0] = 1
        consumer.fetches.append({SHOP0: [rec(SHOP0, 0, shop_event("vacation_on", at(m=30), eid="v0"), 150)]})
        assert await router.step() == 3
        await settle()
        assert routed_ids(writer) == ["c0", "v0", "c1"]

    asyncio.run(run())


def test_a_commit_the_group_refuses_during_a_rebalance_does_not_stop_the_router() -> None:
    """A rebalance may begin while a delivery commits: the group refuses the commit; those
    records are forwarded again by their next reader (at-least-once), the worker goes on."""
    from aiokafka.errors import CommitFailedError

    async def run() -> None:
        consumer, writer = FakeConsumer({CHAT0}), FakeWriter()
        writer.gate.set()
        router = make_router(consumer, writer)

        async def refuse(offsets):
            raise CommitFailedError("the group has already rebalanced")
        consumer.commit = refuse  # type: ignore[method-assign]
        consumer.high[CHAT0] = 2
        consumer.fetches.append({CHAT0: [rec(CHAT0, 0, msg("c", "buyer", at(), eid="e0"), 1)]})
        await router.step()
        await settle()
        consumer.fetches.append({CHAT0: [rec(CHAT0, 1, msg("c", "seller", at(m=1), eid="e1"), 2)]})
        assert await router.step() == 1  # no crash
        await settle()
        assert routed_ids(writer) == ["e0", "e1"]

    asyncio.run(run())


def test_a_partition_at_its_end_holds_back_only_the_last_moments() -> None:
    """R6.4 / issue #15: a producer's batch for shop.events can reach the broker a linger later
    than its batch for chat.messages; records younger than SETTLE_MS by the router's clock wait."""
    from chatsla.streams.router import SETTLE_MS

    async def run() -> None:
        consumer, writer = FakeConsumer({CHAT0, SHOP0}), FakeWriter()
        writer.gate.set()
        router = make_router(consumer, writer)
        now_ms = router.worker.clock.wall // 1000  # (2030: the events' 2026 times are not "future")
        consumer.high.update({CHAT0: 2, SHOP0: 0})  # shop.events: read to its end (empty)
        old, young = now_ms - SETTLE_MS - 1, now_ms - SETTLE_MS + 100
        consumer.fetches.append({CHAT0: [rec(CHAT0, 0, msg("c", "buyer", at(), eid="c0"), old),
                                         rec(CHAT0, 1, msg("c", "buyer", at(m=1), eid="c1"), young)]})
        assert await router.step() == 1
        router.worker.clock.wall += 200_000  # 200 ms later the young one has settled too
        assert await router.step() == 1
        await settle()
        assert routed_ids(writer) == ["c0", "c1"]

    asyncio.run(run())


def test_at_equal_timestamps_a_shop_event_goes_before_chat_messages() -> None:
    """R6.4: record timestamps are milliseconds; within one, a shop event must not be routed
    behind chat messages of the same millisecond (early it waits for the watermark)."""
    async def run() -> None:
        consumer, writer = FakeConsumer({CHAT0, SHOP0}), FakeWriter()
        writer.gate.set()
        router = make_router(consumer, writer)
        consumer.high.update({CHAT0: 2, SHOP0: 1})
        consumer.fetches.append({CHAT0: [rec(CHAT0, i, msg("c", "buyer", at(h=i), eid=f"c{i}"), 7) for i in range(2)],
                                 SHOP0: [rec(SHOP0, 0, shop_event("vacation_on", at(m=30), eid="v0"), 7)]})
        assert await router.step() == 3
        await settle()
        assert routed_ids(writer) == ["v0", "c0", "c1"]

    asyncio.run(run())
