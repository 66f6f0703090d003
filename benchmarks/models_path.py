"""Benchmark: the audit path per event for each model, in the same run (issue #12: "the audit
path for tickets and waits runs at least as fast per event as for chat sessions"; figures in
BENCHMARKS.md).

Four inputs go through ``run_audit`` (decode, validation, runner, model, report) with every
model hosted, as ``chatsla audit`` runs them by default (``policies_for(())``: four since the
after-sales model of issue #14; the rows say how many): the simulator's TikTok Shop week (chat sessions),
Douyin tickets, AliExpress chats, and all three mixed. The chat week also runs with its model
alone (``run_audit(lines, policy)``, what ``benchmarks/audit_path.py`` measures), so the cost of
hosting the other models on a chat-only input shows. Best of ``--repeat``; µs per input line.

    .venv/bin/python benchmarks/models_path.py [--conversations N] [--tickets N] [--repeat K]
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import time
from datetime import datetime, timedelta, timezone

import orjson

from chatsla.audit import run_audit
from chatsla.core.policy import load_policy, policies_for
from chatsla.core.timefmt import parse_time
from chatsla.simulate import SimConfig, generate

MONDAY = datetime(2026, 11, 2, tzinfo=timezone.utc)


def _at(s: float) -> str:
    return (MONDAY + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ticket_lines(n: int, shops: int = 5, seed: int = 1) -> list[bytes]:
    """``n`` tickets over a week: created (every priority), most handled (some late, some
    returned), some closed; a shop event per shop setting Asia/Shanghai."""
    rng = random.Random(seed)
    evs: list[tuple[float, dict]] = [(0.0, {"schema": "shop.event/v1", "event_id": f"tz-{s}", "shop_id": f"dy-{s:02d}",
                                            "type": "timezone", "timezone": "Asia/Shanghai", "at": _at(0)})
                                     for s in range(shops)]
    for i in range(n):
        shop, tid = f"dy-{i % shops:02d}", f"t{i:07d}"
        t = rng.uniform(0, 7 * 86400)
        prio = rng.choices(["normal", "urgent", "agreed"], [6, 3, 1])[0]
        rec = {"schema": "ticket.event/v1", "event_id": f"{tid}-c", "shop_id": shop, "ticket_id": tid,
               "type": "created", "at": _at(t), "priority": prio}
        if prio == "agreed":
            rec["sla_minutes"] = rng.choice([240, 720, 1440])
        evs.append((t, rec))
        r = rng.random()
        if r < 0.85:
            h = t + rng.expovariate(1 / (6 * 3600))
            evs.append((h, {"schema": "ticket.event/v1", "event_id": f"{tid}-h", "shop_id": shop, "ticket_id": tid,
                            "type": "handled", "at": _at(h),
                            "result": rng.choices(["resolved", "unresolved", "returned"], [8, 1, 1])[0]}))
        if r > 0.7:
            k = t + rng.uniform(0.5, 48) * 3600
            evs.append((k, {"schema": "ticket.event/v1", "event_id": f"{tid}-x", "shop_id": shop, "ticket_id": tid,
                            "type": "closed", "at": _at(k)}))
    evs.sort(key=lambda x: x[0])
    return [orjson.dumps(r) for _, r in evs]


def aliexpress_lines(n: int, shops: int = 5, seed: int = 2) -> list[bytes]:
    """``n`` AliExpress conversations over a week: buyer messages, keyword auto-replies, seller
    answers, some closes."""
    rng = random.Random(seed)
    evs: list[tuple[float, dict]] = []
    k = 0
    for i in range(n):
        shop, conv = f"ae-{i % shops:02d}", f"a{i:07d}"
        t = rng.uniform(0, 7 * 86400)
        for _ in range(rng.randint(1, 3)):
            for sender, dt in (("buyer", 0), ("auto_reply", 2) if rng.random() < 0.4 else (None, 0),
                               ("buyer", 40) if rng.random() < 0.3 else (None, 0),
                               ("seller", rng.expovariate(1 / 3600)) if rng.random() < 0.85 else (None, 0)):
                if sender is None:
                    continue
                t += dt
                k += 1
                evs.append((t, {"schema": "chat.message/v1", "platform": "aliexpress", "event_id": f"ae{k}",
                                "shop_id": shop, "conversation_id": conv, "sender": sender, "sent_at": _at(t)}))
            t += rng.uniform(600, 86400)
    evs.sort(key=lambda x: x[0])
    return [orjson.dumps(r) for _, r in evs]


def best_of(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conversations", type=int, default=6000, help="TikTok Shop conversations per shop (5 shops)")
    ap.add_argument("--tickets", type=int, default=40000)
    ap.add_argument("--ae-conversations", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    chat = [value for _, _, value in generate(SimConfig(seed=1, conversations_per_shop=args.conversations))]
    tickets = ticket_lines(args.tickets)
    waits = aliexpress_lines(args.ae_conversations)
    mixed = [line for _, line in sorted(
        ((parse_time(orjson.loads(x).get("sent_at") or orjson.loads(x)["at"]), x) for x in (*chat, *tickets, *waits)),
        key=lambda p: p[0])]
    chat_policy = load_policy()
    lead, *others = policies_for(())
    print(f"python {platform.python_version()} on {platform.machine()}; best of {args.repeat}; µs per input line")
    hosted = f"{1 + len(others)} models hosted"
    rows = [("chat sessions, chat model alone", chat, ()), (f"chat sessions, {hosted}", chat, others),
            (f"service tickets, {hosted}", tickets, others), (f"IM waits, {hosted}", waits, others),
            (f"mixed, {hosted}", mixed, others)]
    per_line = {}
    for name, lines, more in rows:
        t = best_of(args.repeat, lambda: run_audit(lines, chat_policy if not more else lead, policies=more))
        per_line[name] = t / len(lines) * 1e6
        print(f"{name:40s} {len(lines):9,d} lines  {per_line[name]:7.2f} µs/line")
    # issue #12's target: a ticket and a wait line at most a chat line's cost, in the same run
    chat_t = per_line[f"chat sessions, {hosted}"]
    print(f"per line against chat ({hosted}): service tickets {per_line[f'service tickets, {hosted}'] / chat_t:.2f}, "
          f"IM waits {per_line[f'IM waits, {hosted}'] / chat_t:.2f}")


if __name__ == "__main__":
    main()
