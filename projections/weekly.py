"""Week-to-date projection of a shop's weekly assessment (RULES R8, second bullet; R5).

The weekly assessment (R5) is only known once the week has ended and its sessions are decided;
a seller wants to know *during* the week where it is heading and what it takes to stay at or
above the warning threshold. Everything here derives from the week's counters the engine already
keeps (``sessions``, ``replied``, ``pending``, ``buyer_messages``, R5.3) plus the shop's rolling
rate (:mod:`projections.rolling`); threshold decisions reuse :func:`chatsla.core.records.outcome`
with exact fractions, so 90 % and 85 % exactly fall on the same side as the assessment (R5.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from chatsla.core.policy import Policy
from chatsla.core.records import NOT_ASSESSED, OK, VIOLATION, WARNING, outcome

# Penalty risk as a gauge value: 0 nothing to fear (ok, or not assessed), 1 warning, 2 violation.
PENALTY_RISK = {NOT_ASSESSED: 0, OK: 0, WARNING: 1, VIOLATION: 2}

# Which estimate of "a pending session will be answered in time" fed ``projected_rate``.
BASIS_COMPLETE = "complete"  # nothing pending: the projection is the week's rate itself
BASIS_ROLLING = "rolling_7d"  # the shop's rolling 7-day rate (R8 first bullet)
BASIS_WEEK = "week_to_date"  # no rolling rate given: this week's decided sessions
BASIS_NONE = "none"  # no session this week, or nothing decided anywhere yet: no projection


@dataclass(frozen=True, slots=True)
class WeekProjection:
    """A shop's current week at the watermark (R8). Plain JSON-ready values only.

    ``sessions`` counts every counted session of the week (R5.3), decided or not:
    ``decided = sessions - pending``. Rates are floats for display; the outcome was decided on
    exact fractions. ``replies_needed_for_90`` is measured against the policy's warning threshold
    (``warning_below``, 90 % in ``tiktok_shop@2023-11``); ``reachable`` says whether the week's
    pending sessions are enough to get there.
    """

    week_start: str
    sessions: int
    replied: int
    pending: int
    decided: int
    buyer_messages: int
    rate_now: float | None  # replied / decided
    best_case: float | None  # every pending session answered in time: (replied + pending) / sessions
    worst_case: float | None  # none answered in time: replied / sessions
    projected_rate: float | None
    projection_basis: str  # one of the BASIS_* values above
    projected_outcome: str  # ok | warning | violation | not_assessed (R5.4-R5.5)
    penalty_risk: int  # PENALTY_RISK[projected_outcome]
    replies_needed_for_90: int
    reachable: bool


def _exact(rate: float | Fraction) -> Fraction:
    """A rate as an exact fraction. A float goes through its shortest repr, so a rolling rate of
    17/20 computed in floating point (0.85, stored as 0.8499999...) is 17/20 again and lands on
    the ``warning`` side of 85 % like the weekly assessment does (R5.5)."""
    value = rate if isinstance(rate, Fraction) else Fraction(repr(float(rate)))
    if not 0 <= value <= 1:
        raise ValueError(f"a reply rate lies between 0 and 1, not {rate!r}")
    return value


def replies_needed(sessions: int, replied: int, target: Fraction) -> int:
    """Least k >= 0 with ``(replied + k) / sessions >= target``, assuming no further session opens.

    Exact integer arithmetic: ``ceil(target * sessions) - replied``, floored at 0.
    """
    if sessions == 0:
        return 0
    goal = -((-target.numerator * sessions) // target.denominator)  # ceil without floats
    return max(0, goal - replied)


def project_week(week_start: str, sessions: int, replied: int, pending: int, buyer_messages: int,
                 policy: Policy, recent_rate: float | Fraction | None) -> WeekProjection:
    """Project the week's assessment from its counters at the watermark (R8, R5.4-R5.5).

    ``projected_rate`` is the expected final rate if no further session opens and each pending
    session is answered in time with probability ``p``:
    ``(replied + pending * p) / sessions``, which always lies between worst and best case.

    - nothing pending: it is the week's rate (``complete``), the provisional assessment's rate;
    - otherwise ``p`` is the shop's rolling 7-day rate ``recent_rate`` (``rolling_7d``): it covers
      every decided session of this week plus the days before, so it is steadier early in the
      week. (Taking ``p`` from this week's decided sessions alone would make the projection
      collapse algebraically to ``rate_now`` and add nothing.)
    - with no rolling rate, this week's ``replied / decided`` (``week_to_date``);
    - with neither (a shop's first sessions, all pending) there is no basis: ``projected_rate`` is
      None and the outcome ``not_assessed`` (``none``), as for a week without sessions.

    The projected outcome applies the policy's thresholds to that exact fraction; a week with
    fewer than ``min_buyer_messages`` buyer messages so far is ``not_assessed`` (R5.4), penalty
    risk 0, whatever its rate.
    """
    if min(sessions, replied, pending, buyer_messages) < 0 or replied + pending > sessions:
        raise ValueError(f"inconsistent week counters: sessions={sessions} replied={replied} pending={pending} "
                         f"buyer_messages={buyer_messages}")
    decided = sessions - pending
    projected: Fraction | None
    if sessions == 0:
        projected, basis = None, BASIS_NONE
    elif pending == 0:
        projected, basis = Fraction(replied, sessions), BASIS_COMPLETE
    else:
        if recent_rate is not None:
            p, basis = _exact(recent_rate), BASIS_ROLLING
        elif decided:
            p, basis = Fraction(replied, decided), BASIS_WEEK
        else:
            p, basis = None, BASIS_NONE
        projected = None if p is None else (replied + pending * p) / sessions
    if projected is None:
        result = NOT_ASSESSED
    else:
        # outcome() compares Fraction(replied, sessions): numerator/denominator is the same value
        result, _ = outcome(projected.denominator, projected.numerator, buyer_messages, policy)
    needed = replies_needed(sessions, replied, policy.warning_below)
    return WeekProjection(
        week_start=week_start,
        sessions=sessions,
        replied=replied,
        pending=pending,
        decided=decided,
        buyer_messages=buyer_messages,
        rate_now=replied / decided if decided else None,
        best_case=(replied + pending) / sessions if sessions else None,
        worst_case=replied / sessions if sessions else None,
        projected_rate=None if projected is None else float(projected),
        projection_basis=basis,
        projected_outcome=result,
        penalty_risk=PENALTY_RISK[result],
        replies_needed_for_90=needed,
        reachable=needed <= pending,
    )
