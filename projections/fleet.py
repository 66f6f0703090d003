"""Fleet-wide aggregates and the choice of shops to export per shop (RULES R8).

Per-shop series grow with the fleet; the aggregates here stay a fixed handful of numbers at any
fleet size, so they are always exported while per-shop detail is limited to a selection
(``all``, ``at-risk``, ``worst:K``, ``none``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from chatsla.core.records import NOT_ASSESSED, OK, VIOLATION, WARNING
from chatsla.projections.weekly import WeekProjection

OUTCOMES = (OK, WARNING, VIOLATION, NOT_ASSESSED)
# Upper bounds ("le") of the rolling reply rate histogram; the thresholds of R5.5 are bounds so
# "how many shops are below 90 %" reads straight off the buckets.
RATE_BUCKETS = (0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0, math.inf)
SELECT_MODES_HELP = "all, at-risk, worst:K (K >= 1) or none"


@dataclass(frozen=True, slots=True)
class ShopView:
    """One shop's R8 projections at its watermark.

    ``rolling_rate``: rolling 7-day rate, None when nothing in the window is decided;
    ``week``: current week's projection, None when the shop has no week yet; ``at_risk``: number
    of at-risk sessions; ``longest_wait_us``: longest current buyer wait; ``last_week``: the
    latest ended week's assessment, None before the shop's first week has ended.
    """

    shop_id: str
    rolling_rate: float | None
    week: WeekProjection | None
    at_risk: int
    longest_wait_us: int
    last_week: "EndedWeek | None" = None


@dataclass(frozen=True, slots=True)
class EndedWeek:
    """The latest week of a shop that has ended: its assessment as the engine emitted it (R5.6).

    ``status`` is ``provisional`` while sessions of the week are still pending and ``final`` once
    all are decided; ``outcome`` and ``rate`` are the assessment's (``rate`` is None without a
    counted session). Exported so that a dashboard (and the demo) can show the week a shop was
    just judged on, not only the new week that has barely begun (issue #13).
    """

    week_start: str
    status: str
    outcome: str
    rate: float | None


@dataclass(frozen=True, slots=True)
class FleetSummary:
    """Aggregates over a set of shops.

    ``shops_by_outcome`` has every outcome as a key, zeros included, so a series never vanishes;
    a shop without a week counts as ``not_assessed``. ``rate_buckets`` is the cumulative
    histogram of rolling rates, ``(upper bound, shops with rate <= bound)`` in bound order, with
    Prometheus semantics: the ``+Inf`` bucket equals ``rate_count``. Shops without a rolling rate
    are not in the histogram.
    """

    shops: int
    shops_by_outcome: dict[str, int]
    rate_buckets: tuple[tuple[float, int], ...]
    rate_count: int
    rate_sum: float
    at_risk_total: int


def fleet_summary(views: Iterable[ShopView]) -> FleetSummary:
    """Count shops per projected outcome, bucket rolling rates and add up at-risk sessions."""
    views = sorted(views, key=lambda v: v.shop_id)  # float sums depend on order: fix it (R6.1)
    by_outcome = dict.fromkeys(OUTCOMES, 0)
    for v in views:
        by_outcome[NOT_ASSESSED if v.week is None else v.week.projected_outcome] += 1
    rates = [v.rolling_rate for v in views if v.rolling_rate is not None]
    buckets = tuple((bound, sum(1 for r in rates if r <= bound)) for bound in RATE_BUCKETS)
    return FleetSummary(
        shops=len(views),
        shops_by_outcome=by_outcome,
        rate_buckets=buckets,
        rate_count=len(rates),
        rate_sum=math.fsum(rates),
        at_risk_total=sum(v.at_risk for v in views),
    )


def _rank_rate(v: ShopView) -> float | None:
    """The rate a shop is ranked by for ``worst:K``: projected weekly rate, else rolling rate."""
    if v.week is not None and v.week.projected_rate is not None:
        return v.week.projected_rate
    return v.rolling_rate


def _parse_worst(mode: str) -> int:
    text = mode[len("worst:"):]
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ValueError(f"bad shop selection {mode!r}: K in worst:K must be a whole number >= 1")
    return int(text)


def select_shops(views: Iterable[ShopView], mode: str) -> list[ShopView]:
    """The shops whose per-shop series are exported under ``mode``.

    - ``all``: every shop, by shop id;
    - ``at-risk``: shops heading for a warning or violation (penalty risk > 0) or with at-risk
      sessions, by shop id;
    - ``worst:K``: the K shops with the lowest rate (projected weekly rate, else rolling rate;
      shops with neither have nothing to rank and are left out), worst first, ties by shop id;
    - ``none``: no shop.

    A bad mode raises ``ValueError`` with a one-line message, also for an empty ``views``, so
    ``select_shops([], mode)`` validates a configured mode up front.
    """
    if mode.startswith("worst:"):
        k = _parse_worst(mode)
        ranked = [(rate, v.shop_id, v) for v in views if (rate := _rank_rate(v)) is not None]
        ranked.sort(key=lambda t: (t[0], t[1]))
        return [v for _, _, v in ranked[:k]]
    if mode == "all":
        return sorted(views, key=lambda v: v.shop_id)
    if mode == "at-risk":
        return sorted((v for v in views if v.at_risk > 0 or (v.week is not None and v.week.penalty_risk > 0)),
                      key=lambda v: v.shop_id)
    if mode == "none":
        return []
    raise ValueError(f"unknown shop selection {mode!r}; use {SELECT_MODES_HELP}")
