"""Benchmark: replay's read rate (Kafka -> decode -> merge -> engine) against a plain aiokafka
consume-and-decode loop over the same topics, in the same run, on a local broker (issue #5).

    .venv/bin/python benchmarks/replay_read.py [--bootstrap HOST:PORT] [--conversations N] [--repeat K]

Without ``--bootstrap`` a private broker is started with ``chatsla.dev.broker`` on a free port
(and stopped at the end). The simulated week (5 shops, ``--conversations`` per shop) is produced
once into fresh topics (4 chat partitions, like ``chatsla worker``'s default). Reported, best of
``--repeat``:

* plain loop: a fresh group-less consumer reading both topics to their end offsets with the
  replay's fetch settings, decoding every record with ``schemas.decode.decode``;
* replay read: ``chatsla.replay.replay_async`` from the first fetch to the end of the input
  (fetch, decode, stop rule, deterministic merge, engine), i.e. events/s through the engine,
  once with the reader process (fetch + decode + merge in a child, the engine here: the default
  from ``PARALLEL_MIN_RECORDS`` records on) and once all in one process;
* replay total: the whole call (connect, offsets, starting the reader, read, finish at
  ``--to``, report).

Targets: replay read >= 100,000 events/s and >= half of the plain loop.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chatsla.core.policy import load_policy  # noqa: E402
from chatsla.core.timefmt import DAY, parse_time  # noqa: E402
from chatsla.streams.producer import produce  # noqa: E402
from chatsla.replay import KafkaInput, Period, replay_async  # noqa: E402
from chatsla.streams.reader import FETCH_BYTES, FETCH_RECORDS, PARTITION_FETCH_BYTES  # noqa: E402
from chatsla.simulate import SimConfig, generate  # noqa: E402
from chatsla.schemas.decode import decode  # noqa: E402
from chatsla.streams.topics import TopicNames, topic_specs  # noqa: E402
from chatsla.streams.admin import ensure_topics  # noqa: E402


async def plain_loop(bootstrap: str, topics: list[str]) -> tuple[int, float]:
    """Consume both topics from the beginning to their end offsets and decode every record."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         fetch_max_bytes=FETCH_BYTES, max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
                         fetch_max_wait_ms=100)
    await c.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(c.partitions_for_topic(t) or ())]
        if not tps:
            await c._client.force_metadata_update()
            cluster = await c._client.fetch_all_metadata()
            tps = [TopicPartition(t, p) for t in topics for p in sorted(cluster.partitions_for_topic(t) or ())]
        c.assign(tps)
        end = await c.end_offsets(tps)
        for tp in tps:
            c.seek(tp, 0)
        total = sum(end.values())
        n = 0
        t0 = time.perf_counter()
        while n < total:
            batch = await c.getmany(timeout_ms=200, max_records=FETCH_RECORDS)
            for recs in batch.values():
                for r in recs:
                    decode(r.value)
                n += len(recs)
        return n, time.perf_counter() - t0
    finally:
        await c.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", help="an existing broker (default: start a private one)")
    ap.add_argument("--conversations", type=int, default=6000, help="per shop (5 shops)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    broker = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        from chatsla.dev.broker import BrokerConfig, free_port, start

        broker = BrokerConfig(port=free_port(), data_dir=Path(tempfile.mkdtemp(prefix="chatsla-bench-kafka-")),
                              heap="768m")
        print(f"starting a private broker on {broker.bootstrap} ...", file=sys.stderr)
        start(broker, wait_timeout=120)
        bootstrap = broker.bootstrap
    try:
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        names = TopicNames.prefixed(prefix)
        ensure_topics(bootstrap, topic_specs(names, 4))
        records = generate(SimConfig(seed=1, conversations_per_shop=args.conversations))
        t0 = time.perf_counter()
        n = produce(records, bootstrap, names)
        print(f"produced {n:,} records in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

        policy = load_policy()
        period = Period(parse_time("2026-11-01T00:00:00Z"), parse_time("2026-11-01T00:00:00Z") + 20 * DAY)
        kin = KafkaInput(bootstrap, names)

        plain_best = float("inf")
        read_best = {True: float("inf"), False: float("inf")}
        total_best = {True: float("inf"), False: float("inf")}
        reports = {}
        for _ in range(args.repeat):
            gc.collect()
            got, secs = asyncio.run(plain_loop(bootstrap, [names.chat, names.shop]))
            assert got == n, (got, n)
            plain_best = min(plain_best, secs)
            for parallel in (True, False):
                gc.collect()
                result = asyncio.run(replay_async(kin, period, policy, parallel=parallel))
                assert result.report.stats["read"] == n, (result.report.stats["read"], n)
                read_best[parallel] = min(read_best[parallel], result.read_elapsed)
                total_best[parallel] = min(total_best[parallel], result.elapsed)
                reports[parallel] = result.report.to_dict()
        assert reports[True] == reports[False], "the two read paths must give the same report"
        plain_rate = n / plain_best
        print(f"python {platform.python_version()} on {platform.machine()} ({os.cpu_count()} cores), {n:,} events "
              f"(4 + 2 partitions), best of {args.repeat}")
        print(f"plain aiokafka consume+decode        : {plain_rate:>10,.0f} events/s")
        for parallel, name in ((True, "replay, reader process"), (False, "replay, one process   ")):
            rate = n / read_best[parallel]
            print(f"{name} read         : {rate:>10,.0f} events/s  ({rate / plain_rate:.2f} x plain)")
            print(f"{name} total        : {n / total_best[parallel]:>10,.0f} events/s  "
                  f"(connect, read, finish, report)")
        rate = n / read_best[True]
        ok = rate >= 100_000 and rate >= plain_rate / 2
        print(f"targets for the default (reader process) path, >= 100,000 events/s and >= 0.5 x plain: "
              f"{'met' if ok else 'NOT met'}")
    finally:
        if broker is not None:
            from chatsla.dev.broker import stop

            stop(broker)


if __name__ == "__main__":
    main()
