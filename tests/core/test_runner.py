"""The model-independent runner (chatsla.core.runner, issue #12) with a tiny fake model.

Each test states the runner's own promise: order within the lateness (R6.2, R6.3), ties by the
model's rank then event id, deadlines before a same-instant event only when strictly earlier
(R2.5 reads on this), routing (one model per kind; a shop event to every model, counted once),
and snapshot/restore continuing exactly where the runner stood (R6.1).
"""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace
from typing import Any, ClassVar, Hashable

import orjson
import pytest

from chatsla.core.events import ChatMessage, ShopEvent
from chatsla.core.runner import EngineConfig, Runner, register_event_codec

S = 1_000_000  # a second in µs
CONFIG = EngineConfig(allowed_lateness=10 * S, max_future=None)


class Ticket:
    """A stand-in for the events no chat model takes (routed to service_tickets)."""

    __slots__ = ("event_id", "shop_id", "t")

    def __init__(self, event_id: str, shop_id: str, t: int) -> None:
        self.event_id, self.shop_id, self.t = event_id, shop_id, t


register_event_codec("test-ticket", Ticket, lambda ev: ["test-ticket", ev.event_id, ev.shop_id, ev.t],
                     lambda v: Ticket(v[1], v[2], v[3]))


class Fake:
    """Records what reaches it; a message whose id starts with ``d`` schedules a deadline 5 s on."""

    kind: ClassVar[str] = "chat_sessions"
    record_kinds: ClassVar[tuple[str, ...]] = ()

    def __init__(self, policy: Any, config: EngineConfig, host: Runner) -> None:
        self.policy, self.host = policy, host
        self.pending: list[list] = []  # [when, key] of deadlines not fired yet
        self.n = 0
        self.shop_events = 0

    def rank(self, ev: Any) -> int:
        return 0 if type(ev) is ShopEvent else (2 if getattr(ev, "sender", "") == "seller" else 1)

    def process(self, ev: Any, late: bool) -> None:
        if type(ev) is ShopEvent:
            if self.host.lead is self:
                self.shop_events += 1
        else:
            self.n += 1
        self.host.emit("seen", (self.kind, ev.t, ev.event_id, late))
        if ev.event_id.startswith("d"):
            self.pending.append([ev.t + 5 * S, ev.event_id])
            self.host.schedule(ev.t + 5 * S, self, ev.event_id)

    def fire(self, when: int, key: Hashable) -> None:
        self.pending.remove([when, key])
        self.host.emit("fired", (self.kind, when, key))

    def finish(self, until: int) -> None:
        self.host.emit("finish", (self.kind, until))

    def stats(self) -> Counter[str]:
        c: Counter[str] = Counter()
        c["valid"] = self.n + self.shop_events
        return c

    def snapshot(self) -> dict:
        return {self.kind + ":pending": self.pending, self.kind + ":n": [self.n, self.shop_events]}

    @classmethod
    def restore(cls, policy: Any, config: EngineConfig, host: Runner, snap: dict) -> "Fake":
        m = cls(policy, config, host)
        m.n, m.shop_events = snap[cls.kind + ":n"]
        for when, key in snap[cls.kind + ":pending"]:
            m.pending.append([when, key])
            host.schedule(when, m, key)
        return m

    def view(self, shop_id: str, watermark: int | None) -> dict:
        return {"n": self.n}


class FakeTickets(Fake):
    kind: ClassVar[str] = "service_tickets"


POLICY = SimpleNamespace(ref="fake@1")
POLICY2 = SimpleNamespace(ref="fake-tickets@1")


def msg(eid: str, t: int, sender: str = "buyer", platform: str = "tiktok_shop") -> ChatMessage:
    return ChatMessage(eid, "s1", "c1", sender, t, platform=platform)


def runner(*models: tuple[type, Any]) -> Runner:
    r = Runner(CONFIG)
    for cls, policy in models or ((Fake, POLICY),):
        r.add_model(cls, policy)
    return r


def seen(r: Runner) -> list[str]:
    return [rec[2] if kind == "seen" else f"fire:{rec[2]}" for kind, rec in r.take() if kind in ("seen", "fired")]


def test_events_within_the_lateness_are_applied_in_time_order() -> None:
    """R6.2/R6.3: any arrival order within allowed_lateness gives the time-sorted result; an event
    behind its source's watermark is applied at once, flagged late (R6.4)."""
    r = runner()
    for eid, t in (("a", 3 * S), ("b", 1 * S), ("c", 2 * S), ("e", 30 * S), ("late", 5 * S)):
        r.apply(msg(eid, t))
    r.finish()
    out = [(rec[2], rec[3]) for kind, rec in r.take() if kind == "seen"]
    assert out == [("b", False), ("c", False), ("a", False), ("late", True), ("e", False)]


def test_ties_at_one_instant_go_by_rank_then_event_id() -> None:
    """R6.3: at one instant the model's rank orders events (a shop event is 0, first), then the id."""
    r = runner()
    t = 10 * S
    for ev in (msg("z-seller", t, "seller"), msg("y-buyer", t), msg("a-seller", t, "seller"),
               ShopEvent("s-shop", "s1", "vacation_on", t), msg("x-buyer", t)):
        r.apply(ev)
    r.finish()
    assert seen(r) == ["s-shop", "x-buyer", "y-buyer", "a-seller", "z-seller"]


@pytest.mark.parametrize("feed", ["apply", "apply_many", "finish"])
def test_a_deadline_fires_before_an_event_only_when_strictly_earlier(feed: str) -> None:
    """A deadline at the instant of an event fires after it (the event still belongs to what the
    deadline ends, R2.5); one a microsecond earlier fires before it. Through each path that
    releases events: apply's and apply_many's one-source loops (later events release them, inside
    one timer bucket) and the general drain (finish)."""
    r = runner()
    t0 = 3600 * S  # in the middle of a timer bucket, after a first event opened it
    evs = [msg("open", t0 - 60 * S), msg("d1", t0), msg("at", t0 + 5 * S), msg("d2", t0 + 6 * S),
           msg("after", t0 + 11 * S + 1)]
    if feed == "finish":
        for ev in evs:
            r.apply(ev)
        r.finish(t0 + 20 * S)
    else:
        evs.append(msg("x", t0 + 40 * S))  # its watermark passes everything before
        if feed == "apply":
            for ev in evs:
                r.apply(ev)
        else:
            r.apply_many(evs)
    assert seen(r) == ["open", "d1", "at", "fire:d1", "d2", "fire:d2", "after"]


def test_one_model_per_kind_takes_its_events_and_a_shop_event_goes_to_all_counted_once() -> None:
    """Routing (issue #12, chatsla.core.models.route): chat messages to chat_sessions, other event
    types to service_tickets, an AliExpress message to im_waits (not hosted here: counted
    unrouted), a shop event to every model; its valid count is the lead's only."""
    r = runner((Fake, POLICY), (FakeTickets, POLICY2))
    r.apply(ShopEvent("sh", "s1", "timezone", 1 * S, "UTC"))
    r.apply(msg("m1", 2 * S))
    r.apply(Ticket("t1", "s1", 3 * S))
    r.apply(msg("ali", 4 * S, platform="aliexpress"))
    r.finish(10 * S)
    got = [(rec[0], rec[2]) for kind, rec in r.take() if kind == "seen"]
    assert got == [("chat_sessions", "sh"), ("service_tickets", "sh"), ("chat_sessions", "m1"),
                   ("service_tickets", "t1")]
    stats = r.stats
    assert stats["valid"] == 3 and stats["unrouted"] == 1


def test_a_model_with_one_kind_only_once() -> None:
    """One model per kind: hosting a second of the same kind is refused."""
    r = runner()
    try:
        r.add_model(Fake, POLICY)
    except ValueError as e:
        assert "one model per kind" in str(e)
    else:
        raise AssertionError("a second chat_sessions model was hosted")


def _stream() -> list[Any]:
    evs: list[Any] = [ShopEvent("sh", "s1", "timezone", 0, "UTC")]
    for i in range(40):
        t = (i * 3 + (5 if i % 7 == 3 else 0)) * S  # some out of order within the lateness
        evs.append(msg(("d" if i % 3 == 0 else "m") + f"{i:03d}", t, "seller" if i % 4 == 0 else "buyer"))
        if i % 5 == 0:
            evs.append(Ticket(f"d-t{i:03d}", "s1", t + S))
    evs.append(msg("m005", 15 * S))  # a duplicate id, still buffered: the runner drops it
    evs.append(msg("late-1", 2 * S))  # behind the watermark by then: late
    return evs


def test_snapshot_and_restore_continue_exactly_where_the_runner_stood() -> None:
    """R6.1: a runner restored from a snapshot (through JSON) taken anywhere in the stream gives
    the same records, stats and final snapshot as one that ran through; deadlines and buffered
    events are carried by the snapshot."""
    models = [(Fake, POLICY), (FakeTickets, POLICY2)]
    evs = _stream()
    whole = runner(*models)
    for ev in evs:
        whole.apply(ev)
    whole.finish(200 * S)
    want = whole.take()
    for cut in (1, 10, 25, len(evs) - 1):
        first = runner(*models)
        for ev in evs[:cut]:
            first.apply(ev)
        snap = orjson.loads(orjson.dumps(first.snapshot()))
        assert snap["buffer"] or cut == 1  # something was still waiting
        out = first.take()
        second = Runner.from_snapshot(CONFIG, models, snap)
        assert second.snapshot() == snap
        for ev in evs[cut:]:
            second.apply(ev)
        second.finish(200 * S)
        assert out + second.take() == want, cut
        assert second.stats == whole.stats
        assert second.snapshot() == whole.snapshot()


def test_a_dropped_engine_is_freed_at_once_without_the_cycle_collector() -> None:
    """The audit and the replay run with the garbage collector off (BENCHMARKS.md): a runner and
    its models must form no reference cycle (models get a weak proxy of their host), so dropping
    an engine frees its whole state at once by reference counting."""
    import gc
    import weakref

    from chatsla.core.engine import Engine
    from chatsla.core.policy import load_policy

    was = gc.isenabled()
    gc.disable()
    try:
        engine = Engine(load_policy())
        engine.apply(msg("a", 10 * S))
        engine.apply(msg("b", 20 * S, "seller"))
        fake = runner((Fake, POLICY), (FakeTickets, POLICY2))
        fake.apply(msg("d1", 10 * S))
        refs = [weakref.ref(x) for x in (engine, engine.chat, fake, *fake.models)]
        del engine, fake
        assert [r() for r in refs] == [None] * len(refs)
    finally:
        if was:
            gc.enable()
