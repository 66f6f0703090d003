"""Benchmark: events/s through one chatsla worker with full state, against a plain Faust agent
doing one table write per event and a raw aiokafka ``getmany`` + ``orjson.loads`` loop, in the
same run on the same (local, real) broker (issues #3, #15); then two chatsla workers together.

All consume the same pre-produced input topic from the beginning; the time is measured from
process start until the consumer group has committed the end of its input (for chatsla: the
router group's end of chat.messages and the app group's end of chatsla.events, i.e. routed and
sessionised). Figures go to BENCHMARKS.md.

    .venv/bin/python benchmarks/worker_throughput.py [--conversations N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from chatsla.dev.broker import BrokerConfig, free_port, start, stop
from chatsla.streams.producer import produce
from chatsla.simulate import SimConfig, generate
from chatsla.streams.topics import TopicNames, topic_specs
from chatsla.streams.admin import LagProbe, ensure_topics, topic_size
from chatsla.streams.router import router_group

PARTITIONS = 4


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process: steadier than wall time on a busy machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


CPU: dict[str, float] = {}
STEADY: dict[str, float] = {}
BROKER_CPU: dict[str, float] = {}  # the broker's CPU seconds during each job (it shares the 2 cores)
BROKER_PID: list[int] = []


def timed(cmd: list[str], bootstrap: str, group: str, topic: str, total: int, log: Path,
          then: tuple[str, str] | None = None, copies: int = 1) -> float:
    """Run ``copies`` processes of ``cmd`` until ``group`` has committed ``total`` records of
    ``topic`` and, if ``then`` names a second (group, topic) (the chatsla worker's app group and
    chatsla.events), all of that one too. CPU time is the processes' sum."""
    t0 = time.monotonic()
    broker0 = cpu_seconds(BROKER_PID[0]) if BROKER_PID else 0.0
    procs = [subprocess.Popen(cmd if i == 0 else _second(cmd), stdout=open(log.with_suffix(f".{i}.log") if i else log, "wb"),
                              stderr=subprocess.STDOUT, start_new_session=True) for i in range(copies)]
    proc = procs[0]
    first: tuple[float, int] | None = None  # (time, committed) once a tenth of the input is committed
    probe = LagProbe(bootstrap)  # connections kept open: a poll costs ~15 ms, not ~120 ms and new clients
    try:
        while ((done := total - probe(group, [topic])) < total
               or (then is not None and probe(then[0], [then[1]]) > 0)):
            if any(p.poll() is not None for p in procs):
                raise SystemExit(f"{cmd[1]} exited early, see {log}")
            if first is None and done >= total // 10:
                first = (time.monotonic(), done)
            time.sleep(0.05)  # polling the committed offsets
        elapsed = time.monotonic() - t0
        CPU[str(log)] = sum(cpu_seconds(p.pid) for p in procs)
        if BROKER_PID:
            BROKER_CPU[str(log)] = cpu_seconds(BROKER_PID[0]) - broker0
        if first is not None:  # the rate after start-up, partition assignment and table recovery
            STEADY[str(log)] = (total - first[1]) / (time.monotonic() - first[0])
        return elapsed
    finally:
        probe.close()
        for p in procs:
            os.killpg(p.pid, signal.SIGINT)  # a graceful stop (py-spy, if profiling, writes its file)
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:  # measured already; a stop that hangs must not lose the run
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def _second(cmd: list[str]) -> list[str]:
    """A second chatsla worker's command: its own web port and data directory."""
    out = list(cmd)
    out[out.index("--web-port") + 1] = str(free_port())
    out[out.index("--data-dir") + 1] += "-2"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conversations", type=int, default=12000, help="per shop (5 shops; 12,000 is 220k events)")
    ap.add_argument("--shops", type=int, default=5,
                    help="shops in the input (40 with --conversations 1610 is about the same 220k events spread over more "
                         "shops: a shop's events stay on one chatsla.events partition, so with 5 shops one partition "
                         "holds two fifths of the work, which bounds what a second worker can take)")
    ap.add_argument("--floors", nargs="*", default=["noop", "noop-batch"], choices=["noop", "noop-batch"],
                    help="also time Faust agents that do nothing per event (the floor of any Faust job)")
    ap.add_argument("--keep", action="store_true", help="keep the logs and broker data (printed at the end)")
    ap.add_argument("--profile", type=Path, help="also write py-spy collapsed stacks of both jobs here")
    ap.add_argument("--two", action="store_true", help="also time two chatsla workers on the same input")
    ap.add_argument("--no-plain", action="store_true", help="skip the plain Faust agent (its ratio is then not printed)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="chatsla-bench-"))
    broker = BrokerConfig(port=free_port(), data_dir=tmp / "kafka", heap="1g")
    BROKER_PID[:] = [start(broker)]
    try:
        tag = uuid.uuid4().hex[:6]
        names = TopicNames.prefixed(f"b{tag}.")
        ensure_topics(broker.bootstrap, topic_specs(names, PARTITIONS))
        records = [r for r in generate(SimConfig(seed=5, shops=args.shops, conversations_per_shop=args.conversations))
                   if r[0] == "chat.messages"]
        produce(records, broker.bootstrap, names)
        n = topic_size(broker.bootstrap, names.chat)
        bin_dir = Path(sys.executable).parent

        def profiled(cmd: list[str], name: str) -> list[str]:
            if args.profile is None:
                return cmd
            args.profile.mkdir(parents=True, exist_ok=True)
            return [str(bin_dir / "py-spy"), "record", "--format", "raw", "--rate", "200", "--nonblocking",
                    "-o", str(args.profile / f"{name}.txt"), "--", *cmd]
        def baseline(mode: str) -> float:
            group = f"{mode}-{tag}"
            return timed(profiled([str(bin_dir / "python"), str(Path(__file__).with_name("plain_agent.py")),
                                   broker.bootstrap, names.chat, group, str(PARTITIONS), mode], mode),
                         broker.bootstrap, group, names.chat, n, tmp / f"{mode}.log")

        t_plain = None if args.no_plain else baseline("write")
        floors = {mode: baseline(mode) for mode in args.floors}
        raw_group = f"raw-{tag}"
        t_raw = timed(profiled([str(bin_dir / "python"), str(Path(__file__).with_name("raw_getmany.py")),
                                broker.bootstrap, names.chat, raw_group], "raw"),
                      broker.bootstrap, raw_group, names.chat, n, tmp / "raw.log")

        def chatsla_worker(name: str, copies: int = 1, prefix: str = f"b{tag}.") -> float:
            group = f"chatsla-{name}-{tag}"
            return timed(profiled([str(bin_dir / "chatsla"), "worker", "--bootstrap", broker.bootstrap, "--app-id",
                                   group, "--topic-prefix", prefix, "--partitions", str(PARTITIONS), "--no-ticks",
                                   "--web-port", str(free_port()), "--data-dir", str(tmp / name),
                                   "--no-create-topics"], name),
                         broker.bootstrap, router_group(group), TopicNames.prefixed(prefix).chat, n,
                         tmp / f"{name}.log", then=(group, TopicNames.prefixed(prefix).events), copies=copies)

        t_worker = chatsla_worker("worker")
        print(f"{n} events, {PARTITIONS} partitions, one worker process each")
        if t_plain is not None:
            print(f"plain Faust agent, one table write per event: {n / t_plain:10,.0f} events/s ({t_plain:.1f} s)")
        print(f"raw aiokafka getmany + orjson.loads:          {n / t_raw:10,.0f} events/s ({t_raw:.1f} s), "
              f"{n / CPU[str(tmp / 'raw.log')]:,.0f} events per CPU-second")
        print(f"chatsla worker (route + sessionise + outputs): {n / t_worker:10,.0f} events/s ({t_worker:.1f} s)")
        if t_plain is not None:
            print(f"ratio to the plain agent: {t_plain / t_worker:.2f}")
        print(f"ratio to the raw loop: {t_raw / t_worker:.3f}")
        if args.two:  # on topics of their own (chatsla.events must not hold the first run's batches)
            names2 = TopicNames.prefixed(f"c{tag}.")
            ensure_topics(broker.bootstrap, topic_specs(names2, PARTITIONS))
            produce(records, broker.bootstrap, names2)
            t_two = chatsla_worker("two", copies=2, prefix=f"c{tag}.")
            print(f"two chatsla workers: {n / t_two:10,.0f} events/s ({t_two:.1f} s), {t_worker / t_two:.2f}x one; "
                  f"{n / CPU[str(tmp / 'two.log')]:,.0f} events per CPU-second")
        steady = {k: f"{Path(k).stem} {v:,.0f}" for k, v in STEADY.items()}
        print("after the first tenth is committed (no start-up), events/s: " + ", ".join(steady.values()))
        for mode, t in floors.items():
            print(f"floor, Faust agent doing nothing ({mode}):  {n / t:10,.0f} events/s ({t:.1f} s), "
                  f"{n / CPU[str(tmp / f'{mode}.log')]:,.0f} events per CPU-second")
        c_worker = CPU[str(tmp / "worker.log")]
        print(f"CPU time (start-up included): chatsla {c_worker:.1f} s = {n / c_worker:,.0f} events per CPU-second")
        if t_plain is not None:
            c_plain = CPU[str(tmp / "write.log")]
            print(f"plain {c_plain:.1f} s = {n / c_plain:,.0f} events per CPU-second; ratio {c_plain / c_worker:.2f}")
        for key, t in (("worker", t_worker), *((("two", t_two),) if args.two else ())):
            b = BROKER_CPU.get(str(tmp / f"{key}.log"))
            if b is not None:  # what is left of the 2 cores for the workers
                print(f"broker CPU during {key}: {b:.1f} s = {b / t:.2f} of a core; {key} processes "
                      f"{CPU[str(tmp / f'{key}.log')] / t:.2f} of a core")
        print(f"load average at the end: {os.getloadavg()}")
    finally:
        stop(broker)
        if args.keep:
            print(f"logs and broker data kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
