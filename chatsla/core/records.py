"""Output records: sessions and weekly assessments (schemas/session.schema.json and
schemas/assessment.schema.json). Key order is fixed so JSON output is byte-stable (R6.1)."""

from __future__ import annotations

from fractions import Fraction

from chatsla.core.calendar import Week
from chatsla.core.policy import Policy
from chatsla.core.sessions import AUTO_REPLY_RESOLVED, Conversation
from chatsla.core.timefmt import format_time

NOT_ASSESSED, OK, WARNING, VIOLATION = "not_assessed", "ok", "warning", "violation"


# The engine emits compact tuples and formatting happens only where records leave the core
# (report, Kafka producer): most emitted states are superseded before anyone reads them, and
# RFC 3339 formatting is the costliest step of the hot path (BENCHMARKS.md).
SessionRaw = tuple  # (shop_id, conversation_id, n, opened_at, first_at, first_by, closed_at,
#                     close_reason, replied, decided_at, excluded, late, week)
WeekRaw = tuple  # (shop_id, week_start, sessions, replied, buyer_messages, status, pending, late)


def session_raw(c: Conversation, closed_at: int | None = None, close_reason: str | None = None) -> SessionRaw:
    """The session's record; ``closed_at`` and ``close_reason`` when it is being closed (a
    conversation does not hold them). The credited reply (R3) is the first human reply, else the
    auto-reply that resolved it."""
    if c.first_human is not None:
        first_at, first_by = c.first_human, "seller"
    elif close_reason == AUTO_REPLY_RESOLVED:
        first_at, first_by = c.last_seller_at, "auto_reply"
    else:
        first_at, first_by = None, None
    return (c.shop_id, c.conversation_id, c.n, c.opened_at, first_at, first_by, closed_at, close_reason,
            c.replied, c.decided_at, c.excluded, c.late, c.week)


def session_record(raw: SessionRaw, policy: Policy) -> dict:
    shop_id, conv, n, opened, first_at, first_by, closed, reason, replied, decided, excluded, late, week = raw
    first_s = None if first_at is None else format_time(first_at)
    return {
        "session_id": f"{conv}#{n}",
        "shop_id": shop_id,
        "conversation_id": conv,
        "opened_at": format_time(opened),  # a session always has one
        "first_reply_at": first_s,
        "first_reply_by": first_by,
        "closed_at": None if closed is None else format_time(closed),
        "close_reason": reason,
        "replied_within_24h": replied,
        # most sessions are decided by their first reply: its string is reused, not formatted again
        "decided_at": None if decided is None else first_s if decided == first_at else format_time(decided),
        "excluded": "vacation" if excluded else None,
        "late": late,
        "week_start": week,
        "policy_id": policy.id,
        "policy_version": policy.version,
    }


def week_raw(shop_id: str, w: Week) -> WeekRaw:
    return (shop_id, w.week_start, w.sessions, w.replied, w.buyer_messages, w.status, w.pending, w.late)


def outcome(sessions: int, replied: int, buyer_messages: int, policy: Policy) -> tuple[str, int]:
    """R5.4-R5.5 with exact fractions, so 90 % and 85 % exactly fall on the right side.

    A week with enough buyer messages but no counted session (all excluded, or all sessions opened
    the week before) has no rate to judge: ``not_assessed`` (RULES is silent; seed 000 judges the
    reply rate, which does not exist without sessions).
    """
    if buyer_messages < policy.min_buyer_messages or sessions == 0:
        return NOT_ASSESSED, 0
    rate = Fraction(replied, sessions)
    if rate < policy.violation_below:
        return VIOLATION, policy.violation_points
    if rate < policy.warning_below:
        return WARNING, 0
    return OK, 0


def assessment_record(raw: WeekRaw, policy: Policy) -> dict:
    shop_id, week_start, sessions, replied, buyer_messages, status, pending, late = raw
    result, points = outcome(sessions, replied, buyer_messages, policy)
    return {
        "shop_id": shop_id,
        "week_start": week_start,
        "sessions": sessions,
        "replied_24h": replied,
        "rate": (replied / sessions) if sessions else None,
        "buyer_messages": buyer_messages,
        "outcome": result,
        "violation_points": points,
        "status": status,
        "pending": pending,
        "late": late,
        "policy_id": policy.id,
        "policy_version": policy.version,
    }


def to_record(kind: str, raw: tuple, policy: Policy) -> dict:
    """An emitted ``(kind, raw)`` pair as the JSON-ready output record."""
    return session_record(raw, policy) if kind == "session" else assessment_record(raw, policy)


def record_key(kind: str, raw: tuple) -> tuple:
    """Identity of an output record: later records with the same key supersede earlier ones."""
    return (raw[0], raw[1], raw[2]) if kind == "session" else (raw[0], raw[1])
