"""Running workers and reading topics in integration tests; waits are conditions with deadlines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson

from chatsla.dev.broker import free_port
from chatsla.streams.topics import TopicNames, changelog_specs, topic_specs
from chatsla.streams.admin import ensure_topics
from chatsla.streams.producer import send_ticks
from tests.integration.waiting import wait_for  # noqa: F401 - the tests' one condition wait, re-exported

CHATSLA = str(Path(sys.executable).with_name("chatsla"))


@dataclass
class Deployment:
    """One isolated chatsla deployment (own topics, consumer group, tables) on the shared broker."""

    bootstrap: str
    partitions: int
    tmp: Path
    prefix: str = ""
    app_id: str = ""

    def __post_init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.prefix = self.prefix or f"t{tag}."
        self.app_id = self.app_id or f"chatsla-{tag}"
        self.names = TopicNames.prefixed(self.prefix)
        ensure_topics(self.bootstrap, topic_specs(self.names, self.partitions)
                      + changelog_specs(self.app_id, self.partitions))
        self.workers: list[subprocess.Popen] = []

    def start_worker(self, *extra: str) -> subprocess.Popen:
        n = len(self.workers)
        log = open(self.tmp / f"worker-{n}.log", "ab")
        port = free_port()
        proc = subprocess.Popen(
            [CHATSLA, "worker", "--bootstrap", self.bootstrap, "--app-id", self.app_id, "--topic-prefix", self.prefix,
             "--partitions", str(self.partitions), "--no-ticks", "--web-port", str(port),
             "--data-dir", str(self.tmp / f"worker-{n}"), "--loglevel", "info", *extra],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        proc.web_port = port  # type: ignore[attr-defined]
        self.workers.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def kill(self, proc: subprocess.Popen) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def send_ticks(self, t_us: int, since_us: int | None = None) -> None:
        """What the live ticker does, at a chosen time: every partition reaches ``t_us``, walked
        from ``since_us`` (the first event time) as a running clock moves (streams.topics)."""
        send_ticks(self.bootstrap, self.names.events, self.partitions, t_us, since_us)


def read_topic(bootstrap: str, topic: str) -> list:
    """Every record of ``topic`` from the beginning to its current end."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=2000,
                      isolation_level="read_committed")
    try:
        parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return []
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = c.end_offsets(tps)
        out = []
        while any(c.position(tp) < end[tp] for tp in tps):
            for records in c.poll(timeout_ms=1000).values():
                out.extend(records)
        return out
    finally:
        c.close()


def count(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in (c.partitions_for_topic(topic) or ())]
        return sum(c.end_offsets(tps).values()) if tps else 0
    finally:
        c.close()


def routed_ids(bootstrap: str, topic: str) -> set[str]:
    """Event ids forwarded to the internal events topic so far. After a crash the router forwards
    some events again, so a record count overstates progress; this does not."""
    from chatsla.streams.codec import TICK, FLUSH, decode_internal, split_poison

    ids = set()
    for r in read_topic(bootstrap, topic):
        good, _ = split_poison(r.value)  # poison records (tests put some there) route nothing
        for source, body in decode_internal(good) if good is not None else ():
            if source != TICK and source != FLUSH:
                ids.add(body.event_id)  # type: ignore[union-attr]
    return ids


def latest_outputs(bootstrap: str, names: TopicNames) -> tuple[dict, dict]:
    """The outputs as a consumer sees them: the latest record per session and per shop-week."""
    sessions = {}
    for r in read_topic(bootstrap, names.sessions):
        rec = orjson.loads(r.value)
        sessions[(rec["shop_id"], rec["session_id"])] = rec
    assessments = {}
    for r in read_topic(bootstrap, names.assessments):
        rec = orjson.loads(r.value)
        assessments[(rec["shop_id"], rec["week_start"])] = rec
    return sessions, assessments


def scrape(port: int) -> str:
    """The worker's /metrics text ('' while it is not serving yet)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return r.read().decode()
    except (urllib.error.URLError, OSError):
        return ""


def shop_series(text: str, name: str) -> dict[str, float]:
    """``{shop: value}`` of a per-shop gauge in a /metrics text."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            if sample.name == name and "shop" in sample.labels:
                out[sample.labels["shop"]] = sample.value
    return out


def record_identity(kind: str, rec: dict) -> tuple:
    """Identity of an output record as a consumer keeps it (docs/pipeline.md): later records with
    the same identity supersede earlier ones. The same keys as the audit's ``Collector``: a
    session by its opened_at too (an evicted conversation numbers again from 1), a ticket by
    shop, id and creation, a wait by shop, conversation and first message, a period by policy,
    shop, period and start (and an after-sales period by its row: request type or month group,
    R11.5.2, R11.6.3), an after-sales request by shop, id and request time (issue #14)."""
    if kind == "sessions":
        return (rec["shop_id"], rec["session_id"], rec["opened_at"])
    if kind == "assessments":
        return (rec["shop_id"], rec["week_start"])
    if kind == "tickets":
        return (rec["shop_id"], rec["ticket_id"], rec["created_at"])
    if kind == "waits":
        return (rec["shop_id"], rec["conversation_id"], rec["first_at"])
    if kind == "periods":
        return (rec["policy_id"], rec["policy_version"], rec["shop_id"], rec["period"], rec["start"],
                rec.get("request_type") or rec.get("group") or "")
    if kind == "requests":
        return (rec["shop_id"], rec["request_id"], rec["requested_at"])
    raise ValueError(f"unknown output kind {kind!r}")


MODEL_OUTPUTS = ("sessions", "assessments", "tickets", "waits", "requests", "periods")


def model_output_topics(names: TopicNames) -> dict[str, str]:
    """Output kind -> topic, for every model's records (issue #12)."""
    return {"sessions": names.sessions, "assessments": names.assessments, "tickets": names.ticket_records,
            "waits": names.waits, "requests": names.aftersale_records, "periods": names.periods}


def latest_model_outputs(bootstrap: str, names: TopicNames) -> dict[str, dict]:
    """Every model's outputs as a consumer sees them: the latest record per identity and kind."""
    out: dict[str, dict] = {}
    for kind, topic in model_output_topics(names).items():
        latest = out[kind] = {}
        for r in read_topic(bootstrap, topic):
            rec = orjson.loads(r.value)
            latest[record_identity(kind, rec)] = rec
    return out
