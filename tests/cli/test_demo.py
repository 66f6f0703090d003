"""What `chatsla demo` plays, how it keys the live outputs it waits for, what it prints, and when it
produces its week (issue #14 "the demo shows an after-sales shop too"; issue #12 before it).

No broker here: the demo's own functions are run on the demo's simulated week and on the audit of
it, which is what the demo waits for the live outputs to equal (`make demo` runs the whole stack).
"""

from __future__ import annotations

import re

import orjson
import pytest
from rich.console import Console

from chatsla.audit import run_audit
from chatsla.core.policy import policies_for
from chatsla.core.timefmt import parse_time
from chatsla.demo import (AFTERSALE_SHOP, TABLES, DemoError, _period_key, _request_key, demo_records, is_aftersale,
                          latest, print_results, produced_record, should_produce, worker_urls)
from chatsla.replay.verify import PERIOD_KEY, record_key

from tests.cli.test_cli import SAMPLE

# the demo's defaults (chatsla demo --seed 7 --shops 5 --conversations 200)
SEED, SHOPS, CONVERSATIONS = 7, 5, 200


@pytest.fixture(scope="module")
def records():
    return demo_records(SEED, SHOPS, CONVERSATIONS)


@pytest.fixture(scope="module")
def audit(records):
    """The audit the demo compares the live outputs with, at about the demo's end of event time
    (past the week's last event), and one past the end of November (its month records, R11.6.3)."""
    lead, *others = policies_for(())
    values = [v for _, _, v in records]
    week = run_audit(values, lead, until=parse_time("2026-11-12T00:00:00Z"), policies=others)
    month = run_audit(values, lead, until=parse_time("2026-12-02T00:00:00Z"), policies=others)
    return week, [p for p in month.periods if "awaiting_seller" in p]


def test_the_demo_plays_one_aftersale_shop_with_r11_8s_abuse(records) -> None:
    """issue #14: the demo's week has one after-sales shop, aftersale-01, whose requests go to
    aftersale.requests with the rest and include R11.8's repeated 98.00 vase (v1-v3)."""
    requests = [r for r in (_json(v) for topic, _, v in records if topic == "aftersale.requests") if r]
    assert {r.get("shop_id") for r in requests} == {AFTERSALE_SHOP}
    vase = [r for r in requests if r.get("type") == "requested" and r.get("sku_id") == "vase-1"]
    assert len(vase) >= 3 and {r["amount"] for r in vase} == {"98.00"}
    assert any(v.get("type") == "aftersale_rules" and v.get("shop_id") == AFTERSALE_SHOP
               for v in (_json(v) for t, _, v in records if t == "shop.events") if v)


def _json(value: bytes) -> dict | None:
    """A record as an object; None for the simulator's bad records (not JSON, cut short, R1)."""
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def test_the_demo_tiktok_week_is_still_the_sample_week(records) -> None:
    """issue #14 adds a platform: the TikTok shops' records, in their order, are still those of
    samples/week.jsonl (the README's sample and `make audit-demo`: 'the same week')."""
    tiktok = [v for _, key, v in records if re.fullmatch(rb"(shop|c)-\d\d(-\d+)?", key)]  # shop-NN, c-NN-n
    assert tiktok == SAMPLE.read_bytes().splitlines()


def test_period_key_keeps_each_aftersale_row_as_verify_does(audit) -> None:
    """issue #14: an after-sales day or week has a row per request type and `all` (R11.5.2), all
    with the same policy, shop, period and start; the demo keys them as `chatsla verify` does
    (request type / group in the key), so no row replaces another and every one is waited for."""
    week, months = audit
    rows = [p for p in week.periods if is_aftersale(p)]
    coarse = {(p["policy_id"], p["shop_id"], p["period"], p["start"]) for p in rows}
    assert len(coarse) < len(rows)  # (the key of before: 5 rows of a day would be one)
    keys = {_period_key(p) for p in week.periods + months}
    assert len(keys) == len(week.periods) + len(months)
    assert all(_period_key(p) == record_key(PERIOD_KEY, p) for p in week.periods + months)
    assert len({_request_key(r) for r in week.requests}) == len(week.requests) > 0


def test_latest_keeps_the_last_record_of_a_key() -> None:
    """A compacted topic's consumer sees a key's last record (the period re-emitted after a late
    event, R6.4; a request once observed, R11.5.1)."""
    first = {"shop_id": "aftersale-01", "request_id": "r1", "requested_at": "2026-11-02T09:00:00Z", "agree": None}
    second = {**first, "agree": True}
    got = latest([orjson.dumps(first), orjson.dumps(second)], _request_key)
    assert list(got.values()) == [second]


def _live(records: list[dict], key) -> dict:
    return latest([orjson.dumps(r) for r in records], key)


def test_the_printout_has_the_aftersale_tables_after_their_explanation(audit, capsys) -> None:
    """issue #14: after the TikTok and the Douyin/AliExpress tables, one paragraph saying what the
    after-sales tables mean, then aftersale-01's shadow decisions per day and week (its `all`
    rows, R11.5.2: requests, auto-approved, approved amount, signals), this month's review
    timeliness (R11.6.3) and the totals of its requests; its rows are in no other table."""
    week, months = audit
    assessments = {(a["shop_id"], a["week_start"]): a for a in week.assessments}
    print_results(Console(width=120), assessments, _live(week.periods, _period_key),
                  _live(week.requests, _request_key), months, 6066)
    out = capsys.readouterr().out
    explained = out.index(TABLES["aftersale"])
    assert out.index(TABLES["assessments"]) < out.index(TABLES["periods"]) < explained
    after = out[explained:]
    assert out[:explained].count(AFTERSALE_SHOP) == 0
    assert "After-sales requests, shadow decisions by period" in after
    assert "After-sales review timeliness, by month" in after
    all_rows = [p for p in week.periods if is_aftersale(p) and p["request_type"] == "all"]
    assert len(all_rows) == 8  # 7 days and the week
    for p in all_rows:  # shop, period, start, requests, auto, manual: the row as the live topic has it
        cells = [AFTERSALE_SHOP, p["period"], p["start"], p["requests"], p["auto_approved"], p["manual_review"]]
        assert re.search(r"\s*│\s*".join(re.escape(str(c)) for c in cells), after), p
    for m in months:
        cells = [AFTERSALE_SHOP, m["start"], m["group"], m["awaiting_seller"], m["reviewed_in_time"]]
        assert re.search(r"\s*│\s*".join(re.escape(str(c)) for c in cells), after), m
    week_all = next(p for p in all_rows if p["period"] == "week")
    assert week_all["signals"].get("repeat_sku", 0) > 0 and week_all["signals"].get("near_threshold", 0) > 0
    assert f"requests {len(week.requests)}, auto-approved " in after


def test_the_printout_says_when_the_month_is_missing(audit, capsys) -> None:
    """Without the shop API's month rows the demo says where to look instead of an empty table."""
    week, _ = audit
    print_results(Console(width=120), {}, _live(week.periods, _period_key), _live(week.requests, _request_key), [],
                  6066)
    out = capsys.readouterr().out
    assert "After-sales review timeliness" not in out
    assert f"http://127.0.0.1:6066/shops/{AFTERSALE_SHOP}" in out


def test_the_printed_urls_name_the_aftersale_shop() -> None:
    """issue #14: the shop API URLs the demo prints include the after-sales shop's."""
    assert f"/shops/{AFTERSALE_SHOP} (after-sales)" in worker_urls(6066)
    assert "http://127.0.0.1:6066/shops/shop-01" in worker_urls(6066)


# --- when the demo produces its week (.chatsla/produced.json) -----------------------------------

def test_the_produced_record_changes_with_the_week(records) -> None:
    """The marker tells weeks apart by options, platforms and a digest of the records: a simulator
    that now plays after-sales too gives another record for the same options."""
    mine = produced_record(SEED, SHOPS, CONVERSATIONS, records)
    assert mine == produced_record(SEED, SHOPS, CONVERSATIONS, list(records))
    assert "aftersale" in mine["platforms"] and mine["records"] == len(records)
    without = [r for r in records if r[0] != "aftersale.requests"]
    assert produced_record(SEED, SHOPS, CONVERSATIONS, without)["sha256"] != mine["sha256"]
    changed = [*records[:-1], (records[-1][0], records[-1][1], records[-1][2] + b" ")]
    assert produced_record(SEED, SHOPS, CONVERSATIONS, changed)["sha256"] != mine["sha256"]


def test_the_same_week_already_in_the_topics_is_not_produced_again(records) -> None:
    """A re-run finds its week in the input topics: sending it again would apply it twice (R6.4)."""
    mine = produced_record(SEED, SHOPS, CONVERSATIONS, records)
    assert should_produce(mine, mine, len(records)) is False


def test_empty_input_topics_get_the_week_whatever_the_marker_says(records) -> None:
    mine = produced_record(SEED, SHOPS, CONVERSATIONS, records)
    assert should_produce(None, mine, 0) is True
    assert should_produce({**mine, "seed": 8}, mine, 0) is True


@pytest.mark.parametrize("earlier", [
    pytest.param({"seed": 7, "shops": 5, "conversations": 200, "records": 4691,
                  "platforms": ["tiktok_shop", "douyin", "aliexpress"]}, id="the-demo-before-issue-14"),
    pytest.param({"seed": 8}, id="another-seed"),
    pytest.param(None, id="no-marker"),
])
def test_another_week_in_the_topics_is_refused_with_the_way_out(records, earlier) -> None:
    """A changed produced record means another week: producing it beside the one in the topics
    would mix them (the live outputs could never equal the audit; the demo used to time out after
    300 s). The demo stops at once and says how to start afresh."""
    mine = produced_record(SEED, SHOPS, CONVERSATIONS, records)
    with pytest.raises(DemoError, match=r"another simulated week.*chatsla demo --stop.*rm -rf \.chatsla"):
        should_produce(earlier, mine, 4691)


def test_a_week_short_of_records_is_refused_too(records) -> None:
    mine = produced_record(SEED, SHOPS, CONVERSATIONS, records)
    with pytest.raises(DemoError, match=r"fewer than the .* this week has"):
        should_produce(mine, mine, len(records) - 1)
