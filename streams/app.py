"""The Faust application: routing with a dead-letter queue, and the session agent.

``route`` validates both input topics (RULES R1); bad records go to ``<input>.dlq`` with the
original bytes and the reason in headers, good ones are forwarded to the shop's ``chatsla.events``
partition, tagged with their input partition, in one batch record per partition and fetch
(``streams/codec.py``). ``sessions`` runs one :class:`PartitionRuntime` (the pure core) per
``chatsla.events`` partition and writes its outputs to ``chatsla.sessions`` and
``chatsla.assessments`` through :class:`OutputWriter`. Each Kafka record costs a Faust worker far
more than the engine's work on an event, so records are batched wherever the topic is ours. Deadlines fire inside stream processing as the partition's event time
advances; in live mode each worker writes wall-clock ticks into the partitions it owns, so idle
partitions advance too and a replay of the topic sees the same ticks (R6.2).

Bad input never stops the worker (issue #10): an input event more than ``max_future`` ahead of
the router's clock goes to its input's DLQ (``future_time``); a record of ``chatsla.events`` that
cannot be decoded (``codec.PoisonRecord``) goes to ``chatsla.events.dlq`` and the good items of a
batch are applied; a tick that far ahead of the consuming worker's clock is ignored and counted.
Anything else that fails in the session agent is a bug and stops the worker (crash-only). The
HTTP server binds ``web_host`` and serves chatsla's pages only; repeated log lines are summarised
(``streams/logs.py``).

Delivery is at-least-once (Faust's exactly-once mode is not dependable, see docs/pipeline.md): the session
agent lets an event's offset be committed only after a checkpoint persisted its effects, and
outputs are delivered before the state that implies them, so a crash repeats identical outputs at
worst.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import defaultdict
from typing import Callable

import faust
import mode
from faust.sensors import Monitor
from faust.web.base import BlueprintManager

from chatsla.streams.clock import wall_clock_us
from chatsla.core.engine import EngineConfig
from chatsla.core.policy import load_policy
from chatsla.schemas.decode import decode
from chatsla.core.events import Invalid
from chatsla.streams import logs
from chatsla.streams.codec import (
    BATCH, TICK, PoisonRecord, batch_records, decode_internal, encode_event, encode_flush, encode_tick, source_tag,
    split_poison,
)
from chatsla.streams.metrics import ShopViews, WorkerMetrics
from chatsla.streams.outputs import OutputWriter, default_partition
from chatsla.streams.runtime import PartitionRuntime, Tables
from chatsla.streams.settings import WorkerSettings
from chatsla.streams.topics import watermark_sources

log = logging.getLogger("chatsla.worker")
GC_THRESHOLDS = (50_000, 10, 10)


def _credentials(settings: WorkerSettings):
    sec = settings.security
    if sec.protocol == "PLAINTEXT":
        return None
    ssl_context = sec.ssl_context()  # CA, client certificate, -X TLS properties (streams/settings.py)
    if sec.protocol.startswith("SASL"):
        return faust.SASLCredentials(username=sec.sasl_username, password=sec.sasl_password,
                                     mechanism=sec.sasl_mechanism or "PLAIN", ssl_context=ssl_context)
    return faust.SSLCredentials(ssl_context)


class _Monitor(Monitor):
    """Faust's own monitor sensor, which also calls ``after_rebalance`` when a rebalance is fully
    complete. The sensor hook is used rather than Faust's ``on_rebalance_complete`` signal because
    it runs only for the current generation, after table recovery finished and the streams
    resumed, whereas the signal is also sent by a recovery that a newer rebalance has already
    overtaken. It extends the monitor rather than adding a sensor of its own because Faust calls
    every sensor's hooks for every message (a second sensor cost about 1.5 % of the worker)."""

    after_rebalance: Callable[[], None] | None = None

    def on_rebalance_end(self, app: faust.App, state: dict) -> None:
        super().on_rebalance_end(app, state)
        if self.after_rebalance is None:
            return
        try:
            self.after_rebalance()
        except Exception:  # a sensor must not break Faust's rebalance bookkeeping
            log.exception("loading the owned partitions after a rebalance failed; they load with their next event")


class _App(faust.App):
    """A Faust app whose web server serves chatsla's pages only (issue #10 finding 6).

    Faust mounts its own views next to ours: ``/router/`` (cluster topology), ``/table/``
    (table *data*), and at ``/`` a status index or, in debug mode, sensor statistics, the
    assignment and a service graph. The settings turn off the ones that have a flag; the
    production index at ``/`` has none, so the blueprints are dropped here, before the server
    applies them (``Web.init_server``). chatsla uses no ``@table_route``, the one Faust feature
    that needs ``/router/``."""

    def _new_web(self):  # type: ignore[no-untyped-def]
        web = super()._new_web()
        web.blueprints = BlueprintManager([])
        return web


def create_app(settings: WorkerSettings) -> faust.App:
    names = settings.topics
    policy = load_policy(settings.policy)
    config = EngineConfig(allowed_lateness=settings.allowed_lateness_us, default_timezone=settings.default_timezone,
                          max_future=settings.max_future_us)
    # The watermark waits for every chat.messages partition; shop.events partitions do not hold
    # it back (shop events are rare: an idle one would stall a backfill and grow the buffer
    # without bound). A shop event routed more than the allowed lateness after younger chat
    # events is therefore late (R6.4); see docs/pipeline.md, "Input topics and the watermark".
    sources = watermark_sources(names, range(settings.partitions))
    app = _App(
        settings.app_id,
        broker=[f"kafka://{h.strip()}" for h in settings.bootstrap.split(",")],
        broker_credentials=_credentials(settings),
        store=settings.store,
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        # a killed worker's partitions move after 10 s instead of Kafka's 45 s default
        broker_session_timeout=10.0,
        # on shutdown do not wait for every event to be acknowledged: events not yet covered by a
        # checkpoint are, by design, re-read by the next owner (at-least-once, deduplicated)
        stream_wait_empty=False,
        broker_heartbeat_interval=3.0,
        table_standby_replicas=0,
        web_enabled=True,
        # web_host only names the worker in URLs; web_bind is the address the server listens on
        # (Faust's default is 0.0.0.0, every interface). The endpoints have no authentication:
        # loopback by default, a reverse proxy in front when needed (docs/pipeline.md, "Operating a worker").
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
        producer_acks=-1,
        # Outputs, forwarded events and changelog writes are many small records: without a short
        # linger each goes out in its own produce request (a third of the worker's time went to
        # socket writes). Checkpoints flush explicitly, so this adds no delay to commits.
        producer_linger_ms=5,
        Monitor=_Monitor,
        **settings.security.faust_settings(),  # -X connection tuning (streams/kafka_properties.py)
    )
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    inputs = app.topic(names.chat, names.shop, **raw)
    events = app.topic(names.events, partitions=settings.partitions, **raw)
    dlq = {names.chat: app.topic(names.chat_dlq, **raw), names.shop: app.topic(names.shop_dlq, **raw),
           names.events: app.topic(names.events_dlq, **raw)}
    output_topics = {"session": names.sessions, "assessment": names.assessments}
    writer = OutputWriter({"bootstrap_servers": settings.bootstrap, **settings.security.aiokafka_kwargs()})

    @app.service
    class _StopOutputs(mode.Service):
        async def on_stop(self) -> None:
            await writer.stop()
    table_opts = {"partitions": settings.partitions, "schema": faust.Schema(
        value_type=bytes, key_serializer="json", value_serializer="raw")}
    tables = Tables(
        conversations=app.Table("conversations", **table_opts),
        shops=app.Table("shops", **table_opts),
        partitions=app.Table("partitions", **table_opts),
    )
    conv_store = tables.conversations.data
    conv_changelog = tables.conversations.changelog_topic.get_topic_name()
    conv_key_serializer = tables.conversations.key_serializer
    dumps_key = app.serializers.dumps_key
    runtimes: dict[int, PartitionRuntime] = {}
    position: dict = {}  # TP -> offset after the last record an agent took from it (consumer lag)
    flush_requested: set[int] = set()
    unacked: dict[int, list] = defaultdict(list)
    last_checkpoint: dict[int, float] = defaultdict(float)
    last_event: dict[int, float] = defaultdict(float)  # when the session agent last took a record
    # chatsla.events partitions assigned to this worker now (Kafka's word, kept from the rebalance
    # signals): /metrics and /shops export only these, and nothing once the worker is stopping
    # (it may already have left the group while its web server still answers).
    owned: set[int] = set()
    views = ShopViews(runtimes, owned=lambda: () if app.should_stop else owned)
    metrics = WorkerMetrics(views, settings.shop_metrics, policy.id, policy.version)
    app.chatsla = {"runtimes": runtimes, "settings": settings, "policy": policy, "metrics": metrics}

    def observe(kind: str, record: dict) -> None:
        if kind == "session" and record["replied_within_24h"] is not None:
            views.observe(record)

    @app.page("/metrics")
    async def metrics_page(web, request):  # type: ignore[no-untyped-def]
        # prometheus_client's own handler: OpenMetrics or text by Accept, gzip, name[] (issue #13)
        status, headers, body = await metrics.serve(request.method, request.headers.items(), request.query_string)
        return web.bytes(body, status=status, headers=dict(headers))

    @app.page("/shops/{shop_id}")
    async def shop_page(web, request, shop_id: str):  # type: ignore[no-untyped-def]
        body = views.shop_json(shop_id)
        if body is None:
            return web.json({"error": f"shop {shop_id} is not owned by this worker (or unknown)"}, status=404)
        return web.json(body)

    # Liveness and readiness for orchestrators and load balancers. /healthz: the process and its
    # event loop answer. /readyz: the worker is in the consumer group, the last rebalance is
    # complete with its partitions' state loaded, and it is not stopping; 503 otherwise (during
    # start-up and table recovery, a rebalance, or shutdown).
    ready = {"rebalanced": False}

    def readiness() -> tuple[bool, str]:
        if app.should_stop:
            return False, "stopping"
        if not ready["rebalanced"] or app.rebalancing:
            return False, "not in the group yet, or rebalancing"
        return True, "ready"

    @app.page("/healthz")
    async def healthz(web, request):  # type: ignore[no-untyped-def]
        return web.json({"status": "alive"})

    @app.page("/readyz")
    async def readyz(web, request):  # type: ignore[no-untyped-def]
        ok, why = readiness()
        return web.json({"status": why, "partitions": sorted(owned)}, status=200 if ok else 503)

    n_partitions = settings.partitions
    max_future = settings.max_future_us

    def rejected_to_dlq(topic: str, key: bytes, value: bytes, msg) -> None:  # type: ignore[no-untyped-def]
        """An event the engine rejected as ``future_time`` (engine.py, "Time sanity"): far ahead of
        everything its partition carried, and contradicted by what came after it. Its input
        topic's DLQ gets it re-encoded (the original bytes were routed in a batch); delivered
        before the checkpoint that records the rejection, as outputs are."""
        target = dlq.get(topic)
        if target is None:  # not an input of this worker (a source tag from another deployment)
            log.warning("future_time event of unknown input %r dropped from the dead-letter path", topic)
            return
        metrics.events.labels("invalid").inc()
        metrics.dlq.labels(target.get_topic_name()).inc()
        where = f"{topic} (held and rejected in {msg.topic}/{msg.partition}@{msg.offset})"
        target.send_soon(key=key, value=value, headers=[
            ("chatsla-reason", b"future_time"), ("chatsla-source", where.encode())])

    def to_dlq(msg, reason: str, *headers: tuple[str, bytes]) -> None:  # type: ignore[no-untyped-def]
        """Send a record that cannot be processed to its topic's DLQ: the original key and bytes,
        the reason and where it came from in headers (R1), counted."""
        topic = dlq[msg.topic]
        if msg.topic == names.events:  # a poison record (issue #10 finding 2)
            # the reason's kind as the label (a batch's item index would make labels unbounded)
            kind = reason.split(":")[2] if reason.startswith("batch_item:") else reason
            metrics.poison.labels(kind).inc()
            log.warning("undecodable record %s/%d@%d sent to %s: %s",
                        msg.topic, msg.partition, msg.offset, topic.get_topic_name(), reason)
        else:
            metrics.events.labels("invalid").inc()
        metrics.dlq.labels(topic.get_topic_name()).inc()
        where = f"{msg.topic}/{msg.partition}@{msg.offset}"
        topic.send_soon(key=msg.key, value=msg.value, headers=[
            ("chatsla-reason", reason.encode()), ("chatsla-source", where.encode()), *headers])

    @app.agent(inputs)
    async def route(stream: faust.StreamT) -> None:
        # take_events acknowledges the events only after this body has handed their batch records
        # to the producer, and Faust flushes the producer before it commits offsets, so a crash
        # at any point forwards an event again at worst (the engine drops the duplicate).
        async for taken in stream.take_events(settings.route_batch, within=settings.route_linger):
            out: dict[int, list[bytes]] = defaultdict(list)
            # one clock reading per fetch: an event further ahead than max_future is a clock or
            # producer error, and forwarding it would move its partition's watermark (and every
            # deadline behind it) into the future (issue #10 finding 4)
            latest = wall_clock_us() + max_future
            for event in taken:
                msg = event.message
                position[msg.tp] = msg.offset + 1
                ev = decode(msg.value)
                if type(ev) is Invalid:
                    to_dlq(msg, ev.reason)
                    continue
                if ev.t > latest:
                    to_dlq(msg, "future_time")
                    continue
                # the shop's partition: where a router keying single records by shop put them
                p = default_partition(ev.shop_id.encode(), n_partitions)
                out[p].append(encode_event(ev, source_tag(msg.topic, msg.partition)))
            for p, items in out.items():
                for record in batch_records(items):
                    events.send_soon(key=None, value=record, partition=p)

    writing = asyncio.Lock()  # held while a checkpoint writes tables (see on_revoked)

    async def checkpoint(p: int, rt: PartitionRuntime) -> None:
        async with writing:
            await _checkpoint(p, rt)

    async def _checkpoint(p: int, rt: PartitionRuntime) -> None:
        # The write order is what makes a crash at any point recoverable: see streams/runtime.py.
        await writer.flush()  # the outputs first: state must never run ahead of them
        await app.producer.flush()
        cp = rt.checkpoint()
        # The conversation entries are most of a checkpoint (one per changed conversation) and
        # Faust's table write costs each a produce call of its own (BENCHMARKS.md): they go into
        # the table's store and, batched, into its changelog, exactly as the table would write
        # them (same topic, partition and key encoding), so Faust's recovery reads them back.
        for k, v in cp.conversations:
            if v is None:  # an evicted conversation: deleted here, a tombstone for compaction
                try:
                    del conv_store[k]
                except KeyError:
                    pass
            else:
                conv_store[k] = v
            writer.add(conv_changelog, dumps_key(None, k, serializer=conv_key_serializer), v, partition=p)
        await writer.flush()
        if runtimes.get(p) is not rt:
            return  # revoked meanwhile: the new owner continues from the last complete checkpoint
        k, v = cp.meta
        tables.partitions[k] = v  # the commit point, carrying the changed shops
        await app.producer.flush()
        for k, v in cp.shops:
            tables.shops[k] = v
        await app.producer.flush()
        if runtimes.get(p) is not rt:
            return
        for ev in unacked.pop(p, ()):
            ev.ack()
        rt.pending_acks = 0
        last_checkpoint[p] = time.monotonic()
        metrics.account(p, rt.engine.stats)
        metrics.watermark_now(p, rt.engine.watermark)
        metrics.owned.set(len(runtimes))

    def load_runtime(p: int, why: str) -> PartitionRuntime:
        """Rebuild partition ``p``'s engine from the (recovered) tables and start serving it."""
        rt = runtimes[p] = PartitionRuntime.load(p, policy, config, sources, tables)
        rt.observer = observe
        last_checkpoint[p] = time.monotonic()
        metrics.account(p, rt.engine.stats)
        log.info("partition %d: state loaded (%d conversations, watermark %s), %s",
                 p, len(rt.engine.convs), rt.engine.watermark, why)
        return rt

    @app.agent(events)
    async def sessions(stream: faust.StreamT) -> None:
        try:
            await _sessionise(stream)
        except Exception as e:
            # Crash-only: a failed checkpoint or output delivery (after the producer's own
            # retries), or a bug, leaves this process's state ahead of what is stored. Faust would
            # restart the agent on that state; stopping the worker instead makes the next owner, or
            # this worker restarted, resume from the last checkpoint, and nothing is lost.
            log.critical("session agent failed, stopping the worker: %r", e)
            await app.crash(e)

    BATCH_HEAD = b'["' + BATCH.encode() + b'",'

    def accept_single(value: bytes) -> bool:
        """False for a tick more than max_future ahead of this worker's clock: it is ignored
        (counted, logged rate-limited), or the partition's watermark would jump ahead and close
        every open session at once. Raises PoisonRecord for an undecodable record (a tick
        outside the representable range among them)."""
        items = decode_internal(value)
        if items[0][0] == TICK and items[0][1] > wall_clock_us() + max_future:  # type: ignore[operator]
            metrics.rejected_ticks.inc()
            log.warning("tick ignored: %d µs is more than --max-future ahead of this worker's clock", items[0][1])
            return False
        return True

    async def _sessionise(stream: faust.StreamT) -> None:
        await writer.ensure_started(list(output_topics.values()))  # (the changelog is written by partition)
        async for event in stream.events():
            # Hold one more reference than the stream does: the stream's own ack (when we move
            # on) does not make the offset committable; ours, after the checkpoint, does.
            # (stream.noack() would disable commits for the whole topic in Faust.)
            msg = event.message
            msg.incref()
            position[msg.tp] = msg.offset + 1
            p = msg.partition
            now = last_event[p] = time.monotonic()
            rt = runtimes.get(p)
            if rt is None:
                rt = load_runtime(p, f"first offset {msg.offset}")
            value = msg.value if msg.value is not None else b""  # a null value is poison too
            try:
                # Batch records (nearly all) go straight to the engine. The others are ticks,
                # flush requests and records of an older router, rare and small: decoded here
                # first to check a tick against the wall clock.
                if value[:9] != BATCH_HEAD and not accept_single(value):
                    flush = False
                else:
                    # decode_internal runs to completion before the engine sees any item, so a
                    # PoisonRecord from handle has changed nothing
                    flush = rt.handle(value, msg.offset)
            except PoisonRecord as e:
                # Bad input, not a bug of ours: to the DLQ with the original bytes; the good
                # items of a batch are applied as if the bad ones had never been written.
                good, bad = split_poison(value)
                extra = [("chatsla-bad-items", ",".join(str(i) for i, _ in bad).encode())] if good is not None else []
                to_dlq(msg, e.reason, *extra)
                flush = rt.handle(good, msg.offset) if good is not None else False
            metrics.latency.observe(max(0.0, wall_clock_us() / 1e6 - msg.timestamp))
            unacked[p].append(event)
            for kind, key, value in rt.outputs():
                writer.add(output_topics[kind], key, value)
            for topic, key, value in rt.rejected():  # time sanity: a step nothing confirmed
                rejected_to_dlq(topic, key, value, msg)
            writer.send()
            if (flush or rt.pending_acks >= settings.checkpoint_events or rt.needs_checkpoint()
                    or now - last_checkpoint[p] >= settings.checkpoint_interval):
                await checkpoint(p, rt)
            flush_requested.discard(p)

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: faust.App, revoked: set, **kwargs: object) -> None:
        log.info("partitions revoked: %s", sorted(tp.partition for tp in revoked if tp.topic == names.events))
        ready["rebalanced"] = False
        for tp in revoked:
            # What an agent took from a partition before is stale once it is revoked: were it
            # assigned back later, the lag would be computed from it (issue #10 finding 8).
            position.pop(tp, None)
            if tp.topic == names.events:
                owned.discard(tp.partition)
                runtimes.pop(tp.partition, None)  # the next owner resumes from committed offsets
                unacked.pop(tp.partition, None)
                metrics.forget(tp.partition)
        metrics.owned.set(len(runtimes))
        # A checkpoint under way finishes (or stops at its next step) before the partitions are
        # released, so no table write of ours can land after the next owner started reading.
        async with writing:
            pass

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: faust.App, assigned: set, **kwargs: object) -> None:
        owned.clear()  # an assignment replaces the previous one
        owned.update(tp.partition for tp in assigned if tp.topic == names.events)
        for p in runtimes.keys() - owned:  # loaded by an in-flight event after its revocation
            runtimes.pop(p)
            unacked.pop(p, None)
            metrics.forget(p)

    def serve_owned_partitions() -> None:
        """Serve every owned partition as soon as the rebalance is complete, tables recovered,
        not only when its next event arrives: with the eager rebalance protocol every rebalance
        revokes *all* partitions, so without this a quiet partition's shops (a backfill, or
        --no-ticks) vanished from every worker's /metrics and /shops after any rebalance until
        new input came. The assignment is read again from the consumer here in case recovery
        finished before the on_partitions_assigned signal reached ``on_assigned``."""
        owned.clear()
        owned.update(tp.partition for tp in app.consumer.assignment() if tp.topic == names.events)
        for p in sorted(owned - runtimes.keys()):
            load_runtime(p, "after the rebalance")
        metrics.owned.set(len(runtimes))
        ready["rebalanced"] = True

    app.monitor.after_rebalance = serve_owned_partitions  # type: ignore[attr-defined]

    @app.timer(min(settings.checkpoint_interval, settings.checkpoint_idle))
    async def request_checkpoints() -> None:
        """Checkpoints run inside stream processing (table writes need the partition's event), so
        when a partition's input pauses (``checkpoint_idle``), or its last checkpoint is older than
        ``checkpoint_interval``, a flush record asks for one; otherwise its last events would
        stay uncommitted until more input came."""
        now = time.monotonic()
        for p, pending in list(unacked.items()):
            if pending and p not in flush_requested and (
                    now - last_checkpoint[p] >= settings.checkpoint_interval
                    or now - last_event[p] >= settings.checkpoint_idle):
                flush_requested.add(p)
                events.send_soon(key=None, value=encode_flush(), partition=p)

    @app.timer(5.0)
    async def export_lag() -> None:
        """``chatsla_consumer_lag_records``: records between what this worker has done and the
        end of each partition it reads (the input topics for routing, chatsla.events for
        sessions), from the high watermarks the consumer already knows (no extra requests).

        "Done" is the later of the offset after the last record an agent took and the group's
        committed offset. Right after a start or a rebalance no agent has taken anything yet,
        and the committed offset, which Faust reads when partitions are assigned, is what is
        done: the gauge is right at once instead of missing (or stale) until new input arrives
        (issue #10 finding 8). ``_committed_offset`` is Faust's own record of it (not public API;
        without it the gauge waits for the first record taken, as before)."""
        committed = getattr(app.consumer, "_committed_offset", None) or {}
        lags = {}
        for tp in app.consumer.assignment():
            if tp.topic not in (names.chat, names.shop, names.events):
                continue
            highwater = app.consumer.highwater(tp)
            done = max((o for o in (position.get(tp), committed.get(tp)) if o is not None), default=None)
            if highwater is None or highwater < 0 or done is None:
                continue  # nothing known about it yet
            lags[(tp.topic, tp.partition)] = max(0, highwater - done)
        metrics.lag_now(lags)

    dlq_reader: list = []  # the kafka-python consumer reading the DLQ topics' end offsets
    dlq_reading = asyncio.Lock()

    def read_dlq_sizes() -> dict[str, int]:
        """Each DLQ topic's size (sum of its partitions' end offsets); blocking, run in a thread.
        kafka-python, because its partitions_for_topic fetches an unknown topic's metadata
        (aiokafka's consumer knows only topics it subscribed to) and it needs no group."""
        from kafka import KafkaConsumer, TopicPartition

        if not dlq_reader:
            dlq_reader.append(KafkaConsumer(
                bootstrap_servers=settings.bootstrap, enable_auto_commit=False, client_id=f"{settings.app_id}-dlq-sizes",
                request_timeout_ms=15_000, bootstrap_timeout_ms=10_000, **settings.security.kafka_python_kwargs()))
        reader = dlq_reader[0]
        sizes = {}
        for topic in names.dlqs:
            tps = [TopicPartition(topic, p) for p in (reader.partitions_for_topic(topic) or ())]
            sizes[topic] = sum(reader.end_offsets(tps).values()) if tps else 0
        return sizes

    @app.timer(10.0)
    async def export_dlq_sizes() -> None:
        """``chatsla_dlq_topic_records``: the DLQ topics' sizes. Unlike the per-process
        ``chatsla_dlq_records_total`` it does not start again with each process, and every worker
        reports the same value (aggregate with max, not sum). Repeats are possible: a bad record
        read again after a crash is sent to its DLQ again (at-least-once)."""
        if dlq_reading.locked():
            return  # the previous reading still waits for the broker (an outage)
        async with dlq_reading:
            try:
                sizes = await asyncio.to_thread(read_dlq_sizes)
            except Exception as e:  # noqa: BLE001 - an outage: keep the last values, log (rate-limited)
                log.warning("reading the DLQ topics' sizes failed: %r", e)
                return
        for topic, n in sizes.items():
            metrics.dlq_topic.labels(topic).set(n)

    @app.service
    class _StopDlqReader(mode.Service):
        async def on_stop(self) -> None:
            if not dlq_reading.locked():  # (a reading blocked by an outage ends with the process)
                for reader in dlq_reader:
                    await asyncio.to_thread(reader.close)
            for f in logs.installed():  # what was counted so far is not lost on shutdown
                f.flush_summaries(force=True)

    @app.timer(min(5.0, settings.log_repeat_interval))
    async def summarise_repeated_logs() -> None:
        """Log the summaries of repeated lines whose interval is over (streams/logs.py), within
        seconds of its end."""
        for f in logs.installed():
            f.flush_summaries()

    if settings.ticks:
        @app.timer(settings.tick_interval)
        async def tick() -> None:
            now = wall_clock_us()
            for tp in app.consumer.assignment():
                if tp.topic == names.events:
                    events.send_soon(key=None, value=encode_tick(now), partition=tp.partition)

    return app


def run_worker(settings: WorkerSettings) -> None:
    """Run a worker until SIGINT/SIGTERM (``chatsla worker``)."""
    from faust.worker import Worker

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.loop == "uvloop":
        # Faust's per-message machinery is mostly event-loop work (futures, callbacks, task
        # switches); uvloop does it in C: about a fifth more events per second (BENCHMARKS.md).
        import mode.loop

        mode.loop.use("uvloop")
    # The engine keeps every open conversation as long-lived, acyclic objects. With CPython's
    # default thresholds (700, 10, 10) the collector walks that whole heap every 70,000
    # allocations, which made a worker holding 60,000 conversations a third slower (BENCHMARKS.md).
    # Collecting the youngest generation every 50,000 allocations keeps Faust's and asyncio's
    # short-lived cycles collected and makes the full walks 70 times rarer.
    gc.set_threshold(*GC_THRESHOLDS)
    app = create_app(settings)

    class _Worker(Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            """Once Faust has configured logging, rate-limit repeated lines on every root handler
            (streams/logs.py: a broker outage logged 5,700 lines/s, issue #10 finding 7). On the
            handlers rather than on the root, aiokafka, faust and chatsla loggers: a logger's
            filter does not see its children's records, every propagated record reaches these."""
            super().on_setup_root_logger(logger, level)
            logs.install(settings.log_repeat_interval, logger)

    worker = _Worker(app, loglevel=settings.loglevel, quiet=True)
    # Faust's start-up spinner, when the level is WARNING or above, sets the root logger to DEBUG
    # and keeps it there: every debug call in Faust and aiokafka (several per message) would then
    # build a log record. A profile of the worker put that at 7 % of its time.
    worker.spinner = None
    worker.execute_from_commandline()
