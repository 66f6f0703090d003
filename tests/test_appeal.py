"""The appeal pack (issues #5 and #13, seed 000 §5): every number on the page is the JSON report's
or the shop's own counters'.

No Kafka: the report comes from the core over a small hand-made week with a vacation (excluded)
session (R4) and a late event (R6.4), run through an engine counting its shops (``Engine(shop_stats=...)``) as
``chatsla replay --format html`` does; the input also holds another shop and records naming no
shop, so the whole input's totals differ from the shop's. The HTML is parsed with ``html.parser``.

Issue #13 ("Replay and the appeal pack"), each item with its test: the counters box shows the
shop's own counts (finding: it showed the whole input's under the shop's name), the page names
the shop's time zone and shows local times beside UTC, rates are percentages, and rules are cited
by section number and title of docs/rules.md.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from chatsla.appeal import RULE_TITLES, percent_text, rate_text, render_appeal, value_text
from chatsla.audit import Collector, engine_stats, run_audit
from chatsla.core.engine import Engine, EngineConfig
from chatsla.core.policy import load_policy
from chatsla.core.timefmt import parse_time
from chatsla.replay import named_shop
from chatsla.report import to_json
from chatsla.schemas.decode import decode
from chatsla.core.events import Invalid
from tests.builders import at, audit, lines, msg, shop_event

POLICY = load_policy()
WEEK = "2026-11-02"
UNTIL = "2026-11-10T01:00:00Z"
ROOT = Path(__file__).resolve().parents[1]


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


def other_shop_events() -> list[dict]:
    """Another shop in the same input: its records must not show in s1's counters (issue #13)."""
    return [msg(f"o{i}", "buyer", at(0, 0, i), shop="s2") for i in range(6)] + [
        msg("o0", "seller", at(0, 0, 10), shop="s2"),
        msg("o0", "seller", at(0, 0, 11), shop="s2", eid="dup-s2"),
        msg("o0", "seller", at(0, 0, 11), shop="s2", eid="dup-s2"),  # a duplicate of s2
        msg("x0", "seller", at(0, 0, 12), shop="s2"),  # outreach of s2
    ]


def run_counted(raw: list[bytes], shops: list[str], until: str | None = UNTIL, config: EngineConfig = EngineConfig()):
    """The replay's counting path without Kafka: (report, shop counters, invalid records naming no shop)."""
    collector = Collector()
    engine = Engine(POLICY, config, sink=collector.add, session_updates=False, shop_stats=shops)
    invalid: Counter[str] = Counter()
    for line in raw:
        ev = decode(line)
        if type(ev) is Invalid:
            reason = ev.reason if line.strip() else "empty_line"
            invalid[reason] += 1
            engine.count_invalid(named_shop(line), reason)
            continue
        engine.apply(ev)
    engine.finish(parse_time(until) if until else None)
    report = collector.report(engine_stats(engine, len(raw), invalid, None), POLICY)
    return report, {s: engine.shop_stats(s) for s in shops}, engine.unnamed_invalid


def input_lines(events: list[dict]) -> list[bytes]:
    bad = [b"not json at all", orjson.dumps({"schema": "chat.message/v1", "shop_id": "s1", "event_id": "bad-1"}),
           orjson.dumps({"schema": "chat.message/v1", "shop_id": "s2", "event_id": "bad-2"})]
    raw = lines(events)
    return raw[:3] + bad + raw[3:]


@pytest.fixture(scope="module")
def counted():
    return run_counted(input_lines(other_shop_events() + week_events()), ["s1"])


@pytest.fixture(scope="module")
def report(counted):
    return counted[0]


def page_of(counted, zone: str = "UTC") -> str:
    report, counts, unnamed = counted
    return render_appeal(report, "s1", WEEK, POLICY, counts=counts["s1"], zone=zone, unnamed_invalid=unnamed)


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


def lookup(counted, path: str):
    """A data-field path (``assessment.rate``, ``stats.read``, ``shop.invalid_by_reason.x``) in what
    the page was made of: the JSON report, the shop's counters, the week and zone."""
    report, counts, unnamed = counted
    doc = orjson.loads(to_json(report))
    head, *rest = path.split(".")
    if head == "assessment":
        node = next(a for a in doc["assessments"] if a["shop_id"] == "s1" and a["week_start"] == WEEK)
    elif head == "stats":
        node = doc["stats"]
    elif head == "shop":
        node = counts["s1"]
    else:
        return {"shop_id": "s1", "week_start": WEEK, "unnamed_invalid": unnamed}[head]
    for part in rest:
        node = node[part]
    return node


TIME_FIELDS = ("opened_at", "first_reply_at", "closed_at", "decided_at")


def test_the_week_has_what_the_page_must_show(report) -> None:
    a = next(a for a in report.assessments if a["week_start"] == WEEK and a["shop_id"] == "s1")
    assert a["outcome"] != "not_assessed" and a["status"] == "final"
    assert a["late"] is True  # the late session changed an assessed week (R6.4)
    sessions = {s["session_id"]: s for s in report.sessions if s["shop_id"] == "s1"}
    assert sessions["c5#1"]["excluded"] == "vacation"
    assert sessions["c8#1"]["late"] is True
    assert sessions["c6#1"]["close_reason"] == "closed_by_seller"
    assert sessions["c3#1"]["close_reason"] == "auto_reply_resolved"
    assert report.stats["late"] == 2


def test_every_number_on_the_page_equals_the_json_report(counted) -> None:
    report = counted[0]
    html = page_of(counted)
    page = parse(html)
    doc = orjson.loads(to_json(report))
    sessions = {s["session_id"]: s for s in doc["sessions"] if s["shop_id"] == "s1"}
    a = lookup(counted, "assessment")
    checked = 0
    for cell in page.cells:
        if cell["field"] in ("zone", "week.start", "week.end"):
            continue  # the week's frame, checked in the time zone test
        if cell["session"] is not None:  # a session row: the field of that session
            want = sessions[cell["session"]][cell["field"]]
        else:
            want = lookup(counted, cell["field"])
        if cell["value"] is not None:
            assert orjson.loads(cell["value"]) == want, cell
        shown = cell["text"].strip()
        if cell["field"] == "assessment.rate":
            assert shown == rate_text(a)
        elif cell["field"] in ("assessment.outcome", "late", "close_reason", "replied_within_24h", "excluded"):
            assert shown  # words (badge, "LATE", "seller timeout", "pending", ...), checked via data-value
        elif cell["field"] in TIME_FIELDS and want is not None:
            assert shown.startswith(want), cell  # UTC, then the local time (test below)
        else:
            assert shown == value_text(want), cell
        checked += 1
    assert checked > 80

    for field in ("sessions", "replied_24h", "rate", "buyer_messages", "outcome", "violation_points", "status",
                  "pending", "late", "policy_id", "policy_version"):
        assert any(c["field"] == f"assessment.{field}" for c in page.cells), field
    assert rate_text(a) in html

    # the tables list exactly the week's counted, excluded and late sessions, in report order
    week = [s for s in doc["sessions"] if s["shop_id"] == "s1" and s["week_start"] == WEEK]
    assert page.rows["sessions"] == [s["session_id"] for s in week if s["excluded"] is None]
    assert page.rows["excluded"] == [s["session_id"] for s in week if s["excluded"] is not None] == ["c5#1"]
    assert page.rows["late"] == [s["session_id"] for s in week if s["late"]] == ["c8#1", "c11#1"]
    assert len(page.rows["sessions"]) == a["sessions"]
    for sid in page.rows["sessions"]:
        for field in ("opened_at", "first_reply_at", "closed_at", "close_reason", "replied_within_24h"):
            assert any(c["session"] == sid and c["field"] == field for c in page.cells), (sid, field)


_LOCAL = re.compile(r"(?:\d{4}-)?\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d(?::\d\d)?")
_CITATION = re.compile(r"\bR\d+(?:\.\d+)*")


def test_numbers_in_the_text_come_from_the_report_or_the_policy(counted) -> None:
    report, counts, unnamed = counted
    html = page_of(counted)
    page = parse(html)
    doc_text = to_json(report).decode() + orjson.dumps(counts["s1"]).decode() + f" {unnamed} "
    a = lookup(counted, "assessment")
    derived = set(re.findall(r"\d+(?:\.\d+)?", rate_text(a)))
    rows = max(len(r) for r in page.rows.values())
    for section, text in page.text:
        if section in ("rules", "cited"):
            continue  # rule numbers are the policy's (72 h, 24 h, 90 %, ...), checked below
        # local times are the report's UTC times converted (checked in the time zone test);
        # citations are rule numbers and titles (checked in the citation test)
        text = _CITATION.sub("", _LOCAL.sub("", text))
        for title in RULE_TITLES.values():
            text = text.replace(title, "")
        for number in re.findall(r"\d+(?:\.\d+)?", text):
            assert number in doc_text or number in derived or int(float(number)) <= rows, (section, number, text)
    rules = "".join(t for s, t in page.text if s == "rules")
    for phrase in ("72 h", "6 h", "10 min", "24 h", "90 %", "85 %", f"at least {POLICY.min_buyer_messages}",
                   f"{POLICY.violation_points} violation point"):
        assert phrase in rules, phrase
    assert f"Rate = {a['replied_24h']} / {a['sessions']} = {rate_text(a)}" in rules


def test_the_page_is_self_contained_and_escaped(counted) -> None:
    html = page_of(counted)
    lowered = html.lower()
    for bad in ("http://", "https://", "src=", "<script", "@import", "url(", "<link"):
        assert bad not in lowered, bad
    assert "@media print" in html and "<style>" in html
    page = parse(html)
    assert not [a for a in page.attrs_seen if a[1] in ("src", "href")]

    events = ([msg("<b>x</b>&", "buyer", at(0, 1), shop="s<1>"), msg("<b>x</b>&", "buyer", at(0, 2), shop="s<1>")]
              + [msg(f"k{i}", "buyer", at(1, i), shop="s<1>") for i in range(5)])
    hostile, counts, _ = run_counted(lines(events), ["s<1>"])
    out = render_appeal(hostile, "s<1>", WEEK, POLICY, counts=counts["s<1>"], zone="UTC")
    assert "<b>x</b>" not in out and "s<1>" not in out
    assert "&lt;b&gt;x&lt;/b&gt;&amp;#1" in out


def test_a_week_missing_from_the_report_is_refused(counted) -> None:
    report, counts, _ = counted
    with pytest.raises(ValueError, match="no assessment"):
        render_appeal(report, "s1", "2026-11-09", POLICY, counts=counts["s1"], zone="UTC")
    with pytest.raises(ValueError, match="computed under"):
        render_appeal(report, "s1", WEEK, load_policy("tiktok_shop@2025-sea"), counts=counts["s1"], zone="UTC")


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


# ---------------------------------------------------------------------- issue #13, item by item


def test_the_counters_box_shows_the_shops_own_counts_not_the_whole_inputs(counted) -> None:
    """Issue #13: the "Input and processing counters" box showed the whole input's totals under
    the shop's name. It shows s1's own: its records (the invalid one naming s1 included), not s2's
    or those naming no shop; the whole input's totals appear once, labelled as such."""
    report, counts, unnamed = counted
    page = parse(page_of(counted))
    box = {c["field"]: orjson.loads(c["value"]) for c in page.cells if c["section"] == "stats"}
    s1 = counts["s1"]
    s1_lines = [e for e in week_events()]
    assert box["shop.read"] == s1["read"] == len(s1_lines) + 1  # its events and its invalid record
    assert box["shop.invalid"] == 1 and box["shop.invalid_by_reason.missing_field:conversation_id"] == 1
    assert box["shop.valid"] == len(s1_lines) and box["shop.duplicate"] == 0 and box["shop.outreach"] == 0
    assert box["shop.late"] == 2  # late-1 and late-2 (R6.4)
    assert box["shop.sessions_opened"] == len({e["conversation_id"] for e in s1_lines if "conversation_id" in e})
    # the whole input: more records, s2's duplicate and outreach, the not-JSON record
    stats = report.stats
    assert stats["read"] > box["shop.read"] and stats["duplicate"] == 1 and stats["outreach"] == 1
    assert box["stats.read"] == stats["read"] and box["stats.invalid"] == stats["invalid"] == 3
    assert box["unnamed_invalid"] == unnamed == 1
    for field in ("read", "valid", "duplicate", "invalid", "late", "outreach", "sessions_opened"):
        assert f"stats.{field}" not in box or field in ("read", "invalid")  # whole input only in its own line
        assert f"shop.{field}" in box
    closed = {k.split(".")[-1]: v for k, v in box.items() if k.startswith("shop.sessions_closed.")}
    assert closed == s1["sessions_closed"] and closed["closed_by_seller"] == 1


def test_shop_counts_add_up_to_the_engines_own_stats_and_change_no_result() -> None:
    """The engine counts each shop where it counts (``Engine(shop_stats=...)``, issue #13): over
    the sample week plus duplicates, late events and a rejected future step, with every shop
    chosen, the shops' counts add up to the engine's stats, each shop's read = valid + duplicate +
    invalid, and the report is byte for byte the audit's. A change in where the core counts
    breaks the sums here."""
    raw = (ROOT / "samples" / "week.jsonl").read_bytes().splitlines()
    now = orjson.loads(raw[1999])["sent_at"]  # the stream's time where the extra records go in
    extra = [msg("c-dup", "buyer", now, shop="shop-01", eid="dup-a"),
             msg("c-dup", "buyer", now, shop="shop-01", eid="dup-a"),  # while the first is buffered
             msg("c-far", "buyer", "2027-01-01T00:00:00Z", shop="shop-02", eid="future-1"),  # a step, rejected
             msg("c-lt", "buyer", "2026-11-02T10:00:00Z", shop="shop-03", eid="late-x")]  # late (R6.4)
    raw = raw[:2000] + lines(extra[:3]) + raw[2000:] + lines(extra[:1] + extra[3:])  # dup-a again, after release
    shops = sorted({orjson.loads(x)["shop_id"] for x in raw if named_shop(x)})
    until = "2026-11-17T00:10:00Z"
    report, counts, unnamed = run_counted(raw, shops, until)
    assert to_json(report) == to_json(run_audit(raw, POLICY, EngineConfig(), parse_time(until)))
    stats = report.stats
    assert stats["duplicate"] >= 2 and stats["late"] >= 1 and stats["invalid_by_reason"].get("future_time") == 1
    for key in ("read", "valid", "duplicate", "invalid", "late", "outreach", "sessions_opened"):
        total = sum(c[key] for c in counts.values()) + (unnamed if key in ("read", "invalid") else 0)
        assert total == stats[key], key
    for key in set(stats["sessions_closed"]) | {r for c in counts.values() for r in c["sessions_closed"]}:
        assert sum(c["sessions_closed"].get(key, 0) for c in counts.values()) == stats["sessions_closed"][key], key
    reasons: Counter[str] = Counter({"not_json": unnamed}) if unnamed else Counter()
    for c in counts.values():
        reasons.update(c["invalid_by_reason"])
        assert c["read"] == c["valid"] + c["duplicate"] + c["invalid"]
    assert reasons == Counter(stats["invalid_by_reason"])


def test_the_page_names_the_time_zone_and_shows_local_times_beside_utc() -> None:
    """Issue #13: the page names the shop's time zone and shows each time in UTC and local time."""
    tz = "Asia/Jakarta"
    events = [shop_event("timezone", "2026-10-31T00:00:00Z", shop="j1", tz=tz)]
    events += [msg(f"j{i}", "buyer", f"2026-11-0{2 + i}T0{i}:30:00Z", shop="j1") for i in range(6)]
    events += [msg("j0", "seller", "2026-11-02T01:00:00Z", shop="j1"),
               msg("j9", "buyer", "2026-11-01T16:59:00Z", shop="j1"),  # Sunday 23:59 local: the week before
               msg("n1", "buyer", "2026-11-10T00:00:00Z", shop="j1")]
    report, counts, _ = run_counted(lines(events), ["j1"], "2026-11-10T12:00:00Z")
    html = render_appeal(report, "j1", WEEK, POLICY, counts=counts["j1"], zone=tz)
    page = parse(html)
    head = "".join(t for s, t in page.text if s == "")
    assert tz in head and "UTC+07:00" in head
    frame = {c["field"]: c["text"] for c in page.cells if c["field"] in ("zone", "week.start", "week.end")}
    assert frame == {"zone": tz, "week.start": "2026-11-01T17:00:00Z", "week.end": "2026-11-08T17:00:00Z"}
    jakarta = ZoneInfo(tz)
    seen = 0
    for cell in page.cells:
        if cell["field"] in TIME_FIELDS and cell["value"] != "null":
            utc = orjson.loads(cell["value"])
            local = datetime.fromisoformat(utc.replace("Z", "+00:00")).astimezone(jakarta)
            assert cell["text"] == utc + local.strftime("%m-%d %H:%M:%S") + " +07", cell
            seen += 1
    assert seen >= 7
    assert page.rows["sessions"][0] == "j0#1"  # the week is Jakarta's: j9 (Sunday local) is not in it


def test_rates_are_percentages_never_rounded_up_to_a_threshold(counted) -> None:
    """Issue #13: rates show as percentages, not 0.6987951807228916; rounded down, so a warning
    is never shown at 90 % (R5.5)."""
    assert percent_text(58, 83) == "69.87 %"  # 69.879...: rounded down
    assert percent_text(9, 10) == "90 %" and percent_text(17, 20) == "85 %"
    assert percent_text(17999, 20000) == "89.99 %"  # 89.995 %: a warning, never "90.00 %"
    assert percent_text(1, 3) == "33.33 %" and percent_text(0, 4) == "0 %" and percent_text(0, 0) == "—"
    page = parse(page_of(counted))
    a = lookup(counted, "assessment")
    shown = [c["text"].strip() for c in page.cells if c["field"] == "assessment.rate"]
    assert shown and all(t == percent_text(a["replied_24h"], a["sessions"]) and t.endswith(" %") for t in shown)
    visible = "".join(t for _, t in page.text)
    assert repr(a["rate"]) not in visible and not re.search(r"\b0\.\d{3,}", visible)


def rules_headings() -> dict[str, str]:
    """Section number -> title of every R heading of docs/rules.md (``## R5. Weekly assessment``)."""
    out = {}
    for line in (ROOT / "docs" / "rules.md").read_text(encoding="utf-8").splitlines():
        m = re.match(r"#{2,4} (R\d+(?:\.\d+)*)\.? (.+)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def test_rules_are_cited_by_section_number_and_title_of_the_rules_document(counted) -> None:
    """Issue #13: cite the product's own rules document, docs/rules.md, by section number and
    title; nothing the seller does not have (the project's working notes, the seeds)."""
    headings = rules_headings()
    assert RULE_TITLES and all(headings.get(n) == t for n, t in RULE_TITLES.items()), {
        n: (t, headings.get(n)) for n, t in RULE_TITLES.items() if headings.get(n) != t}
    html = page_of(counted)
    page = parse(html)
    cited_list = "".join(t for s, t in page.text if s == "cited")
    assert "docs/rules.md" in cited_list and "The rules chatsla computes" in cited_list
    text = "".join(t for s, t in page.text if s != "cited")
    cited = set(_CITATION.findall(text))
    assert {"R2", "R3", "R4", "R5", "R5.5", "R6.4"} <= cited
    for number in cited:
        assert number in RULE_TITLES, number
        assert f"{number} “{RULE_TITLES[number]}”" in text, number  # number and title together
        assert number in cited_list and RULE_TITLES[number] in cited_list
    # the only document the page names is the product's rules document; no working notes, no seeds
    assert set(re.findall(r"[\w./-]+\.md\b", html)) == {"docs/rules.md"}
    assert "seed" not in html.lower()
