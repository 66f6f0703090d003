"""``chatsla audit`` on after-sales requests (issue #14, RULES R11.5-R11.6): the table shows each
shop's day and week (requests, auto-approved, manual review, approved amount per currency, the
signals) and each month's review timeliness; ``--format csv --records requests`` gives the
per-request records (R11.5.1), ``--records periods`` the period ones. The input is the simulator's
``--platforms aftersale`` week, run through the installed entry point, as a user does."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import orjson
import pytest

from chatsla.simulate import SimConfig, generate, write_jsonl
from tests.cli.test_cli import SAMPLE, run

UNTIL = "2026-12-02T00:00:00Z"  # past the week's month: its review-timeliness records are out (R11.6.3)


@pytest.fixture(scope="module")
def week(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("aftersale") / "week.jsonl"
    write_jsonl(generate(SimConfig(seed=7, platforms=("aftersale",))), str(p))
    return p


def audit_json(path: Path) -> dict:
    r = run(["audit", str(path), "--until", UNTIL, "--format", "json", "-q"])
    assert r.returncode == 0, r.stderr.decode()
    return orjson.loads(r.stdout)


def _cell(v: object) -> str:
    """A JSON value as --format csv writes it (report._csv_value)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, list):
        return " ".join(v)
    if isinstance(v, dict):
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    return str(v)


def test_table_shows_the_aftersale_periods_and_review_timeliness(week: Path) -> None:
    """Issue #14: one row per shop and day / week ("all" rows of R11.5.2) with the counts, the
    approved amount per currency and the signal counts of the JSON; the month table has each
    shop's outcome; a totals line; no chat table for an input without chats."""
    d = audit_json(week)
    r = run(["audit", str(week), "--until", UNTIL, "-q"])
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode()
    assert "After-sales requests, shadow decisions by period (tiktok_aftersale@2026-01)" in out
    assert "After-sales review timeliness, by month (tiktok_aftersale@2026-01)" in out
    assert "Weekly 24 h reply rate" not in out
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("│").split("│")]
        if len(cells) == 12 and cells[0].startswith("aftersale-"):
            rows[(cells[0], cells[1], cells[2])] = cells[3:]
    alls = [p for p in d["periods"] if p.get("request_type") == "all"]
    assert len(rows) == len(alls) == 2 * (7 + 1)  # two shops, seven days and one week each
    for p in alls:
        sig = p["signals"]
        amount = ", ".join(f"{k} {v}" for k, v in p["auto_approved_amount"].items()) or "-"
        rate = "-" if p["auto_approval_rate"] is None else f"{p['auto_approval_rate'] * 100:.1f} %"
        assert rows[(p["shop_id"], p["period"], p["start"])] == [
            str(p["requests"]), str(p["auto_approved"]), str(p["manual_review"]), rate, amount,
            str(sig.get("repeat_buyer", 0)), str(sig.get("repeat_sku", 0)), str(sig.get("near_threshold", 0)),
            p["status"]], p
    assert sum(int(v[0]) for (_, period, _), v in rows.items() if period == "week") == len(d["requests"])
    months = [line for line in out.splitlines() if "│ 2026-11-01 │" in line]
    assert len(months) == 4 and sum("auto_approval" in m for m in months) == 2 and sum(" ok " in m for m in months) == 2
    approved = sum(1 for q in d["requests"] if q["decision"] == "approve")
    assert f"requests {len(d['requests'])}, auto-approved {approved}, manual review {len(d['requests']) - approved}" in out


@pytest.mark.parametrize("records", ["requests", "periods"])
def test_csv_records_requests_and_periods(week: Path, records: str) -> None:
    """--records requests: one row per request of the JSON in R11.5.1's key order, signals
    space-separated; --records periods: the maps of R11.5.2 as compact JSON, same values."""
    d = audit_json(week)
    r = run(["audit", str(week), "--until", UNTIL, "--format", "csv", "--records", records, "-q"])
    assert r.returncode == 0, r.stderr.decode()
    rows = list(csv.DictReader(io.StringIO(r.stdout.decode())))
    assert len(rows) == len(d[records]) > 0
    if records == "requests":
        assert list(rows[0]) == list(d["requests"][0])
    for row, rec in zip(rows, d[records], strict=True):
        for k, v in rec.items():
            assert row[k] == _cell(v), (k, row[k], v)
    if records == "requests":
        assert any(row["signals"] == "repeat_buyer repeat_sku near_threshold" for row in rows)


def test_chat_only_table_and_csv_have_no_aftersale_part() -> None:
    """Existing inputs print as before: no after-sales table or line without requests."""
    out = run(["audit", str(SAMPLE), "--until", "2026-11-17T00:10:00Z", "-q"]).stdout.decode()
    assert "After-sales" not in out and "auto-approved" not in out
    csv_out = run(["audit", str(SAMPLE), "--until", "2026-11-17T00:10:00Z", "--format", "csv", "--records",
                   "requests", "-q"]).stdout.decode()
    assert csv_out.splitlines() == [csv_out.splitlines()[0]] and csv_out.startswith("request_id,shop_id,")
