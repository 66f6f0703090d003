"""Kafka admin helpers of the command-line tools: is a broker there (issue #11: Kafka clients
live under ``chatsla.streams`` only).

Topic creation and the test helpers that read topics are in :mod:`chatsla.streams.topics`;
producing is :mod:`chatsla.streams.producer`; the offline reader is :mod:`chatsla.streams.reader`.
"""

from __future__ import annotations


def broker_answers(bootstrap: str, timeout: float = 2.0) -> bool:
    """True when a Kafka broker at ``bootstrap`` answers a metadata request (an open port is not enough).

    kafka-python's admin client, quiet while it tries: refused connections while a broker starts
    are expected, and the caller polls.
    """
    import logging

    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    quiet = logging.getLogger("kafka")
    level, quiet.level = quiet.level, logging.CRITICAL
    ms = int(timeout * 1000)
    try:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="chatsla-dev-probe",
                                     request_timeout_ms=ms, bootstrap_timeout_ms=ms)
        except (KafkaError, OSError, ValueError):
            return False
        try:
            return bool(admin.describe_cluster().get("brokers"))  # a Metadata request
        except (KafkaError, OSError):
            return False
        finally:
            admin.close()
    finally:
        quiet.level = level
