"""Topic names, partition counts and configs, and their explicit creation.

Topics are created by chatsla (never by broker auto-creation) so partition counts and retention are
deliberate: input topics keep everything because audits replay them (issue #5), the internal
``chatsla.events`` topic is the worker's input, partitioned by shop so a shop's conversations, its
vacation and time zone, and its weekly counters live in one partition, owned by one worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
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
    # issue #12 (RULES A.1): Douyin service tickets in, per-ticket / per-wait / period records out
    tickets: str = "ticket.events"
    ticket_records: str = "chatsla.tickets"
    waits: str = "chatsla.waits"
    periods: str = "chatsla.periods"
    # issue #14 (RULES R11.1, A.1): after-sales requests in (keyed by request_id), the per-request
    # shadow decisions out (R11.5.1); their day/week/month records go to ``periods`` (R11.5.2, R11.6.3)
    aftersale: str = "aftersale.requests"
    aftersale_records: str = "chatsla.aftersale"

    @classmethod
    def prefixed(cls, prefix: str) -> "TopicNames":
        """Every default name with ``prefix`` in front (``--topic-prefix``, test and benchmark runs)."""
        base = cls()
        return cls(**{f.name: prefix + getattr(base, f.name) for f in fields(cls)})

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
    def ticket_dlq(self) -> str:
        return self.tickets + ".dlq"

    @property
    def aftersale_dlq(self) -> str:
        return self.aftersale + ".dlq"

    @property
    def dlqs(self) -> tuple[str, ...]:
        return (self.chat_dlq, self.shop_dlq, self.events_dlq, self.ticket_dlq, self.aftersale_dlq)

    @property
    def inputs(self) -> tuple[str, ...]:
        """The input topics the router reads (RULES R1, A.1), each with its ``.dlq``."""
        return (self.chat, self.shop, self.tickets, self.aftersale)


def router_group(app_id: str) -> str:
    """The router's consumer group (streams/router.py): its own, next to the Faust app's
    (``app_id``), which consumes only ``chatsla.events``. A deployment's input offsets are
    committed here."""
    return f"{app_id}-router"


def watermark_sources(names: TopicNames, chat_partitions: Iterable[int]) -> list[str]:
    """The engine's watermark sources: one per ``chat.messages`` partition (R6.2, R6.3).

    The watermark waits for every chat.messages partition; shop.events partitions do not hold it
    back (shop events are rare: an idle one would stall a backfill and grow the buffer without
    bound). A shop event routed more than the allowed lateness after younger chat events is
    therefore late (R6.4); see docs/pipeline.md, "Input topics and the watermark". The live
    worker (streams/worker.py) and the replay (chatsla/replay) both take their sources from here.

    ``ticket.events`` partitions (issue #12) do not hold it either, although tickets are a
    primary input like chat. Decided so because a whole topic can be idle: most deployments sell
    on no Douyin shop, and the engine waits for a source it has not heard from (a source never
    idles out), so ticket partitions as sources would stall every chat-only backfill and every
    replay (which has no ticks) until the end of its input, buffering all of it. The cost is the
    shop events' one: a ticket partition read more than the allowed lateness behind the chat
    partitions has its events applied behind the watermark (deadlines up to it already fired),
    so the live result can then differ from the audit of the same records; ``chatsla replay``
    merges the topics by record timestamp and event time, so it is not exposed, and ``chatsla
    verify`` shows such a difference. Holding the watermark for tickets needs the engine to let
    an idle source go (a core change), not a different list here.

    ``aftersale.requests`` partitions (issue #14, RULES A.2: R6 unchanged) are not sources either,
    for the same reason and more so: most deployments have no after-sales input at all, and
    requests are sparse even where they do (a shop sees tens a day against thousands of chat
    messages), so an after-sales partition would be idle nearly always. The same cost applies: a
    request read more than the allowed lateness behind the chat partitions is applied late
    (flagged ``late``, R6.4), the replay is not exposed, and ``chatsla verify`` shows it.
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
        TopicSpec(names.tickets, partitions, keep),
        TopicSpec(names.ticket_dlq, 1, keep),
        TopicSpec(names.ticket_records, partitions, keep),
        TopicSpec(names.waits, partitions, keep),
        TopicSpec(names.periods, partitions, keep),
        TopicSpec(names.aftersale, partitions, keep),
        TopicSpec(names.aftersale_dlq, 1, keep),
        TopicSpec(names.aftersale_records, partitions, keep),
    ]


def shop_partitions(partitions: int) -> int:
    """Partitions of ``shop.events`` when chatsla creates it: shop events are few."""
    return max(1, partitions // 2)
