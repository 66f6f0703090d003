"""The worker's scrape-time shop views (streams/metrics.py) against the real core (RULES R8, R5.6).

A scrape must observe, never change, what the engine computes (R6.1: processing speed and
timing change no result), and a shop's series come only from partitions the worker owns now.
"""

from __future__ import annotations

import orjson
from prometheus_client import generate_latest

from chatsla.core.engine import EngineConfig
from chatsla.core.policy import load_policy
from chatsla.core.timefmt import parse_time
from chatsla.schemas.decode import decode
from chatsla.streams.codec import encode_event, encode_tick
from chatsla.streams.metrics import ShopViews, WorkerMetrics
from chatsla.streams.runtime import PartitionRuntime, Tables
from tests.builders import at, msg

POLICY = load_policy()
SOURCE = "chat.messages/0"


def _runtime(partition: int = 0) -> PartitionRuntime:
    return PartitionRuntime.load(partition, POLICY, EngineConfig(), [SOURCE], Tables({}, {}, {}))


def _feed(rt: PartitionRuntime, *events: dict) -> list[dict]:
    for e in events:
        rt.handle(encode_event(decode(orjson.dumps(e)), SOURCE))
    return [orjson.loads(v) for _, _, v in rt.outputs()]


def _tick(rt: PartitionRuntime, when: str) -> list[dict]:
    """Advance the partition so its watermark is ``when`` (a tick carries watermark + lateness),
    in half-hour ticks as a live worker's clock moves: one tick more than ``max_future`` ahead
    of every event waits for an event to confirm it (time sanity, issue #10 finding 5)."""
    target = parse_time(when) + EngineConfig().allowed_lateness
    t = rt.engine.max_seen if rt.engine.max_seen is not None else target
    while True:
        t = min(t + 30 * 60 * 1_000_000, target)
        rt.handle(encode_tick(t))
        if t >= target:
            break
    return [orjson.loads(v) for _, _, v in rt.outputs()]


def _assessed_weeks(records: list[dict]) -> set[str]:
    return {r["week_start"] for r in records if "week_start" in r and "outcome" in r}


def test_r5_6_a_scrape_at_a_week_boundary_does_not_swallow_the_weeks_assessment() -> None:
    """Regression: a scrape between the first tick of a week and its first event created the week
    in the shop's calendar, so the engine never scheduled the week's end and its assessment was
    never emitted. The scrape must leave the engine's state alone."""
    rt = _runtime()
    views = ShopViews({0: rt})
    out = _feed(rt, msg("c1", "buyer", at(d=1)), msg("c1", "seller", at(d=1, h=1)))
    out += _tick(rt, at(d=7, m=5))  # week 2026-11-09 has begun; no event in it yet
    (view, _, _), = views.views()  # the scrape
    assert view.week is not None and view.week.week_start == "2026-11-09" and view.week.sessions == 0
    out += _feed(rt, msg("c2", "buyer", at(d=8)), msg("c2", "seller", at(d=8, h=2)))
    out += _tick(rt, at(d=15, h=1))  # past the second week's end
    assert _assessed_weeks(out) == {"2026-11-02", "2026-11-09"}


def test_r8_series_only_for_partitions_owned_now() -> None:
    """A runtime still in the worker's dict but no longer assigned exports no shop series."""
    rt0, rt1 = _runtime(0), _runtime(1)
    _feed(rt0, msg("c1", "buyer", at(d=1), shop="shop-a"))
    _feed(rt1, msg("c2", "buyer", at(d=1), shop="shop-b"))
    for rt in (rt0, rt1):
        _tick(rt, at(d=1, h=1))
    owned = {0, 1}
    views = ShopViews({0: rt0, 1: rt1}, owned=lambda: owned)
    metrics = WorkerMetrics(views, "all", POLICY.id, POLICY.version)
    assert [v.shop_id for v, _, _ in views.views()] == ["shop-a", "shop-b"]
    owned.discard(1)  # partition 1 revoked
    assert [v.shop_id for v, _, _ in views.views()] == ["shop-a"]
    text = generate_latest(metrics.registry).decode()
    assert 'shop="shop-a"' in text and 'shop="shop-b"' not in text
    owned.clear()  # shutting down, or between revocation and the next assignment
    assert 'shop="' not in generate_latest(metrics.registry).decode()


def test_r8_consumer_lag_is_exported_only_for_partitions_read_now() -> None:
    """A partition that moved to another worker leaves this worker's lag series at once, as the
    shop series do; no two workers export a lag for the same partition."""
    metrics = WorkerMetrics(ShopViews({}), "none", POLICY.id, POLICY.version)
    metrics.lag_now({("chat.messages", 0): 12, ("chatsla.events", 1): 0})
    text = generate_latest(metrics.registry).decode()
    assert 'chatsla_consumer_lag_records{partition="0",topic="chat.messages"} 12.0' in text
    assert 'chatsla_consumer_lag_records{partition="1",topic="chatsla.events"} 0.0' in text
    metrics.lag_now({("chat.messages", 0): 3})
    text = generate_latest(metrics.registry).decode()
    assert 'chatsla_consumer_lag_records{partition="0",topic="chat.messages"} 3.0' in text
    assert 'topic="chatsla.events"' not in text
