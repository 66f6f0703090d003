"""R11.6.1's working-day review window (issue #14; N44: Thailand and Vietnam give the seller "1
working day"): ``review_window`` may give, per request type, ``{"service_window": {start, end,
timezone, days}, "duration": "24h"}``, and the request is then due at the service clock's
due(requested_at, duration) of R9.2.5, with a Monday-Friday 00:00-24:00 window.

Driven through the real runner (tests/core/modelhost.py) with the bundled
``tiktok_aftersale@2026-01-th`` / ``-vn`` policies; the expected instants are derived from R9.2 by
hand in each docstring, never from the clock under test. The live worker's path (the stored
entries, a crash and restart) is checked at the end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from datetime import datetime
from importlib import resources
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatsla.core.engine import EngineConfig
from chatsla.core.events import AftersaleRequest, ShopEvent
from chatsla.core.models.aftersale import Aftersale, Req, review_due
from chatsla.core.policy import AftersalePolicy, PolicyError, WorkingWindow, load_policy, policy_from_dict
from chatsla.core.service_clock import ServiceClock
from chatsla.core.timefmt import DAY, HOUR, MINUTE, format_time, from_datetime
from tests.core.modelhost import Host

TH = load_policy("tiktok_aftersale@2026-01-th")
VN = load_policy("tiktok_aftersale@2026-01-vn")
US = load_policy("tiktok_aftersale@2026-01")  # the bundled 48 h one (R11.7)
CONFIG = EngineConfig()
BKK = "Asia/Bangkok"
DUE = Req.__slots__.index("due_at")  # a stored request entry is Req.to_list()


def L(s: str, tz: str = BKK) -> int:
    """µs of the local wall time ``2026-11-06 15:00`` in ``tz`` (fold 0)."""
    return from_datetime(datetime.fromisoformat(s).replace(tzinfo=ZoneInfo(tz)))


def tz_event(tz: str, at: str = "2026-01-01 00:00", eid: str = "tz1") -> ShopEvent:
    return ShopEvent(eid, "S1", "timezone", L(at, "UTC"), timezone=tz)


def req(rid: str, at: int, rtype: str = "return_refund", awaiting: bool | None = None) -> AftersaleRequest:
    return AftersaleRequest(f"{rid}-q", "S1", rid, "requested", at, rtype, "damaged", "home", "10.00", "USD",
                            None, None, None, None, None, None, awaiting)


def rev(rid: str, at: int, by: str = "seller") -> AftersaleRequest:
    return AftersaleRequest(f"{rid}-r-{at}", "S1", rid, "reviewed", at, by=by, decision="approved")


def run(events, policy: AftersalePolicy = TH, until: int | None = None) -> Host:
    """The events through the runner to ``until`` (default: 40 days on, so every month is final);
    ``h.dues`` keeps each request's due time as stored once every event was applied (requests are
    forgotten weeks later, R11 eviction)."""
    h = Host(Aftersale, policy, CONFIG).feed(sorted(events, key=lambda e: e.t))
    last = max(e.t for e in events)
    h.advance(last + h.lateness + 1)
    h.dues = {rid: r.due_at for rid, r in h.model.requests.get("S1", {}).items()}  # type: ignore[attr-defined]
    h.finish(until if until is not None else last + 40 * DAY)
    return h


def due(h: Host, rid: str) -> int:
    return h.dues[rid]  # type: ignore[attr-defined]


def month(h: Host, start: str = "2026-11-01", group: str = "return_refund") -> dict:
    return h.latest("period", lambda r: (r["period"], r["start"], r.get("group")))[("month", start, group)]


# ------------------------------------------------------------------ the bundled versions
def test_bundled_th_and_vn_are_one_working_day_and_not_current():
    """R11.7 / N44: one version per market. Thailand and Vietnam: every request type has 24 h of
    service time on a Monday-Friday 00:00-24:00 clock in the shop's zone; the 48 h version stays
    the current one (a bare id still names it) and its windows stay plain durations."""
    wd = WorkingWindow(24 * HOUR, 0, 24 * 60, "shop", (0, 1, 2, 3, 4))
    for p, tz in ((TH, BKK), (VN, "Asia/Ho_Chi_Minh")):
        assert p.review_window == {t: wd for t in ("cancel", "refund_only", "return_refund", "exchange")}
        assert p.default_timezone == tz and p.review_rate_below == US.review_rate_below
        assert (p.platform_return_window, p.repeat_window) == (US.platform_return_window, US.repeat_window)
    assert load_policy("tiktok_aftersale").ref == "tiktok_aftersale@2026-01"
    assert US.review_window == {t: 48 * HOUR for t in ("cancel", "refund_only", "return_refund", "exchange")}


# ------------------------------------------------------------------ due times (R9.2.5 read by hand)
def test_friday_afternoon_is_due_monday_same_time():
    """R11.6.1, N44: Fri 2026-11-06 15:00 Bangkok. 9 h are left in Friday's window (to 24:00);
    Saturday and Sunday have none; the other 15 h run from Monday 00:00: due Mon 11-09 15:00. A
    seller review at 15:00:00 is in time; at 15:00:01 it is not, and the platform's review after it
    is the auto-approval (R11.6.2). The 48 h policy would have had it due on Sunday."""
    at = L("2026-11-06 15:00")
    h = run([tz_event(BKK), req("f", at), rev("f", L("2026-11-09 15:00"))])
    assert due(h, "f") == L("2026-11-09 15:00")
    assert (month(h)["reviewed_in_time"], month(h)["outcome"]) == (1, "ok")
    h = run([tz_event(BKK), req("f", at), rev("f", L("2026-11-09 15:00") + 1, "seller")])
    assert (month(h)["reviewed_in_time"], month(h)["outcome"]) == (0, "auto_approval_tool_risk")
    assert due(run([tz_event(BKK), req("f", at)], US), "f") == L("2026-11-08 15:00")


def test_a_policy_default_zone_serves_a_shop_never_told_its_zone():
    """R9.2.2 as R11.6.1 reads it: the tiktok_aftersale@2026-01-th clock runs in the shop's zone,
    and a shop without a timezone event has the policy's default_timezone (Asia/Bangkok). Vietnam
    (Asia/Ho_Chi_Minh, also UTC+7) gives the same instant."""
    at = L("2026-11-06 15:00")
    assert due(run([req("f", at)]), "f") == L("2026-11-09 15:00")
    assert due(run([req("f", at)], VN), "f") == L("2026-11-09 15:00", "Asia/Ho_Chi_Minh")


@pytest.mark.parametrize(("at", "expected", "why"), [
    ("2026-11-07 10:00", "2026-11-10 00:00", "Saturday: clock_start is Mon 00:00 (R9.2.4); 24 h fill Monday's whole "
                                             "window and run out exactly at its end, so due at that end (R9.2.5)"),
    ("2026-11-08 23:59", "2026-11-10 00:00", "Sunday night: the same Monday window"),
    ("2026-11-06 00:00", "2026-11-07 00:00", "Friday 00:00: Friday's whole window, due at its 24:00 end (Saturday "
                                             "00:00), not at Monday's start (R9.2.5's first consequence)"),
    ("2026-11-05 00:00", "2026-11-06 00:00", "a weekday at midnight: exactly one day"),
    ("2026-11-04 09:30", "2026-11-05 09:30", "mid-week: 24 h of wall time, nothing carried over"),
    ("2026-11-06 23:59", "2026-11-09 23:59", "1 min left on Friday, 23 h 59 min on Monday"),
])
def test_weekend_carry_over(at, expected, why):
    """R11.6.1 with R9.2.4-5 on a Monday-Friday 00:00-24:00 clock (Bangkok); ``why`` gives each
    case's reading of R9.2 (a Saturday request is due Tuesday 00:00)."""
    assert due(run([tz_event(BKK), req("x", L(at))]), "x") == L(expected), why


def test_a_dst_weekend_keeps_the_local_time():
    """R11.6.1 on a DST weekend (Europe/Berlin, Sunday 2026-03-29 02:00 -> 03:00): Friday 15:00
    CET leaves 9 h on Friday and 15 h from Monday 00:00 CEST, so due Monday 15:00 CEST: the
    same local time, though only 71 h of wall time later (the weekend has no window, so its
    short day costs nothing). The 48 h policy gives Sunday 16:00 CEST (48 h of wall time)."""
    tz = "Europe/Berlin"
    at = L("2026-03-27 15:00", tz)
    d = due(run([tz_event(tz), req("d", at)]), "d")
    assert d == L("2026-03-30 15:00", tz) and d - at == 71 * HOUR
    assert due(run([tz_event(tz), req("d", at)], US), "d") == L("2026-03-29 16:00", tz)


def test_a_dst_working_day_counts_its_real_length():
    """R11.6.1 with R9.2.1/R9.2.3 on a working day that is short: Asia/Jerusalem moves 02:00 ->
    03:00 on Friday 2026-03-27, so Friday's 00:00-24:00 window is 23 h of service time. Thursday
    12:00 leaves 12 h on Thursday; the other 12 h run from Friday 00:00 and, with the hour skipped,
    end at 13:00 local (R9.2 counts instants, not wall-clock readings)."""
    tz = "Asia/Jerusalem"
    d = due(run([tz_event(tz), req("j", L("2026-03-26 12:00", tz))]), "j")
    assert d == L("2026-03-27 13:00", tz) and format_time(d) == "2026-03-27T10:00:00Z"
    # Friday 12:00 (after the jump): 12 h to 24:00, 12 h from Monday 00:00
    assert due(run([tz_event(tz), req("k", L("2026-03-27 12:00", tz))]), "k") == L("2026-03-30 12:00", tz)


def test_the_zone_at_the_request_fixes_the_due_time():
    """R9.2.2 as R11.6.1 reads it: a later timezone event moves no due time already computed."""
    at = L("2026-11-06 15:00")
    h = run([tz_event(BKK), req("f", at), tz_event("America/New_York", "2026-11-07 00:00", "tz2")])
    assert due(h, "f") == L("2026-11-09 15:00")


def test_not_awaiting_the_seller_is_not_assessed():
    """R11.6.1: only awaiting_seller requests are due; the working-day form changes nothing there."""
    h = run([tz_event(BKK), req("n", L("2026-11-06 15:00"), awaiting=False)])
    assert (month(h)["awaiting_seller"], month(h)["outcome"]) == (0, "not_assessed")


def test_the_view_lists_the_working_day_due_time():
    """The shop view's awaiting_review shows the stored due time (Friday -> Monday, R11.6.1)."""
    h = Host(Aftersale, TH, CONFIG).feed([tz_event(BKK), req("f", L("2026-11-06 15:00"))])
    h.advance(L("2026-11-07 12:00"))
    v = h.model.view("S1", L("2026-11-07 12:00"))
    assert v["awaiting_review"] == [{"request_id": "f", "request_type": "return_refund",
                                     "due_at": format_time(L("2026-11-09 15:00"))}]


# ------------------------------------------------------------------ properties
instants = st.integers(min_value=L("2026-01-01 00:00", "UTC"), max_value=L("2027-12-31 00:00", "UTC"))
zones = st.sampled_from(["Asia/Bangkok", "Asia/Ho_Chi_Minh", "Europe/Berlin", "America/New_York", "Asia/Jerusalem",
                         "Australia/Lord_Howe", "UTC"])
windows = st.tuples(st.integers(0, 23 * 60), st.integers(1, 24 * 60)).filter(lambda w: w[0] < w[1])
day_sets = st.sets(st.integers(0, 6), min_size=1).map(lambda s: tuple(sorted(s)))
durations = st.integers(min_value=MINUTE, max_value=72 * HOUR)


@settings(max_examples=300, deadline=None)
@given(at=instants, tz=zones, window=windows, days=day_sets, duration=durations)
def test_property_working_day_is_never_earlier_than_the_plain_duration(at, tz, window, days, duration):
    """R11.6.1 (N44): service time never runs faster than wall time (R9.2.3), so the due time under
    the working-day form is never earlier than under the same plain duration, and exactly that
    much service time lies between the request and it (R9.2.5)."""
    w = WorkingWindow(duration, window[0], window[1], "shop", days)
    d = review_due(w, at, tz)
    assert d >= review_due(duration, at, tz) == at + duration
    assert ServiceClock(tz, window[0], window[1], days).service(at, d) == duration


@settings(max_examples=60, deadline=None)
@given(at=instants, tz=zones)
def test_property_one_working_day_lands_on_a_working_day_or_its_end(at, tz):
    """N44's 1 working day: the due time lies in Monday-Friday local time, or is exactly a
    window's 24:00 end (Saturday 00:00 after a Friday 00:00 request, R9.2.5); it is at most
    24 h + a weekend (+ a DST hour) of wall time after the request, and never before 24 h."""
    d = review_due(TH.review_window["cancel"], at, tz)
    local = datetime.fromtimestamp(d / 1e6, ZoneInfo(tz))
    before = datetime.fromtimestamp((d - 1) / 1e6, ZoneInfo(tz))
    assert local.weekday() < 5 or before.weekday() < 5
    assert 24 * HOUR <= d - at <= 24 * HOUR + 2 * DAY + HOUR  # a Sat 00:00 request: 24 h + 2 d


@pytest.mark.parametrize("seed", range(6))
def test_reordering_duplicates_and_snapshot_restore_keep_the_due_times(seed):
    """R6.3 / R6.1 / issue #14: with the working-day form, any arrival order within the lateness,
    duplicates and a snapshot/restore mid-stream give the same due times and month records as
    the sorted input (the due time is stored with the request, never recomputed)."""
    rng = random.Random(seed)
    events = [tz_event(BKK)]
    for i in range(24):
        at = L("2026-11-02 00:00") + rng.randrange(0, 13 * DAY) // MINUTE * MINUTE
        events.append(req(f"w{i}", at, rng.choice(["cancel", "return_refund"])))
        if i % 4:
            events.append(rev(f"w{i}", at + rng.randrange(0, 4 * DAY) // MINUTE * MINUTE,
                              rng.choice(["seller", "seller_rule", "platform"])))
    events.sort(key=lambda e: e.t)
    end = max(e.t for e in events) + 40 * DAY
    def final(h: Host) -> list[bytes]:
        return sorted(orjson.dumps(r) for r in h.latest("period", lambda r: tuple(r.values())[:5]).values())

    ref = Host(Aftersale, TH, CONFIG).feed(events)
    ref_dues = {r: x.due_at for r, x in ref.model.requests["S1"].items()}
    ref.finish(end)
    arrival = sorted(events + rng.sample(events, 4), key=lambda e: e.t + rng.randrange(0, 2 * MINUTE))
    cut = rng.randrange(1, len(arrival))
    h = Host(Aftersale, TH, CONFIG).feed(arrival[:cut])
    h2 = Host.restore(Aftersale, TH, CONFIG, h.snapshot())
    h2.out = list(h.out)
    h2.feed(arrival[cut:])
    dues = {r: h2.model.requests["S1"][r].due_at for r in h2.model.requests["S1"]}
    h2.finish(end)
    assert dues == ref_dues and final(h2) == final(ref)
    assert any(r["reviewed_in_time"] for r in ref.latest("period", lambda r: r["start"]).values() if "group" in r)


def test_stored_entries_keep_the_due_time():
    """The worker's stored entries (streams/runtime.py, "Other models": one per request, through
    JSON) rebuild requests with their working-day due time, and the miss still fires there."""
    at = L("2026-11-06 15:00")
    h = Host(Aftersale, TH, CONFIG).feed([tz_event(BKK), req("f", at)]).advance(at + 3 * MINUTE)
    parts = orjson.loads(orjson.dumps(h.model.parts()))
    entry = next(v for k, v in parts if k[0] == "aftersale_req")
    assert entry[DUE] == L("2026-11-09 15:00")
    h2 = Host(Aftersale, TH, CONFIG)
    h2.runner = type(h2.runner).from_snapshot(h2.config, [(Aftersale, TH)], orjson.loads(h.snapshot()), sink=h2._emit)
    m = Aftersale.from_parts(TH, CONFIG, h2.runner.models[0].host, {}, [(tuple(k), v) for k, v in parts])
    assert m.requests["S1"]["f"].due_at == L("2026-11-09 15:00")


# ------------------------------------------------------------------ the live worker
def test_the_worker_keeps_the_working_day_due_time_across_a_crash_anywhere():
    """R11.6.1 on the live path (tests/streams/test_worker.py's worker, in-memory tables, --policy
    tiktok_aftersale@2026-01-th): a Friday 15:00 request reviewed Monday 14:00 is in time (the
    48 h policy would miss it on Sunday), a Saturday one reviewed Monday 23:59 too; a crash before
    any effect and a restart from the stored tables give the same outputs and stored due times
    (R6.1)."""
    from chatsla.streams.codec import encode_batch, encode_event, encode_flush, encode_tick, source_tag
    from tests.streams.test_worker import Broker, Crash, Journal, SETTINGS, drain, feed, make_worker, state
    from tests.streams.test_worker_models import latest

    # (max_future 60 d: the last tick jumps past the month's end in one step, as a backfill's would)
    settings_th = dataclasses.replace(SETTINGS, policies=("tiktok_aftersale@2026-01-th",), max_future_us=60 * DAY)
    shop, src = source_tag("shop.events", 0), source_tag("aftersale.requests", 0)
    evs = [(shop, tz_event(BKK)), (src, req("f", L("2026-11-06 15:00"))), (src, req("s", L("2026-11-07 10:00"))),
           (src, rev("f", L("2026-11-09 14:00"))), (src, rev("s", L("2026-11-09 23:59")))]
    records = []
    for s, ev in evs:
        records += [encode_batch([encode_event(ev, s)]), encode_tick(ev.t)]
    records += [encode_tick(L("2026-12-02 00:00")), encode_flush()]  # November's month is final, nothing evicted

    def go(crash_at: int | None) -> tuple[dict, dict, Journal]:
        async def inner() -> tuple[dict, dict, Journal]:
            broker, journal = Broker(), Journal(crash_at)
            worker = make_worker(broker, journal, settings=settings_th)
            log = list(records)
            try:
                await feed(worker, broker, log)
            except Crash:
                journal.crash_at = None
                worker = make_worker(broker, journal, settings=settings_th)
                await feed(worker, broker, log, broker.committed())
            await drain(worker, broker, log)
            return latest(broker), state(worker), journal
        return asyncio.run(inner())

    outputs, final, journal = go(None)
    months = [r for k, r in outputs.items() if k[0] == "period" and r.get("group") == "return_refund"]
    assert [(m["awaiting_seller"], m["reviewed_in_time"], m["outcome"], m["policy_version"]) for m in months] == [
        (2, 2, "ok", "2026-01-th")]
    dues = {k[2]: v[DUE] for k, v in final["parts"] if k[0] == "aftersale_req"}
    assert dues == {"f": L("2026-11-09 15:00"), "s": L("2026-11-10 00:00")}
    assert len(journal.ops) > 10
    for cut in range(len(journal.ops)):
        assert go(cut)[:2] == (outputs, final), f"crash before effect {cut}"


# ------------------------------------------------------------------ errors
def bundled(ref: str) -> dict:
    return json.loads((resources.files("chatsla") / "policies" / f"{ref}.json").read_text())


WD = {"service_window": {"start": "00:00", "end": "24:00", "timezone": "shop", "days": ["monday", "friday"]},
      "duration": "24h"}


@pytest.mark.parametrize(("entry", "says"), [
    (48, 'review_window.cancel: expected a duration such as "48h" or an object {"service_window"'),
    ("2 days", "review_window.cancel: expected a positive duration"),
    ({"duration": "24h"}, 'review_window.cancel: expected an object with exactly the keys "service_window" and "duration"'),
    ({**WD, "working_days": 1}, "review_window.cancel: expected an object with exactly the keys"),
    ({**WD, "service_window": "mon-fri"}, "review_window.cancel.service_window: expected an object {start, end"),
    ({**WD, "service_window": {"end": "24:00"}}, "review_window.cancel.service_window.start: missing"),
    ({**WD, "service_window": {"start": "9am", "end": "24:00"}}, 'review_window.cancel.service_window.start: expected HH:MM, got "9am"'),
    ({**WD, "service_window": {"start": "10:00", "end": "09:00"}}, "review_window.cancel.service_window.end: expected a time after start"),
    ({**WD, "service_window": {"start": "00:00", "end": "24:00", "days": ["funday"]}}, "review_window.cancel.service_window.days: expected"),
    ({**WD, "service_window": {"start": "00:00", "end": "24:00", "days": []}}, "review_window.cancel.service_window.days: expected"),
    ({**WD, "service_window": {"start": "00:00", "end": "24:00", "timezone": "Bangkok"}}, "review_window.cancel.service_window.timezone: expected"),
    ({**WD, "duration": "0h"}, "review_window.cancel.duration: expected a positive duration"),
    ({**WD, "duration": 24}, "review_window.cancel.duration: expected a positive duration"),
    ({"service_window": {"start": "00:00", "end": "00:01", "days": ["monday"]}, "duration": "100h"},
     "review_window.cancel.duration: expected at most the service time its service_window gives in 366 days"),
])
def test_a_bad_review_window_is_one_line_naming_the_field(entry, says):
    """R11.6.1 / issue #14: a wrong review_window entry, in either form, is one line naming the
    policy and the field (as every other policy error)."""
    d = bundled("tiktok_aftersale@2026-01-th")
    d["review_window"]["cancel"] = entry
    with pytest.raises(PolicyError) as e:
        policy_from_dict(d, origin="tiktok_aftersale@2026-01-th")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("tiktok_aftersale@2026-01-th: ") and says in msg, msg


def test_forms_mix_per_type_and_defaults_follow_the_ticket_service_window():
    """Per request type either form (R11.6.1); a service_window without timezone or days is the
    shop's zone on every day, as the ticket policy's (R9.2, "Policy fields beyond ...")."""
    d = bundled("tiktok_aftersale@2026-01")
    d["review_window"]["cancel"] = {"service_window": {"start": "09:00", "end": "21:00"}, "duration": "12h"}
    p = policy_from_dict(d)
    assert p.review_window["cancel"] == WorkingWindow(12 * HOUR, 540, 1260, "shop", tuple(range(7)))
    assert p.review_window["exchange"] == 48 * HOUR
    d["review_window"]["cancel"]["service_window"]["timezone"] = "Asia/Bangkok"
    w = policy_from_dict(d).review_window["cancel"]
    # an explicit zone wins over the shop's: 20:00 Bangkok uses 1 h, then 11 h from 09:00 (R9.2.5's N5 example)
    assert review_due(w, L("2026-11-04 20:00"), "UTC") == L("2026-11-05 20:00")
