"""Kafka client properties by their Java / librdkafka names (``-X key=value``, as kcat takes them).

Issue #13: a cluster may need a SASL, TLS or connection setting that has no flag of its own. chatsla
talks to Kafka through three clients -- kafka-python (topic creation, ``simulate --bootstrap``),
aiokafka (replay, export, verify, the worker's output writer) and Faust (the worker) -- whose
arguments are spelled differently, so each property chatsla accepts is mapped here to all three
(:class:`streams.settings.KafkaSecurity` does the spelling). A property is accepted only when every
client can honour it; an unknown one, or one chatsla sets itself for correctness (``acks``,
``client.id``, fetch sizes ...), is a one-line usage error naming where it came from, never
silently dropped.

The security properties are aliases of the dedicated flags (``security.protocol`` is
``--security-protocol``; ``sasl.jaas.config`` is read for its ``username`` and ``password``), so
a kcat or Java client configuration can be reused as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from chatsla.core.errors import UsageError

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

# java name -> KafkaSecurity field (the flag it stands for, for messages)
SECURITY: dict[str, tuple[str, str]] = {
    "security.protocol": ("protocol", "--security-protocol"),
    "sasl.mechanism": ("sasl_mechanism", "--sasl-mechanism"),
    "sasl.mechanisms": ("sasl_mechanism", "--sasl-mechanism"),  # librdkafka / kcat spelling
    "sasl.username": ("sasl_username", "--sasl-username"),
    "sasl.password": ("sasl_password", "--sasl-password"),
    "ssl.ca.location": ("ssl_cafile", "--ssl-cafile"),
    "ssl.certificate.location": ("ssl_certfile", "--ssl-certfile"),
    "ssl.key.location": ("ssl_keyfile", "--ssl-keyfile"),
    "ssl.key.password": ("ssl_key_password", ""),
    "ssl.endpoint.identification.algorithm": ("ssl_check_hostname", ""),
    "ssl.crl.location": ("ssl_crlfile", ""),
    "ssl.cipher.suites": ("ssl_ciphers", ""),
}

# Connection tuning every client takes: java name -> (kafka-python / aiokafka argument, Faust settings)
TUNING: dict[str, tuple[str, tuple[str, ...]]] = {
    "connections.max.idle.ms": ("connections_max_idle_ms",
                                ("consumer_connections_max_idle_ms", "producer_connections_max_idle_ms")),
    "metadata.max.age.ms": ("metadata_max_age_ms", ("consumer_metadata_max_age_ms", "producer_metadata_max_age_ms")),
}

# Known properties chatsla sets itself: why they cannot be given.
RESERVED: dict[str, str] = {
    "bootstrap.servers": "use --bootstrap",
    "metadata.broker.list": "use --bootstrap",
    "client.id": "chatsla names each of its clients",
    "group.id": "use chatsla worker --app-id",
    "acks": "chatsla always waits for all replicas (acks=all), so no record is lost",
    "enable.idempotence": "chatsla orders and deduplicates records itself",
    "max.in.flight.requests.per.connection": "chatsla keeps log order under retries",
    "enable.auto.commit": "chatsla commits offsets at its checkpoints",
    "auto.offset.reset": "chatsla reads from the earliest offset",
    "isolation.level": "chatsla chooses it per reader",
    "request.timeout.ms": "chatsla sets it per client (replay: --timeout)",
    "linger.ms": "chatsla tunes producer batching itself",
    "batch.size": "chatsla tunes producer batching itself",
    "fetch.max.bytes": "chatsla tunes fetching itself",
    "max.partition.fetch.bytes": "chatsla tunes fetching itself",
    "fetch.max.wait.ms": "chatsla tunes fetching itself",
    "session.timeout.ms": "chatsla sets the worker's session timeout",
    "heartbeat.interval.ms": "chatsla sets the worker's heartbeat",
    "ssl.truststore.location": "Java key stores cannot be read: give the CA as PEM with ssl.ca.location",
    "ssl.keystore.location": "Java key stores cannot be read: give PEM files with ssl.certificate.location "
                             "and ssl.key.location",
}


@dataclass(frozen=True)
class Properties:
    """Validated properties: KafkaSecurity field values and connection tuning."""

    security: dict  # KafkaSecurity field -> value
    labels: dict  # KafkaSecurity field -> where it came from ("-X sasl.username", "... in FILE [kafka]")
    tuning: tuple[tuple[str, int], ...]


def supported() -> list[str]:
    return sorted({*SECURITY, *TUNING, "sasl.jaas.config"})


_JAAS = re.compile(r"""(\w+)\s*=\s*("(?:[^"\\]|\\.)*"|'[^']*'|[^\s;]+)""")


def parse_jaas(text: str, where: str) -> dict[str, str]:
    """``username`` and ``password`` of a Java ``sasl.jaas.config`` (PlainLoginModule, ScramLoginModule)."""
    found = {}
    for key, raw in _JAAS.findall(text):
        if key in ("username", "password"):
            value = raw[1:-1] if raw[:1] in "\"'" else raw
            found["sasl_" + key] = re.sub(r"\\(.)", r"\1", value) if raw[:1] == '"' else value
    if "sasl_username" not in found:
        raise UsageError(f"{where}: no username=\"...\" in the JAAS configuration")
    return found


def _convert(key: str, value: str, where: str):
    field = SECURITY[key][0]
    if field == "protocol":
        v = value.upper()
        if v not in PROTOCOLS:
            raise UsageError(f"{where} must be one of {', '.join(PROTOCOLS)}; got {value!r}")
        return v
    if field == "sasl_mechanism":
        v = value.upper()
        if v not in MECHANISMS:
            raise UsageError(f"{where} must be one of {', '.join(MECHANISMS)}; got {value!r}")
        return v
    if field == "ssl_check_hostname":
        v = value.strip().lower()
        if v not in ("https", "none", ""):
            raise UsageError(f"{where} must be https (check the broker's host name) or none; got {value!r}")
        return v == "https"
    return value


def parse(items: Iterable[tuple[str, str, str]]) -> Properties:
    """``(key, value, where)`` triples, later ones overriding earlier ones per key, into
    :class:`Properties`; ``where`` names the source in error messages (``-X foo``,
    ``foo in chatsla.toml [kafka]``)."""
    security: dict = {}
    labels: dict = {}
    tuning: dict[str, int] = {}
    for key, value, where in items:
        k = key.strip()
        if k in SECURITY:
            field = SECURITY[k][0]
            security[field] = _convert(k, value, where)
            labels[field] = where
        elif k == "sasl.jaas.config":
            for field, v in parse_jaas(value, where).items():
                security[field] = v
                labels[field] = where
        elif k in TUNING:
            try:
                n = int(value)
            except ValueError:
                raise UsageError(f"{where} must be a whole number of milliseconds; got {value!r}") from None
            if n <= 0:
                raise UsageError(f"{where} must be positive; got {value!r}")
            tuning[k] = n
        elif k in RESERVED:
            raise UsageError(f"{where}: Kafka property {k} cannot be set: {RESERVED[k]}")
        else:
            raise UsageError(f"{where}: unknown Kafka property {k!r} (chatsla takes: {', '.join(supported())})")
    return Properties(security, labels, tuple(sorted(tuning.items())))


def split_flag(text: str, where: str) -> tuple[str, str]:
    """``key=value`` of one ``-X``; a missing ``=`` is a usage error."""
    key, eq, value = text.partition("=")
    if not eq or not key.strip():
        raise UsageError(f"{where} must be key=value (a Kafka property such as ssl.key.password=...); got {text!r}")
    return key.strip(), value
