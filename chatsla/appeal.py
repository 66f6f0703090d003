"""The appeal pack: one shop's week as a self-contained, printable HTML page (seed 000 §5: appeals).

A seller who disputes a weekly assessment needs the evidence on one page: the assessment, the
rule it applied with the policy's own numbers, every counted session with its times, the sessions
left out and why, the late data and the shop's own counters. :func:`render_appeal` is a pure
function of a :class:`~chatsla.audit.Report` (what ``chatsla replay``/``chatsla audit --format
json`` print), the policy named in it, the shop's own counters and its time zone: every measured
number on the page is a field of the report or of those counters (each data cell carries it
verbatim in ``data-value``), the rule numbers come from the policy.

What the seller reads (issue #13):

* **The shop's own counts.** The report's ``stats`` count the whole replayed input, every shop
  of it; the counters box shows the shop's (``counts``, from
  ``chatsla.core.engine.Engine(shop_stats=...)``), and the whole input's totals only as such, in
  one line below it.
* **Local times beside UTC.** The page names the shop's time zone (the IANA name and its UTC
  offset) and shows every instant in UTC, as the report has it, with the shop's local time
  beside it: the week is the shop's local Monday to Monday (R5.1).
* **Rates as percentages**, with two decimals rounded *down* (:func:`percent_text`), from the
  exact counts: a rate is never shown at a threshold it does not reach (89.996 % is 89.99 %, not
  90.00 %, and is a warning). The report's exact float stays in ``data-value``.
* **Rules cited by section number and title** of chatsla's rules document (``docs/rules.md``,
  "The rules chatsla computes", shipped with chatsla): :data:`RULE_TITLES` lists the sections
  the page cites and ``tests/test_appeal.py`` checks them against the document's headings.

The page has inline CSS only (no script, no font, image or stylesheet fetched), prints on A4 with
repeated table headers, and every value is HTML-escaped.
"""

from __future__ import annotations

from fractions import Fraction
from html import escape

import orjson

from chatsla.audit import Report
from chatsla.core.calendar import week_bounds_of, zone as tz_zone
from chatsla.core.policy import Policy
from chatsla.core.timefmt import DAY, HOUR, MINUTE, SECOND, format_time, parse_time, to_datetime

RULES_DOCUMENT = "docs/rules.md"
RULES_TITLE = "The rules chatsla computes"
# The sections of docs/rules.md the page cites, with their headings' titles (checked by the tests).
RULE_TITLES = {
    "R2": "Sessions",
    "R2.4": "Closures",
    "R3": "The 24-hour reply",
    "R4": "Vacation mode",
    "R5": "Weekly assessment",
    "R5.1": "The week",
    "R5.4": "Small shops are not assessed",
    "R5.5": "The outcome",
    "R5.6": "Provisional and final",
    "R6.2": "The watermark",
    "R6.4": "Late events",
    "R7": "Policies",
}


def cite(number: str) -> str:
    """A rule as the page cites it: its number and its title in docs/rules.md."""
    return f"{number} “{RULE_TITLES[number]}”"

_CSS = """
:root { --ink: #1d2329; --muted: #5b6670; --line: #d5dbe1; --band: #f4f6f8;
        --ok: #17663a; --warning: #8a5a00; --violation: #a61b1b; --na: #5b6670; }
* { box-sizing: border-box; }
html { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink);
       font-size: 14px; line-height: 1.45; background: #fff; }
body { margin: 0 auto; max-width: 1100px; padding: 28px 32px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 2px solid var(--ink); }
h3 { font-size: 14px; margin: 16px 0 6px; }
p { margin: 6px 0; }
.sub { color: var(--muted); margin: 0 0 16px; }
.muted { color: var(--muted); }
.grid { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0 4px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; min-width: 150px; flex: 1 1 150px; }
.card .label { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.card .big { font-size: 22px; font-weight: 650; }
.badge { display: inline-block; padding: 1px 10px; border-radius: 999px; font-weight: 650; color: #fff; }
.outcome-ok { background: var(--ok); } .outcome-warning { background: var(--warning); }
.outcome-violation { background: var(--violation); } .outcome-not_assessed { background: var(--na); }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; font-size: 12.5px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--band); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv { width: auto; min-width: 50%; }
table.kv th { width: 260px; background: none; font-weight: 500; color: var(--muted); }
tr.missed td { background: #fdf1f1; }
tr.late td:first-child { border-left: 4px solid var(--warning); }
.flag { display: inline-block; font-size: 11px; font-weight: 700; padding: 0 6px; border-radius: 4px;
        background: #fff3d6; color: var(--warning); border: 1px solid #f0d28a; }
.rule { border-left: 4px solid var(--line); padding: 4px 12px; margin: 8px 0; background: var(--band); }
.applied { font-weight: 600; }
code, .mono { font-family: "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12px; }
td.mono { white-space: nowrap; font-size: 11px; }
table.sessions th, table.sessions td { padding: 4px 6px; }
td.nowrap { white-space: nowrap; }
.local { display: block; color: var(--muted); }
.cited dt { font-weight: 600; float: left; clear: left; width: 60px; }
.cited dd { margin: 0 0 2px 60px; }
footer { margin-top: 32px; font-size: 12px; color: var(--muted); border-top: 1px solid var(--line); padding-top: 8px; }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  html { font-size: 10.5pt; }
  body { max-width: none; padding: 0; }
  h2 { break-after: avoid; page-break-after: avoid; }
  table { font-size: 8.5pt; }
  table.sessions { font-size: 7pt; }
  td.mono { font-size: 7pt; }
  th, td { padding: 2px 4px; }
  thead { display: table-header-group; }
  tr, .card, .rule { break-inside: avoid; page-break-inside: avoid; }
  .badge, tr.missed td, th, .flag, .rule { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""

_OUTCOME_TEXT = {"ok": "OK", "warning": "Warning", "violation": "Violation", "not_assessed": "Not assessed"}
_CLOSE_TEXT = {
    "seller_timeout": "seller timeout",
    "buyer_timeout": "buyer timeout",
    "auto_reply_resolved": "auto-reply resolved",
    "closed_by_seller": "closed by seller",
    "closed_by_platform": "closed by platform",
}


def _dur(us: int) -> str:
    """A policy duration as people write it: 72 h, 10 min, 1 d 6 h."""
    for unit, name in ((DAY, "d"), (HOUR, "h"), (MINUTE, "min"), (SECOND, "s")):
        if us % unit == 0 and (unit != DAY or us // DAY > 3):
            return f"{us // unit} {name}"
    return f"{us / SECOND:g} s"


def _pct(f: Fraction) -> str:
    v = f * 100
    return f"{v.numerator // v.denominator} %" if v.denominator == 1 else f"{float(v):.2f} %"


def percent_text(part: int, whole: int) -> str:
    """``part / whole`` as a percentage with two decimals, rounded down (exact counts, no float).

    Rounded down so that a rate is never shown at or above a threshold it misses (R5.5): a
    whole percentage is shown without decimals (``90 %``), any other as ``69.87 %``.
    """
    if whole == 0:
        return "—"
    v = Fraction(part * 100, whole)
    if v.denominator == 1:
        return f"{v.numerator} %"
    hundredths = (v * 100).numerator // (v * 100).denominator
    return f"{hundredths // 100}.{hundredths % 100:02d} %"


def rate_text(a: dict) -> str:
    """An assessment's rate as the page shows it: a percentage of its exact counts (R5.3)."""
    return "—" if a["rate"] is None else percent_text(a["replied_24h"], a["sessions"])


def value_text(value: object) -> str:
    """How any other report value is shown: verbatim; booleans as yes / no; null as a dash."""
    if value is None:
        return "—"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def _cell(field: str, value: object, text: str | None = None, cls: str = "", tag: str = "td") -> str:
    """A data cell: the report's value verbatim in ``data-value``, shown as ``text``."""
    shown = value_text(value) if text is None else text
    attrs = f' class="{cls}"' if cls else ""
    return (f'<{tag}{attrs} data-field="{escape(field)}" data-value="{escape(orjson.dumps(value).decode())}">'
            f"{escape(shown)}</{tag}>")


def _kv(rows: list[tuple[str, str, object, str | None]]) -> str:
    out = ['<table class="kv"><tbody>']
    for label, field, value, text in rows:
        out.append(f"<tr><th>{escape(label)}</th>{_cell(field, value, text, 'num' if isinstance(value, int) and not isinstance(value, bool) else '')}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def utc_offset_text(us: int, zone_name: str) -> str:
    """The zone's offset from UTC at instant ``us``: ``UTC+07:00``."""
    off = to_datetime(us).astimezone(tz_zone(zone_name)).strftime("%z")
    return f"UTC{off[:3]}:{off[3:]}"


def local_text(us: int, zone_name: str) -> str:
    """Instant ``us`` in the shop's local time, with its offset: ``2026-11-03 08:00:00 +07:00``."""
    d = to_datetime(us).astimezone(tz_zone(zone_name))
    off = d.strftime("%z")
    return d.strftime("%Y-%m-%d %H:%M:%S") + f" {off[:3]}:{off[3:]}"


def local_short(us: int, zone_name: str) -> str:
    """Instant ``us`` in local time for a table cell: ``11-03 08:00:00 +07`` (the UTC value above
    it has the year; a shorter line keeps the session tables within a printed page's width)."""
    d = to_datetime(us).astimezone(tz_zone(zone_name))
    off = d.strftime("%z")
    return d.strftime("%m-%d %H:%M:%S") + f" {off[:3]}" + (f":{off[3:]}" if off[3:] != "00" else "")


def _time_cell(field: str, value: str | None, zone_name: str) -> str:
    """A time cell: the report's UTC value, and the shop's local time below it."""
    if value is None:
        return _cell(field, value, cls="mono")
    local = local_short(parse_time(value), zone_name)
    return (f'<td class="mono" data-field="{escape(field)}" data-value="{escape(orjson.dumps(value).decode())}">'
            f'{escape(value)}<span class="local" data-local="{escape(local)}">{escape(local)}</span></td>')


def _replied_text(s: dict) -> str:
    if s["replied_within_24h"] is None:
        return "pending"
    return "yes" if s["replied_within_24h"] else "no"


def _applied(a: dict, policy: Policy) -> str:
    """The R5 rule applied to this assessment's numbers, ending in the report's outcome."""
    msgs, minimum = a["buyer_messages"], policy.min_buyer_messages
    if a["outcome"] == "not_assessed":
        if msgs < minimum:
            return f"{msgs} buyer messages < {minimum}: the week is not assessed ({cite('R5.4')})."
        return "No counted session: there is no rate to judge, the week is not assessed."
    sessions, replied = a["sessions"], a["replied_24h"]
    head = (f"{msgs} buyer messages ≥ {minimum}, so the week is assessed. "
            f"Rate = {replied} / {sessions} = {rate_text(a)}")
    warn, viol = _pct(policy.warning_below), _pct(policy.violation_below)
    if a["outcome"] == "violation":
        return f"{head} < {viol}: violation, {a['violation_points']} violation point(s) ({cite('R5.5')})."
    if a["outcome"] == "warning":
        return f"{head}, at least {viol} and below {warn}: warning, no violation point ({cite('R5.5')})."
    return f"{head} ≥ {warn}: ok ({cite('R5.5')})."


def render_appeal(report: Report, shop_id: str, week_start: str, policy: Policy, *, counts: dict, zone: str,
                  bounds: tuple[int, int] | None = None, unnamed_invalid: int = 0) -> str:
    """The appeal pack of ``shop_id``'s week starting on local date ``week_start`` (HTML text).

    ``report`` must hold that week's assessment and its sessions (a replay or audit covering the
    whole week); ``policy`` is the one the report names. ``counts`` are the shop's own counters
    (keys as the report's ``stats``: :meth:`chatsla.core.runner.Runner.shop_stats`),
    ``zone`` its IANA time zone, ``bounds`` the week's start and end (µs) as the engine filed it
    (default: the week in ``zone``), ``unnamed_invalid`` the invalid records of the input that
    name no shop. Raises ``ValueError`` when the report lacks the week or names another policy.
    """
    found = [a for a in report.assessments if a["shop_id"] == shop_id and a["week_start"] == week_start]
    if not found:
        raise ValueError(f"the report has no assessment of shop {shop_id!r} for the week of {week_start}")
    a = found[0]
    if (a["policy_id"], a["policy_version"]) != (policy.id, policy.version):
        raise ValueError(f"the report was computed under {a['policy_id']}@{a['policy_version']}, "
                         f"not {policy.ref}")
    start, end = bounds if bounds is not None else week_bounds_of(week_start, zone)
    week_sessions = [s for s in report.sessions if s["shop_id"] == shop_id and s["week_start"] == week_start]
    counted = [s for s in week_sessions if s["excluded"] is None]
    excluded = [s for s in week_sessions if s["excluded"] is not None]
    late_sessions = [s for s in week_sessions if s["late"]]
    stats = report.stats
    e = escape
    title = f"Appeal pack: {shop_id}, week of {week_start}"
    watermark = stats.get("watermark")
    wm_local = f" ({local_text(parse_time(watermark), zone)} local)" if watermark else ""
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        "<header>",
        "<h1>24-hour chat reply rate: appeal pack</h1>",
        f'<p class="sub">Shop <b data-field="shop_id">{e(shop_id)}</b> · time zone '
        f'<b data-field="zone">{e(zone)}</b> ({e(utc_offset_text(start, zone))} at the week\'s start) · week '
        f'<b data-field="week_start">{e(week_start)}</b>: Monday 00:00 to Monday 00:00 local '
        f'({e(cite("R5.1"))}), that is <span class="mono" data-field="week.start">{e(format_time(start))}</span> '
        f'to <span class="mono" data-field="week.end">{e(format_time(end))}</span> · policy '
        f'<b>{e(a["policy_id"])}@{e(a["policy_version"])}</b> · data up to the watermark '
        f'({e(cite("R6.2"))}) <span class="mono" data-field="stats.watermark">{e(value_text(watermark))}</span>{e(wm_local)}</p>',
        '<p class="muted">Times are shown in UTC, as the platform\'s records give them, with the shop\'s '
        f"local time ({e(zone)}) below each.</p>",
        "</header>",
    ]

    # ---- assessment
    outcome = a["outcome"]
    shown_rate = rate_text(a)
    out.append('<section id="assessment"><h2>Assessment</h2><div class="grid">')
    out.append('<div class="card"><div class="label">24 h reply rate</div>'
               f'<div class="big">{_cell("assessment.rate", a["rate"], shown_rate, tag="span")}</div></div>')
    out.append('<div class="card"><div class="label">Outcome</div><div class="big">'
               f'<span class="badge outcome-{e(outcome)}" data-field="assessment.outcome" '
               f'data-value="{e(orjson.dumps(outcome).decode())}">{e(_OUTCOME_TEXT.get(outcome, outcome))}</span>'
               "</div></div>")
    out.append('<div class="card"><div class="label">Violation points</div>'
               f'<div class="big">{_cell("assessment.violation_points", a["violation_points"], tag="span")}</div></div>')
    out.append('<div class="card"><div class="label">Status</div>'
               f'<div class="big">{_cell("assessment.status", a["status"], tag="span")}</div></div>')
    out.append("</div>")
    out.append(_kv([
        ("Counted sessions", "assessment.sessions", a["sessions"], None),
        ("Replied within 24 h", "assessment.replied_24h", a["replied_24h"], None),
        ("Rate (replied / counted)", "assessment.rate", a["rate"], shown_rate),
        (f"Buyer messages (volume; none in vacation mode, {cite('R4')})", "assessment.buyer_messages",
         a["buyer_messages"], None),
        ("Sessions still pending", "assessment.pending", a["pending"], None),
        (f"Changed by late data ({cite('R6.4')})", "assessment.late", a["late"], None),
        ("Policy id", "assessment.policy_id", a["policy_id"], None),
        ("Policy version", "assessment.policy_version", a["policy_version"], None),
    ]))
    if a["status"] == "provisional":
        out.append('<p class="muted">Provisional: some sessions of the week were still undecided at the '
                   f"watermark; the assessment becomes final once every session is decided ({e(cite('R5.6'))}).</p>")
    out.append("</section>")

    # ---- the rules, with the policy's numbers
    win, auto = _dur(policy.reply_window), _dur(policy.auto_reply_timeout)
    warn, viol = _pct(policy.warning_below), _pct(policy.violation_below)
    out.append(f'<section id="rules"><h2>Rules applied ({e(policy.ref)})</h2>')
    out.append(
        f'<div class="rule"><b>{e(cite("R2"))}.</b> A buyer message opens a session when none is open. The '
        f"platform closes it ({e(cite('R2.4'))}) when the seller has not replied "
        f"{e(_dur(policy.seller_timeout))} after the buyer started "
        f"waiting (seller timeout), when the buyer is silent {e(_dur(policy.buyer_timeout))} after a human reply "
        f"(buyer timeout), when the buyer is silent {e(auto)} after an auto-reply (auto-reply resolved), or on an "
        "explicit close by the seller or the platform.</div>")
    out.append(
        f'<div class="rule"><b>{e(cite("R3"))}: replied within {e(win)}.</b> A session counts as replied when '
        f"its first human seller reply is at or before opened&nbsp;+&nbsp;{e(win)}, or when it closed as "
        f"auto-reply resolved (the buyer was silent {e(auto)} after it) and that auto-reply was at or before "
        f"opened&nbsp;+&nbsp;{e(win)}. Every message type counts the same.</div>")
    out.append(
        f'<div class="rule"><b>{e(cite("R4"))}.</b> Sessions opened while the shop is in vacation mode are '
        "excluded from the rate, and buyer messages sent in vacation mode do not count toward the volume.</div>")
    out.append(
        f'<div class="rule"><b>{e(cite("R5"))}.</b> A week runs Monday 00:00 to Monday 00:00 in the shop\'s '
        f"time zone, here {e(zone)}; a session belongs to the week of its opening. rate = replied / counted "
        f"sessions. The week is assessed only with at least {policy.min_buyer_messages} buyer messages. "
        f"rate &lt; {e(viol)}: violation with {policy.violation_points} violation point(s); {e(viol)} ≤ rate "
        f"&lt; {e(warn)}: warning; rate ≥ {e(warn)}: ok.</div>")
    out.append(f'<p class="applied" id="applied">Applied to this week: {e(_applied(a, policy))}</p>')
    out.append("</section>")

    # ---- counted sessions
    replied_rows = sum(1 for s in counted if s["replied_within_24h"] is True)
    out.append(f'<section id="sessions"><h2>Counted sessions ({len(counted)})</h2>')
    out.append(f'<p class="muted">Every session of the week that counts toward the rate, in order of opening: '
               f"{len(counted)} listed, {replied_rows} replied within {e(win)}. Times in UTC, local time "
               f"({e(zone)}) below.</p>")
    out.append(_session_table(counted, win, zone, with_reason=False))
    out.append("</section>")

    # ---- excluded sessions
    out.append(f'<section id="excluded"><h2>Excluded sessions ({len(excluded)})</h2>')
    if excluded:
        out.append(f'<p class="muted">Opened while the shop was in vacation mode ({e(cite("R4"))}): shown for '
                   "completeness, not counted in any rate.</p>")
        out.append(_session_table(excluded, win, zone, with_reason=True))
    else:
        out.append('<p class="muted">None: no session of this week was opened in vacation mode.</p>')
    out.append("</section>")

    # ---- late data
    out.append(f'<section id="late"><h2>Late data ({len(late_sessions)} sessions flagged)</h2>')
    out.append(f"<p>Events that arrived after the watermark had passed them are still applied, and every record "
               f"they change is flagged late ({e(cite('R6.4'))}). Late events of this shop in the replayed input: "
               f'{_cell("shop.late", counts.get("late"), tag="b")}; this week\'s assessment was '
               f'{"" if a["late"] else "not "}changed by late data.</p>')
    if late_sessions:
        out.append(_session_table(late_sessions, win, zone, with_reason=True))
    out.append("</section>")

    # ---- the shop's own counters
    out.append('<section id="stats"><h2>Input and processing counters</h2>')
    out.append(f'<p class="muted">Of shop {e(shop_id)}\'s own records in the replayed input (the lookback '
               "before the week included, which rebuilds open sessions).</p>")
    rows = [
        ("Records read", "shop.read", counts.get("read"), None),
        ("Valid events", "shop.valid", counts.get("valid"), None),
        ("Duplicates (ignored)", "shop.duplicate", counts.get("duplicate"), None),
        ("Invalid records", "shop.invalid", counts.get("invalid"), None),
    ]
    for reason, n in (counts.get("invalid_by_reason") or {}).items():
        rows.append((f"  invalid: {reason}", f"shop.invalid_by_reason.{reason}", n, None))
    rows += [
        ("Late events", "shop.late", counts.get("late"), None),
        ("Outreach messages", "shop.outreach", counts.get("outreach"), None),
        ("Sessions opened", "shop.sessions_opened", counts.get("sessions_opened"), None),
    ]
    for reason, n in (counts.get("sessions_closed") or {}).items():
        rows.append((f"Sessions closed: {_CLOSE_TEXT.get(reason, reason)}", f"shop.sessions_closed.{reason}", n, None))
    rows.append(("Watermark (UTC)", "stats.watermark", watermark, None))
    rows.append(("Policy id", "stats.policy_id", stats.get("policy_id"), None))
    rows.append(("Policy version", "stats.policy_version", stats.get("policy_version"), None))
    out.append(_kv(rows))
    out.append('<p class="muted">The whole replayed input, every shop: '
               f'{_cell("stats.read", stats.get("read"), tag="span")} records, '
               f'{_cell("stats.invalid", stats.get("invalid"), tag="span")} invalid, of which '
               f'{_cell("unnamed_invalid", unnamed_invalid, tag="span")} name no shop (not JSON, or no shop_id) '
               "and so cannot be counted above.</p>")
    out.append("</section>")

    # ---- the rules cited
    cited = "".join(f"<dt>{e(n)}</dt><dd>{e(t)}</dd>" for n, t in RULE_TITLES.items())
    out.append('<section id="cited"><h2>Rules cited</h2>')
    out.append(f"<p>Rule numbers and titles are the sections of chatsla's rules document, “{e(RULES_TITLE)}” "
               f"({e(RULES_DOCUMENT)} in the chatsla distribution), with the numbers of the policy named above "
               f"({e(cite('R7'))}):</p>")
    out.append(f'<dl class="cited">{cited}</dl>')
    out.append("</section>")

    out.append(
        "<footer>Generated by chatsla from the JSON report of this shop's events (chatsla replay / chatsla audit "
        "--format json) and the shop's own counters from the same replay: every figure above is a field of "
        "those, verbatim in each cell's data-value.</footer>")
    out.append("</body></html>\n")
    return "\n".join(out)


def _session_table(sessions: list[dict], win: str, zone_name: str, with_reason: bool) -> str:
    e = escape
    head = ["#", "Session", "Opened", "First reply", "By", "Closed", "Close reason", "Decided",
            f"Replied ≤ {win}"] + (["Excluded"] if with_reason else []) + ["Late"]
    out = ['<table class="sessions"><thead><tr>' + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for i, s in enumerate(sessions, 1):
        cls = []
        if s["replied_within_24h"] is False and s["excluded"] is None:
            cls.append("missed")
        if s["late"]:
            cls.append("late")
        attr = f' class="{" ".join(cls)}"' if cls else ""
        cells = [
            f'<td class="num">{i}</td>',
            _cell("session_id", s["session_id"], cls="mono"),
            _time_cell("opened_at", s["opened_at"], zone_name),
            _time_cell("first_reply_at", s["first_reply_at"], zone_name),
            _cell("first_reply_by", s["first_reply_by"]),
            _time_cell("closed_at", s["closed_at"], zone_name),
            _cell("close_reason", s["close_reason"], _CLOSE_TEXT.get(s["close_reason"], value_text(s["close_reason"])),
                  cls="nowrap"),
            _time_cell("decided_at", s["decided_at"], zone_name),
            _cell("replied_within_24h", s["replied_within_24h"], _replied_text(s)),
        ]
        if with_reason:
            cells.append(_cell("excluded", s["excluded"], f"vacation mode ({cite('R4')})" if s["excluded"] == "vacation"
                               else value_text(s["excluded"])))
        late = s["late"]
        cells.append(f'<td data-field="late" data-value="{e(orjson.dumps(late).decode())}">'
                     + ('<span class="flag">LATE</span>' if late else "no") + "</td>")
        out.append(f'<tr{attr} data-session="{e(s["session_id"])}">' + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)
