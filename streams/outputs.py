"""The worker's own produce path: output records (``chatsla.sessions``, ``chatsla.assessments``)
and the conversation entries of checkpoints, written as Kafka record batches.

The session agent emits about 0.8 output records per input event and a checkpoint about 0.3
conversation entries per event. Faust's ``send_soon`` and table writes cost each record a
future, a hop through a buffer task and a produce call of its own, together several times the
engine's work on the event (BENCHMARKS.md, "Live worker"). This writer appends records to one
record batch per topic partition instead and starts sending after each input record the agent
handled, so they still leave at once, at a few microseconds per record.

The producer accepts one batch per partition at a time; while one is on its way the partition's
next batch keeps filling instead of the agent waiting a round trip. The checkpoint waits for
this writer (``flush``) before the state that implies its records is stored, as the write order
in ``streams/runtime.py`` requires. The writer has its own aiokafka producer with the worker's
credentials. Output keys are shop ids, and their partition is what Kafka's default partitioner
gives for the key, so consumers see the same partitioning as from any other producer.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from functools import lru_cache
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

BATCH_BYTES = 512 * 1024  # under Kafka's default 1 MB message limit


@lru_cache(maxsize=100_000)  # keys are shop ids: few, and seen over and over
def default_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives ``key``: records this worker
    places itself land where any producer keying them the same way would put them."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class OutputWriter:
    def __init__(self, producer_kwargs: dict[str, Any]) -> None:
        self._kwargs = producer_kwargs
        self._producer: AIOKafkaProducer | None = None
        self._partitions: dict[str, int] = {}  # topic -> partition count
        self._open: dict[tuple[str, int], Any] = {}  # (topic, partition) -> BatchBuilder being filled
        self._sealed: dict[tuple[str, int], deque] = defaultdict(deque)  # full batches, in order
        self._shippers: dict[tuple[str, int], asyncio.Future] = {}  # one per partition at most
        self._in_flight: list[asyncio.Future] = []  # handed to the producer, delivery pending
        self._failed: list[BaseException] = []
        self._starting = asyncio.Lock()

    async def ensure_started(self, topics: list[str]) -> None:
        """Start the producer on first use (from the agent, so it never races the app's start)."""
        if self._producer is not None:
            return
        async with self._starting:
            if self._producer is not None:
                return
            producer = AIOKafkaProducer(**self._kwargs, acks="all", max_batch_size=BATCH_BYTES, linger_ms=0)
            await producer.start()
            try:
                for topic in topics:
                    self._partitions[topic] = len(await producer.partitions_for(topic))
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            try:
                await self.flush()
            finally:
                await self._producer.stop()
                self._producer = None

    def add(self, topic: str, key: bytes, value: bytes, partition: int | None = None) -> None:
        """Queue one record; it leaves with its partition's next batch (see :meth:`send`).
        Without ``partition``, Kafka's default partitioner picks it from the key."""
        tp = (topic, partition if partition is not None else default_partition(key, self._partitions[topic]))
        batch = self._open.get(tp)
        if batch is None:
            batch = self._open[tp] = self._producer.create_batch()  # type: ignore[union-attr]
        if batch.append(key=key, value=value, timestamp=None) is None:  # full: seal it, start another
            self._sealed[tp].append(self._open.pop(tp))
            self._ship(tp)
            batch = self._open[tp] = self._producer.create_batch()  # type: ignore[union-attr]
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"an output record of {len(value)} bytes does not fit a batch of {BATCH_BYTES}")

    def send(self) -> None:
        """Start sending what is queued, without waiting. A partition whose previous batch is
        still on its way keeps adding to its open batch meanwhile: the producer takes one batch
        per partition at a time, and waiting for it here would stall the agent for a round trip."""
        for tp in list(self._open):
            if tp not in self._shippers:
                self._ship(tp)

    def _ship(self, tp: tuple[str, int]) -> None:
        if tp not in self._shippers:
            self._shippers[tp] = asyncio.ensure_future(self._shipper(tp))

    async def _shipper(self, tp: tuple[str, int]) -> None:
        """Hands ``tp``'s batches to the producer in order until none is left (also the open
        one, so nothing waits for a later :meth:`send`)."""
        producer = self._producer
        assert producer is not None
        topic, p = tp
        sealed = self._sealed[tp]
        try:
            while True:
                if sealed:
                    batch = sealed.popleft()
                elif tp in self._open:
                    batch = self._open.pop(tp)
                else:
                    return
                self._in_flight.append(await producer.send_batch(batch, topic, partition=p))
        except BaseException as e:  # kept for flush to raise: the checkpoint must not happen
            self._failed.append(e)
            raise
        finally:
            del self._shippers[tp]
            if len(self._in_flight) > 1000:  # forget delivered ones; a failure stays for flush
                self._in_flight = [f for f in self._in_flight if not f.done() or f.exception() is not None]

    async def flush(self) -> None:
        """Send what is queued and wait until every record added so far is delivered; raises if
        one failed (the checkpoint then does not happen, so nothing is acknowledged)."""
        self.send()
        while self._shippers:
            await asyncio.gather(*self._shippers.values(), return_exceptions=True)
        if self._failed:
            raise self._failed[0]
        in_flight, self._in_flight = self._in_flight, []
        for fut in in_flight:
            await fut
