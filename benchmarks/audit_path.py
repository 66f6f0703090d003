"""Benchmark: the audit path (orjson decode + validation + session engine) against a plain
orjson-decode loop over the same lines, in the same run (issue #2; figures in BENCHMARKS.md).

Also measures the memory of open conversation state (target: under 1 KB each).

    .venv/bin/python benchmarks/audit_path.py [--conversations N] [--repeat K]
"""

from __future__ import annotations

import argparse
import gc
import platform
import time
import sys
import tracemalloc

import orjson

from chatsla.audit import run_audit
from chatsla.core.engine import Engine
from chatsla.core.policy import load_policy
from chatsla.simulate import SimConfig, generate
from chatsla.core.events import ChatMessage


def best_of(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def memory_per_open_conversation(n: int = 20_000) -> tuple[float, float]:
    """Bytes per open conversation: (its state object and table entry; the whole engine's growth
    divided by open conversations, including dedupe ids, timers and week counters)."""
    from chatsla.core.timefmt import SECOND, parse_time

    t0 = parse_time("2026-11-02T00:00:00Z")
    events = []
    for i in range(n):  # buyer, auto-reply, buyer follow-up: open, awaiting the seller
        cid = f"c-shop-01-{i:06d}"
        for j, (sender, dt) in enumerate((("buyer", 0), ("auto_reply", 1), ("buyer", 30))):
            events.append(ChatMessage(f"e-shop-01-{i:06d}-{j}", "shop-01", cid, sender, t0 + (i + dt) * SECOND))
    engine = Engine(load_policy())
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for ev in events:
        engine.apply(ev)
    engine.take()
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    total = sum(s.size_diff for s in after.compare_to(before, "filename"))
    open_convs = [(k, c) for k, c in engine.convs.items() if c.opened_at is not None]
    state = sum(sys.getsizeof(c) + sys.getsizeof(k) + 2 * 8 + sys.getsizeof(c.week or "")
                for k, c in open_convs) / len(open_convs)
    return state, total / len(open_convs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conversations", type=int, default=6000, help="per shop (5 shops)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    lines = [value for _, _, value in generate(SimConfig(seed=1, conversations_per_shop=args.conversations))]
    n = len(lines)
    policy = load_policy()
    loads = orjson.loads

    def plain() -> None:
        for line in lines:
            loads(line)

    def audit() -> None:
        run_audit(lines, policy)

    t_plain = best_of(args.repeat, plain)
    t_audit = best_of(args.repeat, audit)
    per_conv, per_conv_engine = memory_per_open_conversation()
    print(f"python {platform.python_version()} on {platform.machine()}, {n} events")
    print(f"plain orjson.loads loop : {n / t_plain:12,.0f} events/s")
    print(f"audit path (decode+core): {n / t_audit:12,.0f} events/s")
    print(f"ratio                   : {t_plain / t_audit:12.3f}")
    print(f"open conversation state : {per_conv:12.0f} bytes (state object + table entry)")
    print(f"engine memory per open  : {per_conv_engine:12.0f} bytes (incl. 3 events' dedupe ids, timers)")


if __name__ == "__main__":
    main()
