"""The Faust application: the wiring of a :class:`~chatsla.streams.worker.Worker` into agents,
timers, rebalance signals, web pages and tables. What the worker *does* is in
``streams/worker.py`` (Faust-free, unit-tested with in-memory fakes); this module only adapts
Faust and Kafka to its small interfaces (``_FaustStore``, ``_FaustProducer``).

The router (``streams/router.py``: aiokafka's ``getmany`` in a consumer group of its own, not a
Faust agent) validates the input topics (RULES R1); bad records go to ``<input>.dlq`` with the
original bytes and the reason in headers, good ones are forwarded to the shop's ``chatsla.events``
partition, tagged with their input partition, in one batch record per partition and fetch
(``streams/codec.py``); its input offsets are committed once those are acknowledged.
``sessions`` hands each ``chatsla.events`` record to the worker, which runs one :class:`PartitionRuntime` (the pure core) per partition and writes its outputs to
``chatsla.sessions`` and ``chatsla.assessments`` (and the other models' to ``chatsla.tickets``,
``chatsla.waits``, ``chatsla.aftersale`` and ``chatsla.periods``) through :class:`OutputWriter`. Each Kafka record
costs a Faust worker far more than the engine's work on an event, so records are batched wherever
the topic is ours. Deadlines fire inside stream processing as the partition's event time
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
worst. The checkpoint write order is :meth:`Worker._checkpoint`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Callable

import faust
import mode
from aiokafka import AIOKafkaConsumer
from faust.sensors import Monitor
from faust.tables import TableManager
from faust.types import TP
from faust.web.base import BlueprintManager

from chatsla.streams import logs
from chatsla.streams.clock import wall_clock_us
from chatsla.streams.codec import encode_flush, encode_tick
from chatsla.streams.outputs import OutputWriter
from chatsla.streams.router import Router, RouterMetrics, router_group, run_router
from chatsla.streams.runtime import KIND_TOPIC, Tables
from chatsla.streams.settings import WorkerSettings
from chatsla.streams.worker import CONVERSATIONS, Worker

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


PREFETCH_RECORDS = 128  # chatsla.events records a stream buffers (see create_app)


class _TableManager(TableManager):
    """Faust's table manager without its start-up pause.

    ``TableManager.on_start`` sleeps one second before it registers the tables' changelog
    channels, so that tables an app declares while it starts still make it in. chatsla declares
    all three in :func:`create_app`, before the app starts, so the pause only delayed every
    worker start and takeover by a second (an eighth of the 220k-event benchmark, issue #15).
    Should a Faust release rename the step this relies on, Faust's own start (with its pause)
    runs instead."""

    async def on_start(self) -> None:
        register = getattr(self, "_update_channels", None)
        recovery = getattr(self, "recovery", None)
        if register is None or recovery is None:
            await super().on_start()
            return
        if not self.should_stop:
            await register()
            await recovery.start()


class _FaustStore:
    """The worker's :class:`~chatsla.streams.worker.Store` on Faust tables.

    Conversation entries are most of a checkpoint (one per changed conversation) and Faust's
    table write costs each a produce call of its own (BENCHMARKS.md): they go into the table's
    store and, batched, into its changelog through the worker's own producer, exactly as the
    table would write them (same topic, partition and key encoding), so Faust's recovery reads
    them back. The meta and shop entries are ordinary table writes (Faust's producer). ``flush``
    waits for whichever of the two paths was written since the last flush."""

    def __init__(self, app: faust.App, tables: Tables, writer: OutputWriter) -> None:
        self.tables = tables
        self._app = app
        self._writer = writer
        self._conv_store = tables.conversations.data
        self._conv_changelog = tables.conversations.changelog_topic.get_topic_name()
        self._conv_key_serializer = tables.conversations.key_serializer
        self._dumps_key = app.serializers.dumps_key
        self._by_writer = False
        self._by_faust = False

    def write(self, table: str, partition: int, key: tuple, value: bytes | None) -> None:
        if table == CONVERSATIONS:
            if value is None:  # an evicted conversation: deleted here, a tombstone for compaction
                try:
                    del self._conv_store[key]
                except KeyError:
                    pass
            else:
                self._conv_store[key] = value
            self._writer.add(self._conv_changelog, self._dumps_key(None, key, serializer=self._conv_key_serializer),
                             value, partition=partition)
            self._by_writer = True
        elif value is None:  # a ticket / wait entry gone (streams/runtime.py, "Other models")
            try:
                del getattr(self.tables, table)[key]  # Faust deletes it and writes the tombstone
            except KeyError:
                return  # never stored: nothing to delete
            self._by_faust = True
        else:
            getattr(self.tables, table)[key] = value
            self._by_faust = True

    async def flush(self) -> None:
        by_writer, by_faust = self._by_writer, self._by_faust
        self._by_writer = self._by_faust = False
        if by_writer:
            await self._writer.flush()
        if by_faust:
            await self._app.producer.flush()


class _FaustProducer:
    """The worker's :class:`~chatsla.streams.worker.Producer`: outputs through the worker's own
    batching writer (streams/outputs.py), dead letters through Faust's producer."""

    def __init__(self, app: faust.App, writer: OutputWriter, topics: dict[str, str], dlqs: dict) -> None:
        self._app = app
        self._writer = writer
        self._topics = topics
        self._dlqs = dlqs

    def output(self, kind: str, key: bytes, value: bytes) -> None:
        self._writer.add(self._topics[kind], key, value)

    def dead_letter(self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        self._dlqs[topic].send_soon(key=key, value=value, headers=headers)

    def send(self) -> None:
        self._writer.send()

    async def flush(self) -> None:
        await self._writer.flush()
        await self._app.producer.flush()


def create_app(settings: WorkerSettings) -> faust.App:
    """The Faust app: agents, timers, web pages and tables, each calling a :class:`Worker`."""
    names = settings.topics
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
        # A member learns that its group is rebalancing (a worker joining or leaving) at its next
        # heartbeat: every second instead of every three makes each rebalance, and so each
        # scale-out, takeover and start of a second worker, up to 2 s shorter (issue #15)
        broker_heartbeat_interval=1.0,
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
        # Faust prefetches up to this many chatsla.events records per stream before the agent
        # takes them. Its default, 4096, is sized for one event per record; ours are batch records
        # of up to 256 KB, so in a backfill, with the router far ahead of the session agent, the
        # prefetched backlog was most of the worker's memory (1.7 GB RSS and rising in the
        # 2.3M-event soak). Not much smaller, though: once a stream's buffer passes 4/5 of this,
        # Faust stops fetching its partitions until it drains to 2/5, and when every partition is
        # stopped its fetch loop sleeps a whole second before it looks again. With 32 the 13
        # records left lasted about 0.4 s, so the agent sat idle for the rest of each second
        # (two workers took 9-10 s on the benchmark instead of 7). 128 leaves about 50 full batch
        # records, near two seconds of work, and holds at most ~40 MB (BENCHMARKS.md).
        stream_buffer_maxsize=PREFETCH_RECORDS,
        Monitor=_Monitor,
        TableManager=_TableManager,
        **settings.security.faust_settings(),  # -X connection tuning (streams/kafka_properties.py)
    )
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    events = app.topic(names.events, partitions=settings.partitions, **raw)
    dlqs = {name: app.topic(name, **raw) for name in names.dlqs}
    output_topics = {kind: getattr(names, attr) for kind, attr in KIND_TOPIC.items()}
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
    async def rewind(p: int, offset: int, arrived: int) -> int | None:
        """Seek ``chatsla.events`` partition ``p`` back to ``offset`` (:meth:`Worker._skipped_ahead`).
        Faust's ``seek`` also lowers its own mark of what it has read, which would otherwise
        drop the records again. A partition no longer assigned is left alone: its next owner
        reads it from the committed offset, and the record that arrived is dropped."""
        tp = TP(names.events, p)
        if tp not in app.consumer.assignment():
            return offset
        start = max(offset, (await app.consumer.earliest_offsets(tp)).get(tp) or 0)
        if start >= arrived:
            return None
        await app.consumer.seek(tp, start)
        return start

    worker = Worker(settings, _FaustStore(app, tables, writer), _FaustProducer(app, writer, output_topics, dlqs),
                    stopping=lambda: app.should_stop, rewind=rewind)
    metrics = worker.metrics
    app.chatsla = {"runtimes": worker.runtimes, "settings": settings, "policy": worker.policy, "metrics": metrics,
                   "worker": worker}

    @app.page("/metrics")
    async def metrics_page(web, request):  # type: ignore[no-untyped-def]
        # prometheus_client's own handler: OpenMetrics or text by Accept, gzip, name[] (issue #13)
        status, headers, body = await metrics.serve(request.method, request.headers.items(), request.query_string)
        return web.bytes(body, status=status, headers=dict(headers))

    @app.page("/shops/{shop_id}")
    async def shop_page(web, request, shop_id: str):  # type: ignore[no-untyped-def]
        body = worker.views.shop_json(shop_id)
        if body is None:
            return web.json({"error": f"shop {shop_id} is not owned by this worker (or unknown)"}, status=404)
        return web.json(body)

    # Liveness and readiness for orchestrators and load balancers. /healthz: the process and its
    # event loop answer. /readyz: the worker is in the consumer group, the last rebalance is
    # complete with its partitions' state loaded, and it is not stopping; 503 otherwise (during
    # start-up and table recovery, a rebalance, or shutdown).
    def readiness() -> tuple[bool, str]:
        if app.should_stop:
            return False, "stopping"
        if not worker.rebalanced or app.rebalancing:
            return False, "not in the group yet, or rebalancing"
        return True, "ready"

    @app.page("/healthz")
    async def healthz(web, request):  # type: ignore[no-untyped-def]
        return web.json({"status": "alive"})

    @app.page("/readyz")
    async def readyz(web, request):  # type: ignore[no-untyped-def]
        ok, why = readiness()
        return web.json({"status": why, "partitions": sorted(worker.owned)}, status=200 if ok else 503)

    # The input stage: aiokafka's getmany in a consumer group of its own, outside Faust's
    # per-record machinery (streams/router.py, issue #15).
    router_writer = OutputWriter({"bootstrap_servers": settings.bootstrap, **settings.security.aiokafka_kwargs()})
    # max_records None: each getmany takes what every partition fetched (see Router.forward)
    router = Router(worker, None, router_writer, names.events, None,
                    flush_dead_letters=lambda: app.producer.flush(), metrics=RouterMetrics(metrics.registry))
    app.chatsla["router"] = router

    @app.service
    class _Router(mode.Service):
        """Starts the router with the app and stops it first: what it queued is delivered and
        committed (a crash instead: forwarded again by the next owner, deduplicated)."""

        _task: asyncio.Future | None = None
        _stop = False

        async def on_start(self) -> None:
            await router_writer.ensure_started([names.events])
            # created here: aiokafka's consumer needs the running event loop
            router.consumer = consumer = AIOKafkaConsumer(
                bootstrap_servers=settings.bootstrap, group_id=router_group(settings.app_id),
                client_id=f"{settings.app_id}-router", enable_auto_commit=False, auto_offset_reset="earliest",
                session_timeout_ms=10_000, heartbeat_interval_ms=1_000,  # as the Faust app's (see above)
                **settings.security.aiokafka_kwargs())
            consumer.subscribe(list(names.inputs), listener=router)  # (aftersale.requests too: issue #14)
            await consumer.start()
            self._task = asyncio.ensure_future(self._run())

        async def _run(self) -> None:
            try:
                await run_router(router, lambda: self._stop)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # crash-only, as the session agent (below)
                log.critical("router failed, stopping the worker: %r", e)
                await app.crash(e)

        async def on_stop(self) -> None:
            self._stop = True
            if self._task is not None:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            try:
                await router.drain()
            except Exception as e:  # noqa: BLE001 - not committed: the next owner forwards it again
                log.warning("router: delivering on shutdown failed: %r", e)
            if router.consumer is not None:
                await router.consumer.stop()
            await router_writer.stop()

    @app.agent(events)
    async def sessions(stream: faust.StreamT) -> None:
        try:
            await writer.ensure_started(list(output_topics.values()))  # (the changelog is written by partition)
            async for event in stream.events():
                # Hold one more reference than the stream does: the stream's own ack (when we
                # move on) does not make the offset committable; ours, after the checkpoint, does.
                # (stream.noack() would disable commits for the whole topic in Faust.)
                event.message.incref()
                await worker.handle(event.message, event)
        except Exception as e:
            # Crash-only: a failed checkpoint or output delivery (after the producer's own
            # retries), or a bug, leaves this process's state ahead of what is stored. Faust would
            # restart the agent on that state; stopping the worker instead makes the next owner, or
            # this worker restarted, resume from the last checkpoint, and nothing is lost.
            log.critical("session agent failed, stopping the worker: %r", e)
            await app.crash(e)

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: faust.App, revoked: set, **kwargs: object) -> None:
        log.info("partitions revoked: %s", sorted(tp.partition for tp in revoked if tp.topic == names.events))
        await worker.revoked(revoked)

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: faust.App, assigned: set, **kwargs: object) -> None:
        worker.assigned(assigned)

    # after table recovery, for the current generation only (see _Monitor)
    app.monitor.after_rebalance = lambda: worker.serve_owned(app.consumer.assignment())  # type: ignore[attr-defined]

    @app.timer(min(settings.checkpoint_interval, settings.checkpoint_idle))
    async def request_checkpoints() -> None:
        """A flush record to each partition whose pending events wait for a checkpoint
        (:meth:`Worker.due_checkpoints`)."""
        for p in worker.due_checkpoints(caught_up):
            events.send_soon(key=None, value=encode_flush(), partition=p)

    def caught_up(p: int) -> bool:
        """The session agent has taken every record of ``p`` the consumer has seen on the broker
        (an unknown end counts as caught up: the idle rule then works as before)."""
        high = app.consumer.highwater(TP(names.events, p))
        return high is None or high < 0 or worker.position.get((names.events, p), 0) >= high

    @app.timer(5.0)
    async def export_lag() -> None:
        """``chatsla_consumer_lag_records``: records between what this worker has done and the
        end of each partition it reads (the input topics for routing, chatsla.events for
        sessions), from the high watermarks the consumer already knows (no extra requests;
        :meth:`Worker.lags`). ``_committed_offset`` is Faust's own record of the group's
        committed offsets, read when partitions are assigned (not public API; without it the
        gauge waits for the first record taken, as before)."""
        committed = getattr(app.consumer, "_committed_offset", None) or {}
        # the input topics' lag is the router's (its own consumer and group)
        metrics.lag_now({**worker.lags(app.consumer.assignment(), app.consumer.highwater, committed),
                         **router.lags()})

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
    from faust.worker import Worker as FaustWorker

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

    class _Worker(FaustWorker):
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
