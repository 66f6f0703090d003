"""Topic names, partition counts and configs, and their explicit creation.

Topics are created by chatsla (never by broker auto-creation) so partition counts and retention are
deliberate: input topics keep everything because audits replay them (issue #5), the internal
``chatsla.events`` topic is the worker's input, partitioned by shop so a shop's conversations, its
vacation and time zone, and its weekly counters live in one partition, owned by one worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FOREVER = "-1"


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


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(names: TopicNames, partitions: int, replication: int = 1) -> list[TopicSpec]:
    keep = {"retention.ms": FOREVER, "retention.bytes": FOREVER}
    return [
        TopicSpec(names.chat, partitions, keep),
        TopicSpec(names.shop, max(1, partitions // 2), keep),
        TopicSpec(names.chat_dlq, 1, keep),
        TopicSpec(names.shop_dlq, 1, keep),
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
