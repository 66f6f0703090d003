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
    return v


def to_csv(report: Report, records: str = "assessments") -> str:
    rows, columns = (report.sessions, SESSION_COLUMNS) if records == "sessions" else (
        report.assessments, ASSESSMENT_COLUMNS)
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
    if s["valid"] == 0:
        console.print(f"No valid event was read ({s['read']} lines, {s['invalid']} invalid): nothing to assess.",
                      soft_wrap=True)
    else:
        console.print(assessments_table(report.assessments,
                                        f"Weekly 24 h reply rate ({s['policy_id']}@{s['policy_version']})"))
        if not report.assessments:
            console.print(no_weeks)
    lines = [f"events read {s['read']}, valid {s['valid']}, duplicate {s['duplicate']}, late {s['late']}, "
             f"invalid {s['invalid']}"]
    if s["invalid_by_reason"]:
        lines.append("invalid by reason: " + ", ".join(f"{k} {v}" for k, v in s["invalid_by_reason"].items()))
    closed = ", ".join(f"{k} {v}" for k, v in s["sessions_closed"].items()) or "none"
    lines.append(f"sessions opened {s['sessions_opened']}, closed: {closed}")
    lines.append(f"outreach messages {s['outreach']}")
    if s["watermark"] is not None:
        lines.append(f"watermark {s['watermark']}")
    for line in lines:
        console.print(escape(line), soft_wrap=True, highlight=False)
