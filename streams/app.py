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

Delivery is at-least-once (Faust's exactly-once mode is not dependable, see README): the session
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

from chatsla.clock import wall_clock_us
from chatsla.core.engine import EngineConfig
from chatsla.core.policy import load_policy
from schemas.decode import decode
from schemas.events import Invalid
from streams.codec import batch_records, encode_event, encode_flush, encode_tick, source_tag
from streams.metrics import ShopViews, WorkerMetrics
from streams.outputs import OutputWriter, default_partition
from streams.runtime import PartitionRuntime, Tables
from streams.settings import WorkerSettings

log = logging.getLogger("chatsla.worker")
GC_THRESHOLDS = (50_000, 10, 10)


def _credentials(settings: WorkerSettings):
    sec = settings.security
    if sec.protocol == "PLAINTEXT":
        return None
    ssl_context = None
    if sec.protocol in ("SSL", "SASL_SSL"):
        import ssl

        ssl_context = ssl.create_default_context(cafile=sec.ssl_cafile)
        if sec.ssl_certfile:
            ssl_context.load_cert_chain(sec.ssl_certfile, sec.ssl_keyfile)
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


def create_app(settings: WorkerSettings) -> faust.App:
    names = settings.topics
    policy = load_policy(settings.policy)
    config = EngineConfig(allowed_lateness=settings.allowed_lateness_us, default_timezone=settings.default_timezone)
    # The watermark waits for every chat.messages partition; shop.events partitions do not hold
    # it back (shop events are rare: an idle one would stall a backfill and grow the buffer
    # without bound). A shop event routed more than the allowed lateness after younger chat
    # events is therefore late (R6.4); see the README, "Live pipeline".
    sources = [source_tag(names.chat, i) for i in range(settings.partitions)]
    app = faust.App(
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
        web_host=settings.web_host,
        web_port=settings.web_port,
        producer_acks=-1,
        # Outputs, forwarded events and changelog writes are many small records: without a short
        # linger each goes out in its own produce request (a third of the worker's time went to
        # socket writes). Checkpoints flush explicitly, so this adds no delay to commits.
        producer_linger_ms=5,
        Monitor=_Monitor,
    )
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    inputs = app.topic(names.chat, names.shop, **raw)
    events = app.topic(names.events, partitions=settings.partitions, **raw)
    dlq = {names.chat: app.topic(names.chat_dlq, **raw), names.shop: app.topic(names.shop_dlq, **raw)}
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
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return web.bytes(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/shops/{shop_id}")
    async def shop_page(web, request, shop_id: str):  # type: ignore[no-untyped-def]
        body = views.shop_json(shop_id)
        if body is None:
            return web.json({"error": f"shop {shop_id} is not owned by this worker (or unknown)"}, status=404)
        return web.json(body)

    n_partitions = settings.partitions

    @app.agent(inputs)
    async def route(stream: faust.StreamT) -> None:
        # take_events acknowledges the events only after this body has handed their batch records
        # to the producer, and Faust flushes the producer before it commits offsets, so a crash
        # at any point forwards an event again at worst (the engine drops the duplicate).
        async for taken in stream.take_events(settings.route_batch, within=settings.route_linger):
            out: dict[int, list[bytes]] = defaultdict(list)
            for event in taken:
                msg = event.message
                position[msg.tp] = msg.offset + 1
                ev = decode(msg.value)
                if type(ev) is Invalid:
                    metrics.events.labels("invalid").inc()
                    metrics.dlq.labels(dlq[msg.topic].get_topic_name()).inc()
                    where = f"{msg.topic}/{msg.partition}@{msg.offset}"
                    dlq[msg.topic].send_soon(key=msg.key, value=msg.value, headers=[
                        ("chatsla-reason", ev.reason.encode()), ("chatsla-source", where.encode())])
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
            flush = rt.handle(event.value, msg.offset)
            metrics.latency.observe(max(0.0, wall_clock_us() / 1e6 - msg.timestamp))
            unacked[p].append(event)
            for kind, key, value in rt.outputs():
                writer.add(output_topics[kind], key, value)
            writer.send()
            if (flush or rt.pending_acks >= settings.checkpoint_events or rt.needs_checkpoint()
                    or now - last_checkpoint[p] >= settings.checkpoint_interval):
                await checkpoint(p, rt)
            flush_requested.discard(p)

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: faust.App, revoked: set, **kwargs: object) -> None:
        log.info("partitions revoked: %s", sorted(tp.partition for tp in revoked if tp.topic == names.events))
        for tp in revoked:
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
        """``chatsla_consumer_lag_records``: records between what an agent took last and the end
        of each partition this worker reads (the input topics for routing, chatsla.events for
        sessions), from the high watermarks the consumer already knows (no extra requests)."""
        lags = {}
        for tp in app.consumer.assignment():
            if tp.topic not in (names.chat, names.shop, names.events):
                continue
            highwater = app.consumer.highwater(tp)
            if highwater is None or highwater < 0 or tp not in position:
                continue  # nothing fetched from it yet by this worker
            lags[(tp.topic, tp.partition)] = max(0, highwater - position[tp])
        metrics.lag_now(lags)

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
    worker = Worker(app, loglevel=settings.loglevel, quiet=True)
    # Faust's start-up spinner, when the level is WARNING or above, sets the root logger to DEBUG
    # and keeps it there: every debug call in Faust and aiokafka (several per message) would then
    # build a log record. A profile of the worker put that at 7 % of its time.
    worker.spinner = None
    worker.execute_from_commandline()
