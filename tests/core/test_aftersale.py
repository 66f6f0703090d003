"""RULES R11 through the aftersale model (chatsla/core/models/aftersale.py), driven by
tests/core/modelhost.py (the real runner): every example of R11.8 with its exact records, the
review timeliness of R11.6, rule-set validation (R11.2), the decoder's reasons (R11.1), and the
issue #12/#14 properties (ordering within the lateness, duplicates, snapshot/restore)."""

from __future__ import annotations

import dataclasses
import random
from datetime import datetime, timezone

import orjson
import pytest

from chatsla.core.engine import EngineConfig
from chatsla.core.events import AftersaleRequest, ShopEvent
from chatsla.core.models.aftersale import Aftersale
from chatsla.core.policy import load_policy
from chatsla.core.rulesets import RuleSet, RuleSetError, load_rule_set
from chatsla.core.timefmt import DAY, HOUR, MINUTE, from_datetime
from chatsla.schemas.decode import decode
from tests.core.modelhost import Host

POLICY = load_policy("tiktok_aftersale@2026-01")
CONFIG = EngineConfig()
RULES = "shop-S9-aftersale@2026-01-22"


def T(s: str) -> int:
    """µs of UTC wall time ``2026-11-02 09:00`` (S9 is in UTC, R11.8)."""
    return from_datetime(datetime.fromisoformat(s).replace(tzinfo=timezone.utc))


def assign(at: str = "2026-11-01 00:00", ref: str = RULES, eid: str = "rs1") -> ShopEvent:
    return ShopEvent(eid, "S9", "aftersale_rules", T(at), rules=ref)


def req(rid: str, at: str, rtype: str, reason: str, category: str | None, amount: str, eid: str | None = None,
        **kw) -> AftersaleRequest:
    return AftersaleRequest(eid or f"{rid}-q", "S9", rid, "requested", T(at), rtype, reason, category, amount, "USD",
                            kw.get("sku_id"), kw.get("buyer_ref"), kw.get("buyer_credit"), kw.get("shipped"),
                            T(kw["delivered_at"]) if kw.get("delivered_at") else None, kw.get("return_shipping_cost"),
                            kw.get("awaiting_seller"))


def rev(rid: str, at: str, by: str, decision: str = "approved", eid: str | None = None) -> AftersaleRequest:
    return AftersaleRequest(eid or f"{rid}-r-{at}", "S9", rid, "reviewed", T(at), by=by, decision=decision)


def r11_8_events() -> list:
    """The requests of the R11.8 table."""
    cancel = dict(shipped=False)
    ret = dict(delivered_at="2026-11-02 12:00")
    vase = dict(buyer_ref="b-9", sku_id="vase-1")
    return [
        assign(),
        req("r1", "2026-11-02 09:00", "cancel", "address_error", "home", "49.99", **cancel),
        req("r2", "2026-11-02 09:05", "cancel", "address_error", "home", "50.00", **cancel),
        req("r3", "2026-11-02 09:10", "cancel", "address_error", "home", "50.01", **cancel),
        req("r4", "2026-11-02 10:00", "return_refund", "damaged", "electronics", "30.00", buyer_credit=59),
        req("r5", "2026-11-02 10:05", "return_refund", "damaged", "electronics", "30.00", buyer_credit=60),
        req("v1", "2026-11-03 08:00", "refund_only", "damaged", "home", "98.00", **vase),
        req("v2", "2026-11-10 08:00", "refund_only", "damaged", "home", "98.00", **vase),
        req("v3", "2026-11-17 08:00", "refund_only", "damaged", "home", "98.00", **vase),
        req("j1", "2026-11-12 12:00", "return_refund", "not_as_described", "jewelry", "120.00", **ret),
        req("j2", "2026-11-09 12:00", "return_refund", "not_as_described", "jewelry", "120.00", **ret),
        req("s1", "2026-11-04 11:00", "exchange", "size_issue", "apparel", "35.00"),
        req("k1", "2026-11-04 12:00", "return_refund", "changed_mind", "beauty", "12.00", buyer_credit=90),
        req("u1", "2026-11-04 13:00", "refund_only", "damaged", "home", "20.00"),
    ]


def run(events, until: str = "2026-12-31 00:00", policy=POLICY) -> Host:
    h = Host(Aftersale, policy, CONFIG).feed(sorted(events, key=lambda e: e.t))
    h.finish(T(until))
    return h


def requests(h: Host) -> dict[str, dict]:
    return h.latest("request", lambda r: r["request_id"])


def periods(h: Host) -> dict[tuple, dict]:
    return h.latest("period", lambda r: (r["shop_id"], r["period"], r["start"], r.get("request_type") or r["group"]))


EXPECTED = {  # R11.8's table: decision, reason, signals
    "r1": ("approve", "rule:cancel-under-50", ["near_threshold"]),
    "r2": ("approve", "rule:cancel-under-50", ["near_threshold"]),
    "r3": ("manual_review", "no_rule_matched", []),
    "r4": ("manual_review", "evidence_required:unboxing_video", []),
    "r5": ("manual_review", "no_rule_matched", []),
    "v1": ("approve", "rule:home-under-100", ["near_threshold"]),
    "v2": ("approve", "rule:home-under-100", ["repeat_sku", "near_threshold"]),
    "v3": ("manual_review", "limit:per_buyer:home-under-100", ["repeat_buyer", "repeat_sku", "near_threshold"]),
    "j1": ("manual_review", "platform:outside_return_window", []),
    "j2": ("approve", "rule:jewelry-15-days", []),
    "s1": ("approve", "rule:apparel-size-exchange", []),
    "k1": ("manual_review", "inspection_required:unopened_only", []),
    "u1": ("manual_review", "limit:buyer_unknown:home-under-100", []),
}


@pytest.mark.parametrize("rid", sorted(EXPECTED))
def test_r11_8_table(rid):
    """R11.8: every row of the table (R11.3 evaluation, R11.4 signals in their fixed order; N32's
    inclusive 50.00 for r2, strict credit_below for r5, the platform guard for j1/j2)."""
    r = requests(run(r11_8_events()))[rid]
    assert (r["decision"], r["decision_reason"], r["signals"]) == EXPECTED[rid]


def test_r11_8_v3_record_exactly():
    """R11.8: v3's record, every key in order (R11.5.1)."""
    r = requests(run(r11_8_events()))["v3"]
    expected = {"request_id": "v3", "shop_id": "S9", "request_type": "refund_only", "reason": "damaged", "category": "home",
                "amount": "98.00", "currency": "USD", "decision": "manual_review",
                "decision_reason": "limit:per_buyer:home-under-100", "rule": "home-under-100",
                "rules_ref": "shop-S9-aftersale@2026-01-22", "signals": ["repeat_buyer", "repeat_sku", "near_threshold"],
                "requested_at": "2026-11-17T08:00:00Z", "observed": None, "agree": None, "late": False,
                "day": "2026-11-17", "week_start": "2026-11-16", "policy_id": "tiktok_aftersale", "policy_version": "2026-01"}
    assert list(r.items()) == list(expected.items())


def test_r11_8_day_2026_11_02_rows():
    """R11.8: day 2026-11-02, the "all" row exactly; the cancel row 3/2, the return_refund row 2/0."""
    p = periods(run(r11_8_events()))
    assert p[("S9", "day", "2026-11-02", "all")] == {
        "shop_id": "S9", "period": "day", "start": "2026-11-02", "request_type": "all",
        "requests": 5, "auto_approved": 2, "manual_review": 3, "auto_approval_rate": 0.4,
        "auto_approved_amount": {"USD": "99.99"},
        "manual_reasons": {"evidence_required:unboxing_video": 1, "no_rule_matched": 2},
        "signals": {"near_threshold": 2}, "agree": 0, "disagree": 0, "status": "final", "late": False,
        "policy_id": "tiktok_aftersale", "policy_version": "2026-01"}
    c, rr = p[("S9", "day", "2026-11-02", "cancel")], p[("S9", "day", "2026-11-02", "return_refund")]
    assert (c["requests"], c["auto_approved"]) == (3, 2)
    assert (rr["requests"], rr["auto_approved"]) == (2, 0)
    assert ("S9", "day", "2026-11-02", "exchange") not in p


def test_no_rule_set_and_none():
    """R11.2: a shop never assigned one (default_rules null) and one assigned "none": no_rule_set."""
    h = run([req("a", "2026-11-02 09:00", "cancel", "changed_mind", None, "1.00"),
             assign("2026-11-02 10:00", "none"),
             req("b", "2026-11-02 11:00", "cancel", "changed_mind", None, "1.00")])
    rs = requests(h)
    assert [(rs[k]["decision_reason"], rs[k]["rules_ref"]) for k in "ab"] == [("no_rule_set", None)] * 2


def test_rule_set_in_force_at_the_request():
    """R11.2 / R11.3.1: the set assigned at or before the request's at; later assignments do not
    change an earlier request's decision."""
    h = run([req("a", "2026-11-02 09:00", "exchange", "size_issue", "apparel", "5.00"),
             assign("2026-11-02 10:00"),
             req("b", "2026-11-02 11:00", "exchange", "size_issue", "apparel", "5.00")])
    rs = requests(h)
    assert rs["a"]["decision"] == "manual_review" and rs["b"]["decision"] == "approve"


def test_observed_and_agree():
    """R11.5.1: observed is the first review; approve agrees with seller_rule:approved only."""
    h = run(r11_8_events() + [rev("r1", "2026-11-02 09:01", "seller_rule"),
                              rev("r1", "2026-11-02 09:30", "seller", "rejected"),
                              rev("r2", "2026-11-02 10:00", "seller"),
                              rev("r3", "2026-11-02 10:00", "seller", "rejected")])
    rs = requests(h)
    assert (rs["r1"]["observed"], rs["r1"]["agree"]) == ("seller_rule:approved", True)
    assert (rs["r2"]["observed"], rs["r2"]["agree"]) == ("seller:approved", False)
    assert (rs["r3"]["observed"], rs["r3"]["agree"]) == ("seller:rejected", True)
    day = periods(h)[("S9", "day", "2026-11-02", "all")]
    assert (day["agree"], day["disagree"]) == (2, 1)


def q(i: int, at: str = "2026-11-02 10:00", rtype: str = "return_refund") -> AftersaleRequest:
    return req(f"q{i}", at, rtype, "damaged", "home", "10.00")


def test_r11_6_due_boundary():
    """R11.8 review timeliness: q1 due Wed 10:00:00; a seller review at 10:00:00 is in time, a
    platform review at 10:00:01 comes after the miss decided at 10:00:00."""
    h = run([q(1), rev("q1", "2026-11-04 10:00:00", "seller")])
    m = periods(h)[("S9", "month", "2026-11-01", "return_refund")]
    assert (m["awaiting_seller"], m["reviewed_in_time"], m["outcome"]) == (1, 1, "ok")
    h = Host(Aftersale, POLICY, CONFIG).feed([q(1)]).advance(T("2026-11-04 10:02:00") + 1)
    h.feed([rev("q1", "2026-11-04 10:00:01", "platform")])
    h.finish(T("2026-12-31 00:00"))
    m = periods(h)[("S9", "month", "2026-11-01", "return_refund")]
    assert (m["reviewed_in_time"], m["review_rate"], m["outcome"]) == (0, 0.0, "auto_approval_tool_risk")


@pytest.mark.parametrize("in_time, outcome", [(27, "ok"), (26, "auto_approval_tool_risk")])
def test_r11_6_thirty_requests(in_time, outcome):
    """R11.8: 30 return_refund requests awaiting the seller; 27 in time is 0.9 (ok, exact), 26 is
    0.8667 (risk). Cancellations are assessed separately (their own group)."""
    evs = [q(i) for i in range(30)] + [q(99, rtype="cancel")]
    evs += [rev(f"q{i}", "2026-11-03 10:00", "seller") for i in range(in_time)]
    evs += [rev(f"q{i}", "2026-11-05 10:00", "platform") for i in range(in_time, 30)]
    p = periods(run(evs))
    m = p[("S9", "month", "2026-11-01", "return_refund")]
    assert {k: m[k] for k in ("awaiting_seller", "reviewed_in_time", "pending", "outcome", "status")} == {
        "awaiting_seller": 30, "reviewed_in_time": in_time, "pending": 0, "outcome": outcome, "status": "final"}
    c = p[("S9", "month", "2026-11-01", "cancellation")]
    assert (c["awaiting_seller"], c["reviewed_in_time"], c["outcome"]) == (1, 0, "auto_approval_tool_risk")


def test_r11_6_not_awaiting_is_not_assessed():
    """R11.6.1: awaiting_seller false is not counted; a month with none is not_assessed."""
    ev = req("n", "2026-11-02 10:00", "cancel", "changed_mind", None, "1.00", awaiting_seller=False)
    m = periods(run([ev]))[("S9", "month", "2026-11-01", "cancellation")]
    assert (m["awaiting_seller"], m["review_rate"], m["outcome"]) == (0, None, "not_assessed")


def test_duplicates_change_nothing():
    ev = req("d", "2026-11-02 10:00", "cancel", "changed_mind", None, "1.00", eid="e1")
    h = run([ev, ev, rev("d", "2026-11-02 11:00", "seller", eid="e2"), rev("d", "2026-11-02 11:00", "seller", eid="e2")])
    assert h.stats()["duplicate"] == 2 and h.stats()["valid"] == 2


def test_buyer_ref_is_forgotten_after_the_longest_window():
    """Amendment A.1: buyer_ref is kept only as long as the longest of repeat_window and the
    per_buyer_limit windows (30 d here); records never carry it."""
    h = run(r11_8_events(), until="2026-12-31 00:00")
    assert h.model.buyers == {}
    assert all("buyer_ref" not in r and "b-9" not in orjson.dumps(r).decode() for _, r in h.out)
    h = run(r11_8_events(), until="2026-11-20 00:00")
    assert ("S9", "b-9") in h.model.buyers


# ------------------------------------------------------------------ properties (issue #12, #14)
def _final(h: Host) -> tuple:
    return (sorted(orjson.dumps(r) for r in requests(h).values()), sorted(orjson.dumps(r) for r in periods(h).values()))


def _mixed_events() -> list:
    evs = r11_8_events() + [q(i, f"2026-11-0{2 + i % 3} 10:0{i % 5}") for i in range(12)]
    evs += [rev(f"q{i}", f"2026-11-0{3 + i % 3} 10:00", "seller" if i % 2 else "platform") for i in range(12)]
    evs += [rev("r1", "2026-11-02 09:01", "seller_rule"), rev("v1", "2026-11-03 08:30", "seller_rule")]
    return evs


@pytest.mark.parametrize("seed", range(8))
def test_reordering_within_lateness_duplicates_and_snapshot_restore_give_the_same_records(seed):
    """R6.3, R11.3.1 / issue #14: any arrival order within the lateness, duplicates, and a snapshot
    and restore mid-stream give the same final requests and periods as the sorted input."""
    rng = random.Random(seed)
    events = sorted(_mixed_events(), key=lambda e: e.t)
    expected = _final(run(events))
    arrival = sorted(events + rng.sample(events, 5), key=lambda e: e.t + rng.randrange(0, 2 * MINUTE))
    cut = rng.randrange(1, len(arrival))
    h = Host(Aftersale, POLICY, CONFIG).feed(arrival[:cut])
    h2 = Host.restore(Aftersale, POLICY, CONFIG, h.snapshot())
    h2.out = list(h.out)
    h2.feed(arrival[cut:]).finish(T("2026-12-31 00:00"))
    assert _final(h2) == expected


@pytest.mark.parametrize("seed", range(4))
def test_same_instant_requests_are_evaluated_in_event_id_order(seed):
    """R11.3.1: requests at one instant are evaluated in event_id order whatever their arrival, so
    the repeat_buyer signal ([at - window, at], counting this one) marks the same requests. The
    per-buyer limit counts approvals in [at - window, at): none at the same instant, all approve."""
    rs = [req(f"x{i}", "2026-11-03 08:00", "refund_only", "damaged", "home", "10.00", eid=f"e{i}", buyer_ref="b")
          for i in range(4)]
    expected = _final(run([assign()] + rs))
    random.Random(seed).shuffle(rs)
    assert _final(run([assign()] + rs)) == expected
    d = requests(run([assign()] + rs))
    assert [d[f"x{i}"]["decision"] for i in range(4)] == ["approve"] * 4
    assert [d[f"x{i}"]["signals"][:1] for i in range(4)] == [[], [], ["repeat_buyer"], ["repeat_buyer"]]


def test_late_request_is_flagged_and_reemits_its_period():
    """R6.4 / R11.5.2: a request behind the watermark is evaluated at once, flagged late, and the
    ended day's record is emitted again with late true."""
    h = Host(Aftersale, POLICY, CONFIG).feed([assign(), q(1, "2026-11-02 10:00")]).advance(T("2026-11-04 00:00"))
    h.feed([q(2, "2026-11-02 11:00")]).finish(T("2026-12-31 00:00"))
    assert requests(h)["q2"]["late"] is True
    d = periods(h)[("S9", "day", "2026-11-02", "all")]
    assert (d["requests"], d["late"]) == (2, True)


# ------------------------------------------------------------------ rule sets (R11.2)
def test_bundled_rule_set_loads():
    rs = load_rule_set(RULES)
    assert rs.ref == RULES and [r.name for r in rs.rules][:2] == ["low-credit-return-needs-video", "beauty-inspect"]


@pytest.mark.parametrize("patch, message", [
    ({"currency": "usd"}, 'x@1: currency: expected an ISO 4217 code such as "USD", got "usd"'),
    ({"rules": [{"name": "a", "action": "approve", "when": {"amount_max": 50}}]},
     'x@1: rules[0].when.amount_max: expected a decimal string such as "50.00", got 50'),
    ({"rules": [{"name": "a", "action": "approve", "when": {"amount_maxx": "5"}}]},
     "x@1: rules[0].when.amount_maxx: unknown key"),
    ({"rules": [{"name": "a", "action": "approve"}, {"name": "a", "action": "approve"}]},
     'x@1: rules[1].name: expected a name unique in the set, got "a"'),
    ({"rules": [{"name": "a", "action": "deny"}]}, 'x@1: rules[0].action: expected "approve" or "manual_review", got "deny"'),
    ({"rules": [{"name": "a", "action": "approve", "when": {"credit_below": 101}}]},
     "x@1: rules[0].when.credit_below: expected a whole number from 0 to 100, got 101"),
    ({"rules": [{"name": "a", "action": "approve", "when": {"request_types": ["refund"]}}]},
     'x@1: rules[0].when.request_types: expected request types among cancel, refund_only, return_refund, exchange, got "refund"'),
    ({"rules": [{"name": "a", "action": "approve", "per_buyer_limit": {"count": 2, "window": "forever"}}]},
     'x@1: rules[0].per_buyer_limit.window: expected a positive duration of at most 366 days such as "30d", got "forever"'),
])
def test_rule_set_errors_are_one_line_naming_the_field(patch, message):
    """R11.2 / issue #14: a bad rule set gets one line naming the field."""
    d = {"id": "x", "version": "1", "currency": "USD", "rules": []} | patch
    with pytest.raises(RuleSetError) as e:
        RuleSet.from_dict(d, "x@1")
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


# ------------------------------------------------------------------ decoder (R11.1)
BASE = {"schema": "aftersale.request/v1", "event_id": "e", "shop_id": "S9", "request_id": "r", "type": "requested",
        "at": "2026-11-02T09:00:00Z", "request_type": "cancel", "reason": "changed_mind", "amount": "49.99",
        "currency": "USD"}


@pytest.mark.parametrize("patch, reason", [
    ({"amount": 49.99}, "bad_type:amount"),
    ({"amount": "49,99"}, "bad_value:amount"),
    ({"amount": "-1"}, "bad_value:amount"),
    ({"amount": "1e2"}, "bad_value:amount"),
    ({"amount": None}, "missing_field:amount"),
    ({"currency": "usd"}, "bad_value:currency"),
    ({"request_type": "refund"}, "bad_value:request_type"),
    ({"reason": None}, "missing_field:reason"),
    ({"buyer_credit": 101}, "bad_value:buyer_credit"),
    ({"buyer_credit": "90"}, "bad_type:buyer_credit"),
    ({"shipped": "no"}, "bad_type:shipped"),
    ({"delivered_at": "yesterday"}, "bad_time:delivered_at"),
    ({"return_shipping_cost": "x"}, "bad_value:return_shipping_cost"),
    ({"type": "reviewed"}, "missing_field:by"),
    ({"type": "reviewed", "by": "seller"}, "missing_field:decision"),
    ({"type": "reviewed", "by": "bot", "decision": "approved"}, "bad_value:by"),
    ({"request_id": ""}, "bad_type:request_id"),
])
def test_decoder_reasons(patch, reason):
    """R11.1: invalid events get a precise reason (they go to aftersale.requests.dlq)."""
    ev = decode(orjson.dumps({k: v for k, v in (BASE | patch).items() if v is not None}))
    assert getattr(ev, "reason", None) == reason


def test_decoder_valid_and_defaults():
    """R11.1: platform defaults to tiktok_shop, awaiting_seller to true; amounts stay strings."""
    ev = decode(orjson.dumps(BASE))
    assert (ev.platform, ev.awaiting_seller, ev.amount, ev.t) == ("tiktok_shop", True, "49.99", T("2026-11-02 09:00"))
    shop = decode(orjson.dumps({"schema": "shop.event/v1", "event_id": "e", "shop_id": "S9", "type": "aftersale_rules",
                                "at": "2026-11-02T09:00:00Z", "rules": RULES}))
    assert shop.rules == RULES
    bad = decode(orjson.dumps({"schema": "shop.event/v1", "event_id": "e", "shop_id": "S9", "type": "aftersale_rules",
                               "at": "2026-11-02T09:00:00Z"}))
    assert bad.reason == "missing_field:rules"


def test_stored_parts_rebuild_the_model():
    """The worker's stored entries (one per request, orphan group, period, buyer history, daily
    count and shop; through JSON) rebuild a model whose state is the snapshot's (R6.1, issue #14)."""
    events = sorted(_mixed_events(), key=lambda e: e.t)
    cut = len(events) // 2
    h = Host(Aftersale, POLICY, CONFIG).feed(events[:cut])
    parts = orjson.loads(orjson.dumps(h.model.parts()))
    assert {k[0] for k, _ in parts} >= {"aftersale_req", "aftersale_period", "aftersale_buyer", "aftersale_shop"}
    h2 = Host(Aftersale, POLICY, CONFIG)
    runner = h2.runner
    h2.runner = type(runner).from_snapshot(h2.config, [(Aftersale, POLICY)], orjson.loads(h.snapshot()), sink=h2._emit)
    m = Aftersale.from_parts(POLICY, CONFIG, h2.runner.models[0].host, {}, [(tuple(k), v) for k, v in parts])
    assert orjson.dumps(m.parts()) == orjson.dumps(h2.runner.models[0].parts()) == orjson.dumps(parts)


def _tracked_host() -> Host:
    h = Host(Aftersale, POLICY, CONFIG)
    h.runner.track_dirty = True
    h.model.track()
    return h


DAILY = RuleSet.from_dict({"id": "d", "version": "1", "currency": "USD", "rules": [
    {"name": "small", "action": "approve", "when": {"amount_max": "40.00"}, "daily_limit": {"count": 2}}]})


def _daily_events() -> list:
    """Small requests under a rule with a daily limit (R11.3.5): its per-day counts are state too."""
    evs: list = [assign(ref="d@1")]
    for i in range(10):
        evs.append(req(f"d{i}", f"2026-11-0{2 + i % 3} 1{i % 4}:00", "refund_only", "damaged", "home", "12.00",
                       buyer_ref=f"b{i % 3}", sku_id="s"))
    return evs


def _apply(table: dict, dirty: list) -> None:
    for k, v in dirty:
        if v is None:
            table.pop(k, None)
        else:
            table[k] = v


@pytest.mark.parametrize("seed, daily", [(0, False), (1, False), (2, True), (3, True)])
def test_dirty_parts_applied_in_turn_are_the_models_entries_at_every_step(seed, daily):
    """The incremental store (issue #14, live side): applying each step's take_dirty_parts to a
    table (None deletes) always leaves exactly parts(): nothing changed goes unwritten, nothing
    gone stays. With a daily limit too (its per-day counts are entries). Months later only the
    shops' own entries are left: requests, periods, buyer histories (A.1) and counts are evicted."""
    rng = random.Random(seed)
    policy = dataclasses.replace(POLICY, rule_sets=(DAILY,)) if daily else POLICY
    events = _daily_events() if daily else _mixed_events()
    events += [rev("orph", "2026-11-05 09:00", "seller"),  # a review before its request: an orphan group
               req("orph", "2026-11-05 09:01", "cancel", "changed_mind", "home", "10.00", shipped=False)]
    events = sorted(events, key=lambda e: e.t + rng.randrange(0, MINUTE))
    h = Host(Aftersale, policy, CONFIG)
    h.runner.track_dirty = True
    h.model.track()
    h.runner._process = h.model.process  # a lone model's process is bound at hosting (the worker hosts several)
    table: dict = {}
    tags = set()
    for i, ev in enumerate(events):
        h.feed([ev])
        if rng.random() < 0.4:
            dirty = h.model.take_dirty_parts()
            tags |= {k[0] for k, _ in dirty}
            _apply(table, dirty)
            assert sorted(table.items()) == h.model.parts(), f"after event {i}"
    for day in range(1, 120):
        h.advance(T("2026-11-01 00:00") + day * DAY)
        dirty = h.model.take_dirty_parts()
        tags |= {k[0] for k, _ in dirty}
        _apply(table, dirty)
        assert sorted(table.items()) == h.model.parts(), f"day {day}"
    assert tags >= {"aftersale_req", "aftersale_period", "aftersale_buyer", "aftersale_shop", "aftersale_orphans"}
    assert not daily or "aftersale_daily" in tags
    assert {k[0] for k in table} == {"aftersale_shop"}, sorted(table)[:5]


def test_the_first_coarse_shop_entry_is_still_read():
    """A worker of the first step stored one dict per shop (aftersale_shop); from_parts reads it."""
    events = sorted(_mixed_events(), key=lambda e: e.t)
    h = Host(Aftersale, POLICY, CONFIG).feed(events)
    snap = orjson.loads(orjson.dumps(h.model.snapshot()))
    coarse = [(("aftersale_shop", "S9"), snap)]
    h2 = Host(Aftersale, POLICY, CONFIG)
    m = Aftersale.from_parts(POLICY, CONFIG, h2.runner.models[0].host, {}, coarse)
    assert orjson.dumps(m.parts()) == orjson.dumps(h.model.parts())
