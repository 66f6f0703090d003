"""Benchmark: the live worker's own CPU per event, without a broker or Faust (issue #15).

``benchmarks/worker_throughput.py`` times whole processes on a real broker; its wall figure
mixes the worker's work with the broker's, the start-up and the machine's load. This one runs
the same two stages of :class:`chatsla.streams.worker.Worker` in one process on the same input
(the simulator's week, 12,000 conversations per shop by default): the router's ``route`` (R1
validation, DLQ, re-keying by shop, the internal encoding) over fetches of 500 records per input
partition, and the session agent's ``handle`` (decode, engine, output records, live views,
checkpoints every ``checkpoint_events``) over the batch records the router would forward, with
in-memory tables and producer. CPU time per event of each stage, best of ``--repeat``.

    .venv/bin/python benchmarks/worker_path.py [--conversations N] [--repeat 3] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import time
from collections import defaultdict
from dataclasses import dataclass

from chatsla.simulate import SimConfig, generate
from chatsla.streams.codec import batch_records
from chatsla.streams.outputs import default_partition
from chatsla.streams.runtime import Tables
from chatsla.streams.settings import WorkerSettings
from chatsla.streams.app import GC_THRESHOLDS
from chatsla.streams.worker import Worker

PARTITIONS = 4
FETCH = 500  # records per input partition and fetch


@dataclass
class Msg:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float = 0.0


class Store:
    def __init__(self) -> None:
        self.tables = Tables({}, {}, {})
        self.writes = 0

    def write(self, table: str, partition: int, key: tuple, value: bytes | None) -> None:
        self.writes += 1

    async def flush(self) -> None:
        pass


class Producer:
    def __init__(self) -> None:
        self.outputs = 0

    def output(self, kind: str, key: bytes, value: bytes) -> None:
        self.outputs += 1

    def dead_letter(self, topic, key, value, headers) -> None:  # type: ignore[no-untyped-def]
        pass

    def send(self) -> None:
        pass

    async def flush(self) -> None:
        pass


class Clock:
    def monotonic(self) -> float:
        return 0.0

    def wall_us(self) -> int:
        return 4_000_000_000_000_000  # far ahead of the input: nothing is future_time


class Ack:
    def ack(self) -> None:
        pass


def fetches(conversations: int) -> list[list[Msg]]:
    """The input as a router would fetch it: per input partition (by key, as a producer keys
    chat.messages), ``FETCH`` records at a time, partitions taken in turn."""
    settings = WorkerSettings(partitions=PARTITIONS)
    by_part: dict[int, list[Msg]] = defaultdict(list)
    for topic, key, value in generate(SimConfig(seed=5, conversations_per_shop=conversations)):
        if topic != "chat.messages":
            continue
        k = key.encode() if isinstance(key, str) else key
        p = default_partition(k, PARTITIONS)
        by_part[p].append(Msg(settings.topics.chat, p, len(by_part[p]), k, value))
    out = []
    longest = max(len(v) for v in by_part.values())
    for start in range(0, longest, FETCH):
        out.append([m for p in sorted(by_part) for m in by_part[p][start:start + FETCH]])
    return out


def run(batches: list[list[Msg]], profile: cProfile.Profile | None = None) -> tuple[float, float, int, int]:
    """(route CPU s, handle CPU s, events, outputs) of one pass with a fresh worker."""
    settings = WorkerSettings(partitions=PARTITIONS)
    worker = Worker(settings, Store(), Producer(), Clock())
    route_s = handle_s = 0.0
    events = 0
    loop = asyncio.new_event_loop()
    offsets: dict[int, int] = defaultdict(int)
    ack = Ack()
    for fetch in batches:
        events += len(fetch)
        if profile:
            profile.enable()
        t0 = time.process_time()
        routed = worker.route(fetch)
        records = [(p, rec) for p, items in sorted(routed.items()) for rec in batch_records(items)]
        t1 = time.process_time()
        for p, rec in records:
            msg = Msg(settings.topics.events, p, offsets[p], None, rec)
            offsets[p] += 1
            loop.run_until_complete(worker.handle(msg, ack))
        t2 = time.process_time()
        if profile:
            profile.disable()
        route_s += t1 - t0
        handle_s += t2 - t1
    loop.close()
    return route_s, handle_s, events, worker.producer.outputs  # type: ignore[attr-defined]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conversations", type=int, default=12000, help="per shop (5 shops; 12,000 is 220k events)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", help="write a cProfile of one pass here")
    args = ap.parse_args()
    batches = fetches(args.conversations)
    gc.freeze()  # the input stays alive for the whole run: not the worker's garbage to collect
    gc.set_threshold(*GC_THRESHOLDS)  # as run_worker sets it
    best = None
    for _ in range(args.repeat):
        r = run(batches)
        if best is None or r[0] + r[1] < best[0] + best[1]:
            best = r
    assert best is not None
    route_s, handle_s, n, outs = best
    print(f"{n} events, {outs} output records")
    print(f"route:  {route_s * 1e6 / n:6.2f} µs per event")
    print(f"handle: {handle_s * 1e6 / n:6.2f} µs per event")
    print(f"total:  {(route_s + handle_s) * 1e6 / n:6.2f} µs per event = {n / (route_s + handle_s):,.0f} events per CPU-second")
    if args.profile:
        prof = cProfile.Profile()
        run(batches, prof)
        prof.dump_stats(args.profile)


if __name__ == "__main__":
    main()
