"""Topic names, partition counts and configs, and their explicit creation.

Topics are created by chatsla (never by broker auto-creation) so partition counts and retention are
deliberate: input topics keep everything because audits replay them (issue #5), the internal
``chatsla.events`` topic is the worker's input, partitioned by shop so a shop's conversations, its
vacation and time zone, and its weekly counters live in one partition, owned by one worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from chatsla.streams.codec import source_tag

FOREVER = "-1"
DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicNames:
    chat: str = "chat.messages"
    shop: str = "shop.events"
    events: str = "chatsla.events"
    sessions: str = "chatsla.sessions"
    assessments: str = "chatsla.assessments"

    @property
    def chat_dlq(self) -> str:
        return self.chat + ".dlq"  # RULES R1: <input topic>.dlq

    @property
    def shop_dlq(self) -> str:
        return self.shop + ".dlq"

    @property
    def events_dlq(self) -> str:
        """Records of chatsla.events that cannot be decoded (poison records, issue #10 finding 2)."""
        return self.events + ".dlq"

    @property
    def dlqs(self) -> tuple[str, ...]:
        return (self.chat_dlq, self.shop_dlq, self.events_dlq)


def watermark_sources(names: TopicNames, chat_partitions: Iterable[int]) -> list[str]:
    """The engine's watermark sources: one per ``chat.messages`` partition (R6.2, R6.3).

    The watermark waits for every chat.messages partition; shop.events partitions do not hold it
    back (shop events are rare: an idle one would stall a backfill and grow the buffer without
    bound). A shop event routed more than the allowed lateness after younger chat events is
    therefore late (R6.4); see docs/pipeline.md, "Input topics and the watermark". The live
    worker (streams/app.py) and the replay (chatsla/replay) both take their sources from here.
    """
    return [source_tag(names.chat, p) for p in chat_partitions]


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


TABLES = ("conversations", "shops", "partitions")  # the worker's Faust tables (streams/app.py)


def changelog_specs(app_id: str, partitions: int) -> list[TopicSpec]:
    """The worker's table changelogs, compacted and co-partitioned with ``chatsla.events``.

    Created up front rather than by Faust at start-up: a consumer that has not yet seen a topic
    Faust just created reports it with no partitions, and the first table write then fails
    Faust's co-partitioning check.

    Evicted conversations are deleted by tombstones (``streams/runtime.py``). Compaction only
    cleans closed segments, so segments roll daily (``segment.ms``; Kafka's default is 7 days) and
    a restart's recovery does not read week-old superseded entries; a tombstone itself is kept a
    day after compaction (``delete.retention.ms``) so that a reader recovering meanwhile still sees
    the deletion. Only topics chatsla creates get these settings (existing ones are left alone).
    """
    config = {"cleanup.policy": "compact", "segment.ms": str(DAY_MS), "delete.retention.ms": str(DAY_MS)}
    return [TopicSpec(f"{app_id}-{t}-changelog", partitions, dict(config)) for t in TABLES]


def topic_specs(names: TopicNames, partitions: int, replication: int = 1) -> list[TopicSpec]:
    keep = {"retention.ms": FOREVER, "retention.bytes": FOREVER}
    return [
        TopicSpec(names.chat, partitions, keep),
        TopicSpec(names.shop, shop_partitions(partitions), keep),
        TopicSpec(names.chat_dlq, 1, keep),
        TopicSpec(names.shop_dlq, 1, keep),
        TopicSpec(names.events_dlq, 1, keep),
        TopicSpec(names.events, partitions, {"retention.ms": str(30 * 24 * 3600 * 1000)}),
        TopicSpec(names.sessions, partitions, keep),
        TopicSpec(names.assessments, partitions, keep),
    ]


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


def shop_partitions(partitions: int) -> int:
    """Partitions of ``shop.events`` when chatsla creates it: shop events are few."""
    return max(1, partitions // 2)


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
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    c = KafkaConsumer(bootstrap_servers=bootstrap, bootstrap_timeout_ms=10_000)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        tps = [TopicPartition(t, p) for t in topics for p in (c.partitions_for_topic(t) or ())]
        end = c.end_offsets(tps) if tps else {}
        try:
            done = admin.list_group_offsets(group).get(group, {})
        except KafkaError:  # the group does not exist yet
            done = {}
        return sum(max(0, n - (done[tp].offset if tp in done and done[tp].offset >= 0 else 0))
                   for tp, n in end.items())
    finally:
        admin.close()
        c.close()


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
