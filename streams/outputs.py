"""The worker's output records (``chatsla.sessions``, ``chatsla.assessments``), produced in
record batches.

The session agent emits about 0.8 output records per input event. Faust's ``send_soon`` costs
every one of them a future, a buffer hop through a task and a produce call: together more than
the engine's work on the event (BENCHMARKS.md, "Live worker"). This writer appends them to one
Kafka record batch per topic partition instead and ships the batches after each input record the
agent handled, so the outputs still leave at once, while their cost per record is a few
microseconds.

It has its own producer (aiokafka's, with the worker's credentials), separate from Faust's, and
the checkpoint waits for it first: outputs are delivered before the state that implies them
(``streams/runtime.py``), as before. Keys are shop ids and the partition is what Kafka's default
partitioner gives for the key, so a consumer sees the same partitioning as from any producer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

BATCH_BYTES = 512 * 1024  # under Kafka's default 1 MB message limit


class OutputWriter:
    def __init__(self, producer_kwargs: dict[str, Any]) -> None:
        self._kwargs = producer_kwargs
        self._producer: AIOKafkaProducer | None = None
        self._partitions: dict[str, int] = {}  # topic -> partition count
        self._partition_of: dict[tuple[str, bytes], int] = {}
        self._open: dict[tuple[str, int], Any] = {}  # (topic, partition) -> BatchBuilder
        self._full: list[tuple[str, int, Any]] = []  # batches that filled up, not yet sent
        self._in_flight: list[asyncio.Future] = []
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

    def add(self, topic: str, key: bytes, value: bytes) -> None:
        """Queue one record; it is sent by the next :meth:`send` (or :meth:`flush`)."""
        p = self._partition_of.get((topic, key))
        if p is None:
            p = (murmur2(key) & 0x7FFFFFFF) % self._partitions[topic]
            if len(self._partition_of) > 100_000:  # a cache, not a registry of every shop
                self._partition_of.clear()
            self._partition_of[(topic, key)] = p
        batch = self._open.get((topic, p))
        if batch is None:
            batch = self._open[(topic, p)] = self._producer.create_batch()  # type: ignore[union-attr]
        if batch.append(key=key, value=value, timestamp=None) is None:  # full: ship it, start another
            self._full.append((topic, p, batch))
            batch = self._open[(topic, p)] = self._producer.create_batch()  # type: ignore[union-attr]
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"an output record of {len(value)} bytes does not fit a batch of {BATCH_BYTES}")

    async def send(self) -> None:
        """Hand every queued batch to the producer, in order per partition (does not wait for
        delivery)."""
        producer = self._producer
        assert producer is not None
        full, self._full = self._full, []
        open_, self._open = self._open, {}
        for topic, p, batch in full:
            self._in_flight.append(await producer.send_batch(batch, topic, partition=p))
        for (topic, p), batch in open_.items():
            self._in_flight.append(await producer.send_batch(batch, topic, partition=p))
        if len(self._in_flight) > 1000:  # forget delivered ones; a failure stays for flush to raise
            self._in_flight = [f for f in self._in_flight if not f.done() or f.exception() is not None]

    async def flush(self) -> None:
        """Send what is queued and wait until every record sent so far is delivered; raises if
        one failed (the checkpoint then does not happen, so nothing is acknowledged)."""
        await self.send()
        in_flight, self._in_flight = self._in_flight, []
        for fut in in_flight:
            await fut
