"""The appeal pack (issue #5, seed 000 §5): every number on the page is the JSON report's.

No Kafka: the report comes from ``run_audit`` over a small hand-made week with a vacation
(excluded) session (R4) and a late event (R6.4); the HTML is parsed with ``html.parser``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import orjson
import pytest

from chatsla.appeal import rate_text, render_appeal, value_text
from chatsla.core.policy import load_policy
from chatsla.report import to_json
from tests.builders import at, audit, msg, shop_event

POLICY = load_policy()
WEEK = "2026-11-02"


def week_events() -> list[dict]:
    """One UTC shop's week: replied, missed, auto-reply resolved, vacation, explicit close, late."""
    return [
        msg("c1", "buyer", at(0, 1)),
        msg("c1", "seller", at(0, 2)),  # replied within 24 h
        msg("c2", "buyer", at(0, 3)),  # never answered: missed, seller timeout at +72 h
        msg("c3", "buyer", at(1, 1)),
        msg("c3", "auto_reply", at(1, 1, 1)),  # buyer silent 10 min: auto_reply_resolved, replied
        msg("c4", "buyer", at(2, 1)),
        msg("c4", "seller", at(2, 20)),
        shop_event("vacation_on", at(3, 0)),
        msg("c5", "buyer", at(3, 1)),  # opened in vacation mode: excluded (R4)
        msg("c5", "seller", at(3, 2)),
        shop_event("vacation_off", at(3, 5)),
        msg("c6", "buyer", at(4, 1)),
        msg("c6", "seller", at(4, 1, 30)),
        msg("c6", "seller", at(4, 2), kind="close"),  # closed by the seller
        msg("c7", "buyer", at(5, 2)),
        msg("c7", "seller", at(6, 3)),  # 25 h later: missed
        msg("c9", "buyer", at(6, 4)),
        msg("c8", "buyer", at(4, 5), eid="late-1"),  # two days behind the watermark: late (R6.4)
        msg("c10", "buyer", at(8, 1)),  # the next week: the week of 2026-11-02 is assessed
        # a step of two days needs the stream's confirmation before it moves the clock (time
        # sanity, issue #10): the stream carries on in the new week
        msg("c10", "seller", at(8, 1, 30)),
        msg("c11", "buyer", at(5, 3), eid="late-2"),  # late into the assessed week: flags it (R6.4)
    ]


@pytest.fixture(scope="module")
def report():
    return audit(week_events(), until="2026-11-10T01:00:00Z")


class Page(HTMLParser):
    """Collects data cells (data-field/data-value and visible text), session rows and all text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.cells: list[dict] = []  # {field, value, text, session, section}
        self.rows: dict[str, list[str]] = {}  # section id -> session ids in order
        self.text: list[tuple[str, str]] = []  # (section, text)
        self.attrs_seen: list[tuple[str, str, str]] = []
        self._open: list[dict] = []
        self._section = ""
        self._session: str | None = None
        self._stack: list[str] = []
        self._style = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k, v in attrs:
            self.attrs_seen.append((tag, k, v or ""))
        self._stack.append(tag)
        if tag == "style":
            self._style = True
        if tag == "section":
            self._section = a.get("id", "")
        if tag == "tr" and "data-session" in a:
            self._session = a["data-session"]
            self.rows.setdefault(self._section, []).append(self._session)
        if "data-field" in a:
            self._open.append({"tag": tag, "field": a["data-field"], "value": a.get("data-value"), "text": "",
                               "session": self._session if tag == "td" else None, "section": self._section,
                               "depth": len(self._stack)})

    def handle_endtag(self, tag):
        if tag == "style":
            self._style = False
        if self._open and self._open[-1]["tag"] == tag and self._open[-1]["depth"] == len(self._stack):
            self.cells.append(self._open.pop())
        if tag == "tr":
            self._session = None
        if tag == "section":
            self._section = ""
        if self._stack:
            self._stack.pop()

    def handle_data(self, data):
        if self._style:
            return
        for cell in self._open:
            cell["text"] += data
        self.text.append((self._section, data))


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def lookup(report, path: str):
    """A data-field path (``assessment.rate``, ``stats.invalid_by_reason.x``) in the JSON report."""
    doc = orjson.loads(to_json(report))
    head, *rest = path.split(".")
    if head == "assessment":
        node = next(a for a in doc["assessments"] if a["shop_id"] == "s1" and a["week_start"] == WEEK)
    elif head == "stats":
        node = doc["stats"]
    else:
        return {"shop_id": "s1", "week_start": WEEK}[head]
    for part in rest:
        node = node[part]
    return node


def test_the_week_has_what_the_page_must_show(report) -> None:
    a = next(a for a in report.assessments if a["week_start"] == WEEK)
    assert a["outcome"] != "not_assessed" and a["status"] == "final"
    assert a["late"] is True  # the late session changed an assessed week (R6.4)
    sessions = {s["session_id"]: s for s in report.sessions}
    assert sessions["c5#1"]["excluded"] == "vacation"
    assert sessions["c8#1"]["late"] is True
    assert sessions["c6#1"]["close_reason"] == "closed_by_seller"
    assert sessions["c3#1"]["close_reason"] == "auto_reply_resolved"
    assert report.stats["late"] == 2


def test_every_number_on_the_page_equals_the_json_report(report) -> None:
    html = render_appeal(report, "s1", WEEK, POLICY)
    page = parse(html)
    doc = orjson.loads(to_json(report))
    sessions = {s["session_id"]: s for s in doc["sessions"]}
    checked = 0
    for cell in page.cells:
        if cell["session"] is not None:  # a session row: the field of that session
            want = sessions[cell["session"]][cell["field"]]
        else:
            want = lookup(report, cell["field"])
        if cell["value"] is not None:
            assert orjson.loads(cell["value"]) == want, cell
        shown = cell["text"].strip()
        if cell["field"] == "assessment.rate" and shown.endswith("%"):
            assert shown == rate_text(want)
        elif cell["field"] in ("assessment.outcome", "late", "close_reason", "replied_within_24h", "excluded"):
            assert shown  # words (badge, "LATE", "seller timeout", "pending", ...), checked via data-value
        else:
            assert shown == value_text(want), cell
        checked += 1
    assert checked > 80

    a = lookup(report, "assessment")
    for field in ("sessions", "replied_24h", "rate", "buyer_messages", "outcome", "violation_points", "status",
                  "pending", "late", "policy_id", "policy_version"):
        assert any(c["field"] == f"assessment.{field}" for c in page.cells), field
    assert rate_text(a["rate"]) in html

    # the tables list exactly the week's counted, excluded and late sessions, in report order
    week = [s for s in doc["sessions"] if s["shop_id"] == "s1" and s["week_start"] == WEEK]
    assert page.rows["sessions"] == [s["session_id"] for s in week if s["excluded"] is None]
    assert page.rows["excluded"] == [s["session_id"] for s in week if s["excluded"] is not None] == ["c5#1"]
    assert page.rows["late"] == [s["session_id"] for s in week if s["late"]] == ["c8#1", "c11#1"]
    assert len(page.rows["sessions"]) == a["sessions"]
    for sid in page.rows["sessions"]:
        for field in ("opened_at", "first_reply_at", "closed_at", "close_reason", "replied_within_24h"):
            assert any(c["session"] == sid and c["field"] == field for c in page.cells), (sid, field)


def test_numbers_in_the_text_come_from_the_report_or_the_policy(report) -> None:
    html = render_appeal(report, "s1", WEEK, POLICY)
    page = parse(html)
    doc_text = to_json(report).decode()
    a = lookup(report, "assessment")
    derived = {rate_text(a["rate"]).split()[0]}
    rows = max(len(r) for r in page.rows.values())
    for section, text in page.text:
        if section == "rules":
            continue  # rule numbers are the policy's (72 h, 24 h, 90 %, ...), checked below
        for number in re.findall(r"\d+(?:\.\d+)?", text):
            assert number in doc_text or number in derived or int(float(number)) <= rows, (section, number, text)
    rules = "".join(t for s, t in page.text if s == "rules")
    for phrase in ("72 h", "6 h", "10 min", "24 h", "90 %", "85 %", f"at least {POLICY.min_buyer_messages}",
                   f"{POLICY.violation_points} violation point"):
        assert phrase in rules, phrase
    assert f"Rate = {a['replied_24h']} / {a['sessions']} = {rate_text(a['rate'])}" in rules


def test_the_page_is_self_contained_and_escaped(report) -> None:
    html = render_appeal(report, "s1", WEEK, POLICY)
    lowered = html.lower()
    for bad in ("http://", "https://", "src=", "<script", "@import", "url(", "<link"):
        assert bad not in lowered, bad
    assert "@media print" in html and "<style>" in html
    page = parse(html)
    assert not [a for a in page.attrs_seen if a[1] in ("src", "href")]

    hostile = audit([msg("<b>x</b>&", "buyer", at(0, 1), shop="s<1>"), msg("<b>x</b>&", "buyer", at(0, 2), shop="s<1>")]
                    + [msg(f"k{i}", "buyer", at(1, i), shop="s<1>") for i in range(5)], until="2026-11-10T01:00:00Z")
    out = render_appeal(hostile, "s<1>", WEEK, POLICY)
    assert "<b>x</b>" not in out and "s<1>" not in out
    assert "&lt;b&gt;x&lt;/b&gt;&amp;#1" in out


def test_a_week_missing_from_the_report_is_refused(report) -> None:
    with pytest.raises(ValueError, match="no assessment"):
        render_appeal(report, "s1", "2026-11-09", POLICY)
    with pytest.raises(ValueError, match="computed under"):
        render_appeal(report, "s1", WEEK, load_policy("tiktok_shop@2025-sea"))


# ---------------------------------------------------------------- the browser (issue #13, set-up)
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str:
    """A headless-capable Chromium for the appeal pack's screenshot test, or skip that test.

    ``CHATSLA_BROWSER`` names one explicitly; else the first of :data:`BROWSERS` on PATH.
    ``make test`` installs Debian's chromium when it can (scripts/ensure-chromium, root or
    passwordless sudo with apt-get); where it cannot, the test is skipped, not failed, and the
    reason is in pytest's summary (``-rs``): issue #13, "skip (not fail) the browser test"."""
    import os
    import shutil

    explicit = os.environ.get("CHATSLA_BROWSER")
    if explicit:
        found = shutil.which(explicit)
        if found is None:
            pytest.skip(f"CHATSLA_BROWSER={explicit} is not an executable browser: the appeal screenshot test is skipped")
        return found
    for name in BROWSERS:
        found = shutil.which(name)
        if found is not None:
            return found
    pytest.skip("no Chromium found (install Debian's chromium, or set CHATSLA_BROWSER): the appeal "
                "pack screenshot test is skipped")


@pytest.fixture()
def browser() -> str:
    """The browser found by :func:`find_browser` (the test is skipped without one)."""
    return find_browser()
