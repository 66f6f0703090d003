"""streams/outputs.py: the worker's batched output writer. The producer here is a stand-in with
aiokafka's batch contract (one batch per partition accepted at a time, a delivery future per
batch); what is tested is the writer's own logic: order per partition, nothing lost or sent
twice, partitions as Kafka's default partitioner picks them, and a failed delivery surfacing in
``flush`` so no checkpoint follows it (streams/runtime.py, step 1)."""

from __future__ import annotations

import asyncio
import random

import pytest
from aiokafka.partitioner import DefaultPartitioner

from chatsla.streams.outputs import OutputWriter


class _Batch:
    def __init__(self, room: int) -> None:
        self.records: list[tuple[bytes, bytes]] = []
        self.room = room

    def append(self, *, key: bytes, value: bytes, timestamp: None) -> object | None:
        if len(self.records) >= self.room:
            return None
        self.records.append((key, value))
        return object()


class _Producer:
    """aiokafka's send_batch waits until the partition's previous batch has left; delivery
    completes later, in order, on the loop."""

    def __init__(self, room: int, fail_on: int | None = None) -> None:
        self.room, self.fail_on = room, fail_on
        self.delivered: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {}
        self.busy: set[tuple[str, int]] = set()
        self.sent = 0

    def create_batch(self) -> _Batch:
        return _Batch(self.room)

    async def send_batch(self, batch: _Batch, topic: str, *, partition: int) -> asyncio.Future:
        tp = (topic, partition)
        assert tp not in self.busy, "the writer must not hand over a second batch of a partition meanwhile"
        self.busy.add(tp)
        await asyncio.sleep(0)  # the producer takes it on a later loop turn
        self.busy.discard(tp)
        self.sent += 1
        fut = asyncio.get_running_loop().create_future()
        if self.sent == self.fail_on:
            fut.set_exception(RuntimeError("delivery failed"))
        else:
            self.delivered.setdefault(tp, []).extend(batch.records)
            fut.set_result(None)
        return fut


def _writer(producer: _Producer, partitions: int = 4) -> OutputWriter:
    w = OutputWriter({})
    w._producer = producer  # type: ignore[assignment]
    w._partitions = {"out": partitions}
    return w


@pytest.mark.parametrize("seed", range(5))
def test_r6_1_every_record_delivered_once_in_order_per_partition(seed: int) -> None:
    rnd = random.Random(seed)

    async def run() -> tuple[_Producer, list[tuple[bytes, bytes]]]:
        producer = _Producer(room=rnd.randint(1, 7))
        w = _writer(producer)
        added = []
        for i in range(400):
            key = f"shop-{rnd.randrange(9)}".encode()
            added.append((key, f"v{i}".encode()))
            w.add("out", key, added[-1][1])
            if rnd.random() < 0.3:
                w.send()
            if rnd.random() < 0.3:
                await asyncio.sleep(0)  # let shippers run between records
        await w.flush()
        return producer, added

    producer, added = asyncio.run(run())
    for (topic, p), records in producer.delivered.items():
        assert records == [r for r in added if DefaultPartitioner()(r[0], [0, 1, 2, 3], [0, 1, 2, 3]) == p]
    assert sum(len(r) for r in producer.delivered.values()) == len(added)


def test_r6_1_explicit_partition_is_kept() -> None:
    async def run() -> _Producer:
        producer = _Producer(room=3)
        w = _writer(producer)
        for i in range(10):
            w.add("out", b"k", str(i).encode(), partition=2)
        await w.flush()
        return producer

    assert asyncio.run(run()).delivered == {("out", 2): [(b"k", str(i).encode()) for i in range(10)]}


def test_r6_1_failed_delivery_fails_the_flush() -> None:
    async def run() -> None:
        w = _writer(_Producer(room=2, fail_on=2))
        for i in range(10):
            w.add("out", b"shop", str(i).encode())
            w.send()
        await w.flush()

    with pytest.raises(RuntimeError, match="delivery failed"):
        asyncio.run(run())
