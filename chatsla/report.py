"""Rendering a :class:`~chatsla.audit.Report` as JSON (machines), CSV (spreadsheets) or a table
(people). JSON is byte-stable: fixed key order, sorted lists, no run-dependent values (R6.1)."""

from __future__ import annotations

import csv
import io

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from chatsla.audit import Report

FORMATS = ("table", "json", "csv")
SESSION_COLUMNS = ("session_id", "shop_id", "conversation_id", "opened_at", "first_reply_at", "first_reply_by",
                   "closed_at", "close_reason", "replied_within_24h", "decided_at", "excluded", "late",
                   "week_start", "policy_id", "policy_version")
ASSESSMENT_COLUMNS = ("shop_id", "week_start", "sessions", "replied_24h", "rate", "buyer_messages", "outcome",
                      "violation_points", "status", "pending", "late", "policy_id", "policy_version")


def to_json(report: Report) -> bytes:
    return orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2) + b"\n"


def _csv_value(v: object) -> object:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):  # the rate: a share with 4 decimals, not a float's 17 digits
        return f"{v:.4f}"
    if isinstance(v, list):  # an after-sales request's signals (R11.4), in their fixed order
        return " ".join(str(x) for x in v)
    if isinstance(v, dict):  # an after-sales period's maps (R11.5.2): compact JSON, keys as emitted
        return orjson.dumps(v).decode()
    return v


TICKET_COLUMNS = ("ticket_id", "shop_id", "priority", "category", "created_at", "clock_start", "sla", "due_at",
                  "computed_due_at", "due_source", "handled_at", "result", "handled_in_time", "decided_at",
                  "handled_late", "service_time_to_handle", "wall_time_to_handle", "closed_at", "excluded", "late",
                  "day", "week_start", "policy_id", "policy_version")
WAIT_COLUMNS = ("wait_id", "shop_id", "conversation_id", "first_at", "last_at", "buyer_messages", "auto_replied_at",
                "ended_at", "end_reason", "waited", "waited_from_first", "day", "week_start", "late", "policy_id",
                "policy_version")
# R11.5.1's key order. ``signals`` is written space-separated, in R11.4's order.
REQUEST_COLUMNS = ("request_id", "shop_id", "request_type", "reason", "category", "amount", "currency", "decision",
                   "decision_reason", "rule", "rules_ref", "signals", "requested_at", "observed", "agree", "late",
                   "day", "week_start", "policy_id", "policy_version")
# Periods of both models share one list: these columns first, then every other key in the order
# the (sorted) records first show it, so one CSV holds ticket and wait periods (blank where a key
# is the other model's) and its columns depend only on the report.
PERIOD_LEAD = ("policy_id", "policy_version", "shop_id", "period", "start")


def period_columns(periods: list[dict]) -> tuple[str, ...]:
    seen = dict.fromkeys(PERIOD_LEAD)
    for r in periods:
        for k in r:
            seen.setdefault(k)
    return tuple(seen)


def to_csv(report: Report, records: str = "assessments") -> str:
    """One kind of record as CSV (``--records``): assessments, sessions, tickets, waits, requests or periods."""
    if records == "sessions":
        rows, columns = report.sessions, SESSION_COLUMNS
    elif records == "tickets":
        rows, columns = report.tickets, TICKET_COLUMNS
    elif records == "waits":
        rows, columns = report.waits, WAIT_COLUMNS
    elif records == "requests":
        rows, columns = report.requests, REQUEST_COLUMNS
    elif records == "periods":
        rows, columns = report.periods, period_columns(report.periods)
    else:
        rows, columns = report.assessments, ASSESSMENT_COLUMNS
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_csv_value(r.get(c)) for c in columns])
    return buf.getvalue()


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f} %"


_STYLES = {"ok": "green", "warning": "yellow", "violation": "bold red", "not_assessed": "dim"}


def assessments_table(assessments: list[dict], title: str) -> Table:
    t = Table(title=title)
    for col, justify in (("shop", "left"), ("week", "left"), ("sessions", "right"), ("replied", "right"),
                         ("rate", "right"), ("buyer msgs", "right"), ("outcome", "left"), ("points", "right"),
                         ("status", "left")):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    for a in assessments:
        t.add_row(escape(a["shop_id"]), a["week_start"], str(a["sessions"]), str(a["replied_24h"]), _pct(a["rate"]),
                  str(a["buyer_messages"]), f"[{_STYLES[a['outcome']]}]{a['outcome']}[/]",
                  str(a["violation_points"]), a["status"] + (" (late)" if a["late"] else ""))
    return t


def print_assessments(assessments: list[dict], console: Console) -> None:
    """The weekly assessments as read from the live ``chatsla.assessments`` topic."""
    policies = sorted({f"{a['policy_id']}@{a['policy_version']}" for a in assessments})
    console.print(assessments_table(assessments, f"Weekly 24 h reply rate, live ({', '.join(policies)})"))


NO_WEEK_ENDED = "No week has ended by the watermark yet: assessments appear once a week is over."


def print_table(report: Report, console: Console, no_weeks: str = NO_WEEK_ENDED) -> None:
    """The assessments as a table and the counters below it, one list per line (a long line is
    left to the terminal to wrap, not cut by rich in the middle of a list). An input without a
    single valid event says so in one line instead of showing an empty table; ``no_weeks`` is
    the line for a table without assessments (a replay says why in its own words)."""
    s = report.stats
    others = report.tickets or report.waits or report.requests or report.periods
    if s["valid"] == 0:
        console.print(f"No valid event was read ({s['read']} lines, {s['invalid']} invalid): nothing to assess.",
                      soft_wrap=True)
    elif report.sessions or report.assessments or not others:  # (an input of tickets or waits alone: no chat table)
        console.print(assessments_table(report.assessments,
                                        f"Weekly 24 h reply rate ({s['policy_id']}@{s['policy_version']})"))
        if not report.assessments:
            console.print(no_weeks)
    if others:
        print_other_models(report, console)
    lines = [f"events read {s['read']}, valid {s['valid']}, duplicate {s['duplicate']}, late {s['late']}, "
             f"invalid {s['invalid']}"]
    if s["invalid_by_reason"]:
        lines.append("invalid by reason: " + ", ".join(f"{k} {v}" for k, v in s["invalid_by_reason"].items()))
    closed = ", ".join(f"{k} {v}" for k, v in s["sessions_closed"].items()) or "none"
    lines.append(f"sessions opened {s['sessions_opened']}, closed: {closed}")
    lines.append(f"outreach messages {s['outreach']}")
    for kind, m in s.get("models", {}).items():
        lines.append(f"{kind} ({m['policy_id']}@{m['policy_version']}): "
                     + ", ".join(f"{k} {v}" for k, v in m["counters"].items()))
    if s["watermark"] is not None:
        lines.append(f"watermark {s['watermark']}")
    for line in lines:
        console.print(escape(line), soft_wrap=True, highlight=False)


def _seconds(v: float | int | None) -> str:
    if v is None:
        return "-"
    v = int(v)
    return f"{v // 3600}h{v % 3600 // 60:02d}" if v >= 3600 else f"{v // 60}min{v % 60:02d}" if v >= 60 else f"{v}s"


def print_other_models(report: Report, console: Console) -> None:
    """The period records of the service-ticket (R9.6) and IM-wait (R10.5.2) models, one table
    each, and the after-sales tables (:func:`print_aftersale`); the per-ticket, per-wait and
    per-request records are in ``--format json`` and ``--records``."""
    tickets = [p for p in report.periods if "tickets" in p]
    waits = [p for p in report.periods if "answered" in p]
    if tickets or report.tickets:
        t = Table(title=f"Service tickets handled in time, by period ({_refs(tickets or report.tickets)})")
        for col, justify in (("shop", "left"), ("period", "left"), ("start", "left"), ("tickets", "right"),
                             ("in time", "right"), ("missed", "right"), ("pending", "right"), ("rate", "right"),
                             ("excluded", "right"), ("status", "left")):
            t.add_column(col, justify=justify)  # type: ignore[arg-type]
        for p in tickets:
            t.add_row(escape(p["shop_id"]), p["period"], p["start"], str(p["tickets"]), str(p["handled_in_time"]),
                      str(p["missed"]), str(p["pending"]), _pct(p["rate"]), str(p["excluded"]),
                      (p["status"] or "open") + (" (late)" if p["late"] else ""))
        console.print(t)
        if report.tickets:  # (the demo prints live period records alone)
            console.print(f"tickets {len(report.tickets)}", highlight=False)
    if waits or report.waits:
        t = Table(title=f"Buyer waits, by period ({_refs(waits or report.waits)})")
        for col, justify in (("shop", "left"), ("period", "left"), ("start", "left"), ("answered", "right"),
                             ("median wait", "right"), ("longest", "right"), ("closed unanswered", "right"),
                             ("open at end", "right"), ("oldest at end", "right")):
            t.add_column(col, justify=justify)  # type: ignore[arg-type]
        for p in waits:
            median = next((v for k, v in p.items() if k == "waited_p50"), None)
            t.add_row(escape(p["shop_id"]), p["period"], p["start"], str(p["answered"]), _seconds(median),
                      _seconds(p["waited_max"]), str(p["closed_unanswered"]), str(p["open_at_end"]),
                      _seconds(p["oldest_waiting_at_end"]) + (" (late)" if p["late"] else ""))
        console.print(t)
        if report.waits:
            console.print(f"waits {len(report.waits)}, open {sum(1 for w in report.waits if w['ended_at'] is None)}",
                          highlight=False)
    print_aftersale(report, console)


def _counts(m: dict) -> str:
    """A map (currency -> amount) as ``k v, k v`` (``-`` when empty), in the record's key order."""
    return ", ".join(f"{k} {v}" for k, v in m.items()) or "-"


_REVIEW_STYLES = {"ok": "green", "auto_approval_tool_risk": "bold red", "not_assessed": "dim"}


def print_aftersale(report: Report, console: Console) -> None:
    """After-sales requests (R11, issue #14): the ``all`` row of each shop's day and week
    (R11.5.2: requests, auto-approved, manual review, the approved amount per currency, the count
    of each signal of R11.4;
    the per-request-type rows are in ``--format json`` and ``--records periods``), then each
    month's review timeliness (R11.6.3), then one line of totals. Nothing without requests."""
    periods = [p for p in report.periods if "auto_approved" in p and p["request_type"] == "all"]
    months = [p for p in report.periods if "awaiting_seller" in p]
    if not (periods or months or report.requests):
        return
    # (twelve columns: without collapsed padding they would not fit the 120 columns of a pipe)
    t = Table(title=f"After-sales requests, shadow decisions by period ({_refs(periods or report.requests)})",
              caption="signals (R11.4): buyer = repeat_buyer, SKU = repeat_sku, near = near_threshold",
              collapse_padding=True)
    for col, justify in (("shop", "left"), ("period", "left"), ("start", "left"), ("requests", "right"),
                         ("auto", "right"), ("manual", "right"), ("rate", "right"), ("approved", "right"),
                         ("buyer", "right"), ("SKU", "right"), ("near", "right"), ("status", "left")):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    for p in periods:
        sig = p["signals"]
        t.add_row(escape(p["shop_id"]), p["period"], p["start"], str(p["requests"]), str(p["auto_approved"]),
                  str(p["manual_review"]), _pct(p["auto_approval_rate"]), escape(_counts(p["auto_approved_amount"])),
                  *(str(sig.get(k, 0)) for k in ("repeat_buyer", "repeat_sku", "near_threshold")),
                  (p["status"] or "open") + (" (late)" if p["late"] else ""))
    console.print(t)
    if months:
        t = Table(title=f"After-sales review timeliness, by month ({_refs(months)})")
        for col, justify in (("shop", "left"), ("month", "left"), ("group", "left"), ("awaiting seller", "right"),
                             ("in time", "right"), ("pending", "right"), ("rate", "right"), ("outcome", "left"),
                             ("status", "left")):
            t.add_column(col, justify=justify)  # type: ignore[arg-type]
        for p in months:
            t.add_row(escape(p["shop_id"]), p["start"], p["group"], str(p["awaiting_seller"]),
                      str(p["reviewed_in_time"]), str(p["pending"]), _pct(p["review_rate"]),
                      f"[{_REVIEW_STYLES.get(p['outcome'], 'default')}]{p['outcome']}[/]",
                      (p["status"] or "open") + (" (late)" if p["late"] else ""))
        console.print(t)
    rq = report.requests
    approved = sum(1 for r in rq if r["decision"] == "approve")
    agree = sum(1 for r in rq if r["agree"] is True)
    disagree = sum(1 for r in rq if r["agree"] is False)
    console.print(f"requests {len(rq)}, auto-approved {approved}, manual review {len(rq) - approved}, "
                  f"agree {agree}, disagree {disagree}, not yet observed {len(rq) - agree - disagree}",
                  highlight=False)


def _refs(records: list[dict]) -> str:
    return ", ".join(sorted({f"{r['policy_id']}@{r['policy_version']}" for r in records}))
