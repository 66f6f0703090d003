"""``chatsla verify``: the replay of a period against the live pipeline's outputs (issue #5).

:func:`compare` is pure (the replay's result and the live records in, the differences out) and
unit-tested on in-memory inputs (tests/replay/test_verify.py); :func:`read_live_outputs` reads
the live output topics with the one Kafka reader.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Iterable

import orjson

from chatsla.core.engine import EngineConfig
from chatsla.core.policy import Policy
from chatsla.core.timefmt import format_time, parse_time
from chatsla.replay.period import Period
from chatsla.replay.result import LateEvent, ReplayResult
from chatsla.replay.run import Progress, replay_async
from chatsla.streams.reader import TOPIC, VALUE, InputReader, KafkaInput


SESSION_FIXED = ("shop_id", "conversation_id", "opened_at", "excluded", "week_start", "policy_id", "policy_version")
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

    kind: str  # "session" | "assessment"
    shop_id: str
    key: str  # session_id (the live one when both exist), or the week_start of an assessment
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

    def to_dict(self) -> dict:
        p = self.replay.period
        return {
            "from": format_time(p.start), "to": format_time(p.end),
            "policy_id": self.replay.policy.id, "policy_version": self.replay.policy.version,
            "compared": {"sessions": self.compared_sessions, "assessments": self.compared_assessments,
                         "sessions_open_at_to": self.unsettled_sessions,
                         "assessments_provisional_at_to": self.unsettled_assessments,
                         "live_records_read": self.live_records},
            "differences": [d.to_dict() for d in self.differences],
            "late_events": [e.to_dict() for e in sorted(self.replay.late, key=lambda e: (e.t, e.event_id))],
        }


async def read_live_outputs(kin: KafkaInput) -> tuple[dict, dict, int]:
    """The live outputs as a consumer sees them: the latest record per session and per shop-week.

    Read whole with the one reader (:class:`~chatsla.streams.reader.InputReader`, no decoding);
    a key's records are in one partition, whose order the merge keeps.
    """
    names = kin.names
    sessions: dict[tuple[str, str], dict] = {}
    assessments: dict[tuple[str, str], dict] = {}
    n = 0
    loads = orjson.loads
    reader = InputReader(kin, (names.sessions, names.assessments), client_id="chatsla-verify",
                         missing=": is a live worker deployed with this --topic-prefix?")
    async with reader:
        async for batch in reader.batches():
            for rec in batch:
                n += 1
                session = rec[TOPIC] == names.sessions
                try:
                    out = loads(rec[VALUE])
                    if session:
                        sessions[(out["shop_id"], out["session_id"])] = out
                    else:
                        assessments[(out["shop_id"], out["week_start"])] = out
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue
    return sessions, assessments, n


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
            default_timezone: str = "UTC", live_records: int = 0) -> VerifyResult:
    """The differences between the live outputs and the replay of the period (see :func:`verify`)."""
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
    return VerifyResult(result, diffs, len(replay_sessions), len(replay_weeks), unsettled_s, unsettled_a,
                        live_records)


def session_number(session_id: object) -> int:
    try:
        return int(str(session_id).rsplit("#", 1)[1])
    except (IndexError, ValueError):
        return 0


def parse_opt_time(value: object) -> int | None:
    return parse_time(value) if isinstance(value, str) else None


async def verify_async(kin: KafkaInput, period: Period, policy: Policy, config: EngineConfig = EngineConfig(),
                       shops: Iterable[str] | None = None, progress: Progress | None = None,
                       parallel: bool | None = None) -> VerifyResult:
    """Replay the period and compare it with the live pipeline's latest outputs.

    Compared: every session opened in the period (matched by shop, conversation and opening time,
    so a session number differing only because the replay's history starts at the lookback window
    is one ``session_id`` difference with cause ``lookback``) and every assessment of a week
    starting in it (by shop and week), on every field. A session still open at ``to`` in the replay is compared only on what can no
    longer change (its identity, opening, exclusion, week, a decision or human reply already
    made); a provisional assessment only on ``sessions`` and ``buyer_messages``; a live assessment
    of a week that had not ended by ``to`` is skipped. Run it with ``--to`` at or before the live
    watermark (the wall clock minus the allowed lateness, for a worker with ticks).
    """
    result = await replay_async(kin, period, policy, config, shops, progress, track_late=True, parallel=parallel)
    live_s, live_a, n = await read_live_outputs(kin)
    return compare(result, live_s, live_a, config.default_timezone, n)


def verify(kin: KafkaInput, period: Period, policy: Policy, config: EngineConfig = EngineConfig(),
           shops: Iterable[str] | None = None, progress: Progress | None = None,
           parallel: bool | None = None) -> VerifyResult:
    """Synchronous :func:`verify_async`."""
    return asyncio.run(verify_async(kin, period, policy, config, shops, progress, parallel))