"""Property tests of the core's invariants (RULES R1 idempotency, R6.1 determinism, R6.3 order)."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatsla.audit import run_audit
from chatsla.core.engine import Engine, EngineConfig
from chatsla.core.policy import load_policy
from chatsla.report import to_json
from chatsla.schemas.decode import decode
from tests.builders import MONDAY

POLICY = load_policy()
LATENESS_S = 120
# the generated logs may span weeks; remember every event_id for the property tests
CONFIG = EngineConfig(allowed_lateness=LATENESS_S * 1_000_000, dedupe_window=400 * 86400 * 1_000_000)
BASE_S = int(MONDAY.timestamp())
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_gap = st.one_of(  # seconds between consecutive events: bursts, minutes, hours, days
    st.integers(0, 5), st.integers(0, 900), st.integers(0, 8 * 3600), st.integers(0, 80 * 3600))
_sender = st.sampled_from(["buyer", "buyer", "buyer", "seller", "seller", "auto_reply", "system"])


def _iso(seconds: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(BASE_S + seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@st.composite
def streams(draw: st.DrawFn) -> list[dict]:
    """A time-sorted log over a few shops and conversations, crossing week boundaries."""
    n = draw(st.integers(1, 60))
    t = draw(st.integers(0, 6 * 86400))
    events: list[dict] = []
    for i in range(n):
        t += draw(_gap)
        shop = draw(st.sampled_from(["s1", "s2"]))
        roll = draw(st.integers(0, 99))
        if roll < 6:
            typ = draw(st.sampled_from(["vacation_on", "vacation_off", "timezone"]))
            ev = {"schema": "shop.event/v1", "event_id": f"e{i}", "shop_id": shop, "type": typ, "at": _iso(t)}
            if typ == "timezone":
                ev["timezone"] = draw(st.sampled_from(["UTC", "Asia/Bangkok", "America/Los_Angeles"]))
        else:
            sender = draw(_sender)
            ev = {"schema": "chat.message/v1", "event_id": f"e{i}", "shop_id": shop,
                  "conversation_id": draw(st.sampled_from(["c1", "c2", "c3"])), "sender": sender, "sent_at": _iso(t)}
            if roll < 10 and sender in ("seller", "system"):
                ev["kind"] = "close"
        events.append(ev)
    return events


def run(events: list[dict]):
    return run_audit([orjson.dumps(e) for e in events], POLICY, CONFIG)


def outputs_only(report) -> tuple:
    stats = {k: v for k, v in report.stats.items() if k not in ("read", "valid", "duplicate")}
    return report.sessions, report.assessments, stats


@SETTINGS
@given(streams(), st.data())
def test_r1_duplicates_change_nothing(events: list[dict], data: st.DataObject) -> None:
    """Any event delivered again later (a producer retry, a replay after a crash) is ignored."""
    noisy = list(events)
    for _ in range(data.draw(st.integers(1, 10))):
        i = data.draw(st.integers(0, len(events) - 1))
        pos = data.draw(st.integers(noisy.index(events[i]) + 1, len(noisy)))
        noisy.insert(pos, dict(events[i]))
    base, dup = run(events), run(noisy)
    assert outputs_only(dup) == outputs_only(base)
    assert dup.stats["duplicate"] == len(noisy) - len(events)


@SETTINGS
@given(streams())
def test_r1_whole_log_delivered_twice_equals_once(events: list[dict]) -> None:
    assert outputs_only(run(events + events)) == outputs_only(run(events))


@SETTINGS
@given(streams(), st.data())
def test_r6_3_reordering_within_allowed_lateness_equals_time_sorted_input(events: list[dict], data: st.DataObject) -> None:
    """Each event may arrive up to the allowed lateness after a later-timed one; no event is late."""
    jitter = data.draw(st.lists(st.integers(0, LATENESS_S), min_size=len(events), max_size=len(events)))
    keyed = sorted(range(len(events)), key=lambda i: (BASE_S + _secs(events[i]) + jitter[i], i))
    shuffled = run([events[i] for i in keyed])
    assert shuffled.stats["late"] == 0
    assert to_json(shuffled) == to_json(run(events))


def _secs(ev: dict) -> int:
    from chatsla.core.timefmt import parse_time

    return parse_time(ev.get("sent_at") or ev["at"]) // 1_000_000 - BASE_S


def engine_run(events: list[dict], cuts: list[int], config: EngineConfig = CONFIG,
                finish_after: int | None = None) -> tuple[list, dict]:
    """Feed ``events`` in batches; between batches the engine is snapshotted to JSON bytes and
    restored, as a worker restarting from its changelog would be. ``finish_after``: end the input
    that long after the last event time (default: at it)."""
    out: list = []
    engine = Engine(POLICY, config, sink=lambda k, r: out.append((k, r)))
    start = 0
    for cut in sorted(cuts) + [len(events)]:
        for e in events[start:cut]:
            engine.apply(decode(orjson.dumps(e)))
        start = max(start, cut)
        blob = orjson.dumps(engine.snapshot())
        engine = Engine.restore(POLICY, config, orjson.loads(blob), sink=lambda k, r: out.append((k, r)))
    engine.finish(None if finish_after is None or engine.max_seen is None else engine.max_seen + finish_after)
    return out, dict(engine.stats)


@SETTINGS
@given(streams(), st.data())
def test_r6_1_any_batching_with_snapshot_restore_gives_the_same_records(events: list[dict], data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(events)), max_size=6))
    assert engine_run(events, cuts) == engine_run(events, [])


@settings(max_examples=30, deadline=None)
@given(streams())
def test_r6_1_report_is_byte_identical_across_runs(events: list[dict]) -> None:
    assert to_json(run(events)) == to_json(run(events))


def test_r6_1_report_is_byte_identical_across_processes_and_hash_seeds(tmp_path) -> None:
    """Set iteration order depends on PYTHONHASHSEED; the report must not."""
    from tests.builders import at, msg, shop_event

    events = [shop_event("timezone", at(h=0), shop=f"s{k}", tz="Asia/Jakarta") for k in range(3)]
    for k in range(300):
        events.append(msg(f"c{k % 40}", ["buyer", "seller", "auto_reply", "buyer"][k % 4], at(h=k * 0.7), shop=f"s{k % 3}"))
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    outs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        proc = subprocess.run([sys.executable, "-m", "chatsla.cli", "audit", str(path), "--format", "json",
                               "--until", at(d=20)], capture_output=True, env=env, check=True)
        outs.append(proc.stdout)
    assert outs[0] == outs[1] and b'"assessments"' in outs[0]


def test_r1_dedupe_window_is_bounded_and_an_older_copy_is_still_a_duplicate() -> None:
    """event_ids are remembered for ``dedupe_window`` behind the watermark (memory stays bounded);
    the conversation keeps a floor, the latest time it forgot, so a copy arriving later than that
    still changes nothing (R1): counted as a duplicate and as ``dedupe_overflow``, not applied as
    a late event. That is also what keeps a crash replay from applying an event twice when the
    watermark jumped past its window before the checkpoint (R6.1, issue #10)."""
    from tests.builders import at, msg

    first = msg("c1", "buyer", at(h=0), eid="x")
    # the ten-day step is confirmed by the event after it (time sanity, issue #10 finding 4)
    events = [first, msg("c2", "buyer", at(d=10)), msg("c2", "buyer", at(d=10, m=1)), dict(first)]
    report = run_audit([orjson.dumps(e) for e in events], POLICY, EngineConfig(dedupe_window=86400 * 1_000_000))
    assert report.stats["duplicate"] == 1 and report.stats["late"] == 0
    assert not any(s["session_id"] == "c1#2" for s in report.sessions)
    assert run(events).stats["duplicate"] == 1


@SETTINGS
@given(streams(), st.data())
def test_r6_2_sources_read_at_any_relative_speed_give_the_time_sorted_result(events: list[dict],
                                                                             data: st.DataObject) -> None:
    """The worker reads several input partitions; one may run far ahead of another (a backlog).
    With the watermark taken as the smallest source watermark, every interleaving of the
    partitions equals the time-sorted input."""
    n_sources = data.draw(st.integers(1, 3))
    assignment = data.draw(st.lists(st.integers(0, n_sources - 1), min_size=len(events), max_size=len(events)))
    queues = [[e for e, a in zip(events, assignment) if a == s] for s in range(n_sources)]
    order = data.draw(st.permutations([s for s, q in enumerate(queues) for _ in q]))
    out: list = []
    engine = Engine(POLICY, CONFIG, sink=lambda k, r: out.append((k, r)), sources=range(n_sources))
    positions = [0] * n_sources
    for s in order:
        engine.apply(decode(orjson.dumps(queues[s][positions[s]])), s)
        positions[s] += 1
    engine.finish()
    reference, _ = engine_run(events, [])
    assert engine.stats["late"] == 0
    assert _latest(out) == _latest(reference)


def _latest(records: list) -> dict:
    from chatsla.core.records import record_key

    latest = {}
    for kind, raw in records:
        latest[(kind, record_key(kind, raw))] = raw
    return latest


@SETTINGS
@given(streams())
def test_r6_5_latest_live_record_equals_the_audit_state(events: list[dict]) -> None:
    """The worker emits every change (``session_updates=True``) and consumers keep the latest
    record per key; that view must equal the audit's final states, or live and audit disagree."""
    from chatsla.core.records import to_record

    live, _ = engine_run(events, [])
    latest = {(k, to_record(k, r, POLICY)["shop_id"], r[1], r[2]): to_record(k, r, POLICY)
              for k, r in live}
    report = run(events)
    want = {("session", s["shop_id"], s["conversation_id"], int(s["session_id"].rsplit("#", 1)[1])): s
            for s in report.sessions}
    want.update({("assessment", a["shop_id"], a["week_start"], a["sessions"]): a for a in report.assessments})
    got_sessions = {k: v for k, v in latest.items() if k[0] == "session"}
    assert got_sessions == {k: v for k, v in want.items() if k[0] == "session"}
    got_weeks = {(v["shop_id"], v["week_start"]): v for k, v in latest.items() if k[0] == "assessment"}
    assert got_weeks == {(a["shop_id"], a["week_start"]): a for a in report.assessments}
