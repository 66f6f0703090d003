"""Prometheus metrics and the read-only HTTP API of a worker (RULES R8; issues #4, #13).

Per-shop series are built at scrape time from the partitions this worker owns *now* (a custom
collector), so when a partition moves, its shops vanish from the old worker's ``/metrics`` at
once and no dashboard sees two values for one shop. Per-shop series are selectable
(``all``, ``at-risk``, ``worst:K``, ``none``); fleet aggregates that stay small at any fleet size
are always exported. No label ever names a conversation.

Naming (issue #13, CHANGELOG.md lists every rename): a share in 0..1 ends in ``_ratio``; the
rolling rate says ``rolling_7d`` (it covers 7 x 24 h of sessions, each judged on a 24 h reply);
snapshots of the fleet (how many shops have which rolling ratio now) are a *gauge* histogram,
which may go down, never a counter histogram. ``_created`` series are off: every counter here
is per process and Prometheus handles its resets, so they only doubled the series count.

``/metrics`` is served by prometheus_client's own handler (:meth:`WorkerMetrics.serve`): content
negotiation (OpenMetrics for Prometheus, the 0.0.4 text format otherwise), gzip when asked,
``name[]`` filtering; the standard process, platform and GC collectors are registered.

Series per selected shop: 12 gauges plus 3 for ``chatsla_shop_sessions{state}`` = 15.

Douyin tickets and AliExpress waits (issue #12; RULES A.4: R9.8 and R10.3 for these models) are
read at scrape time from the ``service_tickets`` and ``im_waits`` models the partitions' engines
host, through each model's ``view(shop_id, watermark)`` (``chatsla.projections.models``), for the
shops that model has data for; ``--shop-metrics`` selects them too. Labels are shop x fixed enums
(priority, period, state, measure, the policy's percentiles). Per selected ticket shop: 3 open +
1 at risk + 3 overdue + 12 day/week counts + 2 rates = 21 series; per selected wait shop:
1 unreplied + 2 longest + 6 day/week counts + up to 2 x 2 x (percentiles + 1) waited = 25 with
three percentiles. ``GET /shops/{id}`` adds the views under ``tickets`` and ``waits``.

TikTok Shop after-sales (issue #14; RULES R11.5.2, R11.6) are read the same way from the
``aftersale`` model (``chatsla.projections.aftersale``): the day and week to date per request type
and ``all``, and this month's review timeliness per group with where it is heading against the
policy's ``review_rate_below``. Every after-sales series also carries ``policy_id`` and
``policy_version`` (R7: the rule set's numbers depend on the policy version). Amounts are exact
decimal strings up to here and become float gauges only in :func:`model_families`. Per selected
after-sales shop: 2 periods x 5 rows x 5 states = 50 counts, up to 10 auto-approval ratios, one
approved amount per (period, row, currency approved), 2 x 3 signals, the manual-review reasons
seen (per period), 2 groups x (4 counts + 3 ratios + risk + reviews needed) = 18: about 90 with
one currency. ``GET /shops/{id}`` adds the view under ``aftersale``.
"""

from __future__ import annotations

from collections import Counter as PyCounter
from typing import TYPE_CHECKING, Callable, Collection, Iterable

from prometheus_client import (CollectorRegistry, Counter, Gauge, GCCollector, Histogram, PlatformCollector,
                               ProcessCollector, disable_created_metrics, make_asgi_app)
from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily

import logging

from chatsla.streams.clock import wall_clock_us
from chatsla.core.calendar import week_bounds
from chatsla.core.records import assessment_record, week_raw
from chatsla.core.timefmt import HOUR, SECOND, format_opt, parse_time
from chatsla.projections.fleet import EndedWeek, ShopView, fleet_summary, select_shops
from chatsla.projections.aftersale import (AFTERSALE, GROUPS, REQUEST_STATES, REVIEW_STATES, ROWS, SIGNALS,
                                           aftersale_view)
from chatsla.projections.models import (KINDS, MEASURES, PERIODS, PRIORITIES, TICKET_STATES, TICKETS, WAIT_STATES,
                                        WAITS, ModelView, model_shops, quantile_label, select_model_views,
                                        wait_to_date)
from chatsla.projections.risk import OpenSession, at_risk, longest_wait
from chatsla.projections.rolling import RollingRate
from chatsla.projections.weekly import project_week

if TYPE_CHECKING:
    from chatsla.streams.runtime import PartitionRuntime

log = logging.getLogger("chatsla.metrics")
# Process-wide switch of prometheus_client (read at every collection): no `<counter>_created`
# series. A worker's counters all start with its process, which `process_start_time_seconds`
# already says; the extra series only doubled what every scrape stores (issue #13).
disable_created_metrics()
CLOSE_REASONS = ("seller_timeout", "buyer_timeout", "auto_reply_resolved", "closed_by_seller", "closed_by_platform")


class ShopViews:
    """R8 projections of the shops in the partitions a worker owns, computed on demand."""

    def __init__(self, runtimes: dict[int, "PartitionRuntime"], at_risk_threshold: int = 2 * HOUR,
                 owned: Callable[[], Collection[int]] | None = None) -> None:
        """``owned`` returns the partitions this worker is assigned *now* (None: every runtime).

        A runtime can outlive its ownership for a moment (an event of a revoked partition already
        handed to the agent, or a worker shutting down after it left the consumer group while
        its web server still answers); filtering by the live assignment keeps a shop's series
        on one worker at a time whatever the agent is doing."""
        self.runtimes = runtimes
        self.at_risk_threshold = at_risk_threshold
        self.owned = owned
        self.rolling: dict[str, RollingRate] = {}
        self.errors = 0  # shop views skipped because they failed (exported as chatsla_view_errors)

    def observe(self, record: dict, kind: str = "session", opened_at: int | None = None) -> None:
        """Feed a session record (from the engine's outputs) to its shop's rolling 7-day rate.

        Ticket, wait and period records (``kind`` ``ticket`` / ``wait`` / ``period``) need
        nothing here: their live views are read from the models' state at scrape time
        (:meth:`model_views`), which survives a restart, where anything accumulated here would
        not."""
        if kind != "session" or record.get("replied_within_24h") is None:
            return
        if record.get("excluded"):
            return
        shop = record["shop_id"]
        rolling = self.rolling.get(shop)
        if rolling is None:
            rolling = self.rolling[shop] = RollingRate()
        rolling.observe(record["session_id"], parse_time(record["opened_at"]) if opened_at is None else opened_at,
                        record["replied_within_24h"])

    def advance(self, shop_ids: Iterable[str], watermark: int | None) -> None:
        """Let the rolling rates of ``shop_ids`` (one partition's shops) forget what ``watermark``
        (that partition's) has left behind for good: called at every checkpoint, so the rates
        stay bounded by one window even when nothing scrapes (see :meth:`RollingRate.advance`)."""
        if watermark is None:
            return
        rolling = self.rolling
        for shop_id in shop_ids:
            r = rolling.get(shop_id)
            if r is not None:
                r.advance(watermark)

    def drop(self, shop_ids: Iterable[str]) -> None:
        """Forget the rolling rates of shops whose partition this worker no longer owns (their
        new owner builds its own from their records); otherwise they stayed until the process ended."""
        for shop_id in shop_ids:
            self.rolling.pop(shop_id, None)

    def views(self) -> list[tuple[ShopView, list[OpenSession], int]]:
        """(view, open at-risk sessions, watermark) of every owned shop, sorted by shop."""
        out = []
        for engine in self._engines():
            wm = engine.watermark
            if wm is None:
                continue
            policy = engine.policy
            open_by_shop: dict[str, list[OpenSession]] = {}
            for c in engine.convs.values():
                if c.opened_at is not None:
                    open_by_shop.setdefault(c.shop_id, []).append(OpenSession(
                        c.session_id, c.opened_at, c.wait_start, c.decided_at is not None, c.excluded))
            for shop_id, shop in engine.shops.items():
                try:
                    out.append(self._view(shop_id, shop, wm, policy, open_by_shop.get(shop_id, [])))
                except Exception as e:  # noqa: BLE001 - one shop must not break the endpoint
                    # A time the calendar cannot represent (a year-9999 watermark overflowed in
                    # week_bounds, issue #10 finding 5), or any other failure of one shop's
                    # projection: skip that shop, count it, log (rate-limited, streams/logs.py).
                    self.errors += 1
                    log.warning("shop view skipped: %s (watermark %s): %r", shop_id, wm, e)
        out.sort(key=lambda v: v[0].shop_id)
        return out

    def _engines(self) -> list:
        """The engines of the partitions owned now (all runtimes when ``owned`` is None)."""
        owned = None if self.owned is None else set(self.owned())
        return [rt.engine for p, rt in list(self.runtimes.items()) if owned is None or p in owned]

    def model_views(self) -> list[ModelView]:
        """R9.8 / R10.3 / R11.5.2-R11.6 views of every shop with ticket, wait or after-sales data in
        an owned partition, at that partition's watermark, sorted by model and shop (A.4). A shop
        whose view fails is skipped and counted, as in :meth:`views`."""
        out = []
        for engine in self._engines():
            wm = engine.watermark
            if wm is None:
                continue
            for kind in KINDS:
                model = engine.model(kind)
                if model is None:
                    continue
                for shop_id in model_shops(model):
                    try:
                        if kind == AFTERSALE:
                            out.append(ModelView(shop_id, kind, wm, aftersale_view(model, shop_id, wm)))
                            continue
                        body = model.view(shop_id, wm)
                        if kind == WAITS:
                            body.update(wait_to_date(model, shop_id, wm, engine.config.default_timezone))
                        out.append(ModelView(shop_id, kind, wm, body))
                    except Exception as e:  # noqa: BLE001 - one shop must not break the endpoint
                        self.errors += 1
                        log.warning("%s view skipped: %s (watermark %s): %r", kind, shop_id, wm, e)
        out.sort(key=lambda v: (v.kind, v.shop_id))
        return out

    def _view(self, shop_id: str, shop, wm: int, policy, sessions: list[OpenSession]) -> tuple[ShopView, list[OpenSession], int]:
        # Read-only: Shop.week_of would *create* the week when the watermark has just entered it,
        # and the engine schedules a week's end (its assessment, R5.6) only when it creates the
        # week itself, so a scrape between a week's first tick and its first event used to make
        # that week's assessment never come out.
        _, _, label = week_bounds(wm, shop.tz, policy.week_starts_on)
        week = shop.weeks.get(label)
        counters = (0, 0, 0, 0) if week is None else (week.sessions, week.replied, week.pending, week.buyer_messages)
        rolling = self.rolling.get(shop_id)
        rolling_rate = rolling.rate(wm) if rolling is not None else None
        projection = project_week(label, *counters, policy, rolling_rate)
        risky = at_risk(sessions, wm, policy.reply_window, self.at_risk_threshold)
        # formatted here once, so that a time that cannot be formatted fails here, for this shop
        format_opt(wm)
        for s in risky:
            format_opt(s.opened_at + policy.reply_window)
        view = ShopView(shop_id, rolling_rate, projection, len(risky), longest_wait(sessions, wm),
                        self._ended_week(shop_id, shop, policy))
        return view, risky, wm

    @staticmethod
    def _ended_week(shop_id: str, shop, policy) -> EndedWeek | None:
        """The latest week whose end the engine has processed (``status`` set, R5.6), judged by
        the very function that writes the assessment record, so this equals the last record of
        that week on ``chatsla.assessments``. Weeks are kept for ``week_retention`` after their
        end (core/engine.py), so the week just judged is always still there."""
        ended = [w for w in shop.weeks.values() if w.status is not None]
        if not ended:
            return None
        w = max(ended, key=lambda w: w.week_start)
        a = assessment_record(week_raw(shop_id, w), policy)
        return EndedWeek(a["week_start"], a["status"], a["outcome"], a["rate"])

    def shop_json(self, shop_id: str) -> dict | None:
        """``GET /shops/{id}``: the chat projection (R8) when the shop has chat sessions, and per
        other model the shop has data in its view under ``tickets`` (R9.8), ``waits`` (R10.3:
        rows by ``waiting`` longest first, then ``conversation_id``; plus the day and week to
        date) or ``aftersale`` (R11.5.2 day and week to date per request type, R11.6 month and
        review timeliness, ``chatsla.projections.aftersale``). None when no owned partition has
        the shop."""
        body = self._chat_json(shop_id)
        for v in self.model_views():
            if v.shop_id == shop_id:
                if body is None:
                    body = {"shop_id": shop_id, "watermark": format_opt(v.watermark)}
                body[{TICKETS: "tickets", WAITS: "waits", AFTERSALE: "aftersale"}[v.kind]] = v.body
        return body

    def _chat_json(self, shop_id: str) -> dict | None:
        reply_window = next(iter(self.runtimes.values())).engine.policy.reply_window if self.runtimes else 0
        for view, risky, wm in self.views():
            if view.shop_id == shop_id:
                w = view.week
                return {
                    "shop_id": shop_id,
                    "watermark": format_opt(wm),
                    "rolling_reply_rate_7d": view.rolling_rate,
                    "last_week": None if view.last_week is None else {
                        k: getattr(view.last_week, k) for k in view.last_week.__dataclass_fields__  # type: ignore[attr-defined]
                    },
                    "week": None if w is None else {
                        k: getattr(w, k) for k in w.__dataclass_fields__  # type: ignore[attr-defined]
                    },
                    "sessions_at_risk": [
                        {"session_id": s.session_id, "opened_at": format_opt(s.opened_at),
                         "deadline": format_opt(s.opened_at + reply_window)} for s in risky],
                    "longest_buyer_wait_seconds": view.longest_wait_us / SECOND,
                }
        return None


class ShopCollector:
    """Builds the per-shop and fleet series at scrape time (prometheus_client custom collector)."""

    def __init__(self, views: ShopViews, mode: str) -> None:
        select_shops([], mode)  # validates the mode now, in one line
        self.views = views
        self.mode = mode

    def collect(self) -> Iterable:
        triples = self.views.views()
        views = [v for v, _, _ in triples]
        summary = fleet_summary(views)
        shops = GaugeMetricFamily("chatsla_shops", "Shops by projected outcome of their current week (R5.5, R8).",
                                  labels=["risk"])
        for risk, n in sorted(summary.shops_by_outcome.items()):
            shops.add_metric([risk], n)
        yield shops
        # A snapshot: shops move between buckets as their rolling ratio changes, so a bucket goes
        # down as well as up. A counter histogram must never go down (rate() and increase() read
        # a drop as a reset); OpenMetrics' gauge histogram is the type for "how many now"
        # (samples _bucket, _gcount, _gsum).
        hist = GaugeHistogramMetricFamily(
            "chatsla_fleet_rolling_7d_reply_ratio",
            "Shops by their rolling 7-day 24 h reply ratio now (R8): shops with a ratio at or below each bound.",
            buckets=[("+Inf" if b == float("inf") else str(b), c) for b, c in summary.rate_buckets],
            gsum_value=summary.rate_sum)
        yield hist
        total = GaugeMetricFamily("chatsla_sessions_at_risk", "Pending sessions with under 2 h left (R8).")
        total.add_metric([], summary.at_risk_total)
        yield total
        errors = CounterMetricFamily("chatsla_view_errors", "Shop views skipped by /metrics or /shops because "
                                     "their projection failed (issue #10 finding 5).")
        errors.add_metric([], self.views.errors)
        yield errors
        selected = select_shops(views, self.mode)
        fams = {
            "rolling": GaugeMetricFamily("chatsla_shop_rolling_7d_reply_ratio",
                                         "Share of the decided sessions opened in the last 7 x 24 h replied within 24 h (R8).",
                                         labels=["shop"]),
            "week_rate": GaugeMetricFamily("chatsla_shop_week_reply_ratio",
                                           "This week so far: replied / decided sessions (R8).", labels=["shop"]),
            "best": GaugeMetricFamily("chatsla_shop_week_reply_best_ratio",
                                      "This week's best case: every pending session answered in time.", labels=["shop"]),
            "worst": GaugeMetricFamily("chatsla_shop_week_reply_worst_ratio",
                                       "This week's worst case: no pending session answered in time.", labels=["shop"]),
            "projected": GaugeMetricFamily("chatsla_shop_week_projected_reply_ratio",
                                           "This week's projected reply ratio (R8).", labels=["shop"]),
            "risk": GaugeMetricFamily("chatsla_shop_penalty_risk", "0 ok or not assessed, 1 warning (<90 %), 2 violation (<85 %).", labels=["shop"]),
            "sessions": GaugeMetricFamily("chatsla_shop_sessions", "Week-to-date sessions by state.", labels=["shop", "state"]),
            "needed": GaugeMetricFamily("chatsla_shop_replies_needed", "Pending sessions still needing an in-time reply to reach 90 %.", labels=["shop"]),
            "at_risk": GaugeMetricFamily("chatsla_shop_sessions_at_risk", "Pending sessions with under 2 h left.", labels=["shop"]),
            "wait": GaugeMetricFamily("chatsla_shop_buyer_wait_seconds", "Longest current buyer wait.", labels=["shop"]),
            "messages": GaugeMetricFamily("chatsla_shop_buyer_messages", "Week-to-date buyer messages (R4, R5.4).", labels=["shop"]),
            "last_rate": GaugeMetricFamily("chatsla_shop_last_week_reply_ratio",
                                           "The latest ended week's assessed reply ratio: replied / sessions (R5.3).",
                                           labels=["shop"]),
            "last_info": GaugeMetricFamily("chatsla_shop_last_week_info",
                                           "Always 1: the latest ended week (its Monday, shop time), its assessment's "
                                           "status (provisional, final) and outcome (ok, warning, violation, "
                                           "not_assessed) (R5.5, R5.6).",
                                           labels=["shop", "week_start", "status", "outcome"]),
        }
        for v in selected:
            s, w = [v.shop_id], v.week
            if v.rolling_rate is not None:
                fams["rolling"].add_metric(s, v.rolling_rate)
            fams["at_risk"].add_metric(s, v.at_risk)
            fams["wait"].add_metric(s, v.longest_wait_us / SECOND)
            ended = v.last_week
            if ended is not None:
                fams["last_info"].add_metric([v.shop_id, ended.week_start, ended.status, ended.outcome], 1)
                if ended.rate is not None:
                    fams["last_rate"].add_metric(s, ended.rate)
            if w is None:
                continue
            for key, value in (("week_rate", w.rate_now), ("best", w.best_case), ("worst", w.worst_case),
                               ("projected", w.projected_rate)):
                if value is not None:
                    fams[key].add_metric(s, value)
            fams["risk"].add_metric(s, w.penalty_risk)
            fams["needed"].add_metric(s, w.replies_needed_for_90)
            fams["messages"].add_metric(s, w.buyer_messages)
            for state, n in (("decided", w.decided), ("replied", w.replied), ("pending", w.pending)):
                fams["sessions"].add_metric([v.shop_id, state], n)
        yield from fams.values()
        yield from model_families(select_model_views(self.views.model_views(), self.mode))


def model_families(views: Iterable[ModelView]) -> list[GaugeMetricFamily]:
    """The per-shop ticket (R9.8), wait (R10.3) and after-sales (R11.5.2, R11.6) series of
    ``views`` (docs/dashboards.md).

    Every family is yielded even when empty, so ``/metrics`` always lists its HELP and TYPE. A
    value that is None (no rate without tickets, no percentile without answered waits) is left
    out rather than exported as 0; a shop with no unreplied conversation waits 0 s."""
    f = {
        "open": GaugeMetricFamily("chatsla_shop_tickets_open", "Open (unhandled, not closed) Douyin tickets by "
                                  "priority (R9.8).", labels=["shop", "priority"]),
        "at_risk": GaugeMetricFamily("chatsla_shop_tickets_at_risk", "Pending tickets with less than ticket_at_risk "
                                     "(1 h) of service time left before due_at (R9.8).", labels=["shop"]),
        "overdue": GaugeMetricFamily("chatsla_shop_tickets_overdue", "Tickets past due_at and still unhandled, by "
                                     "priority: the merchant must still handle them (R9.8).",
                                     labels=["shop", "priority"]),
        "tickets": GaugeMetricFamily("chatsla_shop_tickets", "Tickets of the day / week to date (shop time) by "
                                     "state: total, handled_in_time, missed, handled_late, pending, excluded "
                                     "(R9.6.2, R9.8).", labels=["shop", "period", "state"]),
        "rate": GaugeMetricFamily("chatsla_shop_tickets_in_time_ratio", "Day / week to date: tickets handled in time "
                                  "/ tickets (R9.6.2).", labels=["shop", "period"]),
        "unreplied": GaugeMetricFamily("chatsla_shop_unreplied_conversations", "AliExpress conversations with an "
                                       "open buyer wait (R10.3.1).", labels=["shop"]),
        "longest": GaugeMetricFamily("chatsla_shop_longest_wait_seconds", "Longest current buyer wait, measured "
                                     "from the last buyer message or from the first unanswered one (R10.3.3); "
                                     "0 when nothing is unreplied.", labels=["shop", "measured_from"]),
        "waits": GaugeMetricFamily("chatsla_shop_waits", "Waits of the day / week to date (shop time) by state: "
                                   "answered, closed_unanswered, opened (R10.5.2).", labels=["shop", "period", "state"]),
        "waited": GaugeMetricFamily("chatsla_shop_waited_seconds", "Day / week to date: nearest-rank percentiles "
                                    "of the answered waits' waiting time (quantile 1 is the longest), by measure "
                                    "(R10.5.2, R10.5.3).", labels=["shop", "period", "measured_from", "quantile"]),
        **_aftersale_families(),
    }
    for v in views:
        s, b = v.shop_id, v.body
        if v.kind == AFTERSALE:
            _aftersale_samples(f, s, b)
            continue
        if v.kind == TICKETS:
            overdue = {p: 0 for p in PRIORITIES}
            for row in b["overdue"]:
                overdue[row["priority"]] += 1
            for prio in PRIORITIES:
                f["open"].add_metric([s, prio], b["open"][prio])
                f["overdue"].add_metric([s, prio], overdue[prio])
            f["at_risk"].add_metric([s], len(b["at_risk"]))
            for period in PERIODS:
                rec = b[period]
                for state, key in TICKET_STATES:
                    f["tickets"].add_metric([s, period, state], rec[key])
                if rec["rate"] is not None:
                    f["rate"].add_metric([s, period], rec["rate"])
            continue
        f["unreplied"].add_metric([s], b["unreplied"])
        for measure, _, view_key in MEASURES:
            f["longest"].add_metric([s, measure], b["longest_" + view_key] or 0)
        for period in PERIODS:
            rec = b[period]
            for state in WAIT_STATES:
                f["waits"].add_metric([s, period, state], 0 if rec is None else rec[state])
            if rec is None:
                continue
            percentiles = [k[len("waited_p"):] for k in rec if k.startswith("waited_p")]
            for measure, rec_key, _ in MEASURES:
                # the max is quantile 1 (a policy percentile of 100 is the same nearest-rank value)
                quantiles = {quantile_label(_number(p)): rec[f"{rec_key}_p{p}"] for p in percentiles}
                quantiles[quantile_label(100)] = rec[f"{rec_key}_max"]
                for q, value in quantiles.items():
                    if value is not None:
                        f["waited"].add_metric([s, period, measure, q], value)
    return list(f.values())


_POLICY = ["policy_id", "policy_version"]  # R7: every after-sales series names its policy


def _aftersale_families() -> dict[str, GaugeMetricFamily]:
    """The after-sales families (issue #14), keyed ``as_*`` in :func:`model_families`."""
    period = ["shop", "period"]
    group = ["shop", "group", *_POLICY]
    return {
        "as_requests": GaugeMetricFamily(
            "chatsla_shop_aftersale_requests", "After-sales requests of the day / week to date (shop time) by "
            "request type (cancel, refund_only, return_refund, exchange, all) and state: total, auto_approved, "
            "manual_review (the shadow decision), agree, disagree (with the observed review) (R11.5.2).",
            labels=[*period, "request_type", "state", *_POLICY]),
        "as_rate": GaugeMetricFamily(
            "chatsla_shop_aftersale_auto_approval_ratio", "Day / week to date: requests the rule set would "
            "auto-approve / requests, by request type (R11.5.2).", labels=[*period, "request_type", *_POLICY]),
        "as_amount": GaugeMetricFamily(
            "chatsla_shop_aftersale_approved_amount", "Day / week to date: the amount the rule set would "
            "auto-approve, per currency (exact decimals in /shops and the records; a float here) (R11.5.2).",
            labels=[*period, "request_type", "currency", *_POLICY]),
        "as_reasons": GaugeMetricFamily(
            "chatsla_shop_aftersale_manual_reviews", "Day / week to date: requests sent to manual review, by "
            "reason (rule reasons, limits, platform:outside_return_window, no_rule_matched...) (R11.3, R11.5.2).",
            labels=[*period, "reason", *_POLICY]),
        "as_signals": GaugeMetricFamily(
            "chatsla_shop_aftersale_signals", "Day / week to date: requests flagged with an abuse signal "
            "(repeat_buyer, repeat_sku, near_threshold) (R11.4, R11.5.2).", labels=[*period, "signal", *_POLICY]),
        "as_reviews": GaugeMetricFamily(
            "chatsla_shop_aftersale_reviews", "This month (shop time), requests awaiting the seller's review by "
            "group (cancellation, return_refund) and state: awaiting_seller (all of them), reviewed_in_time, "
            "missed, pending (not decided yet) (R11.6).", labels=[*group[:2], "state", *_POLICY]),
        "as_review_rate": GaugeMetricFamily(
            "chatsla_shop_aftersale_review_ratio", "This month: reviewed in time / decided (in time or missed), "
            "where review timeliness is heading (R11.6; docs/dashboards.md).", labels=group),
        "as_review_best": GaugeMetricFamily(
            "chatsla_shop_aftersale_review_best_ratio", "This month's best case: every pending request reviewed "
            "in time, (in time + pending) / awaiting_seller (R11.6).", labels=group),
        "as_review_worst": GaugeMetricFamily(
            "chatsla_shop_aftersale_review_worst_ratio", "This month's worst case: no pending request reviewed in "
            "time, in time / awaiting_seller, the month record's review_rate now (R11.6.3).", labels=group),
        "as_review_risk": GaugeMetricFamily(
            "chatsla_shop_aftersale_review_risk", "0 ok or not assessed, 1 heading under review_rate_below (90 %) "
            "but the pending requests can still bring it back, 2 under even if every pending request is "
            "reviewed in time (R11.6.3: TikTok may switch its Auto-Approval Tool on).", labels=group),
        "as_needed": GaugeMetricFamily(
            "chatsla_shop_aftersale_reviews_needed", "In-time reviews still needed this month to reach "
            "review_rate_below (90 %) if no other request comes (R11.6).", labels=group),
    }


def _aftersale_samples(f: dict[str, GaugeMetricFamily], s: str, b: dict) -> None:
    """One after-sales shop's samples (``b``: :func:`chatsla.projections.aftersale.aftersale_view`)."""
    pol = [b["policy_id"], b["policy_version"]]
    for period in PERIODS:
        for row in ROWS:
            rec = b[period][row]
            for state, key in REQUEST_STATES:
                f["as_requests"].add_metric([s, period, row, state, *pol], rec[key])
            if rec["auto_approval_rate"] is not None:
                f["as_rate"].add_metric([s, period, row, *pol], rec["auto_approval_rate"])
            for currency, amount in rec["auto_approved_amount"].items():
                f["as_amount"].add_metric([s, period, row, currency, *pol], float(amount))
        rec = b[period]["all"]
        for reason, n in rec["manual_reasons"].items():
            f["as_reasons"].add_metric([s, period, reason, *pol], n)
        for signal in SIGNALS:
            f["as_signals"].add_metric([s, period, signal, *pol], rec["signals"].get(signal, 0))
    for g in GROUPS:
        p = b["review_timeliness"][g]
        for state in REVIEW_STATES:
            f["as_reviews"].add_metric([s, g, state, *pol], p[state])
        for key, fam in (("rate_now", "as_review_rate"), ("best_case", "as_review_best"),
                         ("worst_case", "as_review_worst")):
            if p[key] is not None:
                f[fam].add_metric([s, g, *pol], p[key])
        f["as_review_risk"].add_metric([s, g, *pol], p["risk"])
        f["as_needed"].add_metric([s, g, *pol], p["reviews_needed"])


def _number(text: str) -> int | float:
    """A percentile as the record key spells it ("50", "99.9")."""
    return int(text) if text.isdigit() else float(text)


class WorkerMetrics:
    """The worker's registry: process-level counters plus the scrape-time shop collector."""

    def __init__(self, views: ShopViews, shop_mode: str, policy_id: str, policy_version: str) -> None:
        from chatsla import __version__

        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter("chatsla_events_total", "Input events by outcome (R8).", ["outcome"], registry=r)
        # Per process: it starts at 0 with every worker process (Prometheus' increase() and rate()
        # handle the reset). At-least-once delivery sends a few bad records to a DLQ again after a
        # crash, so neither this nor the topic's size is an exact count of bad inputs; the topic
        # size (below) is what survives restarts.
        self.dlq = Counter("chatsla_dlq_records", "Records this process sent to a dead-letter topic (R1).",
                           ["topic"], registry=r)
        self.dlq_topic = Gauge("chatsla_dlq_topic_records",
                               "Records in a dead-letter topic (sum of its end offsets), whatever process wrote them.",
                               ["topic"], registry=r)
        self.poison = Counter("chatsla_poison_records", "Undecodable chatsla.events records sent to its DLQ, by reason "
                              "(issue #10 finding 2).", ["reason"], registry=r)
        self.rejected_ticks = Counter("chatsla_rejected_ticks", "Ticks ignored for being more than --max-future "
                                      "ahead of this worker's wall clock.", registry=r)
        self.rewinds = Counter("chatsla_events_rewinds", "Times a chatsla.events partition was read again because "
                               "the consumer skipped records (issue #15).", registry=r)
        self.opened = Counter("chatsla_sessions_opened", "Sessions opened (R2.1).", registry=r)
        self.closed = Counter("chatsla_sessions_closed", "Sessions closed by reason (R2.4).", ["reason"], registry=r)
        self.watermark = Gauge("chatsla_watermark_timestamp_seconds", "Event-time watermark (R6.2).", ["partition"], registry=r)
        self.watermark_lag = Gauge("chatsla_watermark_lag_seconds", "Wall clock minus watermark.", ["partition"], registry=r)
        self.latency = Histogram("chatsla_processing_latency_seconds", "Kafka record timestamp to processed.",
                                 buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300), registry=r)
        self.consumer_lag = Gauge("chatsla_consumer_lag_records", "Records behind the end of the partition.",
                                  ["topic", "partition"], registry=r)
        self.owned = Gauge("chatsla_owned_partitions", "chatsla.events partitions this worker owns.", registry=r)
        # What a partition holds in memory, at its last checkpoint: state follows what is live
        # (open sessions, weeks still taking late events, ids in the dedupe window), not history;
        # this is the number to watch when sizing workers (issue #15, the backfill soak).
        self.conversations = Gauge("chatsla_state_conversations",
                                   "Conversations a partition holds in memory, at its last checkpoint.",
                                   ["partition"], registry=r)
        info = Gauge("chatsla_info", "Build and policy in force (R7).", ["version", "policy_id", "policy_version"], registry=r)
        info.labels(__version__, policy_id, policy_version).set(1)
        for outcome in ("valid", "duplicate", "late", "invalid"):
            self.events.labels(outcome)
        for reason in CLOSE_REASONS:
            self.closed.labels(reason)
        self._last: dict[int, PyCounter] = {}
        self._lag_keys: set[tuple[str, int]] = set()
        r.register(ShopCollector(views, shop_mode))
        # The standard collectors every Prometheus user expects of a Python process: CPU, memory,
        # open files, start time (process_*), the Python version (python_info), GC (python_gc_*).
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self._asgi = make_asgi_app(r)

    async def serve(self, method: str, headers: Iterable[tuple[str, str]], query_string: str) -> tuple[int, list[tuple[str, str]], bytes]:
        """``/metrics`` through prometheus_client's own ASGI handler: (status, headers, body).

        The handler does the content negotiation (OpenMetrics 1.0 when the ``Accept`` header asks
        for it, as Prometheus does; the 0.0.4 text format otherwise), gzip when
        ``Accept-Encoding`` allows it, and ``?name[]=`` filtering, so the worker answers exactly
        like every other Python exporter. Only GET and HEAD reach it (HEAD: same headers, no body).
        """
        scope = {"type": "http", "method": "GET", "path": "/metrics", "query_string": query_string.encode("latin-1"),
                 "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]}
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await self._asgi(scope, receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        out_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]]
        return start["status"], out_headers, b"" if method == "HEAD" else body

    def account(self, partition: int, stats: PyCounter) -> None:
        """Add what a partition's engine counted since the last call (counters stay monotonic)."""
        last = self._last.get(partition)
        self._last[partition] = stats
        if last is None:
            return
        for outcome in ("valid", "duplicate", "late"):
            if stats[outcome] > last[outcome]:
                self.events.labels(outcome).inc(stats[outcome] - last[outcome])
        if stats["sessions_opened"] > last["sessions_opened"]:
            self.opened.inc(stats["sessions_opened"] - last["sessions_opened"])
        for reason in CLOSE_REASONS:
            k = "closed:" + reason
            if stats[k] > last[k]:
                self.closed.labels(reason).inc(stats[k] - last[k])

    def lag_now(self, lags: dict[tuple[str, int], int]) -> None:
        """Set the consumer lag of the partitions read now and drop the series of the others, so
        a moved partition's lag is exported by its new owner only."""
        for topic, partition in self._lag_keys - lags.keys():
            try:
                self.consumer_lag.remove(topic, str(partition))
            except KeyError:
                pass
        for (topic, partition), lag in lags.items():
            self.consumer_lag.labels(topic, str(partition)).set(lag)
        self._lag_keys = set(lags)

    def forget(self, partition: int) -> None:
        self._last.pop(partition, None)
        for gauge in (self.watermark, self.watermark_lag, self.conversations):
            try:
                gauge.remove(str(partition))
            except KeyError:
                pass

    def watermark_now(self, partition: int, watermark_us: int | None) -> None:
        if watermark_us is None:
            return
        self.watermark.labels(str(partition)).set(watermark_us / SECOND)
        self.watermark_lag.labels(str(partition)).set((wall_clock_us() - watermark_us) / SECOND)
