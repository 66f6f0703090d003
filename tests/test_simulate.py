"""Tests of the traffic simulator (chatsla.simulate) against RULES R1-R6.

The R1 check below is written here on purpose, with orjson only: the simulator must not be
validated by the decoder it is meant to exercise.
"""

from __future__ import annotations

import io
import re
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from click.testing import CliRunner

from chatsla.simulate import (
    CHAT_TOPIC,
    MESSAGE_TYPES,
    SHOP_TOPIC,
    Record,
    SimConfig,
    generate,
    simulate,
    write_jsonl,
)

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "week.jsonl"
SAMPLE_CONFIG = SimConfig(seed=7, bad_fraction=0.002, jitter_seconds=60)
WEEK = date(2026, 11, 2)
ALLOWED_LATENESS = 120  # seconds, R6.2 default

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_SENDERS = ("buyer", "seller", "auto_reply", "system")
# field -> (required, allowed values; None = any string; "time" = RFC 3339 with offset)
_CHAT_FIELDS: dict[str, tuple[bool, Any]] = {
    "schema": (True, ("chat.message/v1",)),
    "event_id": (True, None),
    "shop_id": (True, None),
    "conversation_id": (True, None),
    "platform": (False, None),
    "sender": (True, _SENDERS),
    "kind": (False, ("message", "close")),
    "message_type": (False, MESSAGE_TYPES),
    "sent_at": (True, "time"),
}
_SHOP_FIELDS: dict[str, tuple[bool, Any]] = {
    "schema": (True, ("shop.event/v1",)),
    "event_id": (True, None),
    "shop_id": (True, None),
    "type": (True, ("vacation_on", "vacation_off", "timezone")),
    "timezone": (False, None),
    "at": (True, "time"),
}


def parse_time(text: str) -> datetime:
    """R1 timestamp: RFC 3339 with an offset, 'Z' or '+hh:mm'."""
    if not _RFC3339.fullmatch(text):
        raise ValueError(text)
    return datetime.fromisoformat(text)


def r1_problem(topic: str, key: bytes, value: bytes) -> str | None:
    """Why a record is invalid under R1, or None when it is valid."""
    try:
        ev = orjson.loads(value)
    except orjson.JSONDecodeError:
        return "not json"
    if not isinstance(ev, dict):
        return "not an object"
    fields = _CHAT_FIELDS if topic == CHAT_TOPIC else _SHOP_FIELDS
    for name, (required, allowed) in fields.items():
        if name not in ev:
            if required:
                return f"missing {name}"
            continue
        if not isinstance(ev[name], str):
            return f"{name} not a string"
        if allowed == "time":
            try:
                parse_time(ev[name])
            except ValueError:
                return f"bad {name}"
        elif allowed is not None and ev[name] not in allowed:
            return f"bad {name}"
    if topic == SHOP_TOPIC and ev["type"] == "timezone":
        if "timezone" not in ev:
            return "missing timezone"
        ZoneInfo(ev["timezone"])  # raises for an unknown IANA name
    return None


def event_time(value: bytes) -> datetime:
    ev = orjson.loads(value)
    return parse_time(ev.get("sent_at") or ev["at"])


def disorders(records: list[Record]) -> list[tuple[float, str]]:
    """(seconds behind the latest event time logged so far, topic) per good record in log order."""
    out, latest = [], None
    for topic, key, value in records:
        if r1_problem(topic, key, value):
            continue
        t = event_time(value)
        latest = t if latest is None or t > latest else latest
        out.append(((latest - t).total_seconds(), topic))
    return out


def weekly_outcomes(records: list[Record]) -> tuple[dict[tuple[str, date], str], Counter[str], int]:
    """A deliberately small reading of R2-R5 (no lateness, no policy table), only to check that
    the simulated shops land where their profiles say. Returns outcomes per (shop, Monday),
    sessions closed per reason, and the number of sessions excluded for vacation."""
    zones: dict[str, ZoneInfo] = defaultdict(lambda: ZoneInfo("UTC"))
    vacation: dict[str, list[tuple[datetime, bool]]] = defaultdict(list)
    messages = []
    for pos, (topic, key, value) in enumerate(records):
        if r1_problem(topic, key, value):
            continue
        ev = orjson.loads(value)
        if topic == SHOP_TOPIC:
            if ev["type"] == "timezone":
                zones[ev["shop_id"]] = ZoneInfo(ev["timezone"])
            else:
                vacation[ev["shop_id"]].append((parse_time(ev["at"]), ev["type"] == "vacation_on"))
        else:
            messages.append((parse_time(ev["sent_at"]), pos, ev))
    messages.sort(key=lambda m: (m[0], m[1]))  # R6.3: the time-sorted input

    def on_vacation(shop: str, t: datetime) -> bool:
        state = False
        for at, on in sorted(vacation[shop]):
            if at <= t:
                state = on
        return state

    def monday(shop: str, t: datetime) -> date:
        local = t.astimezone(zones[shop]).date()
        return local - timedelta(days=local.weekday())

    def deadline(s: dict[str, Any]) -> tuple[datetime, str]:
        candidates = []
        if s["wait_start"] is not None:
            candidates.append((s["wait_start"] + timedelta(hours=72), "seller_timeout"))
        if s["side"] is not None and not s["buyer_since"]:
            who, at = s["side"]
            if who == "seller":
                candidates.append((at + timedelta(hours=6), "buyer_timeout"))
            else:
                candidates.append((at + timedelta(minutes=10), "auto_reply_resolved"))
        return min(candidates)

    closed: list[dict[str, Any]] = []
    sessions: dict[tuple[str, str], dict[str, Any]] = {}
    buyer_messages: Counter[tuple[str, date]] = Counter()
    for t, _, ev in messages:
        shop, conv, sender = ev["shop_id"], (ev["shop_id"], ev["conversation_id"]), ev["sender"]
        s = sessions.get(conv)
        if s is not None and t > (end := deadline(s))[0]:  # R2.5: inclusive deadlines
            closed.append(dict(sessions.pop(conv), reason=end[1]))
            s = None
        if ev.get("kind") == "close":
            if s is not None:
                reason = "closed_by_seller" if sender == "seller" else "closed_by_platform"
                closed.append(dict(sessions.pop(conv), reason=reason))
            continue
        if sender == "buyer":
            if not on_vacation(shop, t):
                buyer_messages[shop, monday(shop, t)] += 1
            if s is None:
                s = sessions[conv] = {
                    "shop": shop,
                    "opened": t,
                    "wait_start": t,  # R2.3
                    "side": None,  # (sender, time) of the latest seller-side message
                    "first_human": None,
                }
            elif s["wait_start"] is None:
                s["wait_start"] = t
            s["buyer_since"] = True
        elif s is not None and sender in ("seller", "auto_reply"):
            s["side"], s["buyer_since"] = (sender, t), False
            if sender == "seller":
                s["wait_start"] = None
                s["first_human"] = s["first_human"] or t
    closed.extend(dict(s, reason=deadline(s)[1]) for s in sessions.values())

    counted: Counter[tuple[str, date]] = Counter()
    replied: Counter[tuple[str, date]] = Counter()
    excluded = 0
    for s in closed:
        if on_vacation(s["shop"], s["opened"]):
            excluded += 1
            continue
        limit = s["opened"] + timedelta(hours=24)
        week = (s["shop"], monday(s["shop"], s["opened"]))
        counted[week] += 1
        replied[week] += (s["first_human"] is not None and s["first_human"] <= limit) or (
            s["reason"] == "auto_reply_resolved" and s["side"][1] <= limit
        )
    outcomes = {}
    for week in set(counted) | set(buyer_messages):
        if buyer_messages[week] < 5:
            outcomes[week] = "not_assessed"
        elif counted[week]:
            rate = replied[week] / counted[week]
            outcomes[week] = "ok" if rate >= 0.90 else "warning" if rate >= 0.85 else "violation"
    return outcomes, Counter(s["reason"] for s in closed), excluded


def jsonl(records: list[Record]) -> bytes:
    buf = io.BytesIO()
    write_jsonl(records, buf)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    """R6.1: the simulator itself is a pure function of its arguments."""
    config = SimConfig(seed=3, shops=3, conversations_per_shop=60, bad_fraction=0.01, jitter_seconds=30)
    config = replace(config, late_fraction=0.01)
    first = jsonl(generate(config))
    assert first == jsonl(generate(config))
    assert first != jsonl(generate(replace(config, seed=4)))


def test_every_good_record_is_valid_r1() -> None:
    """R1: fields, types, enumerations, RFC 3339 times with offsets; keys; unique event ids."""
    records = generate(SimConfig(seed=7))
    ids = []
    for topic, key, value in records:
        assert r1_problem(topic, key, value) is None, value
        ev = orjson.loads(value)
        assert topic in (CHAT_TOPIC, SHOP_TOPIC)
        assert key.decode() == (ev["conversation_id"] if topic == CHAT_TOPIC else ev["shop_id"])
        if ev.get("kind") == "close":
            assert ev["sender"] in ("seller", "system")
        ids.append(ev["event_id"])
    assert len(ids) == len(set(ids))


def test_traffic_reaches_every_r1_value() -> None:
    """R1/R4: all senders, kinds and message types, optional fields present and absent, both
    time spellings, timezone events before a shop's first message, one vacation period."""
    records = generate(SimConfig(seed=7))
    seen: Counter[str] = Counter()
    first_message: dict[str, int] = {}
    timezone_at: dict[str, int] = {}
    for pos, (topic, _key, value) in enumerate(records):
        ev = orjson.loads(value)
        if topic == SHOP_TOPIC:
            seen[f"shop:{ev['type']}"] += 1
            if ev["type"] == "timezone":
                timezone_at[ev["shop_id"]] = pos
            continue
        first_message.setdefault(ev["shop_id"], pos)
        seen[f"sender:{ev['sender']}:{ev.get('kind', 'message')}"] += 1
        seen[f"type:{ev.get('message_type', 'text')}"] += 1
        seen[f"platform:{'platform' in ev}"] += 1
        seen[f"message_type_field:{'message_type' in ev}"] += 1
        seen["offset:Z" if ev["sent_at"].endswith("Z") else "offset:numeric"] += 1
    expected = {f"sender:{s}:message" for s in _SENDERS} | {"sender:seller:close", "sender:system:close"}
    expected |= {f"type:{m}" for m in MESSAGE_TYPES} | {"platform:True", "platform:False"}
    expected |= {"message_type_field:True", "message_type_field:False", "offset:Z", "offset:numeric"}
    expected |= {"shop:vacation_on", "shop:vacation_off", "shop:timezone"}
    assert expected <= set(seen), expected - set(seen)
    assert seen["offset:Z"] > 3 * seen["offset:numeric"]  # mostly 'Z'
    assert sorted(timezone_at) == ["shop-02", "shop-03", "shop-04", "shop-05"]  # shop-01 is UTC
    assert all(timezone_at[shop] < first_message[shop] for shop in timezone_at)


@pytest.mark.parametrize("seed", [7, 11, 12345])
def test_default_shops_reach_every_weekly_outcome(seed: int) -> None:
    """R2-R5: with the defaults the week's outcomes are ok / warning / violation / not_assessed /
    ok, every closure reason of R2.4 occurs, and vacation excludes sessions (R4)."""
    outcomes, reasons, excluded = weekly_outcomes(generate(SimConfig(seed=seed, jitter_seconds=60)))
    week = {shop: outcome for (shop, monday), outcome in outcomes.items() if monday == WEEK}
    assert week == {
        "shop-01": "ok",  # and on vacation for a while
        "shop-02": "warning",
        "shop-03": "violation",
        "shop-04": "not_assessed",
        "shop-05": "ok",
    }
    assert set(reasons) == {
        "seller_timeout",
        "buyer_timeout",
        "auto_reply_resolved",
        "closed_by_seller",
        "closed_by_platform",
    }
    assert excluded > 0


def test_conversations_start_in_the_week_and_run_up_to_three_days_past_it() -> None:
    """R2.4/R5.1: sessions open inside each shop's local week; late replies and 72 h closures
    spill over past its end, by at most about three days."""
    config = SimConfig(seed=7)
    end = datetime(2026, 11, 9, tzinfo=UTC)
    times = [event_time(v) for t, _, v in generate(config) if t == CHAT_TOPIC]
    assert min(times) >= datetime(2026, 11, 2, tzinfo=UTC) - timedelta(hours=14 + 12)  # +14:00 zone, outreach
    assert end + timedelta(hours=48) < max(times) <= end + timedelta(hours=8 + 72 + 9)


def test_bad_fraction_is_honoured_and_keeps_the_good_traffic() -> None:
    """R1: invalid records (not JSON, truncated, missing fields, wrong types, bad times, unknown
    sender, ...) make up about bad_fraction of the log, sit on chat.messages, never span lines,
    and leave the good records exactly as without them."""
    clean = generate(SimConfig(seed=5, shops=3, conversations_per_shop=300))
    dirty = generate(SimConfig(seed=5, shops=3, conversations_per_shop=300, bad_fraction=0.05))
    problems = [r1_problem(*record) for record in dirty]
    bad = [record for record, problem in zip(dirty, problems, strict=True) if problem]
    assert 0.045 <= len(bad) / len(dirty) <= 0.055
    assert {topic for topic, _, _ in bad} == {CHAT_TOPIC}
    assert not any(b"\n" in value or b"\r" in value for _, _, value in dirty)
    assert [r for r, problem in zip(dirty, problems, strict=True) if not problem] == clean
    kinds = {p.split()[0] if p.startswith(("missing", "bad")) else p for p in problems if p}
    assert {"not json", "not an object", "missing", "bad"} <= kinds
    assert any(p == "bad sender" for p in problems) and any(p == "bad sent_at" for p in problems)
    assert any(p and p.endswith("not a string") for p in problems)


def test_jitter_never_exceeds_jitter_seconds() -> None:
    """R6.3: log order deviates from event-time order by at most jitter_seconds, and only the
    order changes, not the records."""
    base = SimConfig(seed=9, shops=3, conversations_per_shop=300)
    jittered = generate(SimConfig(seed=9, shops=3, conversations_per_shop=300, jitter_seconds=60))
    lags = [lag for lag, _ in disorders(jittered)]
    assert max(lags) <= 60
    assert sum(lag > 0 for lag in lags) > 10  # the jitter is real
    assert max(lag for lag, _ in disorders(generate(base))) == 0
    assert sorted(jittered) == sorted(generate(base))


def test_late_events_are_far_late_and_rare() -> None:
    """R6.2/R6.4: with late_fraction, events beyond jitter_seconds are chat messages delivered
    more than the allowed lateness after newer events; all others stay within the jitter."""
    config = SimConfig(seed=9, shops=3, conversations_per_shop=300, jitter_seconds=60, late_fraction=0.02)
    records = generate(config)
    beyond = [(lag, topic) for lag, topic in disorders(records) if lag > config.jitter_seconds]
    assert all(lag > ALLOWED_LATENESS and topic == CHAT_TOPIC for lag, topic in beyond)
    chat = sum(topic == CHAT_TOPIC for topic, _, _ in records)
    assert 0.5 * 0.02 * chat <= len(beyond) <= 1.5 * 0.02 * chat
    assert sorted(records) == sorted(generate(SimConfig(seed=9, shops=3, conversations_per_shop=300)))


def test_sample_week_is_current() -> None:
    """R6.1: samples/week.jsonl is exactly what samples/README.md says generated it."""
    assert SAMPLE.read_bytes() == jsonl(generate(SAMPLE_CONFIG))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"week_start": datetime(2026, 11, 3, tzinfo=UTC)}, "Monday"),
        ({"week_start": datetime(2026, 11, 2)}, "offset"),
        ({"shops": 0}, "shops"),
        ({"bad_fraction": 1.0}, "bad_fraction"),
        ({"vacation_shop": 6}, "vacation_shop"),
        ({"timezones": ("Mars/Olympus",)}, "timezone"),
    ],
)
def test_config_rejects_impossible_values(kwargs: dict[str, Any], message: str) -> None:
    """R5.1: weeks start on Monday 00:00; other values must make sense before anything is made."""
    with pytest.raises(ValueError, match=message):
        SimConfig(seed=1, **kwargs)


# --------------------------------------------------------------------------------------------
# Command line


def test_cli_writes_jsonl_to_stdout_and_file(tmp_path: Path) -> None:
    """R1: one event per line, byte for byte what generate() returns."""
    args = ["--shops", "2", "--conversations", "30", "--seed", "3", "--bad-fraction", "0.01"]
    args += ["--jitter-seconds", "20"]
    config = SimConfig(seed=3, shops=2, conversations_per_shop=30, bad_fraction=0.01, jitter_seconds=20)
    expected = jsonl(generate(config))
    result = CliRunner().invoke(simulate, args)
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == expected
    out = tmp_path / "week.jsonl"
    result = CliRunner().invoke(simulate, [*args, "--week-start", "2026-11-02T00:00:00Z", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == expected
    assert result.stdout_bytes == b""


def test_cli_week_start_accepts_offsets() -> None:
    """R5.1: a Monday midnight given with an offset is a valid week start."""
    args = ["--shops", "1", "--conversations", "3", "--week-start", "2026-11-09T00:00:00+07:00"]
    result = CliRunner().invoke(simulate, args)
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.count(b"\n") > 3


@pytest.mark.parametrize(
    "args",
    [
        ["--shops", "0"],
        ["--shops", "many"],
        ["--days", "0"],
        ["--bad-fraction", "1.5"],
        ["--late-fraction", "-0.1"],
        ["--jitter-seconds", "-1"],
        ["--week-start", "2026-11-03"],  # a Tuesday
        ["--week-start", "2026-11-02T10:00:00Z"],  # not midnight
        ["--week-start", "2026-11-02T00:00:00"],  # no offset
        ["--week-start", "next monday"],
        ["--no-such-option"],
        ["extra-argument"],
    ],
)
def test_cli_rejects_bad_arguments_with_one_line_and_exit_2(args: list[str]) -> None:
    """Bad arguments (R1 ranges, R5.1 Monday 00:00 week start): exit code 2, one plain line on
    stderr, nothing on stdout."""
    result = CliRunner().invoke(simulate, args)
    assert result.exit_code == 2
    assert result.stdout_bytes == b""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert not result.stderr.startswith("Usage")


def test_cli_unreachable_broker_is_one_plain_line() -> None:
    """R1 topics: producing to a broker nobody listens on fails with one line and exit 1 (a failed
    run, not a usage error: issue #13)."""
    import socket

    with socket.socket() as s:  # a free port with nothing behind it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = CliRunner().invoke(simulate, ["--conversations", "1", "--shops", "1", "--bootstrap", f"127.0.0.1:{port}"])
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1 and "cannot reach Kafka" in result.stderr, result.stderr
    assert result.stdout_bytes == b""