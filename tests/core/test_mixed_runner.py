"""The three models on one real runner, fed a mixed input of all three platforms (issue #12,
"Done when": any reordering within the lateness, batching, snapshot/restore, duplicates and
partition interleavings give the same tickets, waits and periods as the sorted input, as already
for sessions; live equals audit for a mixed-platform week).

Every run's final state is taken the way the audit takes it (``chatsla.audit.Collector``: the
latest record per session, week, ticket, wait and period), so "the same" means the same report.
"""

from __future__ import annotations

import random

import orjson
import pytest

from chatsla.audit import Collector, run_audit
from chatsla.core.engine import Engine, EngineConfig
from chatsla.core.events import ShopEvent, TicketEvent
from chatsla.core.policy import policies_for
from chatsla.core.runner import event_from_list, event_to_list
from chatsla.core.timefmt import MINUTE, parse_time
from tests.mixed import mixed_events, mixed_lines

CONFIG = EngineConfig()
POLICY, *OTHERS = policies_for(())
UNTIL = parse_time("2026-11-20T00:00:00Z")


class Run:
    """One engine hosting the three models, whose records go to an audit Collector."""

    def __init__(self, sources=None, snap: dict | None = None, session_updates: bool = True,
                 collector: Collector | None = None) -> None:
        self.collector = collector if collector is not None else Collector()
        kw = dict(sink=self.collector.add, session_updates=session_updates, policies=OTHERS)
        if sources is not None:
            kw["sources"] = sources
        self.engine = (Engine(POLICY, CONFIG, **kw) if snap is None
                       else Engine.restore(POLICY, CONFIG, snap, **kw))

    def restored(self) -> "Run":
        """A new run from this one's snapshot, through JSON (as a changelog carries it)."""
        snap = orjson.loads(orjson.dumps(self.engine.snapshot()))
        # records already emitted stay emitted (the output topics): the same collector
        return Run(self.engine._sources, snap, collector=self.collector)

    def report(self, until: int = UNTIL) -> dict:
        self.engine.finish(until)
        d = self.collector.report({}, POLICY).to_dict()
        del d["stats"]
        return d


def sorted_report(events) -> dict:
    r = Run()
    r.engine.apply_many(sorted(events, key=lambda e: e.t))
    return r.report()


def _jittered(rng: random.Random, events: list) -> list:
    """An arrival order within the lateness: each event delayed by less than allowed_lateness."""
    return sorted(events, key=lambda e: e.t + rng.randrange(0, CONFIG.allowed_lateness))


def _with_copies(rng: random.Random, events: list, n: int) -> list:
    """``n`` copies of random events, each arriving a little after its original (a producer retry)."""
    out = list(events)
    for _ in range(n):
        i = rng.randrange(len(events))
        j = out.index(events[i])
        out.insert(min(len(out), j + 1 + rng.randrange(30)), events[i])
    return out


def test_the_mixed_input_reaches_all_three_models() -> None:
    """Routing (A.3): TikTok Shop chat -> sessions, AliExpress chat -> waits, tickets -> tickets."""
    d = sorted_report(mixed_events(0))
    assert d["sessions"] and d["assessments"] and d["tickets"] and d["waits"] and d["periods"]
    assert {s["shop_id"] for s in d["sessions"]} <= {"tt-1", "tt-2"}
    assert {w["shop_id"] for w in d["waits"]} == {"ae-1"}
    assert {t["shop_id"] for t in d["tickets"]} == {"dy-1", "dy-2"}


@pytest.mark.parametrize("seed", range(6))
def test_reordering_within_lateness_and_duplicates_give_the_sorted_result(seed: int) -> None:
    """R6.3, issue #12: any arrival order within the lateness, with copies of events, one event at
    a time through ``apply``, gives the records of the sorted input."""
    rng = random.Random(seed)
    events = mixed_events(seed)
    expected = sorted_report(events)
    r = Run()
    for ev in _with_copies(rng, _jittered(rng, events), 12):
        r.engine.apply(ev)
    assert r.report() == expected
    assert r.engine.stats["duplicate"] == 12


@pytest.mark.parametrize("seed", range(6))
def test_batching_gives_the_sorted_result(seed: int) -> None:
    """apply_many in random batches, or apply one by one, or ticks between batches: same records."""
    rng = random.Random(100 + seed)
    events = mixed_events(seed)
    expected = sorted_report(events)
    arrival = _jittered(rng, events)
    r = Run()
    i = 0
    while i < len(arrival):
        n = rng.choice([1, 3, 17, 64])
        batch = arrival[i:i + n]
        if rng.random() < 0.5:
            r.engine.apply_many(batch)
        else:
            for ev in batch:
                r.engine.apply(ev)
        i += n
    assert r.report() == expected


@pytest.mark.parametrize("seed", range(6))
def test_partition_interleavings_give_the_sorted_result(seed: int) -> None:
    """R6.2: the input split into three sources (partitions, by shop), read interleaved in any
    way, each source's own order within the lateness: the records of the sorted input."""
    rng = random.Random(200 + seed)
    events = mixed_events(seed)
    expected = sorted_report(events)
    parts: dict[int, list] = {0: [], 1: [], 2: []}
    for ev in _jittered(rng, events):
        parts[sum(map(ord, ev.shop_id)) % 3].append(ev)
    r = Run(sources=[0, 1, 2])
    cursors = {p: 0 for p in parts}
    while any(cursors[p] < len(parts[p]) for p in parts):
        p = rng.choice([p for p in parts if cursors[p] < len(parts[p])])
        for ev in parts[p][cursors[p]:cursors[p] + rng.randrange(1, 20)]:
            r.engine.apply(ev, p)
            cursors[p] += 1
    assert r.report() == expected


@pytest.mark.parametrize("seed", range(6))
def test_snapshot_restore_mid_stream_gives_the_sorted_result(seed: int) -> None:
    """R6.1, issue #12: a snapshot taken anywhere (buffer, tickets, waits, sessions, periods,
    orphans) and restored through JSON continues exactly, with copies arriving after the cut."""
    rng = random.Random(300 + seed)
    events = mixed_events(seed)
    expected = sorted_report(events)
    arrival = _with_copies(rng, _jittered(rng, events), 6)
    cuts = sorted(rng.sample(range(1, len(arrival)), 3))
    r = Run()
    prev = 0
    for cut in [*cuts, len(arrival)]:
        r.engine.apply_many(arrival[prev:cut])
        prev = cut
        r = r.restored()
    assert r.report() == expected


def test_a_snapshot_holds_buffered_ticket_events() -> None:
    """The ticket event list codec is registered with the runner (``"t"``): a buffered ticket
    event survives a snapshot, exactly."""
    events = [e for e in mixed_events(1) if type(e) is TicketEvent]
    r = Run()
    r.engine.apply_many(events[:5])
    buffered = r.engine.snapshot()["buffer"]
    assert buffered and all(v[0] == "t" for v in buffered)
    for v in buffered:
        ev = event_from_list(v)
        assert type(ev) is TicketEvent and event_to_list(ev) == v


def test_a_shop_event_counts_once() -> None:
    """A shop event goes to every hosted model but counts once (valid, duplicate), by the lead."""
    ev = ShopEvent("se-1", "dy-1", "timezone", parse_time("2026-11-02T00:00:00Z"), "Asia/Shanghai")
    r = Run()
    r.engine.apply_many([ev, ev])
    r.engine.finish(UNTIL)
    assert (r.engine.stats["valid"], r.engine.stats["duplicate"]) == (1, 1)
    assert r.engine.model("service_tickets").shop_tz == {"dy-1": "Asia/Shanghai"}
    assert r.engine.model("im_waits").shop_tz == {"dy-1": "Asia/Shanghai"}


@pytest.mark.parametrize("until", [UNTIL, parse_time("2027-01-15T00:00:00Z")])
@pytest.mark.parametrize("seed", range(4))
def test_live_equals_audit_for_a_mixed_week(seed: int, until: int) -> None:
    """Issue #12: ``chatsla audit``'s report of a mixed input equals what the live engine
    (``session_updates=True``, events in jittered batches, restored from snapshots at random
    points) emits, taken as the latest record per key; stats apart. The audit emits each ticket,
    wait and period once, from state (at eviction or at the end); until 2027 every ticket and
    period is evicted first."""
    rng = random.Random(400 + seed)
    lines = mixed_lines(seed)
    audit = run_audit(lines, POLICY, CONFIG, until=until, policies=OTHERS).to_dict()
    assert audit["stats"]["models"].keys() == {"service_tickets", "im_waits"}
    del audit["stats"]
    arrival = _jittered(rng, mixed_events(seed))
    r = Run()
    i = 0
    while i < len(arrival):
        n = rng.randrange(1, 40)
        r.engine.apply_many(arrival[i:i + n])
        i += n
        if rng.random() < 0.2:
            r = r.restored()
    assert r.report(until) == audit
