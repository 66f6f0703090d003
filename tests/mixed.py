"""A mixed input of all three platforms for tests and benchmarks (issue #12): TikTok Shop chat
(chat_sessions, R2-R5), Douyin service tickets (service_tickets, R9) and AliExpress IM
(im_waits, R10), with shop events, as wire records (``chat.message/v1``, ``ticket.event/v1``,
``shop.event/v1``) in time order.

Deterministic for a seed. Times jitter by whole seconds so that equal instants (rank ties) occur.
The simulator (``chatsla simulate``) grows its own ticket and AliExpress traffic; this one is
small, exercises every branch the properties need (tickets handled in time, late, returned,
closed unhandled, never handled; waits answered, auto-replied, closed; a shop's zone set; a
vacation), and needs nothing but the standard library.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import orjson

MONDAY = datetime(2026, 11, 2, tzinfo=timezone.utc)


def _at(s: float) -> str:
    return (MONDAY + timedelta(seconds=int(s))).strftime("%Y-%m-%dT%H:%M:%SZ")


def mixed_records(seed: int = 0, tiktok_convs: int = 20, tickets: int = 20, ae_convs: int = 20,
                  days: float = 7.0) -> list[dict]:
    """Wire records of the three platforms over ``days`` from Monday 2026-11-02, sorted by time."""
    rng = random.Random(seed)
    out: list[tuple[float, int, dict]] = []
    n = 0

    def add(t: float, rec: dict) -> None:
        nonlocal n
        n += 1
        rec.setdefault("event_id", f"m{seed}-{n}")
        out.append((int(t), n, rec))

    span = days * 86400
    # shop events: a Douyin shop told its zone, a TikTok shop's vacation
    add(0, {"schema": "shop.event/v1", "shop_id": "dy-1", "type": "timezone", "timezone": "Asia/Shanghai",
            "at": _at(0)})
    add(0, {"schema": "shop.event/v1", "shop_id": "tt-1", "type": "timezone", "timezone": "Asia/Jakarta", "at": _at(0)})
    add(2 * 86400, {"schema": "shop.event/v1", "shop_id": "tt-2", "type": "vacation_on", "at": _at(2 * 86400)})
    add(2.5 * 86400, {"schema": "shop.event/v1", "shop_id": "tt-2", "type": "vacation_off", "at": _at(2.5 * 86400)})
    # TikTok Shop chat
    for i in range(tiktok_convs):
        shop = f"tt-{1 + i % 2}"
        conv = f"tc{i}"
        t = rng.uniform(0, span - 3600)
        for _ in range(rng.randint(1, 3)):
            add(t, {"schema": "chat.message/v1", "shop_id": shop, "conversation_id": conv, "sender": "buyer",
                    "sent_at": _at(t)})
            if rng.random() < 0.3:
                add(t + 5, {"schema": "chat.message/v1", "shop_id": shop, "conversation_id": conv,
                            "sender": "auto_reply", "sent_at": _at(t + 5)})
            if rng.random() < 0.8:
                t += rng.choice([60, 600, 3600, 10 * 3600, 30 * 3600])
                add(t, {"schema": "chat.message/v1", "shop_id": shop, "conversation_id": conv,
                        "sender": "seller", "sent_at": _at(t)})
            t += rng.choice([120, 8 * 3600, 80 * 3600])
    # Douyin tickets (dy-1 on Asia/Shanghai by its shop event, dy-2 on the policy's default zone)
    for i in range(tickets):
        shop = f"dy-{1 + i % 2}"
        tid = f"tk{i}"
        t = rng.uniform(0, span - 3600)
        prio = rng.choice(["normal", "urgent", "agreed"])
        rec = {"schema": "ticket.event/v1", "shop_id": shop, "ticket_id": tid, "type": "created", "at": _at(t),
               "priority": prio}
        if prio == "agreed":
            rec["sla_minutes"] = rng.choice([120, 240, 720])
        if rng.random() < 0.2:
            rec["category"] = rng.choice(["refund", "logistics", "other"])
        add(t, rec)
        fate = rng.random()
        if fate < 0.7:
            h = t + rng.choice([600, 3 * 3600, 20 * 3600, 40 * 3600])
            add(h, {"schema": "ticket.event/v1", "shop_id": shop, "ticket_id": tid, "type": "handled", "at": _at(h),
                    "result": rng.choice(["resolved", "resolved", "unresolved", "returned"])})
            if rng.random() < 0.3:
                add(h + 3600, {"schema": "ticket.event/v1", "shop_id": shop, "ticket_id": tid, "type": "closed",
                               "at": _at(h + 3600)})
        elif fate < 0.85:
            k = t + rng.choice([900, 30 * 3600])
            add(k, {"schema": "ticket.event/v1", "shop_id": shop, "ticket_id": tid, "type": "closed", "at": _at(k)})
    # AliExpress IM
    for i in range(ae_convs):
        shop = "ae-1"
        conv = f"ac{i}"
        t = rng.uniform(0, span - 3600)
        for _ in range(rng.randint(1, 3)):
            add(t, {"schema": "chat.message/v1", "platform": "aliexpress", "shop_id": shop, "conversation_id": conv,
                    "sender": "buyer", "sent_at": _at(t)})
            if rng.random() < 0.4:
                add(t + 2, {"schema": "chat.message/v1", "platform": "aliexpress", "shop_id": shop,
                            "conversation_id": conv, "sender": "auto_reply", "sent_at": _at(t + 2)})
            r = rng.random()
            t += rng.choice([30, 900, 5 * 3600, 26 * 3600])
            if r < 0.6:
                add(t, {"schema": "chat.message/v1", "platform": "aliexpress", "shop_id": shop,
                        "conversation_id": conv, "sender": "seller", "sent_at": _at(t)})
            elif r < 0.75:
                add(t, {"schema": "chat.message/v1", "platform": "aliexpress", "shop_id": shop,
                        "conversation_id": conv, "sender": "system", "kind": "close", "sent_at": _at(t)})
            t += rng.choice([60, 3600, 30 * 3600])
    out.sort(key=lambda x: (x[0], x[1]))
    return [rec for _, _, rec in out]


def mixed_lines(seed: int = 0, **kw: object) -> list[bytes]:
    """:func:`mixed_records` as JSON lines (what ``chatsla audit`` reads)."""
    return [orjson.dumps(r) for r in mixed_records(seed, **kw)]  # type: ignore[arg-type]


def mixed_events(seed: int = 0, **kw: object) -> list:
    """:func:`mixed_records` decoded (R1, A.1): the events the core is fed."""
    from chatsla.schemas.decode import decode

    evs = [decode(line) for line in mixed_lines(seed, **kw)]
    bad = [e for e in evs if not hasattr(e, "t")]
    assert not bad, bad
    return evs
