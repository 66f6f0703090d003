"""Builders for R1 events in tests: times as offsets from a Monday, runs through the real core."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import count

import orjson

from chatsla.audit import Collector, Report, run_audit
from chatsla.core.engine import Engine, EngineConfig
from chatsla.core.policy import Policy, load_policy
from chatsla.core.timefmt import parse_time

MONDAY = datetime(2026, 11, 2, tzinfo=timezone.utc)  # a Monday, 00:00 UTC
_ids = count(1)


def at(d: float = 0, h: float = 0, m: float = 0, s: float = 0) -> str:
    """RFC 3339 time ``d`` days, ``h`` hours, ``m`` minutes, ``s`` seconds after MONDAY."""
    dt = MONDAY + timedelta(days=d, hours=h, minutes=m, seconds=s)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt.microsecond == 0 else dt.isoformat().replace("+00:00", "Z")


def msg(conv: str, sender: str, when: str, *, shop: str = "s1", kind: str | None = None,
        eid: str | None = None, **extra: object) -> dict:
    ev = {"schema": "chat.message/v1", "event_id": eid or f"e{next(_ids)}", "shop_id": shop,
          "conversation_id": conv, "sender": sender, "sent_at": when}
    if kind:
        ev["kind"] = kind
    ev.update(extra)
    return ev


def shop_event(typ: str, when: str, *, shop: str = "s1", tz: str | None = None, eid: str | None = None) -> dict:
    ev = {"schema": "shop.event/v1", "event_id": eid or f"e{next(_ids)}", "shop_id": shop, "type": typ, "at": when}
    if tz:
        ev["timezone"] = tz
    return ev


def lines(events: list[dict]) -> list[bytes]:
    return [orjson.dumps(e) for e in events]


def audit(events: list[dict], until: str | None = None, policy: Policy | None = None,
          config: EngineConfig = EngineConfig()) -> Report:
    return run_audit(lines(events), policy or load_policy(), config, parse_time(until) if until else None)


def session(report: Report, session_id: str, shop: str = "s1") -> dict:
    found = [s for s in report.sessions if s["session_id"] == session_id and s["shop_id"] == shop]
    assert len(found) == 1, f"{session_id} not in {[s['session_id'] for s in report.sessions]}"
    return found[0]


def week(report: Report, week_start: str, shop: str = "s1") -> dict:
    found = [a for a in report.assessments if a["week_start"] == week_start and a["shop_id"] == shop]
    assert len(found) == 1, f"no assessment {shop} {week_start} in {report.assessments}"
    return found[0]


def emitted(events: list[dict], until: str | None = None, policy: Policy | None = None) -> list[tuple[str, dict]]:
    """Every record the engine emits, in order (what the live topics would carry)."""
    from chatsla.schemas.decode import decode

    engine = Engine(policy or load_policy())
    for raw in lines(events):
        engine.apply(decode(raw))
    engine.finish(parse_time(until) if until else None)
    return engine.take_records()


__all__ = ["Collector", "MONDAY", "at", "audit", "emitted", "lines", "msg", "session", "shop_event", "week"]
