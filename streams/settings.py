"""Worker settings: every Kafka and pipeline knob, from flags or ``CHATSLA_*`` environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from chatsla.core.engine import EngineConfig
from chatsla.streams.topics import TopicNames


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl_mechanism: str | None = None  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    # Kafka client properties without a flag of their own (-X, streams/kafka_properties.py):
    # TLS details and connection tuning, spelled here for each client (issue #13).
    ssl_key_password: str | None = None
    ssl_check_hostname: bool = True
    ssl_crlfile: str | None = None
    ssl_ciphers: str | None = None
    tuning: tuple[tuple[str, int], ...] = ()  # (java name, value), e.g. ("metadata.max.age.ms", 60000)

    def ssl_context(self):
        """The TLS context every client gets (None without TLS): CA, client certificate and its
        key password, CRL, ciphers and host name checking in one place."""
        if self.protocol not in ("SSL", "SASL_SSL"):
            return None
        import ssl

        ctx = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.ssl_certfile:
            ctx.load_cert_chain(self.ssl_certfile, self.ssl_keyfile, password=self.ssl_key_password)
        if self.ssl_crlfile:
            ctx.load_verify_locations(self.ssl_crlfile)
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
        if self.ssl_ciphers:
            ctx.set_ciphers(self.ssl_ciphers)
        if not self.ssl_check_hostname:
            ctx.check_hostname = False
        return ctx

    def _tuning_kwargs(self) -> dict:
        from chatsla.streams.kafka_properties import TUNING

        return {TUNING[k][0]: v for k, v in self.tuning}

    def aiokafka_kwargs(self) -> dict:
        """Security arguments of aiokafka's clients (the replay reader, the output producer)."""
        kw: dict = {"security_protocol": self.protocol, **self._tuning_kwargs()}
        if self.protocol in ("SSL", "SASL_SSL"):
            kw["ssl_context"] = self.ssl_context()
        if self.protocol.startswith("SASL"):
            kw.update(sasl_mechanism=self.sasl_mechanism or "PLAIN", sasl_plain_username=self.sasl_username,
                      sasl_plain_password=self.sasl_password)
        return kw

    def kafka_python_kwargs(self) -> dict:
        kw: dict = {"security_protocol": self.protocol, **self._tuning_kwargs()}
        if self.sasl_mechanism:
            kw.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                      sasl_plain_password=self.sasl_password)
        if self.protocol in ("SSL", "SASL_SSL"):
            kw.update(ssl_context=self.ssl_context(), ssl_check_hostname=self.ssl_check_hostname)
        elif self.ssl_cafile:
            kw.update(ssl_cafile=self.ssl_cafile, ssl_certfile=self.ssl_certfile, ssl_keyfile=self.ssl_keyfile)
        return kw

    def faust_settings(self) -> dict:
        """Faust app settings for the connection tuning (its credentials come from the fields)."""
        from chatsla.streams.kafka_properties import TUNING

        return {name: v for k, v in self.tuning for name in TUNING[k][1]}


@dataclass(frozen=True)
class WorkerSettings:
    bootstrap: str = "127.0.0.1:9092"
    app_id: str = "chatsla"
    topics: TopicNames = field(default_factory=TopicNames)
    partitions: int = 4  # of chat.messages and chatsla.events: the unit of scale-out
    replication: int = 1
    store: str = "memory://"  # or rocksdb:// (pip install 'chatsla[rocksdb]')
    data_dir: Path = Path(".chatsla/worker")
    # The HTTP server (/metrics, /shops/{id}, /healthz, /readyz) binds this address only: loopback
    # by default, since it has no authentication (docs/pipeline.md, "Operating a worker").
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    ticks: bool = True  # live mode: advance the watermark with the wall clock (R6.2)
    tick_interval: float = 1.0
    # A partition checkpoints after checkpoint_events events, after checkpoint_interval seconds,
    # or once its input has paused for checkpoint_idle seconds. A checkpoint costs a table write
    # per changed conversation and four flushes, so fewer of them in a backfill means fewer writes
    # (a conversation changed several times is written once); a crash re-reads at most this much.
    checkpoint_events: int = 50000
    checkpoint_interval: float = 10.0
    checkpoint_idle: float = 0.25
    # --policy values, one per model (repeatable); a model not named runs its platform's bundled
    # current version (chatsla.core.policy.policies_for, the audit's rule)
    policies: tuple[str, ...] = ()
    allowed_lateness_us: int = EngineConfig().allowed_lateness  # the core's default (R6.2), written once there
    # Input events more than this ahead of the worker's wall clock go to their DLQ (reason
    # future_time), and ticks that far ahead are ignored: a clock or producer error must not
    # move a partition's watermark into the future (issue #10 finding 4, live half).
    max_future_us: int = 3_600_000_000
    log_repeat_interval: float = 30.0  # repeated log lines are summarised once per interval (streams/logs.py)
    default_timezone: str = "UTC"
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    loglevel: str = "warning"
    loop: str = "uvloop"  # or "aio" (asyncio's own event loop)
    shop_metrics: str = "all"  # per-shop series: all | at-risk | worst:K | none (streams/metrics.py)
