"""Live projections of the ``aftersale`` model (RULES R11.5.2, R11.6; issue #14, "Live projections
and a Grafana row"), as the worker's ``/metrics`` and ``GET /shops/{id}`` show them.

Pure and Faust-free, like the rest of ``projections``: everything is read from the model's state
at the watermark through the function that writes its period records
(``Aftersale.to_date`` -> ``period_record``), never accumulated from emitted records, so a
restarted worker shows what it showed before and a scrape changes nothing (R6.1). Amounts stay
exact decimal strings here; only the metrics turn them into floats, at the edge.

**What a shop's view holds** (:func:`aftersale_view`):

- ``day`` and ``week`` (R11.5.2, local periods, R5.1 weeks): the record to date per request type
  and ``all`` (requests, auto_approved, manual_review, auto_approval_rate, auto_approved_amount
  per currency, manual_reasons, signals, agree, disagree);
- ``month``: the R11.6.3 record to date per group (``cancellation``, ``return_refund``);
- ``review_timeliness``: per group, :class:`ReviewProjection`, where this month's review
  timeliness is heading against the policy's ``review_rate_below`` (0.90 in
  ``tiktok_aftersale@2026-01``);
- ``awaiting_review``: the requests awaiting the seller whose due time is still ahead.

**Reading of "heading under the threshold"** (RULES R11.6 defines the monthly record and its
outcome, not a projection; this is chatsla's reading, docs/dashboards.md). The month record's
``review_rate`` is reviewed_in_time / awaiting_seller, which counts a request still inside its
48 h window as not reviewed: early in a month, or after a busy day, it is far under 90 % although
nothing was missed. The projection therefore separates the three kinds of request of the month so
far: reviewed in time, missed (the due time passed first, R11.6.2), and pending (not decided yet):

- ``rate_now`` = in time / decided (decided = in time + missed): where the month is heading if
  the pending and the coming requests are reviewed as the decided ones were. It is the
  *projected* review rate; with nothing pending it equals the record's ``review_rate``;
- ``best_case`` = (in time + pending) / awaiting: every pending request reviewed in time;
  ``worst_case`` = in time / awaiting: none (the record's ``review_rate`` now);
- ``projected_outcome``: ``not_assessed`` while nothing is decided; ``auto_approval_tool_risk``
  when ``rate_now`` < ``review_rate_below`` (exact fractions, as R11.6.3); ``ok`` otherwise;
- ``risk``: 0 (``ok``, also not assessed); 1 **heading under**: the projected outcome is the risk
  but reviewing ``reviews_needed`` of the pending requests in time brings the month to date back
  to the threshold; 2 **under even at best**: ``best_case`` < threshold, so only requests still to
  come this month, reviewed in time, can lift it;
- ``reviews_needed``: in-time reviews still needed for the month to date to reach the threshold
  if no other request comes (ceil(threshold x awaiting) - in time, at least 0), as R8's "replies
  needed"; ``reachable``: the pending requests are enough.

The alert ``ChatslaReviewTimelinessAtRisk`` fires on ``risk >= 1``: the month's decided requests
are under 90 % reviewed in time, which, if the month ended so, is R11.6.3's
``auto_approval_tool_risk`` (TikTok "may" switch its Auto-Approval Tool on for the shop).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from chatsla.core.periods import DAY, WEEK
from chatsla.projections.weekly import replies_needed

AFTERSALE = "aftersale"  # the model kind (chatsla.core.models)
MONTH = "month"
ALL = "all"
REQUEST_TYPES = ("cancel", "refund_only", "return_refund", "exchange")  # R11.1
ROWS = (ALL, *REQUEST_TYPES)  # R11.5.2: per request type plus an "all" row
GROUPS = ("cancellation", "return_refund")  # R11.6.3
SIGNALS = ("repeat_buyer", "repeat_sku", "near_threshold")  # R11.4, this order
# day / week-to-date request counts exported: (state label, R11.5.2 record key)
REQUEST_STATES = (("total", "requests"), ("auto_approved", "auto_approved"), ("manual_review", "manual_review"),
                  ("agree", "agree"), ("disagree", "disagree"))
REVIEW_STATES = ("awaiting_seller", "reviewed_in_time", "missed", "pending")  # this month's requests, R11.6
NOT_ASSESSED, OK, TOOL_RISK = "not_assessed", "ok", "auto_approval_tool_risk"  # R11.6.3 outcomes
RISK_OK, RISK_HEADING_UNDER, RISK_UNDER = 0, 1, 2


@dataclass(frozen=True, slots=True)
class ReviewProjection:
    """A shop's review timeliness this month for one group, at the watermark (module docstring).
    Rates are floats for display; every threshold decision was taken on exact fractions."""

    group: str
    month: str  # the month's first day, shop time (the record's ``start``)
    awaiting_seller: int
    reviewed_in_time: int
    missed: int
    pending: int
    decided: int
    rate_now: float | None  # in time / decided: the projected review rate
    best_case: float | None  # (in time + pending) / awaiting
    worst_case: float | None  # in time / awaiting
    threshold: float  # the policy's review_rate_below
    projected_outcome: str  # ok | auto_approval_tool_risk | not_assessed
    risk: int  # RISK_OK, RISK_HEADING_UNDER, RISK_UNDER
    reviews_needed: int
    reachable: bool


def project_review(group: str, month: str, awaiting: int, in_time: int, pending: int,
                   threshold: Fraction) -> ReviewProjection:
    """Where a month's review timeliness is heading (module docstring), from the counts of its
    R11.6.3 record: ``awaiting_seller``, ``reviewed_in_time`` and ``pending`` (undecided)."""
    missed = awaiting - in_time - pending
    if min(awaiting, in_time, pending, missed) < 0:
        raise ValueError(f"inconsistent month counters: awaiting_seller={awaiting} reviewed_in_time={in_time} "
                         f"pending={pending}")
    decided = in_time + missed
    if decided == 0:
        outcome, risk = NOT_ASSESSED, RISK_OK
    elif Fraction(in_time, decided) < threshold:
        outcome = TOOL_RISK
        risk = RISK_UNDER if Fraction(in_time + pending, awaiting) < threshold else RISK_HEADING_UNDER
    else:
        outcome, risk = OK, RISK_OK
    needed = replies_needed(awaiting, in_time, threshold)
    return ReviewProjection(
        group=group, month=month, awaiting_seller=awaiting, reviewed_in_time=in_time, missed=missed, pending=pending,
        decided=decided,
        rate_now=in_time / decided if decided else None,
        best_case=(in_time + pending) / awaiting if awaiting else None,
        worst_case=in_time / awaiting if awaiting else None,
        threshold=float(threshold), projected_outcome=outcome, risk=risk,
        reviews_needed=needed, reachable=needed <= pending)


def aftersale_view(model: Any, shop_id: str, watermark: int) -> dict:
    """A shop's after-sales view at ``watermark`` (module docstring), JSON-ready. ``model`` is the
    engine's ``aftersale`` model; only its read-only accessors are used."""
    body = model.view(shop_id, watermark)
    out: dict = {"shop_id": shop_id, "watermark": body["watermark"]}
    for kind in (DAY, WEEK):
        out[kind] = {row: model.to_date(shop_id, kind, row, watermark) for row in ROWS}
    out[MONTH] = {g: model.to_date(shop_id, MONTH, g, watermark) for g in GROUPS}
    threshold = model.policy.review_rate_below
    out["review_timeliness"] = {
        g: asdict(project_review(g, m["start"], m["awaiting_seller"], m["reviewed_in_time"], m["pending"], threshold))
        for g, m in out[MONTH].items()}
    out["awaiting_review"] = body["awaiting_review"]
    out["policy_id"], out["policy_version"] = model.policy.id, model.policy.version
    return out


def review_risk(body: dict) -> int:
    """The highest review-timeliness risk of a shop's groups (0, 1, 2)."""
    return max(p["risk"] for p in body["review_timeliness"].values())


def lowest_rate(body: dict) -> float:
    """The lowest projected review rate of a shop's groups (1.0 when nothing is decided)."""
    rates = [p["rate_now"] for p in body["review_timeliness"].values() if p["rate_now"] is not None]
    return min(rates, default=1.0)
