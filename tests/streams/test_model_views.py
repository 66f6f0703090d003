"""The worker's live views of Douyin tickets, AliExpress waits and TikTok Shop after-sales
(streams/metrics.py, projections/models.py, projections/aftersale.py) from a real Engine hosting
the four models (issue #12, "Live projections and metrics"; RULES A.4: R9.8 for tickets, R10.3
for waits; issue #14: R11.5.2 and R11.6 for after-sales).

The engine is the core one (``Engine(chat_policy, policies=[...])``), fed events and advanced as a
partition is; the views are read exactly as a worker reads them, at scrape time, through
``ShopViews`` over the partition's engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from chatsla.core.engine import Engine, EngineConfig
from chatsla.core.events import AftersaleRequest, ChatMessage, ShopEvent, TicketEvent
from chatsla.core.policy import load_policy
from chatsla.core.timefmt import SECOND, parse_time
from chatsla.streams.metrics import ShopViews, WorkerMetrics
from tests.promql import CONTRACT

CHAT, TICKETS, WAITS = load_policy(), load_policy("douyin_ticket@seed001"), load_policy("aliexpress@seed004")
AFTERSALE = load_policy("tiktok_aftersale@2026-01")
LATENESS = EngineConfig().allowed_lateness
WM = "2026-11-02T05:00:00Z"  # Monday 13:00 in Asia/Shanghai (the Douyin shop's zone), 05:00 UTC (AliExpress)


@dataclass
class Partition:
    """What ShopViews reads of a partition runtime: its engine."""

    engine: Engine


def z(s: str) -> int:
    return parse_time(f"2026-11-02T{s}:00Z")


def ticket(eid: str, tid: str, typ: str, t: str, priority: str | None = None, shop: str = "D1") -> TicketEvent:
    if typ == "handled":
        return TicketEvent(eid, shop, tid, typ, z(t), result="resolved")
    return TicketEvent(eid, shop, tid, typ, z(t), priority)


def chat(eid: str, conv: str, sender: str, t: str, shop: str = "A1") -> ChatMessage:
    return ChatMessage(eid, shop, conv, sender, z(t), platform="aliexpress")


# Douyin shop D1 (Asia/Shanghai; times below in UTC, +8 h locally), R9.2 deadlines:
# t1 urgent created 10:00 local, due 12:00, unhandled -> overdue at 13:00 (R9.8 third bullet);
# t2 urgent created 11:30, due 13:30 -> 30 min of service time left, at risk (under 1 h);
# t3 normal created 10:00, due Tuesday 10:00 -> open, not at risk; t4 normal handled in time.
TICKET_EVENTS = [
    ticket("t1c", "t1", "created", "02:00", "urgent"), ticket("t3c", "t3", "created", "02:00", "normal"),
    ticket("t4c", "t4", "created", "02:00", "normal"), ticket("t4h", "t4", "handled", "02:30"),
    ticket("t2c", "t2", "created", "03:30", "urgent"),
]
# AliExpress shop A1 (UTC): d1 / d2 answered after 30 min / 90 min; z9 waits since 01:00 (an
# auto-reply does not end it, R10.2.4); c1 since 02:00 with a follow-up at 03:00; a0 since 03:00,
# as long as c1 by `waiting` (from the last buyer message), so the conversation id breaks the tie.
WAIT_EVENTS = [
    chat("e1", "d1", "buyer", "00:00"), chat("e2", "d2", "buyer", "00:00"), chat("e3", "d1", "seller", "00:30"),
    chat("e4", "z9", "buyer", "01:00"), chat("e5", "z9", "auto_reply", "01:00"), chat("e6", "d2", "seller", "01:30"),
    chat("e7", "c1", "buyer", "02:00"), chat("e8", "c1", "buyer", "03:00"), chat("e9", "a0", "buyer", "03:00"),
]


def aftersale(eid: str, rid: str, typ: str, at: str, shop: str = "S9", **kw) -> AftersaleRequest:
    """An aftersale.request/v1 event at ``at`` (UTC, RULES R11.1)."""
    return AftersaleRequest(eid, shop, rid, typ, parse_time(at), **kw)


def as_req(rid: str, at: str, rtype: str, reason: str, category: str, amount: str, shop: str = "S9",
           **kw) -> AftersaleRequest:
    return aftersale(f"{rid}-q", rid, "requested", at, shop, request_type=rtype, reason=reason, category=category,
                     amount=amount, currency="USD", **kw)


def as_rev(rid: str, at: str, by: str, decision: str, shop: str = "S9") -> AftersaleRequest:
    return aftersale(f"{rid}-r", rid, "reviewed", at, shop, by=by, decision=decision)


AS_WM = "2026-11-04T10:02:30Z"  # Wednesday: r2 (due 09:05) missed, r5 (due 10:05) still pending
# R11.8's shop S9 (UTC) and its rule set; r1-r5 of Monday 2026-11-02 (R11.8 table), each awaiting
# the seller for 48 h (R11.6.1). Reviews: r1 by the seller's rule (approved: agrees with the shadow
# approve), r3 by the seller (in time; agrees with the shadow manual review), r4 by the seller's
# rule (approved: disagrees with the shadow manual review), r2 never (missed at Wednesday 09:05),
# r5 not yet (due Wednesday 10:05). S8: one cancel reviewed in time, nothing at risk.
AFTERSALE_EVENTS = [
    ShopEvent("rs1", "S9", "aftersale_rules", parse_time("2026-11-01T00:00:00Z"), rules="shop-S9-aftersale@2026-01-22"),
    as_req("r1", "2026-11-02T09:00:00Z", "cancel", "address_error", "home", "49.99", shipped=False),
    as_req("r2", "2026-11-02T09:05:00Z", "cancel", "address_error", "home", "50.00", shipped=False),
    as_req("r3", "2026-11-02T09:10:00Z", "cancel", "address_error", "home", "50.01", shipped=False),
    as_req("r4", "2026-11-02T10:00:00Z", "return_refund", "damaged", "electronics", "30.00", buyer_credit=59),
    as_req("r5", "2026-11-02T10:05:00Z", "return_refund", "damaged", "electronics", "30.00", buyer_credit=60),
    as_rev("r1", "2026-11-02T09:00:10Z", "seller_rule", "approved"),
    as_rev("r3", "2026-11-02T12:00:00Z", "seller", "rejected"),
    as_rev("r4", "2026-11-03T10:00:00Z", "seller_rule", "approved"),
    ShopEvent("rs8", "S8", "aftersale_rules", parse_time("2026-11-01T00:00:00Z"), rules="shop-S9-aftersale@2026-01-22"),
    as_req("c1", "2026-11-03T08:00:00Z", "cancel", "changed_mind", "home", "10.00", shop="S8", shipped=False),
    as_rev("c1", "2026-11-03T09:00:00Z", "seller_rule", "approved", shop="S8"),
]


def walk(e: Engine, until: int) -> None:
    """Advance the engine so its watermark is ``until`` (R6.2), in half-hour ticks as a live
    worker's clock moves (a larger step waits for confirmation: time sanity, max_future)."""
    target = until + LATENESS
    t = e.max_seen if e.max_seen is not None else target
    while t < target:
        t = min(t + 30 * 60 * SECOND, target)
        e.advance(t)
    assert e.watermark == until


def engine(events: list, until: str = WM) -> Engine:
    e = Engine(CHAT, policies=[TICKETS, WAITS, AFTERSALE])
    for ev in sorted(events, key=lambda ev: ev.t):
        e.apply(ev)
    walk(e, parse_time(until))
    return e


def samples(metrics: WorkerMetrics, name: str) -> dict[tuple, float]:
    """``{sorted label items without shop-less noise: value}`` of one metric family."""
    text = generate_latest(metrics.registry).decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_r9_8_ticket_view_and_series() -> None:
    """R9.8: open tickets by priority, at risk (remaining service time under 1 h), overdue and
    unhandled, and the day- and week-to-date counts and rate, in /shops and on /metrics."""
    views = ShopViews({0: Partition(engine(TICKET_EVENTS))})
    body = views.shop_json("D1")
    assert body is not None and set(body) == {"shop_id", "watermark", "tickets"}
    t = body["tickets"]
    assert t["open"] == {"normal": 1, "urgent": 2, "agreed": 0}
    assert t["at_risk"] == [{"ticket_id": "t2", "priority": "urgent", "due_at": "2026-11-02T05:30:00Z",
                             "remaining": 30 * 60}]
    assert t["overdue"] == [{"ticket_id": "t1", "priority": "urgent", "due_at": "2026-11-02T04:00:00Z",
                             "overdue_for": 3600}]
    day = t["day"]
    assert (day["start"], day["tickets"], day["handled_in_time"], day["missed"], day["pending"], day["rate"]) == (
        "2026-11-02", 4, 1, 1, 2, 0.25)
    metrics = WorkerMetrics(views, "all", CHAT.id, CHAT.version)
    assert samples(metrics, "chatsla_shop_tickets_open") == {
        (("priority", p), ("shop", "D1")): n for p, n in (("normal", 1), ("urgent", 2), ("agreed", 0))}
    assert samples(metrics, "chatsla_shop_tickets_overdue") == {
        (("priority", p), ("shop", "D1")): n for p, n in (("normal", 0), ("urgent", 1), ("agreed", 0))}
    assert samples(metrics, "chatsla_shop_tickets_at_risk") == {(("shop", "D1"),): 1}
    tickets = samples(metrics, "chatsla_shop_tickets")
    assert {k: v for k, v in tickets.items() if ("period", "day") in k} == {
        (("period", "day"), ("shop", "D1"), ("state", s)): n
        for s, n in (("total", 4), ("handled_in_time", 1), ("missed", 1), ("handled_late", 0), ("pending", 2),
                     ("excluded", 0))}
    assert samples(metrics, "chatsla_shop_tickets_in_time_ratio") == {
        (("period", "day"), ("shop", "D1")): 0.25, (("period", "week"), ("shop", "D1")): 0.25}
    assert not samples(metrics, "chatsla_shop_unreplied_conversations")  # no AliExpress shop here


def test_r10_3_unreplied_view_order_counts_and_series() -> None:
    """R10.3.2: one row per unreplied conversation, `waiting` longest first, ties by
    conversation_id (a0 before c1 although c1 opened first); R10.3.3: the count and the longest
    of both measures; the day to date (R10.5.2 on the waits so far)."""
    views = ShopViews({0: Partition(engine(WAIT_EVENTS))})
    w = views.shop_json("A1")["waits"]
    assert [(r["conversation_id"], r["waiting"], r["waiting_from_first"], r["auto_replied"])
            for r in w["conversations"]] == [("z9", 4 * 3600, 4 * 3600, True), ("a0", 2 * 3600, 2 * 3600, False),
                                             ("c1", 2 * 3600, 3 * 3600, False)]
    assert (w["unreplied"], w["longest_waiting"], w["longest_waiting_from_first"]) == (3, 4 * 3600, 4 * 3600)
    day = w["day"]
    assert (day["answered"], day["waited_p50"], day["waited_p90"], day["waited_max"], day["opened"]) == (
        2, 1800, 5400, 5400, 5)
    assert "open_at_end" not in day  # measured at a period's end only: the day has not ended
    metrics = WorkerMetrics(views, "all", CHAT.id, CHAT.version)
    assert samples(metrics, "chatsla_shop_unreplied_conversations") == {(("shop", "A1"),): 3}
    assert samples(metrics, "chatsla_shop_longest_wait_seconds") == {
        (("measured_from", "last_buyer_message"), ("shop", "A1")): 4 * 3600,
        (("measured_from", "first_unanswered"), ("shop", "A1")): 4 * 3600}
    waited = samples(metrics, "chatsla_shop_waited_seconds")
    assert {k[2][1]: v for k, v in waited.items() if ("period", "day") in k and ("measured_from", "last_buyer_message") in k} == {
        "0.5": 1800, "0.9": 5400, "0.99": 5400, "1.0": 5400}
    assert samples(metrics, "chatsla_shop_waits")[(("period", "day"), ("shop", "A1"), ("state", "answered"))] == 2


def test_r10_5_2_day_to_date_equals_the_days_record_at_its_end() -> None:
    """The day-to-date figures are the period record the model emits when the day ends (same
    function, same state), end-instant measures aside."""
    e = engine(WAIT_EVENTS)
    views = ShopViews({0: Partition(e)})
    live = views.shop_json("A1")["waits"]["day"]
    walk(e, parse_time("2026-11-03T00:00:00Z"))
    (emitted,) = [r for k, r in e.take() if k == "period" and r["period"] == "day" and r["shop_id"] == "A1"]
    assert live == {k: v for k, v in emitted.items() if k in live}
    assert set(emitted) - set(live) == {"open_at_end", "oldest_waiting_at_end", "oldest_waiting_from_first_at_end"}


def test_a4_a_shop_of_every_model_in_one_partition_and_ownership() -> None:
    """A.4: one engine hosts all three models; /shops gives each shop its model's view only, and
    a partition not owned now exports no ticket or wait series (R8, as the chat series)."""
    chat_msg = ChatMessage("x1", "T1", "k1", "buyer", z("04:00"))
    e = engine([*TICKET_EVENTS, *WAIT_EVENTS, chat_msg])
    owned = {0}
    views = ShopViews({0: Partition(e)}, owned=lambda: owned)
    assert "tickets" not in views.shop_json("T1") and "waits" not in views.shop_json("T1")
    assert "waits" not in views.shop_json("D1") and "tickets" not in views.shop_json("A1")
    metrics = WorkerMetrics(views, "all", CHAT.id, CHAT.version)
    assert samples(metrics, "chatsla_shop_tickets_open") and samples(metrics, "chatsla_shop_unreplied_conversations")
    owned.clear()
    assert views.shop_json("D1") is None and views.shop_json("A1") is None
    assert not samples(metrics, "chatsla_shop_tickets_open") and not samples(metrics, "chatsla_shop_waits")


def test_shop_selection_modes_apply_to_tickets_and_waits() -> None:
    """--shop-metrics: none exports no shop; at-risk only shops with tickets at risk or overdue,
    or an unreplied conversation; worst:1 the most urgent shop of each model."""
    calm = [ticket("q1c", "q1", "created", "02:00", "normal", shop="D2"), ticket("q1h", "q1", "handled", "02:10", shop="D2"),
            chat("f1", "k", "buyer", "01:00", shop="A2"), chat("f2", "k", "seller", "01:05", shop="A2")]
    e = engine([*TICKET_EVENTS, *WAIT_EVENTS, *calm])
    views = ShopViews({0: Partition(e)})

    def shops(mode: str) -> set[str]:
        m = WorkerMetrics(views, mode, CHAT.id, CHAT.version)
        return ({dict(k)["shop"] for k in samples(m, "chatsla_shop_tickets_open")}
                | {dict(k)["shop"] for k in samples(m, "chatsla_shop_unreplied_conversations")})

    assert shops("all") == {"D1", "D2", "A1", "A2"}
    assert shops("at-risk") == {"D1", "A1"}
    assert shops("worst:1") == {"D1", "A1"}
    assert shops("none") == set()


def test_a_scrape_changes_no_output() -> None:
    """R6.1: scraping (views, /shops, /metrics) between events leaves the engine's outputs byte
    for byte as without any scrape."""
    events = sorted([*TICKET_EVENTS, *WAIT_EVENTS, *AFTERSALE_EVENTS], key=lambda ev: ev.t)
    quiet, scraped = Engine(CHAT, policies=[TICKETS, WAITS, AFTERSALE]), Engine(CHAT, policies=[TICKETS, WAITS, AFTERSALE])
    views = ShopViews({0: Partition(scraped)})
    metrics = WorkerMetrics(views, "all", CHAT.id, CHAT.version)
    for ev in events:
        quiet.apply(ev)
        scraped.apply(ev)
        scraped.advance(ev.t)
        quiet.advance(ev.t)
        generate_latest(metrics.registry)
        views.shop_json("D1"), views.shop_json("A1"), views.shop_json("S9")
    for e in (quiet, scraped):
        walk(e, parse_time("2026-11-10T00:00:00Z"))
    assert quiet.take() == scraped.take()


def test_observe_ignores_ticket_wait_and_period_records() -> None:
    """The worker hands every output record to ShopViews.observe; only chat session records feed
    the rolling rate (the other views are read from the models' state)."""
    views = ShopViews({})
    e = engine([*TICKET_EVENTS, *WAIT_EVENTS], until="2026-11-03T01:00:00Z")
    records = e.take()
    assert {k for k, _ in records} >= {"ticket", "wait", "period"}
    for kind, record in records:
        views.observe(record, kind)
    assert views.rolling == {}


def test_issue12_every_new_series_is_in_the_contract() -> None:
    """The ticket, wait (issue #12) and after-sales (issue #14) series a worker exports are exactly
    the CONTRACT entries the dashboards and alerts are checked against (tests/promql.py), names
    and labels."""
    views = ShopViews({0: Partition(engine([*TICKET_EVENTS, *WAIT_EVENTS])),
                       1: Partition(engine(AFTERSALE_EVENTS, until=AS_WM))})
    metrics = WorkerMetrics(views, "all", CHAT.id, CHAT.version)
    prefixes = ("chatsla_shop_tickets", "chatsla_shop_unreplied", "chatsla_shop_longest_wait", "chatsla_shop_waits",
                "chatsla_shop_waited", "chatsla_shop_aftersale_")
    exported: dict[str, set[str]] = {}
    for fam in metrics.registry.collect():
        for s in fam.samples:
            if s.name.startswith(prefixes):
                exported.setdefault(s.name, set()).update(s.labels)
    new = {n: set(labels) for n, labels in CONTRACT.items() if n.startswith(prefixes)}
    assert len(new) == 9 + 11 and exported == new


def test_waiting_seconds_are_exact() -> None:
    """Waits are exported in seconds from exact µs (a 1 µs wait is 1e-06 s, not 0)."""
    e = Engine(CHAT, policies=[TICKETS, WAITS])
    e.apply(ChatMessage("b", "A9", "c", "buyer", z("04:00"), platform="aliexpress"))
    walk(e, z("04:00") + 1)  # watermark 1 µs after the buyer message
    metrics = WorkerMetrics(ShopViews({0: Partition(e)}), "all", CHAT.id, CHAT.version)
    assert samples(metrics, "chatsla_shop_longest_wait_seconds")[
        (("measured_from", "last_buyer_message"), ("shop", "A9"))] == 1 / SECOND


# --- TikTok Shop after-sales (issue #14; RULES R11.5.2, R11.6) -----------------------------------

def _as_samples(metrics: WorkerMetrics, name: str, shop: str = "S9") -> dict[tuple, float]:
    """One after-sales family of ``shop``, labels without shop and policy (checked separately)."""
    out = {}
    for labels, value in samples(metrics, name).items():
        d = dict(labels)
        if d.pop("shop") == shop:
            assert (d.pop("policy_id"), d.pop("policy_version")) == ("tiktok_aftersale", "2026-01")  # R7
            out[tuple(sorted(d.items()))] = value
    return out


def test_issue14_aftersale_view_in_shops_json() -> None:
    """GET /shops/S9: the week to date per request type (R11.8's Monday: 5 requests, 2 approved,
    exactly "99.99" USD, two near_threshold signals; agree 2 / disagree 1 against the observed
    reviews, R11.5.1), this month's review timeliness (R11.6) per group, and the request still
    awaiting its review."""
    views = ShopViews({0: Partition(engine(AFTERSALE_EVENTS, until=AS_WM))})
    body = views.shop_json("S9")
    # (the chat model keeps a shop for every shop event, so S9's aftersale_rules event gives it an
    # empty chat projection too, as a Douyin shop's timezone event does)
    assert body is not None and "aftersale" in body and "tickets" not in body and "waits" not in body
    assert body["week"] == {**body["week"], "sessions": 0}
    a = body["aftersale"]
    w = a["week"]["all"]
    assert (w["start"], w["requests"], w["auto_approved"], w["manual_review"], w["auto_approval_rate"]) == (
        "2026-11-02", 5, 2, 3, 0.4)
    assert (w["auto_approved_amount"], w["signals"], w["agree"], w["disagree"]) == (
        {"USD": "99.99"}, {"near_threshold": 2}, 2, 1)
    assert w["manual_reasons"] == {"evidence_required:unboxing_video": 1, "no_rule_matched": 2}
    assert a["day"]["all"]["requests"] == 0 and a["day"]["all"]["start"] == "2026-11-04"
    c, r = a["review_timeliness"]["cancellation"], a["review_timeliness"]["return_refund"]
    assert (c["awaiting_seller"], c["reviewed_in_time"], c["missed"], c["pending"]) == (3, 2, 1, 0)
    assert (c["rate_now"], c["projected_outcome"], c["risk"], c["reviews_needed"], c["reachable"]) == (
        2 / 3, "auto_approval_tool_risk", 2, 1, False)
    assert (r["awaiting_seller"], r["reviewed_in_time"], r["missed"], r["pending"], r["risk"]) == (2, 1, 0, 1, 0)
    assert (r["rate_now"], r["best_case"], r["worst_case"]) == (1.0, 1.0, 0.5)
    assert a["awaiting_review"] == [{"request_id": "r5", "request_type": "return_refund",
                                     "due_at": "2026-11-04T10:05:00Z"}]


def test_issue14_aftersale_series() -> None:
    """The same view on /metrics: counts per period, request type and state; ratios; the exact
    amount as a float only here; reasons and signals of the "all" row; the month's review counts,
    ratios, risk (2: even the best case is under 90 %) and reviews needed, each labelled with the
    policy (R7)."""
    metrics = WorkerMetrics(ShopViews({0: Partition(engine(AFTERSALE_EVENTS, until=AS_WM))}), "all", CHAT.id,
                            CHAT.version)
    req = _as_samples(metrics, "chatsla_shop_aftersale_requests")
    assert len(req) == 2 * 5 * 5
    week = {(d["request_type"], d["state"]): v for k, v in req.items() if (d := dict(k))["period"] == "week"}
    assert {k: v for k, v in week.items() if k[0] == "all"} == {
        ("all", "total"): 5, ("all", "auto_approved"): 2, ("all", "manual_review"): 3, ("all", "agree"): 2,
        ("all", "disagree"): 1}
    assert (week[("cancel", "total")], week[("cancel", "auto_approved")], week[("return_refund", "total")]) == (3, 2, 2)
    assert _as_samples(metrics, "chatsla_shop_aftersale_auto_approval_ratio") == {
        (("period", "week"), ("request_type", t)): v for t, v in (("all", 0.4), ("cancel", 2 / 3), ("return_refund", 0.0))}
    assert _as_samples(metrics, "chatsla_shop_aftersale_approved_amount") == {
        (("currency", "USD"), ("period", "week"), ("request_type", t)): 99.99 for t in ("all", "cancel")}
    assert _as_samples(metrics, "chatsla_shop_aftersale_manual_reviews") == {
        (("period", "week"), ("reason", "evidence_required:unboxing_video")): 1,
        (("period", "week"), ("reason", "no_rule_matched")): 2}
    assert _as_samples(metrics, "chatsla_shop_aftersale_signals") == {
        (("period", p), ("signal", s)): (2 if (p, s) == ("week", "near_threshold") else 0)
        for p in ("day", "week") for s in ("repeat_buyer", "repeat_sku", "near_threshold")}
    assert _as_samples(metrics, "chatsla_shop_aftersale_reviews") == {
        (("group", g), ("state", st)): v for g, counts in (("cancellation", (3, 2, 1, 0)), ("return_refund", (2, 1, 0, 1)))
        for st, v in zip(("awaiting_seller", "reviewed_in_time", "missed", "pending"), counts)}
    assert _as_samples(metrics, "chatsla_shop_aftersale_review_ratio") == {
        (("group", "cancellation"),): 2 / 3, (("group", "return_refund"),): 1.0}
    assert _as_samples(metrics, "chatsla_shop_aftersale_review_best_ratio")[(("group", "return_refund"),)] == 1.0
    assert _as_samples(metrics, "chatsla_shop_aftersale_review_worst_ratio")[(("group", "return_refund"),)] == 0.5
    assert _as_samples(metrics, "chatsla_shop_aftersale_review_risk") == {
        (("group", "cancellation"),): 2, (("group", "return_refund"),): 0}
    assert _as_samples(metrics, "chatsla_shop_aftersale_reviews_needed") == {
        (("group", "cancellation"),): 1, (("group", "return_refund"),): 1}  # ceil(0.9 x 2) - 1: r5 in time
    assert _as_samples(metrics, "chatsla_shop_aftersale_review_risk", shop="S8") == {
        (("group", "cancellation"),): 0, (("group", "return_refund"),): 0}


def test_issue14_shop_selection_modes_apply_to_aftersale() -> None:
    """--shop-metrics at-risk exports the after-sales shops whose review timeliness is heading
    under the threshold (S9), worst:1 the most urgent one, none nothing."""
    views = ShopViews({0: Partition(engine(AFTERSALE_EVENTS, until=AS_WM))})

    def shops(mode: str) -> set[str]:
        m = WorkerMetrics(views, mode, CHAT.id, CHAT.version)
        return {dict(k)["shop"] for k in samples(m, "chatsla_shop_aftersale_review_risk")}

    assert shops("all") == {"S8", "S9"}
    assert shops("at-risk") == {"S9"} and shops("worst:1") == {"S9"} and shops("none") == set()


def test_issue14_a_restored_engine_shows_the_same_aftersale_view() -> None:
    """The views are read from the model's state, never accumulated from records: an engine
    restored from its snapshot (a restarted worker) shows the same /shops view (R6.1)."""
    e = engine(AFTERSALE_EVENTS, until=AS_WM)
    restored = Engine.restore(CHAT, e.config, orjson.loads(orjson.dumps(e.snapshot())), policies=[TICKETS, WAITS, AFTERSALE])
    assert ShopViews({0: Partition(restored)}).shop_json("S9") == ShopViews({0: Partition(e)}).shop_json("S9")
