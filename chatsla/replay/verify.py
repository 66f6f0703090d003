"""``chatsla verify``: the replay of a period against the live pipeline's outputs (issue #5).

:func:`compare` is pure (the replay's result and the live records in, the differences out) and
unit-tested on in-memory inputs (tests/replay/test_verify.py); :func:`read_live_outputs` reads
the live output topics with the one Kafka reader.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Iterable

import orjson

from chatsla.core.engine import EngineConfig
from chatsla.core.policy import Policy
from chatsla.core.timefmt import format_time, parse_time
from chatsla.replay.period import Period
from chatsla.replay.result import LateEvent, ReplayResult
from chatsla.replay.run import Progress, replay_async
from chatsla.streams.reader import TOPIC, VALUE, InputReader, KafkaInput


# the key of a record of the other models (issue #12), as the audit's collector keeps them
TICKET_KEY = ("shop_id", "ticket_id", "created_at")
WAIT_KEY = ("shop_id", "conversation_id", "first_at")
PERIOD_KEY = ("policy_id", "policy_version", "shop_id", "period", "start", "request_type", "group")
REQUEST_KEY = ("shop_id", "request_id", "requested_at")  # an after-sales request (issue #14, R11.5.1)
SESSION_FIXED = ("shop_id", "conversation_id", "opened_at", "excluded", "week_start", "policy_id", "policy_version")
# what of a ticket, wait or period record no longer changes while it is unsettled at ``to`` (a
# ticket not yet handled nor closed, a wait not yet ended, a provisional period): only these are
# compared then, as for an open session
TICKET_FIXED = ("ticket_id", "shop_id", "priority", "category", "created_at", "sla", "policy_id", "policy_version")
WAIT_FIXED = ("wait_id", "shop_id", "conversation_id", "first_at", "policy_id", "policy_version")
PERIOD_FIXED = ("shop_id", "period", "start", "policy_id", "policy_version")
# a request's decision never changes once made (R11.3.1): only the observed review, agree and late can
REQUEST_FIXED = ("request_id", "shop_id", "request_type", "reason", "category", "amount", "currency", "decision",
                 "decision_reason", "rule", "rules_ref", "signals", "requested_at", "day", "week_start",
                 "policy_id", "policy_version")
ASSESSMENT_FIXED = ("shop_id", "week_start", "sessions", "buyer_messages", "policy_id", "policy_version")


@dataclass(frozen=True)
class Difference:
    """One field on which the live output and the replay disagree.

    ``field`` is ``"(record)"`` when one side has no such record at all. ``late_events`` lists
    the late events (R6.4) that can explain the difference; ``late`` is True when there are any.
    ``cause`` names the explanation: ``"late"`` (those events), ``"lookback"`` (a session number
    lower in the replay, whose input starts at the lookback window: the conversation had sessions
    before it, see the module docs; ``--lookback all`` removes it) or None (unexplained).
    """

    kind: str  # "session" | "assessment" | "ticket" | "wait" | "request" | "period"
    shop_id: str
    # session_id (the live one when both exist), the week_start of an assessment, a ticket_id, a
    # wait_id, a request_id, or "<day|week|month> <start> [<request type|group>] <policy>" of a period record
    key: str
    field: str
    live: object
    replay: object
    late_events: tuple[str, ...] = ()
    numbering: bool = False

    @property
    def late(self) -> bool:
        return bool(self.late_events)

    @property
    def cause(self) -> str | None:
        return "late" if self.late_events else "lookback" if self.numbering else None

    def to_dict(self) -> dict:
        return {"kind": self.kind, "shop_id": self.shop_id, "key": self.key, "field": self.field,
                "live": self.live, "replay": self.replay, "late": self.late, "late_events": list(self.late_events),
                "cause": self.cause}


@dataclass
class VerifyResult:
    replay: ReplayResult
    differences: list[Difference]
    compared_sessions: int
    compared_assessments: int
    unsettled_sessions: int  # open at ``to`` in the replay: compared on their settled fields only
    unsettled_assessments: int  # provisional at ``to``: compared on sessions and buyer_messages only
    live_records: int
    # the other models' records compared (issue #12): kind -> count; empty when neither side had any
    compared_other: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        p = self.replay.period
        compared = {"sessions": self.compared_sessions, "assessments": self.compared_assessments}
        compared.update(self.compared_other)  # only when there were any: chat-only output unchanged
        compared.update({"sessions_open_at_to": self.unsettled_sessions,
                         "assessments_provisional_at_to": self.unsettled_assessments,
                         "live_records_read": self.live_records})
        return {
            "from": format_time(p.start), "to": format_time(p.end),
            "policy_id": self.replay.policy.id, "policy_version": self.replay.policy.version,
            "compared": compared,
            "differences": [d.to_dict() for d in self.differences],
            "late_events": [e.to_dict() for e in sorted(self.replay.late, key=lambda e: (e.t, e.event_id))],
        }


@dataclass
class LiveOutputs:
    """The latest live record of every key of each output topic (what a consumer of a compacted
    topic sees). ``tickets``, ``waits``, ``requests`` and ``periods`` are keyed by ``TICKET_KEY``,
    ``WAIT_KEY``, ``REQUEST_KEY`` and ``PERIOD_KEY`` (an after-sales period's row, its request type
    or month group, is part of its key; None for the other models' periods)."""

    sessions: dict = field(default_factory=dict)
    assessments: dict = field(default_factory=dict)
    tickets: dict = field(default_factory=dict)
    waits: dict = field(default_factory=dict)
    periods: dict = field(default_factory=dict)
    requests: dict = field(default_factory=dict)
    records: int = 0


def take_live(out: LiveOutputs, topic: str, value: bytes | None, names: object) -> None:
    """File one live output record under its kind and key; later ones replace earlier ones (a
    key's records are in one partition, whose order the reader keeps). A record that is not a
    JSON object with its key's fields is skipped (counted in ``records`` all the same)."""
    out.records += 1
    try:
        rec = orjson.loads(value)
        if topic == names.sessions:  # type: ignore[attr-defined]
            out.sessions[(rec["shop_id"], rec["session_id"])] = rec
        elif topic == names.assessments:  # type: ignore[attr-defined]
            out.assessments[(rec["shop_id"], rec["week_start"])] = rec
        elif topic == names.ticket_records:  # type: ignore[attr-defined]
            out.tickets[tuple(rec[k] for k in TICKET_KEY)] = rec
        elif topic == names.waits:  # type: ignore[attr-defined]
            out.waits[tuple(rec[k] for k in WAIT_KEY)] = rec
        elif topic == names.periods:  # type: ignore[attr-defined]
            out.periods[record_key(PERIOD_KEY, rec)] = rec
        elif topic == names.aftersale_records:  # type: ignore[attr-defined]
            out.requests[record_key(REQUEST_KEY, rec)] = rec
    except (orjson.JSONDecodeError, KeyError, TypeError):
        pass


def record_key(key: tuple[str, ...], rec: dict) -> tuple:
    """A record's key fields (a period's ``request_type`` / ``group`` are None where absent);
    KeyError when it lacks one that every record of its kind has."""
    return tuple(rec.get(k) if k in ("request_type", "group") else rec[k] for k in key)


async def read_live_outputs(kin: KafkaInput) -> LiveOutputs:
    """The live outputs as a consumer sees them: the latest record per session, shop-week,
    ticket, wait, after-sales request and period (:class:`LiveOutputs`).

    Read whole with the one reader (:class:`~chatsla.streams.reader.InputReader`, no decoding).
    ``chatsla.tickets``, ``chatsla.waits``, ``chatsla.aftersale`` and ``chatsla.periods`` may be
    missing (a worker deployed before issue #12 or #14): they are then read as empty.
    """
    names = kin.names
    out = LiveOutputs()
    others = (names.ticket_records, names.waits, names.aftersale_records, names.periods)
    reader = InputReader(kin, (names.sessions, names.assessments, *others), client_id="chatsla-verify",
                         missing=": is a live worker deployed with this --topic-prefix?", optional=others)
    async with reader:
        async for batch in reader.batches():
            for rec in batch:
                take_live(out, rec[TOPIC], rec[VALUE], names)
    return out


class LateIndex:
    def __init__(self, late: list[LateEvent], policy: Policy) -> None:
        self.by_conv: dict[tuple[str, str], list[LateEvent]] = {}
        self.by_shop: dict[str, list[LateEvent]] = {}
        for e in late:
            if e.conversation_id is not None:
                self.by_conv.setdefault((e.shop_id, e.conversation_id), []).append(e)
            self.by_shop.setdefault(e.shop_id, []).append(e)
        # a late event can touch a week through its buyer messages and sessions (its own time),
        # or through a reply deciding one of its sessions (up to the 24 h window and the
        # auto-reply's 10 min after the week's end, R3)
        self.reach = policy.reply_window + policy.auto_reply_timeout

    def session(self, shop: str, conv: str) -> tuple[str, ...]:
        return tuple(sorted({e.event_id for e in self.by_conv.get((shop, conv), ())}))

    def week(self, shop: str, start: int, end: int) -> tuple[str, ...]:
        return tuple(sorted({e.event_id for e in self.by_shop.get(shop, ())
                             if e.conversation_id is None or start <= e.t < end + self.reach}))


def compare(result: ReplayResult, live_sessions: dict, live_assessments: dict,
            default_timezone: str = "UTC", live_records: int = 0, live_tickets: dict | None = None,
            live_waits: dict | None = None, live_periods: dict | None = None,
            live_requests: dict | None = None) -> VerifyResult:
    """The differences between the live outputs and the replay of the period (see :func:`verify`).

    ``live_tickets``, ``live_waits``, ``live_periods``, ``live_requests``: the latest live record per key (keys as
    :class:`LiveOutputs`); the live records the period reports (:func:`chatsla.replay.run.keep_in_period`,
    the replay's own rule) are compared with the replay's, record by record, on every field."""
    period = result.period
    report = result.report
    late = LateIndex(result.late, result.policy)
    diffs: list[Difference] = []
    shops = set(report.stats.get("shops") or ()) or None

    def in_scope(shop: str) -> bool:
        return shops is None or shop in shops

    # sessions opened in the period, matched by shop, conversation and opening time: their number
    # (session_id) is itself compared, as it depends on how much history the replay read
    def skey(x: dict) -> tuple:
        return (x["shop_id"], x["conversation_id"], x["opened_at"])

    replay_sessions = {skey(s): s for s in report.sessions}
    live_in_period = {}
    for k, s in live_sessions.items():
        t = parse_opt_time(s.get("opened_at"))
        if t is not None and t in period and in_scope(k[0]):
            live_in_period[skey(s)] = s
    partial_history = period.lookback is not None
    unsettled_s = 0
    for key in sorted(set(replay_sessions) | set(live_in_period), key=lambda k: (k[0], k[2] or "", k[1])):
        shop, conv, _ = key
        r, l = replay_sessions.get(key), live_in_period.get(key)
        sid = (l or r)["session_id"]
        explained = late.session(shop, conv)
        if r is None or l is None:
            diffs.append(Difference("session", shop, sid, "(record)", "present" if l else None,
                                    "present" if r else None, explained))
            continue
        if r["closed_at"] is not None:
            fields: Iterable[str] = r.keys()
        else:  # open at `to`: only what can no longer change without a late event
            unsettled_s += 1
            fields = ["session_id", *SESSION_FIXED]
            if r["decided_at"] is not None:
                fields += ["replied_within_24h", "decided_at"]
            if r["first_reply_by"] == "seller":
                fields += ["first_reply_at", "first_reply_by"]
        for f in fields:
            if l.get(f) != r.get(f):
                numbering = (f == "session_id" and partial_history
                             and session_number(r["session_id"]) < session_number(l["session_id"]))
                diffs.append(Difference("session", shop, sid, f, l.get(f), r.get(f), explained, numbering))

    # assessments: of weeks starting in the period
    replay_weeks = {(a["shop_id"], a["week_start"]): a for a in report.assessments}
    live_weeks = {}
    for k, a in live_assessments.items():
        start, end = result.week_of(k[0], k[1], default_timezone)
        if start in period and in_scope(k[0]):
            live_weeks[k] = a
    unsettled_a = 0
    for key in sorted(set(replay_weeks) | set(live_weeks)):
        shop, label = key
        start, end = result.week_of(shop, label, default_timezone)
        r, l = replay_weeks.get(key), live_weeks.get(key)
        if r is None and end >= period.end:
            continue  # the week had not ended by `to`: the replay cannot have it yet
        if r is None or l is None:
            diffs.append(Difference("assessment", shop, label, "(record)", "present" if l else None,
                                    "present" if r else None, late.week(shop, start, end)))
            continue
        if r["status"] == "final":
            fields = list(r.keys())
        else:
            unsettled_a += 1
            fields = list(ASSESSMENT_FIXED)
        for f in fields:
            if l.get(f) != r.get(f):
                diffs.append(Difference("assessment", shop, label, f, l.get(f), r.get(f),
                                        late.week(shop, start, end)))
    compared_other: dict[str, int] = {}
    for kind, plural, key, live in (("ticket", "tickets", TICKET_KEY, live_tickets),
                                    ("wait", "waits", WAIT_KEY, live_waits),
                                    ("request", "requests", REQUEST_KEY, live_requests),
                                    ("period", "periods", PERIOD_KEY, live_periods)):
        replay_recs = {record_key(key, r): r for r in getattr(report, plural)}
        live_recs = {k: r for k, r in in_period(result, kind, live or {}, default_timezone).items()
                     if in_scope(r["shop_id"])}
        if kind == "period":  # a live worker ahead of `to` has records of periods that end after it:
            # the replay cannot have them yet (as an assessment of a week not ended by `to`, above)
            zones = result.label_zones or result.shop_zones
            live_recs = {k: r for k, r in live_recs.items()
                         if k in replay_recs or period_end(r, zones.get(r["shop_id"]) or default_timezone) < period.end}
        if not replay_recs and not live_recs:
            continue
        found, unsettled = compare_records(kind, replay_recs, live_recs, late)
        compared_other[plural] = len(replay_recs)
        compared_other[f"{plural}_unsettled_at_to"] = unsettled
        diffs += found
    return VerifyResult(result, diffs, len(replay_sessions), len(replay_weeks), unsettled_s, unsettled_a,
                        live_records, compared_other)


def period_end(r: dict, tz: str) -> int:
    """The end (µs) of a period record's day, week or month (R9.6, R10.5.2, R11.5.2, R11.6.3) in ``tz``."""
    from chatsla.core.calendar import month_bounds_of
    from chatsla.core.periods import period_bounds_of

    if r["period"] == "month":
        return month_bounds_of(r["start"], tz)[1]
    return period_bounds_of(r["period"], r["start"], tz)[1]


def record_label(kind: str, r: dict) -> str:
    """How a difference names a ticket, wait or period record."""
    if kind == "ticket":
        return str(r["ticket_id"])
    if kind == "wait":
        return str(r["wait_id"])
    if kind == "request":
        return str(r["request_id"])
    sub = r.get("request_type") or r.get("group")
    return f"{r['period']} {r['start']}{' ' + sub if sub else ''} {r['policy_id']}@{r['policy_version']}"


def in_period(result: ReplayResult, kind: str, live: dict, default_timezone: str) -> dict:
    """The live records of ``kind`` that the replay's period reports, by the replay's own rule."""
    from chatsla.audit import Collector
    from chatsla.replay.run import keep_in_period

    c = Collector()
    store = {"ticket": c.tickets, "wait": c.waits, "request": c.requests, "period": c.periods}[kind]
    store.update(live)
    keep_in_period(c, result.period, result.label_zones or result.shop_zones, default_timezone)
    return {"ticket": c.tickets, "wait": c.waits, "request": c.requests, "period": c.periods}[kind]


def settled(kind: str, r: dict) -> bool:
    """Whether the replay's record can no longer change without a late event: a ticket handled
    or closed, a wait ended, a request observed (its first review, R11.5.1), a period record not
    provisional (R9.5, R10.5, R9.6, R11.6.3)."""
    if kind == "ticket":
        return r.get("handled_at") is not None or r.get("closed_at") is not None
    if kind == "wait":
        return r.get("ended_at") is not None
    if kind == "request":
        return r.get("observed") is not None
    return r.get("status") != "provisional"


def compare_records(kind: str, replay: dict, live: dict, late: "LateIndex") -> tuple[list[Difference], int]:
    """Every field on which the live and the replayed record of each key differ, and how many
    replayed records were unsettled at ``to`` (compared on their fixed fields only, as an open
    session); a record on one side only is one ``(record)`` difference. Late events explain them
    (R6.4): a wait's those of its conversation, a ticket's or a period's any late event of the
    shop (a :class:`LateEvent` names no ticket)."""
    diffs: list[Difference] = []
    unsettled = 0
    fixed = {"ticket": TICKET_FIXED, "wait": WAIT_FIXED, "request": REQUEST_FIXED, "period": PERIOD_FIXED}[kind]
    for key in sorted(set(replay) | set(live), key=lambda k: tuple("" if x is None else str(x) for x in k)):
        r, l = replay.get(key), live.get(key)
        some = r if r is not None else l
        shop = some["shop_id"]
        if kind == "wait":
            explained = late.session(shop, some["conversation_id"])
        else:
            explained = tuple(sorted({e.event_id for e in late.by_shop.get(shop, ())}))
        label = record_label(kind, some)
        if r is None or l is None:
            diffs.append(Difference(kind, shop, label, "(record)", "present" if l else None,
                                    "present" if r else None, explained))
            continue
        if settled(kind, r):
            fields = list(r.keys()) + [f for f in l.keys() if f not in r]
        else:
            unsettled += 1
            fields = list(fixed)
        for f in fields:
            if l.get(f) != r.get(f):
                diffs.append(Difference(kind, shop, label, f, l.get(f), r.get(f), explained))
    return diffs, unsettled


def session_number(session_id: object) -> int:
    try:
        return int(str(session_id).rsplit("#", 1)[1])
    except (IndexError, ValueError):
        return 0


def parse_opt_time(value: object) -> int | None:
    return parse_time(value) if isinstance(value, str) else None


async def verify_async(kin: KafkaInput, period: Period, policy: Policy, config: EngineConfig = EngineConfig(),
                       shops: Iterable[str] | None = None, progress: Progress | None = None,
                       parallel: bool | None = None, policies: Iterable[object] = ()) -> VerifyResult:
    """Replay the period and compare it with the live pipeline's latest outputs.

    With ``policies`` (the other models', as ``chatsla audit --policy``), the tickets, waits and
    period records the period reports (the replay's rule) are compared too, on every field: they
    are the final state at ``to`` on both sides when the live watermark has passed ``to``.

    Compared: every session opened in the period (matched by shop, conversation and opening time,
    so a session number differing only because the replay's history starts at the lookback window
    is one ``session_id`` difference with cause ``lookback``) and every assessment of a week
    starting in it (by shop and week), on every field. A session still open at ``to`` in the replay is compared only on what can no
    longer change (its identity, opening, exclusion, week, a decision or human reply already
    made); a provisional assessment only on ``sessions`` and ``buyer_messages``; a live assessment
    of a week that had not ended by ``to`` is skipped. Run it with ``--to`` at or before the live
    watermark (the wall clock minus the allowed lateness, for a worker with ticks).
    """
    result = await replay_async(kin, period, policy, config, shops, progress, track_late=True, parallel=parallel,
                                policies=policies)
    live = await read_live_outputs(kin)
    return compare(result, live.sessions, live.assessments, config.default_timezone, live.records,
                   live.tickets, live.waits, live.periods, live.requests)


def verify(kin: KafkaInput, period: Period, policy: Policy, config: EngineConfig = EngineConfig(),
           shops: Iterable[str] | None = None, progress: Progress | None = None,
           parallel: bool | None = None, policies: Iterable[object] = ()) -> VerifyResult:
    """Synchronous :func:`verify_async`."""
    return asyncio.run(verify_async(kin, period, policy, config, shops, progress, parallel, policies))