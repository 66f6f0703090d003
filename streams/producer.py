"""Producing records to Kafka from the CLI (``chatsla simulate --bootstrap``, ``chatsla demo``).

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

    Logical topics ``chat.messages`` / ``shop.events`` are mapped to the configured names. Returns
    the number of records acknowledged by the broker (acks=all, so none is silently lost).
    ``client_kwargs`` are the security and -X properties (``KafkaSecurity.kafka_python_kwargs``);
    they may override the connection defaults below but not acks or ordering, which -X rejects.
    ``on_progress`` gets the number of records sent every 1,000 records and at the end.
    """
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    mapping = {"chat.messages": names.chat, "shop.events": names.shop}
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
