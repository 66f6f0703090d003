"""Output records: sessions and weekly assessments (schemas/session.schema.json and
schemas/assessment.schema.json). Key order is fixed so JSON output is byte-stable (R6.1)."""

from __future__ import annotations

from fractions import Fraction

from chatsla.core.calendar import Week
from chatsla.core.policy import Policy
from chatsla.core.sessions import AUTO_REPLY_RESOLVED, Conversation
from chatsla.core.timefmt import format_opt

NOT_ASSESSED, OK, WARNING, VIOLATION = "not_assessed", "ok", "warning", "violation"


def session_record(c: Conversation, policy: Policy, resolving_auto: int | None = None) -> dict:
    """The credited reply (R3) is the first human reply, else the auto-reply that resolved it."""
    if c.first_human is not None:
        first_at, first_by = c.first_human, "seller"
    elif c.close_reason == AUTO_REPLY_RESOLVED:
        first_at, first_by = c.last_seller_at, "auto_reply"
    else:
        first_at, first_by = None, None
    return {
        "session_id": c.session_id,
        "shop_id": c.shop_id,
        "conversation_id": c.conversation_id,
        "opened_at": format_opt(c.opened_at),
        "first_reply_at": format_opt(first_at),
        "first_reply_by": first_by,
        "closed_at": format_opt(c.closed_at),
        "close_reason": c.close_reason,
        "replied_within_24h": c.replied,
        "decided_at": format_opt(c.decided_at),
        "excluded": "vacation" if c.excluded else None,
        "late": c.late,
        "week_start": c.week,
        "policy_id": policy.id,
        "policy_version": policy.version,
    }


def outcome(w: Week, policy: Policy) -> tuple[str, int]:
    """R5.4-R5.5 with exact fractions, so 90 % and 85 % exactly fall on the right side.

    A week with enough buyer messages but no counted session (all excluded, or all sessions opened
    the week before) has no rate to judge: ``not_assessed`` (RULES is silent; seed 000 judges the
    reply rate, which does not exist without sessions).
    """
    if w.buyer_messages < policy.min_buyer_messages or w.sessions == 0:
        return NOT_ASSESSED, 0
    rate = Fraction(w.replied, w.sessions)
    if rate < policy.violation_below:
        return VIOLATION, policy.violation_points
    if rate < policy.warning_below:
        return WARNING, 0
    return OK, 0


def assessment_record(shop_id: str, w: Week, policy: Policy) -> dict:
    result, points = outcome(w, policy)
    return {
        "shop_id": shop_id,
        "week_start": w.week_start,
        "sessions": w.sessions,
        "replied_24h": w.replied,
        "rate": (w.replied / w.sessions) if w.sessions else None,
        "buyer_messages": w.buyer_messages,
        "outcome": result,
        "violation_points": points,
        "status": w.status,
        "pending": w.pending,
        "late": w.late,
        "policy_id": policy.id,
        "policy_version": policy.version,
    }
