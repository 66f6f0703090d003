"""Kafka admin helpers: topic creation, a broker probe, and the sizes and lags the demo, the
benchmarks and the tests read (issue #11: the Kafka clients of chatsla live under
``chatsla.streams`` only, the admin and small consumer helpers in this one module).

Topic names and specs are :mod:`chatsla.streams.topics` (no client); producing is
:mod:`chatsla.streams.producer`; the offline reader is :mod:`chatsla.streams.reader`. The helpers
use kafka-python: synchronous, for command-line tools.
"""

from __future__ import annotations

from chatsla.streams.topics import TopicSpec


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


class TopicError(RuntimeError):
    """One-line reason a topic could not be created or checked."""


def ensure_topics(bootstrap: str, specs: list[TopicSpec], replication: int = 1, client_kwargs: dict | None = None) -> list[str]:
    """Create missing topics; returns the names created. Existing ones are left as they are."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="chatsla-admin", request_timeout_ms=15000,
                                 bootstrap_timeout_ms=10_000,
                                 **(client_kwargs or {}))
    except KafkaError as e:
        raise TopicError(f"cannot reach Kafka at {bootstrap}: {e}") from None
    try:
        existing = set(admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        created = []
        for spec in missing:
            try:
                admin.create_topics([NewTopic(spec.name, spec.partitions, replication, topic_configs=spec.config)])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
        return created
    except KafkaError as e:
        raise TopicError(f"creating topics on {bootstrap} failed: {e}") from None
    finally:
        admin.close()


def topic_size(bootstrap: str, topic: str) -> int:
    """Records ever written to ``topic`` (sum of its partitions' end offsets); 0 if missing."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, bootstrap_timeout_ms=10_000)
    try:
        tps = [TopicPartition(topic, p) for p in (c.partitions_for_topic(topic) or ())]
        return sum(c.end_offsets(tps).values()) if tps else 0
    finally:
        c.close()


def committed_lag(bootstrap: str, group: str, topics: list[str]) -> int:
    """Records of ``topics`` that consumer group ``group`` has not committed yet (all of them if
    it committed none). For a worker's group and the input topics this is what the router has
    not forwarded yet: Faust flushes the producer before it commits."""
    with LagProbe(bootstrap) as probe:
        return probe(group, topics)


class LagProbe:
    """:func:`committed_lag` on connections kept open: a fresh pair of clients costs about 10 ms
    of CPU and 120 ms of round trips, which a benchmark polling every few tenths of a second
    paid over and over on the cores it measures."""

    def __init__(self, bootstrap: str) -> None:
        from kafka import KafkaAdminClient, KafkaConsumer

        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, bootstrap_timeout_ms=10_000)
        try:
            self._admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        except BaseException:
            self._consumer.close()
            raise

    def __call__(self, group: str, topics: list[str]) -> int:
        from kafka import TopicPartition
        from kafka.errors import KafkaError

        c = self._consumer
        tps = [TopicPartition(t, p) for t in topics for p in (c.partitions_for_topic(t) or ())]
        end = c.end_offsets(tps) if tps else {}
        try:
            done = self._admin.list_group_offsets(group).get(group, {})
        except KafkaError:  # the group does not exist yet
            done = {}
        return sum(max(0, n - (done[tp].offset if tp in done and done[tp].offset >= 0 else 0))
                   for tp, n in end.items())

    def close(self) -> None:
        try:
            self._admin.close()
        finally:
            self._consumer.close()

    def __enter__(self) -> "LagProbe":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_values(bootstrap: str, topic: str) -> list[bytes]:
    """Every record value of ``topic`` from the beginning to its end at the time of the call."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, bootstrap_timeout_ms=10_000)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
        if not tps:
            return []
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = c.end_offsets(tps)
        out: list[bytes] = []
        while any(c.position(tp) < end[tp] for tp in tps):
            for records in c.poll(timeout_ms=1000).values():
                out.extend(r.value for r in records)
        return out
    finally:
        c.close()
