"""`chatsla rules check` and `chatsla rules diff` (RULES R11.2, R11.0; issue #14), and the audit's
after-sales output (`requests`, `periods`), on a simulated month of after-sales requests."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from tests.cli.test_cli import run

RULES = "shop-S9-aftersale@2026-01-22"
REPO = Path(__file__).resolve().parent.parent
BUNDLED = REPO / "chatsla" / "aftersale_rules" / f"{RULES}.json"
START = datetime(2026, 11, 1, tzinfo=timezone.utc)


def _z(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def simulated_month(seed: int = 7, n: int = 300) -> list[dict]:
    """A month (Nov 2026) of shop S9's after-sales requests and reviews, with the abuse pattern of
    R11.8 (a buyer refunding the 98-dollar vase every week) and ordinary buyers; plus October
    requests before the period (limits count them). The shop is assigned the R11.2 rule set."""
    rng = random.Random(seed)
    out = [{"schema": "shop.event/v1", "event_id": "rs", "shop_id": "S9", "type": "aftersale_rules",
            "at": "2026-10-01T00:00:00Z", "rules": RULES}]
    kinds = [("cancel", "address_error", "home"), ("cancel", "changed_mind", "apparel"),
             ("refund_only", "damaged", "home"), ("refund_only", "not_received", "home"),
             ("return_refund", "damaged", "electronics"), ("return_refund", "not_as_described", "jewelry"),
             ("exchange", "size_issue", "apparel"), ("return_refund", "changed_mind", "beauty")]
    events = []
    for i in range(n):
        at = START - timedelta(days=10) + timedelta(minutes=rng.randrange(0, 40 * 24 * 60))
        rtype, reason, cat = rng.choice(kinds)
        ev = {"schema": "aftersale.request/v1", "event_id": f"q{i}", "shop_id": "S9", "request_id": f"r{i}",
              "type": "requested", "at": _z(at), "request_type": rtype, "reason": reason, "category": cat,
              "amount": f"{rng.randrange(500, 15000) / 100:.2f}", "currency": "USD",
              "buyer_ref": f"b{rng.randrange(60)}", "sku_id": f"sku{rng.randrange(20)}", "shipped": rng.random() < 0.5,
              "buyer_credit": rng.randrange(40, 100)}
        if cat == "jewelry":
            ev["delivered_at"] = _z(at - timedelta(days=rng.randrange(1, 12)))
        events.append(ev)
        if rng.random() < 0.9:
            by = rng.choice(["seller", "seller_rule", "platform"])
            events.append({"schema": "aftersale.request/v1", "event_id": f"v{i}", "shop_id": "S9", "request_id": f"r{i}",
                           "type": "reviewed", "at": _z(at + timedelta(hours=rng.randrange(1, 60))), "by": by,
                           "decision": rng.choice(["approved", "rejected"])})
    for w in range(5):  # the vase buyer (R11.8 v1-v3), weekly
        at = START + timedelta(days=2 + 7 * w, hours=8)
        events.append({"schema": "aftersale.request/v1", "event_id": f"vase{w}", "shop_id": "S9", "request_id": f"vase{w}",
                       "type": "requested", "at": _z(at), "request_type": "refund_only", "reason": "damaged",
                       "category": "home", "amount": "98.00", "currency": "USD", "buyer_ref": "b-9", "sku_id": "vase-1"})
    events.sort(key=lambda e: e["at"])
    return out + events


@pytest.fixture(scope="module")
def month(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("aftersale") / "month.jsonl"
    p.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in simulated_month()))
    return p


@pytest.fixture(scope="module")
def stricter(tmp_path_factory) -> Path:
    """A stricter version: home refunds only up to 80.00 and once per buyer in 30 d."""
    d = json.loads(BUNDLED.read_text())
    d["version"] = "2026-12-01"
    for r in d["rules"]:
        if r["name"] == "home-under-100":
            r["when"]["amount_max"] = "80.00"
            r["per_buyer_limit"]["count"] = 1
    p = tmp_path_factory.mktemp("rules") / "shop-S9-aftersale@2026-12-01.json"
    p.write_text(json.dumps(d))
    return p


def test_rules_check_ok_and_errors(tmp_path):
    """R11.2 / docs/cli.md: a valid set says ok (exit 0); an invalid one prints one line per error
    naming the field (exit 1); a missing file is one error line (exit 1)."""
    r = run(["rules", "check", str(BUNDLED)])
    assert r.returncode == 0 and r.stdout.decode() == f"{BUNDLED}: ok ({RULES}, 6 rules)\n"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"id": "x", "version": "1", "currency": "USD", "rules": [
        {"name": "a", "action": "approve", "when": {"amount_max": 50}},
        {"name": "b", "action": "approve", "when": {"credit_below": "60"}}]}))
    r = run(["rules", "check", str(bad)])
    assert r.returncode == 1
    assert r.stdout.decode().splitlines() == [
        f'{bad}: rules[0].when.amount_max: expected a decimal string such as "50.00", got 50',
        f'{bad}: rules[1].when.credit_below: expected a whole number from 0 to 100, got "60"']
    r = run(["rules", "check", str(tmp_path / "missing.json")])
    assert r.returncode == 1 and len(r.stderr.decode().splitlines()) == 1


def test_rules_check_file_name_must_match(tmp_path):
    wrong = tmp_path / "shop-S9-aftersale@1999.json"
    wrong.write_text(BUNDLED.read_text())
    r = run(["rules", "check", str(wrong)])
    assert r.returncode == 1 and "file name says" in r.stdout.decode()


def test_rules_diff_on_a_simulated_month(month, stricter):
    """Issue #14: `rules diff` replays the month under two versions. Only the changed rule
    (home-under-100) can change decisions, always from approve to manual review; the approved
    amount falls by exactly the changed requests' amounts; the vase buyer's weekly 98.00 refunds
    (R11.8's abuse) are among them; requests before --from are not listed."""
    r = run(["rules", "diff", RULES, str(stricter), str(month), "--from", "2026-11-01T00:00:00Z",
             "--to", "2026-12-01T00:00:00Z", "--format", "json"])
    assert r.returncode == 0, r.stderr.decode()
    d = json.loads(r.stdout)
    assert d["old"] == RULES and d["new"] == "shop-S9-aftersale@2026-12-01"
    changed = d["changed"]
    assert changed, "the stricter version changes something"
    home = {"rule:home-under-100", "limit:per_buyer:home-under-100", "no_rule_matched"}
    for c in changed:
        assert "2026-11-01T00:00:00Z" <= c["requested_at"] < "2026-12-01T00:00:00Z"
        assert c["request_type"] == "refund_only"
        assert {c["old"]["decision_reason"], c["new"]["decision_reason"]} <= home
    # (fewer approvals can also free a later request from the per-buyer limit: both directions)
    assert any(c["old"]["decision"] == "approve" and c["new"]["decision"] == "manual_review" for c in changed)

    def approved(side: str) -> Decimal:
        return sum((Decimal(c["amount"]) for c in changed if c[side]["decision"] == "approve"), Decimal(0))

    old, new = (Decimal(d["approved_amount"][k]["USD"]) for k in ("old", "new"))
    assert old - new == approved("old") - approved("new") > 0
    assert d["auto_approved"]["old"] - d["auto_approved"]["new"] == (
        sum(c["old"]["decision"] == "approve" for c in changed) - sum(c["new"]["decision"] == "approve" for c in changed))
    ids = {c["request_id"] for c in changed}
    assert {"vase0", "vase1", "vase2", "vase3"} <= ids and "vase4" not in ids  # (vase4: Dec 1, after --to)
    same = run(["rules", "diff", RULES, RULES, str(month), "--format", "json"])
    assert json.loads(same.stdout)["changed"] == []
    table = run(["rules", "diff", RULES, str(stricter), str(month), "--from", "2026-11-01T00:00:00Z",
                 "--to", "2026-12-01T00:00:00Z"]).stdout.decode()
    assert f"{len(changed)} changed" in table.splitlines()[0] and "approved USD:" in table


def test_audit_prints_requests_and_their_periods(month):
    """Issue #14: `chatsla audit` prints the after-sales requests under `requests` and their day,
    week and month records under `periods`, all conforming to the output schemas."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    from chatsla.schemas.registry import SCHEMA_NAMES, load_schema

    r = run(["audit", str(month), "--until", "2026-12-31T00:00:00Z", "--format", "json", "-q"])
    assert r.returncode == 0, r.stderr.decode()
    d = json.loads(r.stdout)
    assert len(d["requests"]) == 305 and d["sessions"] == [] and d["tickets"] == []
    kinds = {(p["period"], p.get("request_type") or p.get("group")) for p in d["periods"]}
    assert ("month", "return_refund") in kinds and ("day", "all") in kinds and ("week", "cancel") in kinds
    registry = Registry().with_resources(
        (f"{n}.schema.json", Resource.from_contents(load_schema(n))) for n in SCHEMA_NAMES)
    Draft202012Validator(load_schema("audit-report"), registry=registry).validate(d)
    assert d["stats"]["models"]["aftersale"]["counters"]["valid"] > 300
