"""Replay and verify of the other models' records without Kafka (issue #12: ``replay``,
``export`` and ``verify`` cover tickets, waits and periods; issue #14: and after-sales requests
with their day, week and month records, R11.5, R11.6).

* :func:`chatsla.replay.run.keep_in_period`, the period rule for tickets (by ``created_at``),
  waits (by ``first_at``) and day/week period records (by their start, in the shop's zone), and
  with ``--week`` each shop's own week of the label (module docs of :mod:`chatsla.replay`);
* :class:`chatsla.replay.PeriodCollector` keeps the other models' records as the audit does;
* :func:`chatsla.replay.compare` on tickets, waits and periods: a faithful live pipeline shows
  no difference, a drifted field or a missing record is named, an unsettled record is compared
  on its fixed fields only;
* the replay's reader process carries ticket events (its list codec).
"""

from __future__ import annotations

import copy

from chatsla.audit import Collector, run_audit
from chatsla.core.engine import event_to_list
from chatsla.core.events import TicketEvent
from chatsla.core.policy import policies_for
from chatsla.core.timefmt import parse_time
from chatsla.replay import Period, PeriodCollector, ReplayResult, compare
from chatsla.replay.child import decode_chunk, encode_chunk
from chatsla.replay.run import keep_in_period
from chatsla.replay.verify import PERIOD_KEY, REQUEST_KEY, record_key
from chatsla.simulate import SimConfig, generate
from tests.mixed import mixed_lines

LEAD, *OTHERS = policies_for(())
FROM, TO = parse_time("2026-11-02T00:00:00Z"), parse_time("2026-11-10T00:00:00Z")


def ticket(tid: str, created: str, week: str, shop: str = "dy-1") -> dict:
    return {"ticket_id": tid, "shop_id": shop, "created_at": created, "week_start": week}


def wait(conv: str, first: str, shop: str = "ae-1") -> dict:
    return {"wait_id": f"{conv}#1", "shop_id": shop, "conversation_id": conv, "first_at": first}


def period_rec(kind: str, start: str, shop: str = "ae-1") -> dict:
    return {"shop_id": shop, "period": kind, "start": start, "policy_id": "aliexpress", "policy_version": "seed004"}


def collected(*records: tuple[str, dict]) -> Collector:
    c = Collector()
    for kind, r in records:
        c.add(kind, r)
    return c


def test_a_range_keeps_tickets_and_waits_opened_in_it_and_periods_starting_in_it() -> None:
    """Tickets and waits by their opening instant (as sessions, R9.5, R10.5.1), periods by their
    start in the shop's own zone (as assessments by their week's start, R9.6, R10.5.2)."""
    c = collected(("ticket", ticket("in", "2026-11-03T10:00:00Z", "2026-11-02")),
                  ("ticket", ticket("before", "2026-11-01T23:59:59Z", "2026-10-26")),
                  ("ticket", ticket("at-to", "2026-11-10T00:00:00Z", "2026-11-09")),
                  ("wait", wait("w-in", "2026-11-02T00:00:00Z")), ("wait", wait("w-out", "2026-11-01T12:00:00Z")),
                  ("period", period_rec("day", "2026-11-02")), ("period", period_rec("week", "2026-11-02")),
                  ("period", period_rec("day", "2026-11-01")),
                  # Bangkok's 2026-11-02 starts 2026-11-01T17:00Z, before --from: left out
                  ("period", period_rec("day", "2026-11-02", shop="ae-bkk")),
                  ("period", period_rec("day", "2026-11-03", shop="ae-bkk")))
    keep_in_period(c, Period(FROM, TO), {"ae-bkk": "Asia/Bangkok"}, "UTC")
    assert [k[1] for k in c.tickets] == ["in"]
    assert [k[1] for k in c.waits] == ["w-in"]
    assert sorted((k[2], k[3], k[4]) for k in c.periods) == [
        ("ae-1", "day", "2026-11-02"), ("ae-1", "week", "2026-11-02"), ("ae-bkk", "day", "2026-11-03")]


def test_a_week_label_keeps_each_shops_own_week_its_seven_days_and_its_tickets() -> None:
    """--week: the week record of the label and the seven days of that local week, the tickets
    whose week_start is the label, the waits first seen in the shop's own week (R5.1 bounds)."""
    c = collected(("ticket", ticket("in", "2026-11-08T20:00:00Z", "2026-11-02")),
                  ("ticket", ticket("next", "2026-11-09T00:30:00Z", "2026-11-09")),
                  # 2026-11-01T18:00Z is Monday 01:00 in Bangkok: its shop's week of the label
                  ("wait", wait("w-bkk", "2026-11-01T18:00:00Z", shop="ae-bkk")),
                  ("wait", wait("w-utc", "2026-11-01T18:00:00Z")),
                  *[("period", period_rec("day", f"2026-11-{d:02d}")) for d in range(1, 11)],
                  ("period", period_rec("week", "2026-11-02")), ("period", period_rec("week", "2026-11-09")))
    keep_in_period(c, Period(FROM - 86_400_000_000, TO, week="2026-11-02"), {"ae-bkk": "Asia/Bangkok"}, "UTC")
    assert [k[1] for k in c.tickets] == ["in"]
    assert [k[1] for k in c.waits] == ["w-bkk"]
    assert sorted((k[3], k[4]) for k in c.periods) == [
        ("day", f"2026-11-{d:02d}") for d in range(2, 9)] + [("week", "2026-11-02")]


def test_the_period_collector_keeps_tickets_waits_and_periods_as_the_audit_does() -> None:
    """Before issue #12 it filed every record that was not an assessment as a session."""
    c = PeriodCollector()
    t, w, p = ticket("tk", "2026-11-03T10:00:00Z", "2026-11-02"), wait("c", "2026-11-03T10:00:00Z"), period_rec("day", "2026-11-03")
    c("ticket", t), c("wait", w), c("period", p)
    assert (list(c.tickets.values()), list(c.waits.values()), list(c.periods.values()), c.sessions) == ([t], [w], [p], {})


# the simulator's two after-sales shops (R11.8's abuse among their requests), beside mixed_lines
AFTERSALE_LINES = [v for _, _, v in generate(SimConfig(seed=5, platforms=("aftersale",), aftersale_requests=40))]


def replayed() -> ReplayResult:
    report = run_audit(sorted(mixed_lines(1) + AFTERSALE_LINES, key=_at), LEAD, until=TO, policies=OTHERS)
    # the period's requests (the Bangkok shop's week starts before FROM), as keep_in_period keeps them
    report.requests = [r for r in report.requests if FROM <= parse_time(r["requested_at"]) < TO]
    report.sessions, report.assessments = [], []  # the chat side has its own tests (test_verify.py)
    return ReplayResult(report, Period(FROM, TO), LEAD, [], {}, {})


def _at(line: bytes) -> str:
    import orjson

    obj = orjson.loads(line)
    return obj.get("at") or obj.get("sent_at") or ""


def live_of(result: ReplayResult) -> tuple[dict, dict, dict, dict]:
    """What a faithful worker wrote, keyed as read_live_outputs keys it."""
    r = result.report
    return ({(x["shop_id"], x["ticket_id"], x["created_at"]): copy.deepcopy(x) for x in r.tickets},
            {(x["shop_id"], x["conversation_id"], x["first_at"]): copy.deepcopy(x) for x in r.waits},
            {record_key(PERIOD_KEY, x): copy.deepcopy(x) for x in r.periods},
            {record_key(REQUEST_KEY, x): copy.deepcopy(x) for x in r.requests})


def check(result: ReplayResult, tickets: dict, waits: dict, periods: dict, requests: dict | None = None):
    return compare(result, {}, {}, live_tickets=tickets, live_waits=waits, live_periods=periods,
                   live_requests=requests)


def test_a_faithful_worker_shows_no_difference_in_tickets_waits_or_periods() -> None:
    result = replayed()
    assert result.report.tickets and result.report.waits and result.report.periods and result.report.requests
    v = check(result, *live_of(result))
    assert v.differences == []
    compared = v.to_dict()["compared"]
    assert (compared["tickets"], compared["waits"], compared["requests"], compared["periods"]) == (
        len(result.report.tickets), len(result.report.waits), len(result.report.requests), len(result.report.periods))
    # issue #14: an after-sales day has one row per request type and "all" (R11.5.2): each is its
    # own record, not five records under one key
    rows = [p for p in result.report.periods if p["policy_id"] == "tiktok_aftersale"]
    assert len({record_key(PERIOD_KEY, p) for p in rows}) == len(rows) > 10


def test_a_drifted_field_and_a_missing_record_are_named() -> None:
    result = replayed()
    tickets, waits, periods, requests = live_of(result)
    done = next(k for k, x in tickets.items() if x["handled_at"] is not None)
    tickets[done]["handled_in_time"] = not tickets[done]["handled_in_time"]
    ended = next(k for k, x in waits.items() if x["ended_at"] is not None)
    del waits[ended]
    final = next(k for k, x in periods.items() if x.get("status") == "final")
    periods[final]["met"] = -1 if "met" in periods[final] else None
    periods[final]["extra"] = 1
    diffs = {(d.kind, d.key, d.field) for d in check(result, tickets, waits, periods, requests).differences}
    wait_id = result.report.waits[[(w["shop_id"], w["conversation_id"], w["first_at"]) for w in result.report.waits]
                                  .index(ended)]["wait_id"]
    sub = final[5] or final[6]
    label = f"{final[3]} {final[4]}{' ' + sub if sub else ''} {final[0]}@{final[1]}"
    assert ("ticket", done[1], "handled_in_time") in diffs
    assert ("wait", wait_id, "(record)") in diffs
    assert ("period", label, "extra") in diffs
    assert all(kind != "session" and kind != "assessment" for kind, _, _ in diffs)


def test_an_unsettled_ticket_is_compared_on_its_fixed_fields_only() -> None:
    """A ticket neither handled nor closed at --to can still change (the live worker went on):
    only what no later event changes is compared, as for a session open at --to."""
    result = replayed()
    tickets, waits, periods, requests = live_of(result)
    open_key = next(k for k, x in tickets.items() if x["handled_at"] is None and x["closed_at"] is None)
    tickets[open_key]["handled_at"] = "2026-11-11T00:00:00Z"  # handled after --to, live
    v = check(result, tickets, waits, periods, requests)
    assert v.differences == []
    tickets[open_key]["priority"] = "other"
    assert [(d.key, d.field) for d in check(result, tickets, waits, periods, requests).differences] == [
        (open_key[1], "priority")]


def test_chat_only_verify_output_has_no_new_keys() -> None:
    """A chat-only verify's JSON stays as it was: the new counts appear only with such records."""
    report = run_audit([], LEAD, until=TO, policies=OTHERS)
    v = compare(ReplayResult(report, Period(FROM, TO), LEAD, [], {}, {}), {}, {})
    assert list(v.to_dict()["compared"]) == ["sessions", "assessments", "sessions_open_at_to",
                                             "assessments_provisional_at_to", "live_records_read"]


def test_the_reader_process_carries_ticket_events() -> None:
    ev = TicketEvent("e1", "dy-1", "tk1", "created", parse_time("2026-11-03T10:00:00Z"), priority="urgent")
    rec = (0, 0, "ticket.events", 0, 5, "ticket.events/0", b"{}", ev)
    back = decode_chunk(encode_chunk([rec], {"ticket.events/0": 0}), ["ticket.events/0"])
    assert back[0][4:6] == (5, "ticket.events/0")
    assert event_to_list(back[0][7]) == event_to_list(ev)


def test_issue_14_a_tampered_request_or_aftersale_row_is_named_and_a_missing_one_too() -> None:
    """verify covers chatsla.aftersale (R11.5.1) and the after-sales rows of chatsla.periods: a
    changed decision is named by request id and field, a missing request as "(record)", a changed
    count of one request-type row by its period, start and row."""
    result = replayed()
    tickets, waits, periods, requests = live_of(result)
    observed = next(k for k, x in requests.items() if x["observed"] is not None)
    requests[observed]["decision"] = "approve" if requests[observed]["decision"] != "approve" else "manual_review"
    gone = next(k for k in requests if k != observed)
    del requests[gone]
    row = next(k for k, x in periods.items() if x.get("request_type") not in (None, "all") and x["status"] == "final")
    periods[row]["requests"] += 1
    diffs = {(d.kind, d.key, d.field) for d in check(result, tickets, waits, periods, requests).differences}
    assert diffs == {("request", observed[1], "decision"), ("request", gone[1], "(record)"),
                     ("period", f"{row[3]} {row[4]} {row[5]} tiktok_aftersale@2026-01", "requests")}, diffs


def test_issue_14_a_request_not_yet_reviewed_at_to_is_compared_on_its_decision_only() -> None:
    """A request the replay has not seen reviewed by --to may be reviewed live afterwards: its
    observed, agree and late may differ, its decision (made once, R11.3.1) may not."""
    result = replayed()
    tickets, waits, periods, requests = live_of(result)
    key = next(k for k, x in requests.items() if x["observed"] is None)
    requests[key]["observed"], requests[key]["agree"] = "seller:approved", True
    assert check(result, tickets, waits, periods, requests).differences == []
    requests[key]["signals"] = ["repeat_buyer"] if requests[key]["signals"] != ["repeat_buyer"] else []
    assert [(d.key, d.field) for d in check(result, tickets, waits, periods, requests).differences] == [
        (key[1], "signals")]


def test_issue_14_the_period_rule_for_requests_and_months() -> None:
    """Requests by their requested_at (with --week by their week_start), month records by their
    first day's start in the shop's zone, as day records (R11.5.2, R11.6.3)."""
    def rq(rid: str, at: str, week: str) -> dict:
        return {"request_id": rid, "shop_id": "as-1", "requested_at": at, "week_start": week}

    def month(start: str, group: str, shop: str = "as-1") -> dict:
        return {"shop_id": shop, "period": "month", "start": start, "group": group, "policy_id": "tiktok_aftersale",
                "policy_version": "2026-01"}
    records = [("request", rq("in", "2026-11-02T00:00:00Z", "2026-11-02")),
               ("request", rq("out", "2026-11-01T23:59:59Z", "2026-10-26")),
               ("period", month("2026-11-01", "cancellation")), ("period", month("2026-11-01", "return_refund")),
               ("period", month("2026-12-01", "cancellation"))]
    c = collected(*records)
    keep_in_period(c, Period(parse_time("2026-11-01T00:00:00Z"), TO), {}, "UTC")
    assert sorted(k[1] for k in c.requests) == ["in", "out"]  # both in [2026-11-01, 2026-11-10)
    assert sorted((r["start"], r["group"]) for r in c.periods.values()) == [
        ("2026-11-01", "cancellation"), ("2026-11-01", "return_refund")]
    c = collected(*records)
    keep_in_period(c, Period(FROM, TO), {}, "UTC")
    assert [k[1] for k in c.requests] == ["in"] and not c.periods
    c = collected(*records)
    keep_in_period(c, Period(FROM - 86_400_000_000, TO, week="2026-11-02"), {}, "UTC")
    assert [k[1] for k in c.requests] == ["in"] and not c.periods  # November's 1st is in the week before


def test_issue_14_the_reader_process_carries_aftersale_events_and_rules_events() -> None:
    """An aftersale.request/v1 and an aftersale_rules shop event (R11.1, R11.2) cross the replay's
    reader process unchanged (the rules ref included)."""
    import orjson

    from chatsla.schemas.decode import decode

    for line in AFTERSALE_LINES[:40]:
        ev = decode(line)
        rec = (0, 0, "aftersale.requests", 0, 7, "aftersale.requests/0", line, ev)
        back = decode_chunk(encode_chunk([rec], {"aftersale.requests/0": 0}), ["aftersale.requests/0"])
        assert event_to_list(back[0][7]) == event_to_list(ev), orjson.loads(line)


def test_issue_14_aftersale_requests_are_read_from_at_least_forty_days_back() -> None:
    """R11.4's buyer histories span the 30-day repeat window: the replay reads aftersale.requests
    from 40 days before --from (or the lookback, if longer; from the start with --lookback all)."""
    day = 86_400_000_000
    assert Period(FROM, TO).aftersale_from == FROM - 40 * day
    assert Period(FROM, TO, lookback=60 * day).aftersale_from == FROM - 60 * day
    assert Period(FROM, TO, lookback=None).aftersale_from is None
    assert Period(FROM, TO).read_from == FROM - 9 * day  # chat and tickets unchanged


def test_a_live_worker_ahead_of_to_has_period_records_the_replay_cannot_have_yet() -> None:
    """verify with --to behind the live watermark (the usual case): a live day, week or month
    record of a period that ends at or after --to is not a difference (the replay's watermark
    stops at --to, where the period has not ended), as for an assessment; one that ended before
    --to and is missing from the replay still is."""
    result = replayed()
    tickets, waits, periods, requests = live_of(result)
    ahead = {"shop_id": "aftersale-01", "period": "week", "start": "2026-11-09", "request_type": "all",
             "policy_id": "tiktok_aftersale", "policy_version": "2026-01", "requests": 1}
    month = {"shop_id": "aftersale-01", "period": "month", "start": "2026-11-01", "group": "cancellation",
             "policy_id": "tiktok_aftersale", "policy_version": "2026-01"}
    ended = {"shop_id": "ghost", "period": "day", "start": "2026-11-08", "request_type": "all",
             "policy_id": "tiktok_aftersale", "policy_version": "2026-01"}
    for r in (ahead, month, ended):
        periods[record_key(PERIOD_KEY, r)] = r
    diffs = [(d.shop_id, d.key, d.field) for d in check(result, tickets, waits, periods, requests).differences]
    assert diffs == [("ghost", "day 2026-11-08 all tiktok_aftersale@2026-01", "(record)")]
