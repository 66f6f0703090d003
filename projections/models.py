"""Live projections of the ``service_tickets``, ``im_waits`` and ``aftersale`` models (RULES A.4:
R9.8 for tickets, R10.3 for waits; R11.5.2 and R11.6 for after-sales, ``projections/aftersale.py``),
as the worker's ``/metrics`` and ``GET /shops/{id}`` show them.

The models compute their own views (``view(shop_id, watermark)``); this module only finds which
shops a model has data for, adds the day- and week-to-date wait figures (R10.5.2 computed on the
periods so far) and turns a view into the bounded label sets of the metrics. Everything is read
from the model's state at the watermark, never accumulated from emitted records, so a restarted
worker shows the same numbers as before the restart (its state comes back from the checkpoint)
and a scrape changes nothing (R6.1).

Label sets are fixed enums (``PRIORITIES``, ``TICKET_STATES``, ``WAIT_STATES``, ``MEASURES``,
``PERIODS``) plus the policy's percentiles (a handful per policy): never a ticket or
conversation id.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from chatsla.core.periods import DAY, WEEK, period_bounds
from chatsla.projections.aftersale import AFTERSALE, lowest_rate, review_risk

TICKETS, WAITS = "service_tickets", "im_waits"  # model kinds (chatsla.core.models)
KINDS = (TICKETS, WAITS, AFTERSALE)  # the models with a live view besides chat sessions
PERIODS = (DAY, WEEK)
PRIORITIES = ("normal", "urgent", "agreed")  # R9.2
# day / week-to-date ticket counts exported (R9.6.2 record keys; "tickets" is exported as "total")
TICKET_STATES = (("total", "tickets"), ("handled_in_time", "handled_in_time"), ("missed", "missed"),
                 ("handled_late", "handled_late"), ("pending", "pending"), ("excluded", "excluded"))
# day / week-to-date wait counts exported (R10.5.2 record keys)
WAIT_STATES = ("answered", "closed_unanswered", "opened")
# the two waiting-time measures (R10.2.5, R10.3.2), as the policy field wait_measured_from names them
MEASURES = (("last_buyer_message", "waited", "waiting"), ("first_unanswered", "from_first", "waiting_from_first"))
# measured at the end instant of a period only (R10.5.2): meaningless in a period still running
_AT_END = ("open_at_end", "oldest_waiting_at_end", "oldest_waiting_from_first_at_end")


@dataclass(frozen=True, slots=True)
class ModelView:
    """One shop's view under one model at the watermark ``watermark`` (µs).

    ``body``: for tickets the R9.8 view of ``ServiceTickets.view`` (open by priority, at-risk and
    overdue lists, ``day`` and ``week`` records to date); for waits the R10.3 view of
    ``ImWaits.view`` plus ``day`` and ``week`` (:func:`wait_to_date`); for after-sales
    :func:`chatsla.projections.aftersale.aftersale_view`."""

    shop_id: str
    kind: str
    watermark: int
    body: dict


def model_shops(model: Any) -> list[str]:
    """Shops the model has data for (an open or remembered ticket / conversation / request, or a
    period record), sorted. A shop known only by a shop event (its time zone, its rule set) has
    no view."""
    if model.kind == TICKETS:
        shops = set(model.tickets)
    elif model.kind == WAITS:
        shops = set(model.convs)
    elif model.kind == AFTERSALE:
        shops = set(model.requests)
    else:
        raise ValueError(f"no live view for model {model.kind!r}")
    shops.update(key[0] for key in model.periods)
    return sorted(shops)


def wait_to_date(model: Any, shop_id: str, watermark: int, default_timezone: str) -> dict[str, dict | None]:
    """The R10.5.2 record of the day and the week containing ``watermark``, computed on the waits
    so far (None when nothing was counted in that period yet, as no record exists then).

    The model emits a period's record once the period has ended (im_waits module docstring), so
    the day and week to date come from its live period state through the same function that
    writes the record (``ImWaits.period_record``); the end-instant measures (``open_at_end``, the
    oldest waits at the end) are left out: a running period has no end yet."""
    tz = model.shop_tz.get(shop_id, model.policy.default_timezone or default_timezone)
    out: dict[str, dict | None] = {}
    for kind in PERIODS:
        _, _, label = period_bounds(kind, watermark, tz, model.policy.week_starts_on)
        p = model.periods.get((shop_id, kind, label))
        if p is None:
            out[kind] = None
            continue
        rec = model.period_record(p)
        for k in _AT_END:
            rec.pop(k, None)
        out[kind] = rec
    return out


def quantile_label(p: int | Fraction) -> str:
    """A policy percentile (50, 99.9) as a Prometheus ``quantile`` label value ("0.5", "0.999")."""
    return repr(float(Fraction(p) / 100))


def is_busy(view: ModelView) -> bool:
    """Selected by ``--shop-metrics at-risk``: tickets at risk or overdue, an unreplied
    conversation, or review timeliness heading under the threshold (risk 1 or 2)."""
    b = view.body
    if view.kind == TICKETS:
        return bool(b["at_risk"] or b["overdue"])
    if view.kind == AFTERSALE:
        return review_risk(b) > 0
    return b["unreplied"] > 0


def urgency(view: ModelView) -> tuple:
    """Sort key, most urgent first, for ``--shop-metrics worst:K``: tickets by overdue then at-risk
    count; waits by the longest wait (the policy's primary measure) then the unreplied count;
    after-sales by the review-timeliness risk then the lowest projected review rate."""
    b = view.body
    if view.kind == TICKETS:
        return (-len(b["overdue"]), -len(b["at_risk"]), view.shop_id)
    if view.kind == AFTERSALE:
        return (-review_risk(b), lowest_rate(b), view.shop_id)
    primary = "longest_waiting_from_first" if b["measured_from"] == "first_unanswered" else "longest_waiting"
    return (-(b[primary] or 0), -b["unreplied"], view.shop_id)


def select_model_views(views: list[ModelView], mode: str) -> list[ModelView]:
    """The ticket, wait and after-sales views whose per-shop series are exported under ``mode`` (the same
    ``--shop-metrics`` setting as the chat series, :func:`chatsla.projections.fleet.select_shops`,
    which validates it): ``all``; ``at-risk`` (:func:`is_busy`); ``worst:K``, the K most urgent
    shops of each model (:func:`urgency`); ``none``."""
    if mode == "all":
        return sorted(views, key=lambda v: (v.kind, v.shop_id))
    if mode == "none":
        return []
    if mode == "at-risk":
        return sorted((v for v in views if is_busy(v)), key=lambda v: (v.kind, v.shop_id))
    k = int(mode.split(":", 1)[1])
    out: list[ModelView] = []
    for kind in KINDS:
        out += sorted((v for v in views if v.kind == kind), key=urgency)[:k]
    return out
