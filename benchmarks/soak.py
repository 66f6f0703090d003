"""Soak benchmark: worker memory, changelog size and recovery time over weeks of steady traffic
(issue #10, "Done when"). Figures go to BENCHMARKS.md.

Simulated weeks of the same size (new conversations every week, as a marketplace has) are
produced to a private local broker in event-time order. One worker (``--no-ticks``, memory
store) reads the first ``--warmup`` weeks; then it is stopped, the conversations changelog is
measured, and a fresh worker recovers from it (time until ``/readyz`` answers 200). The same
worker reads the remaining weeks while its RSS is sampled; at the end the changelog and the
recovery are measured again. State that follows what is live, not history, shows as RSS,
changelog bytes and recovery time that stop growing once conversations start being evicted
(closed, their weeks forgotten 35 days after they ended, their ids out of the dedupe window).

Compaction only cleans closed segments. The worker creates its changelogs with daily segments,
which a run of a few minutes never reaches; this benchmark creates them itself, before the
worker starts, with 1 MiB segments and an eager cleaner, so the few minutes of the run stand for
the weeks they simulate.

    .venv/bin/python benchmarks/soak.py [--weeks 14] [--conversations 9000] [--warmup 7]
    .venv/bin/python benchmarks/soak.py --backfill   # all weeks read in one run (issue #15)
"""

from __future__ import annotations

import argparse
import heapq
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

import orjson
from prometheus_client.parser import text_string_to_metric_families

from chatsla.core.timefmt import parse_time
from chatsla.dev.broker import BrokerConfig, free_port, start, stop
from chatsla.streams.topics import router_group
from chatsla.streams.producer import produce
from chatsla.simulate import DEFAULT_WEEK_START, SimConfig, generate
from chatsla.streams.topics import TopicNames, TopicSpec, changelog_specs, topic_specs
from chatsla.streams.admin import committed_lag, ensure_topics

PARTITIONS = 4


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def week_records(k: int, weeks: int, conversations: int) -> list[tuple[int, str, bytes, bytes]]:
    """Week ``k``'s records as (event time, topic, key, value), ids made unique to the week. The
    last week is the simulator's default one, so every week lies in the past of the worker's
    clock (the router sends events ahead of it to the DLQ)."""
    tag = f"w{k}-".encode()
    cfg = SimConfig(seed=1000 + k, conversations_per_shop=conversations, vacation_shop=None,
                    week_start=DEFAULT_WEEK_START + timedelta(days=7 * (k + 1 - weeks)))
    out = []
    for topic, key, value in generate(cfg):
        value = value.replace(b'"event_id":"', b'"event_id":"' + tag).replace(b'"conversation_id":"', b'"conversation_id":"' + tag)
        if topic == "chat.messages":
            key = tag + key
        obj = orjson.loads(value)
        out.append((parse_time(obj.get("sent_at") or obj["at"]), topic, key, value))
    return out


def traffic(weeks: int, warmup: int, conversations: int) -> tuple[list, list]:
    """Every week merged in event-time order (a week's tail runs into the next one), split where
    week ``warmup`` begins: one continuous stream, produced in two parts."""
    merged = list(heapq.merge(*(week_records(k, weeks, conversations) for k in range(weeks)), key=lambda r: r[0]))
    boundary = parse_time((DEFAULT_WEEK_START + timedelta(days=7 * (warmup + 1 - weeks))).strftime("%Y-%m-%dT%H:%M:%SZ"))
    cut = next((i for i, r in enumerate(merged) if r[0] >= boundary), len(merged))
    records = [(topic, key, value) for _, topic, key, value in merged]
    return records[:cut], records[cut:]


def changelog_bytes(data_dir: Path, app_id: str) -> int:
    total = 0
    for d in data_dir.rglob(f"{app_id}-conversations-changelog-*"):
        if d.is_dir():
            total += sum(f.stat().st_size for f in d.iterdir() if f.suffix == ".log")
    return total


def worker_state(port: int) -> tuple[int, int]:
    """(valid events applied, conversations held) from the worker's /metrics; (0, 0) while it
    does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return 0, 0
    applied = held = 0
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            if sample.name == "chatsla_events_total" and sample.labels.get("outcome") == "valid":
                applied += int(sample.value)
            elif sample.name == "chatsla_state_conversations":
                held += int(sample.value)
    return applied, held


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


class Worker:
    def __init__(self, cmd: list[str], log: Path, port: int) -> None:
        self.port = port
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        self.log = log

    def wait(self, condition, what: str, timeout: float = 1800.0, sample=None) -> float:
        """Poll ``condition`` until true (a condition wait with a timeout, not a sleep)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                raise SystemExit(f"worker exited while waiting for {what}; see {self.log}")
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {what}; see {self.log}")
            if sample is not None:
                sample(self)
            time.sleep(0.5)  # polling interval of the condition
        return time.monotonic() - self.t0

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)
        self.proc.wait(timeout=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weeks", type=int, default=14)
    ap.add_argument("--warmup", type=int, default=7, help="weeks read before the first measurement (past the 35-day retention, so eviction has begun)")
    ap.add_argument("--conversations", type=int, default=9000, help="new conversations per shop and week (5 shops)")
    ap.add_argument("--backfill", action="store_true",
                    help="produce every week first and read them in one run, RSS sampled throughout (issue #15)")
    ap.add_argument("--every", type=int, default=10, help="print every N-th RSS sample (one per ~2 s)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="chatsla-soak-"))
    broker = BrokerConfig(port=free_port(), data_dir=tmp / "kafka", heap="1g")
    start(broker)
    try:
        tag = uuid.uuid4().hex[:6]
        prefix = f"s{tag}."
        names = TopicNames.prefixed(prefix)
        app_id = f"soak-{tag}"
        eager = {"segment.bytes": str(1 << 20), "min.cleanable.dirty.ratio": "0.1", "segment.ms": "60000",
                 "delete.retention.ms": "1000"}
        ensure_topics(broker.bootstrap, topic_specs(names, PARTITIONS)
                      + [TopicSpec(s.name, s.partitions, {**s.config, **eager}) for s in changelog_specs(app_id, PARTITIONS)])
        bin_dir = Path(sys.executable).parent
        port = free_port()
        cmd = [str(bin_dir / "chatsla"), "worker", "--bootstrap", broker.bootstrap, "--app-id", app_id,
               "--topic-prefix", prefix, "--partitions", str(PARTITIONS), "--no-ticks", "--web-port", str(port),
               "--data-dir", str(tmp / "worker"), "--no-create-topics"]
        log = tmp / "worker.log"
        # (seconds, RSS MiB, input records routed and committed, events applied, conversations held)
        samples: list[tuple[float, float, int, int, int]] = []
        produced = 0

        def caught_up() -> bool:
            return (committed_lag(broker.bootstrap, router_group(app_id), [names.chat, names.shop]) == 0
                    and committed_lag(broker.bootstrap, app_id, [names.events]) == 0)

        last = [0.0]

        def sample(w: Worker) -> None:
            if time.monotonic() - last[0] >= 2.0:
                last[0] = time.monotonic()
                done = produced - committed_lag(broker.bootstrap, router_group(app_id), [names.chat, names.shop])
                applied, held = worker_state(port)
                samples.append((time.monotonic() - w.t0, rss_mib(w.proc.pid), done, applied, held))

        results = []

        def measure(label: str, worker: Worker, weeks_read: int) -> Worker:
            rss = rss_mib(worker.proc.pid)
            worker.stop()
            size = changelog_bytes(broker.data_dir, app_id)
            fresh = Worker(cmd, log, port)
            recovery = fresh.wait(lambda: ready(port), "recovery")
            results.append((label, weeks_read, produced, rss, size, recovery, rss_mib(fresh.proc.pid)))
            return fresh

        first, rest = traffic(args.weeks, args.warmup, args.conversations)
        if args.backfill:  # one worker reads all the weeks in one go: a backfill
            first, rest = first + rest, []
        n = produce(first, broker.bootstrap, names)
        produced += n
        w = Worker(cmd, log, port)
        w.wait(lambda: produced > 0 and caught_up(), "the warm-up weeks", sample=sample)
        if not args.backfill:
            w = measure("after warm-up", w, args.warmup)
            n = produce(rest, broker.bootstrap, names)
            produced += n
            w.wait(caught_up, "the remaining weeks", sample=sample)
        w = measure("at the end", w, args.weeks)
        w.stop()
        print(f"{produced:,} input records over {args.weeks} simulated weeks, {PARTITIONS} partitions, one worker")
        print("| when | weeks read | records | worker RSS (MiB) | conversations changelog (MiB) | "
              "recovery to ready (s) | RSS after recovery (MiB) |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for label, weeks, records, rss, size, rec, rss2 in results:
            print(f"| {label} | {weeks} | {records:,} | {rss:,.0f} | {size / 2**20:,.1f} | {rec:.1f} | {rss2:,.0f} |")
        print(f"RSS while reading, every {args.every}th sample (events applied and conversations held: the "
              "worker's /metrics, as of each partition's last checkpoint):")
        print("| s | RSS (MiB) | input records routed | events applied | conversations held |")
        print("| ---: | ---: | ---: | ---: | ---: |")
        for s in samples[::args.every] + samples[-1:]:
            print(f"| {s[0]:.0f} | {s[1]:,.0f} | {s[2]:,} | {s[3]:,} | {s[4]:,} |")
    finally:
        stop(broker)
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
