"""Producing records to Kafka from the command-line tools: :func:`produce` (``chatsla simulate
--bootstrap``, ``chatsla demo``) and :func:`send_ticks` (explicit watermark ticks for demos,
tests and backfills). The live worker's own produce path is :mod:`chatsla.streams.outputs`.

kafka-python rather than aiokafka: the CLI is synchronous, and a plain producer with batching
keeps a simulated week at full speed simple. Pacing (``rate``) is for live demos only.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable

from chatsla.streams.topics import TopicNames


class ProduceError(RuntimeError):
    """One-line reason producing failed (unreachable broker, missing topic, ...)."""


def produce(records: Iterable[tuple[str, bytes, bytes]], bootstrap: str, names: TopicNames = TopicNames(),
            rate: float = 0.0, client_kwargs: dict | None = None,
            on_progress: Callable[[int], None] | None = None) -> int:
    """Send ``(logical topic, key, value)`` records in order; ``rate`` > 0 paces to events/s.

    Logical topics ``chat.messages`` / ``shop.events`` / ``ticket.events`` / ``aftersale.requests`` are
    mapped to the configured names. Returns
    the number of records acknowledged by the broker (acks=all, so none is silently lost).
    ``client_kwargs`` are the security and -X properties (``KafkaSecurity.kafka_python_kwargs``);
    they may override the connection defaults below but not acks or ordering, which -X rejects.
    ``on_progress`` gets the number of records sent every 1,000 records and at the end.
    """
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    mapping = {"chat.messages": names.chat, "shop.events": names.shop, "ticket.events": names.tickets,
               "aftersale.requests": names.aftersale}
    try:
        config = {"bootstrap_timeout_ms": 10_000, "max_block_ms": 15_000, "client_id": "chatsla-simulate",
                  **(client_kwargs or {})}
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024,
                                 max_in_flight_requests_per_connection=1,  # keep log order under retries
                                 **config)
    except KafkaError as e:
        raise ProduceError(f"cannot reach Kafka at {bootstrap}: {e}") from None
    sent = 0
    start = time.monotonic()
    try:
        for topic, key, value in records:
            producer.send(mapping.get(topic, topic), key=key, value=value)
            sent += 1
            if on_progress is not None and sent % 1000 == 0:
                on_progress(sent)
            if rate > 0:
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)  # pacing a live demo, not synchronisation
        producer.flush(timeout=120)
        if on_progress is not None:
            on_progress(sent)
    except KafkaError as e:
        raise ProduceError(f"producing to {bootstrap} failed after {sent} records: {e}") from None
    finally:
        producer.close(timeout=30)
    return sent


TICK_STEP_US = 30 * 60 * 1_000_000  # half the default --max-future


def send_ticks(bootstrap: str, topic: str, partitions: int, t_us: int, since_us: int | None = None) -> None:
    """Write ticks up to event time ``t_us`` into every partition of the worker's input topic:
    what the live ticker does with the wall clock, done explicitly (demos, tests, backfills).

    From ``since_us`` the ticks step ``TICK_STEP_US`` at a time, as a running clock does: a single
    tick more than ``--max-future`` ahead of every event of a partition is held until an event
    confirms it (time sanity, chatsla/core/engine.py), so a jump is walked. Give the earliest
    time any partition may stand at (the first event's): a tick behind a partition's clock does
    nothing."""
    from kafka import KafkaProducer

    from chatsla.streams.codec import encode_tick

    times = []
    if since_us is not None:
        t = since_us + TICK_STEP_US
        while t < t_us:
            times.append(t)
            t += TICK_STEP_US
    times.append(t_us)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", bootstrap_timeout_ms=10_000)
    try:
        for p in range(partitions):
            for t in times:
                producer.send(topic, value=encode_tick(t), partition=p)
        producer.flush(timeout=60)
    finally:
        producer.close()
