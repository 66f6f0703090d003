"""Replay and verify of the other models' records without Kafka (issue #12: ``replay``,
``export`` and ``verify`` cover tickets, waits and periods).

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


def replayed() -> ReplayResult:
    report = run_audit(mixed_lines(1), LEAD, until=TO, policies=OTHERS)
    report.sessions, report.assessments = [], []  # the chat side has its own tests (test_verify.py)
    return ReplayResult(report, Period(FROM, TO), LEAD, [], {}, {})


def live_of(result: ReplayResult) -> tuple[dict, dict, dict]:
    """What a faithful worker wrote, keyed as read_live_outputs keys it."""
    r = result.report
    return ({(x["shop_id"], x["ticket_id"], x["created_at"]): copy.deepcopy(x) for x in r.tickets},
            {(x["shop_id"], x["conversation_id"], x["first_at"]): copy.deepcopy(x) for x in r.waits},
            {(x["policy_id"], x["policy_version"], x["shop_id"], x["period"], x["start"]): copy.deepcopy(x)
             for x in r.periods})


def check(result: ReplayResult, tickets: dict, waits: dict, periods: dict):
    return compare(result, {}, {}, live_tickets=tickets, live_waits=waits, live_periods=periods)


def test_a_faithful_worker_shows_no_difference_in_tickets_waits_or_periods() -> None:
    result = replayed()
    assert result.report.tickets and result.report.waits and result.report.periods
    v = check(result, *live_of(result))
    assert v.differences == []
    compared = v.to_dict()["compared"]
    assert (compared["tickets"], compared["waits"], compared["periods"]) == (
        len(result.report.tickets), len(result.report.waits), len(result.report.periods))


def test_a_drifted_field_and_a_missing_record_are_named() -> None:
    result = replayed()
    tickets, waits, periods = live_of(result)
    done = next(k for k, x in tickets.items() if x["handled_at"] is not None)
    tickets[done]["handled_in_time"] = not tickets[done]["handled_in_time"]
    ended = next(k for k, x in waits.items() if x["ended_at"] is not None)
    del waits[ended]
    final = next(k for k, x in periods.items() if x.get("status") == "final")
    periods[final]["met"] = -1 if "met" in periods[final] else None
    periods[final]["extra"] = 1
    diffs = {(d.kind, d.key, d.field) for d in check(result, tickets, waits, periods).differences}
    wait_id = result.report.waits[[(w["shop_id"], w["conversation_id"], w["first_at"]) for w in result.report.waits]
                                  .index(ended)]["wait_id"]
    label = f"{final[3]} {final[4]} {final[0]}@{final[1]}"
    assert ("ticket", done[1], "handled_in_time") in diffs
    assert ("wait", wait_id, "(record)") in diffs
    assert ("period", label, "extra") in diffs
    assert all(kind != "session" and kind != "assessment" for kind, _, _ in diffs)


def test_an_unsettled_ticket_is_compared_on_its_fixed_fields_only() -> None:
    """A ticket neither handled nor closed at --to can still change (the live worker went on):
    only what no later event changes is compared, as for a session open at --to."""
    result = replayed()
    tickets, waits, periods = live_of(result)
    open_key = next(k for k, x in tickets.items() if x["handled_at"] is None and x["closed_at"] is None)
    tickets[open_key]["handled_at"] = "2026-11-11T00:00:00Z"  # handled after --to, live
    v = check(result, tickets, waits, periods)
    assert v.differences == []
    tickets[open_key]["priority"] = "other"
    assert [(d.key, d.field) for d in check(result, tickets, waits, periods).differences] == [(open_key[1], "priority")]


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
