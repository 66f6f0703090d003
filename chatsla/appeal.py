"""The appeal pack: one shop's week as a self-contained, printable HTML page (seed 000 §5: appeals; docs/rules.md).

A seller who disputes a weekly assessment needs the evidence on one page: the assessment, the
rule it applied with the policy's own numbers, every counted session with its times, the sessions
left out and why, the late data and the run's counters. :func:`render_appeal` is a pure function
of a :class:`~chatsla.audit.Report` (what ``chatsla replay``/``chatsla audit --format json``
print) and the policy named in it: every measured number on the page is a field of that report
(each data cell carries it verbatim in ``data-value``), the rule numbers come from the policy.

The page has inline CSS only (no script, no font, image or stylesheet fetched), prints on A4 with
repeated table headers, and every value is HTML-escaped.
"""

from __future__ import annotations

from fractions import Fraction
from html import escape

import orjson

from chatsla.audit import Report
from chatsla.core.policy import Policy
from chatsla.core.timefmt import DAY, HOUR, MINUTE, SECOND

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


def rate_text(rate: float | None) -> str:
    """How a rate from the report is shown: one decimal of its percentage."""
    return "—" if rate is None else f"{rate * 100:.1f} %"


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


def _replied_text(s: dict) -> str:
    if s["replied_within_24h"] is None:
        return "pending"
    return "yes" if s["replied_within_24h"] else "no"


def _applied(a: dict, policy: Policy) -> str:
    """The R5 rule applied to this assessment's numbers, ending in the report's outcome."""
    msgs, minimum = a["buyer_messages"], policy.min_buyer_messages
    if a["outcome"] == "not_assessed":
        if msgs < minimum:
            return f"{msgs} buyer messages < {minimum}: the week is not assessed (R5.4)."
        return "No counted session: there is no rate to judge, the week is not assessed."
    sessions, replied = a["sessions"], a["replied_24h"]
    shown = rate_text(a["rate"])
    head = (f"{msgs} buyer messages ≥ {minimum}, so the week is assessed. "
            f"Rate = {replied} / {sessions} = {shown}")
    warn, viol = _pct(policy.warning_below), _pct(policy.violation_below)
    if a["outcome"] == "violation":
        return f"{head} < {viol}: violation, {a['violation_points']} violation point(s) (R5.5)."
    if a["outcome"] == "warning":
        return f"{head}, at least {viol} and below {warn}: warning, no violation point (R5.5)."
    return f"{head} ≥ {warn}: ok (R5.5)."


def render_appeal(report: Report, shop_id: str, week_start: str, policy: Policy) -> str:
    """The appeal pack of ``shop_id``'s week starting on local date ``week_start`` (HTML text).

    ``report`` must hold that week's assessment and its sessions (a replay or audit covering the
    whole week); ``policy`` is the one the report names. Raises ``ValueError`` otherwise.
    """
    found = [a for a in report.assessments if a["shop_id"] == shop_id and a["week_start"] == week_start]
    if not found:
        raise ValueError(f"the report has no assessment of shop {shop_id!r} for the week of {week_start}")
    a = found[0]
    if (a["policy_id"], a["policy_version"]) != (policy.id, policy.version):
        raise ValueError(f"the report was computed under {a['policy_id']}@{a['policy_version']}, "
                         f"not {policy.ref}")
    week_sessions = [s for s in report.sessions if s["shop_id"] == shop_id and s["week_start"] == week_start]
    counted = [s for s in week_sessions if s["excluded"] is None]
    excluded = [s for s in week_sessions if s["excluded"] is not None]
    late_sessions = [s for s in week_sessions if s["late"]]
    stats = report.stats
    e = escape
    title = f"Appeal pack: {shop_id}, week of {week_start}"
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        "<header>",
        f"<h1>24-hour chat reply rate: appeal pack</h1>",
        f'<p class="sub">Shop <b data-field="shop_id">{e(shop_id)}</b> · week starting '
        f'<b data-field="week_start">{e(week_start)}</b> (Monday 00:00 in the shop\'s time zone) · policy '
        f'<b>{e(a["policy_id"])}@{e(a["policy_version"])}</b> · data up to the watermark '
        f'<span class="mono" data-field="stats.watermark">{e(value_text(stats.get("watermark")))}</span></p>',
        "</header>",
    ]

    # ---- assessment
    outcome = a["outcome"]
    out.append('<section id="assessment"><h2>Assessment</h2><div class="grid">')
    out.append('<div class="card"><div class="label">24 h reply rate</div>'
               f'<div class="big">{_cell("assessment.rate", a["rate"], rate_text(a["rate"]), tag="span")}</div></div>')
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
        ("Rate (exact, from the report)", "assessment.rate", a["rate"], value_text(a["rate"])),
        ("Buyer messages (volume, R4)", "assessment.buyer_messages", a["buyer_messages"], None),
        ("Sessions still pending", "assessment.pending", a["pending"], None),
        ("Changed by late data (R6.4)", "assessment.late", a["late"], None),
        ("Policy id", "assessment.policy_id", a["policy_id"], None),
        ("Policy version", "assessment.policy_version", a["policy_version"], None),
    ]))
    if a["status"] == "provisional":
        out.append('<p class="muted">Provisional: some sessions of the week were still undecided at the '
                   "watermark; the assessment becomes final once every session is decided (R5.6).</p>")
    out.append("</section>")

    # ---- the rules, with the policy's numbers
    win, auto = _dur(policy.reply_window), _dur(policy.auto_reply_timeout)
    warn, viol = _pct(policy.warning_below), _pct(policy.violation_below)
    out.append(f'<section id="rules"><h2>Rules applied ({e(policy.ref)})</h2>')
    out.append(
        '<div class="rule"><b>Sessions (R2).</b> A buyer message opens a session when none is open. The platform '
        f"closes it when the seller has not replied {e(_dur(policy.seller_timeout))} after the buyer started "
        f"waiting (seller timeout), when the buyer is silent {e(_dur(policy.buyer_timeout))} after a human reply "
        f"(buyer timeout), when the buyer is silent {e(auto)} after an auto-reply (auto-reply resolved), or on an "
        "explicit close by the seller or the platform.</div>")
    out.append(
        f'<div class="rule"><b>Replied within {e(win)} (R3).</b> A session counts as replied when its first human '
        f"seller reply is at or before opened&nbsp;+&nbsp;{e(win)}, or when it closed as auto-reply resolved "
        f"(the buyer was silent {e(auto)} after it) and that auto-reply was at or before opened&nbsp;+&nbsp;{e(win)}. "
        "Every message type counts the same.</div>")
    out.append(
        f'<div class="rule"><b>Vacation (R4).</b> Sessions opened while the shop is in vacation mode are excluded '
        "from the rate, and buyer messages sent in vacation mode do not count toward the volume.</div>")
    out.append(
        f'<div class="rule"><b>Weekly assessment (R5).</b> A week runs Monday 00:00 to Monday 00:00 in the shop\'s '
        f"time zone; a session belongs to the week of its opening. rate = replied / counted sessions. The week is "
        f"assessed only with at least {policy.min_buyer_messages} buyer messages. rate &lt; {e(viol)}: violation "
        f"with {policy.violation_points} violation point(s); {e(viol)} ≤ rate &lt; {e(warn)}: warning; "
        f"rate ≥ {e(warn)}: ok.</div>")
    out.append(f'<p class="applied" id="applied">Applied to this week: {e(_applied(a, policy))}</p>')
    out.append("</section>")

    # ---- counted sessions
    replied_rows = sum(1 for s in counted if s["replied_within_24h"] is True)
    out.append(f'<section id="sessions"><h2>Counted sessions ({len(counted)})</h2>')
    out.append(f'<p class="muted">Every session of the week that counts toward the rate, in order of opening: '
               f"{len(counted)} listed, {replied_rows} replied within {e(win)}. Times are UTC.</p>")
    out.append(_session_table(counted, win, with_reason=False))
    out.append("</section>")

    # ---- excluded sessions
    out.append(f'<section id="excluded"><h2>Excluded sessions ({len(excluded)})</h2>')
    if excluded:
        out.append('<p class="muted">Opened while the shop was in vacation mode (R4): shown for completeness, '
                   "not counted in any rate.</p>")
        out.append(_session_table(excluded, win, with_reason=True))
    else:
        out.append('<p class="muted">None: no session of this week was opened in vacation mode.</p>')
    out.append("</section>")

    # ---- late data
    out.append(f'<section id="late"><h2>Late data ({len(late_sessions)} sessions flagged)</h2>')
    out.append(f'<p>Events that arrived after the watermark had passed them are still applied, and every record '
               f"they change is flagged late (R6.4). Late events in the whole replayed input: "
               f'{_cell("stats.late", stats.get("late"), tag="b")}; this week\'s assessment was '
               f'{"" if a["late"] else "not "}changed by late data.</p>')
    if late_sessions:
        out.append(_session_table(late_sessions, win, with_reason=True))
    out.append("</section>")

    # ---- stats
    out.append('<section id="stats"><h2>Input and processing counters</h2>')
    scope = stats.get("shops")
    out.append('<p class="muted">For the whole replayed input'
               + (f" (shops {e(', '.join(scope))})" if scope else " (every shop)") + ".</p>")
    rows = [
        ("Records read", "stats.read", stats.get("read"), None),
        ("Valid events", "stats.valid", stats.get("valid"), None),
        ("Duplicates (ignored)", "stats.duplicate", stats.get("duplicate"), None),
        ("Invalid records", "stats.invalid", stats.get("invalid"), None),
    ]
    for reason, n in (stats.get("invalid_by_reason") or {}).items():
        rows.append((f"  invalid: {reason}", f"stats.invalid_by_reason.{reason}", n, None))
    rows += [
        ("Late events", "stats.late", stats.get("late"), None),
        ("Outreach messages", "stats.outreach", stats.get("outreach"), None),
        ("Sessions opened", "stats.sessions_opened", stats.get("sessions_opened"), None),
    ]
    for reason, n in (stats.get("sessions_closed") or {}).items():
        rows.append((f"Sessions closed: {_CLOSE_TEXT.get(reason, reason)}", f"stats.sessions_closed.{reason}", n, None))
    rows.append(("Watermark", "stats.watermark", stats.get("watermark"), None))
    rows.append(("Policy id", "stats.policy_id", stats.get("policy_id"), None))
    rows.append(("Policy version", "stats.policy_version", stats.get("policy_version"), None))
    out.append(_kv(rows))
    out.append("</section>")

    out.append(
        "<footer>Generated by chatsla from the JSON report of this shop's events (chatsla replay / chatsla audit "
        "--format json): every figure above is a field of that report, verbatim in each cell's data-value. "
        "Rule numbers (R2-R5) are those of chatsla's rules document, docs/rules.md, under the named policy (R7).</footer>")
    out.append("</body></html>\n")
    return "\n".join(out)


def _session_table(sessions: list[dict], win: str, with_reason: bool) -> str:
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
            _cell("opened_at", s["opened_at"], cls="mono"),
            _cell("first_reply_at", s["first_reply_at"], cls="mono"),
            _cell("first_reply_by", s["first_reply_by"]),
            _cell("closed_at", s["closed_at"], cls="mono"),
            _cell("close_reason", s["close_reason"], _CLOSE_TEXT.get(s["close_reason"], value_text(s["close_reason"])),
                  cls="nowrap"),
            _cell("decided_at", s["decided_at"], cls="mono"),
            _cell("replied_within_24h", s["replied_within_24h"], _replied_text(s)),
        ]
        if with_reason:
            cells.append(_cell("excluded", s["excluded"], "vacation mode (R4)" if s["excluded"] == "vacation"
                               else value_text(s["excluded"])))
        late = s["late"]
        cells.append(f'<td data-field="late" data-value="{e(orjson.dumps(late).decode())}">'
                     + ('<span class="flag">LATE</span>' if late else "no") + "</td>")
        out.append(f'<tr{attr} data-session="{e(s["session_id"])}">' + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)
