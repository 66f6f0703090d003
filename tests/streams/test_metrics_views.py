"""The worker's scrape-time shop views (streams/metrics.py) against the real core (RULES R8, R5.6).

A scrape must observe, never change, what the engine computes (R6.1: processing speed and
timing change no result), and a shop's series come only from partitions the worker owns now.
"""

from __future__ import annotations

import asyncio
import gzip

import orjson
from prometheus_client import generate_latest

from chatsla.core.engine import EngineConfig
from chatsla.core.policy import load_policy
from chatsla.core.timefmt import parse_time
from chatsla.schemas.decode import decode
from chatsla.streams.codec import encode_event, encode_tick
from chatsla.streams.metrics import ShopCollector, ShopViews, WorkerMetrics
from chatsla.streams.runtime import PartitionRuntime, Tables
from tests.builders import at, msg
from tests.promql import CONTRACT
from tests.streams.test_model_views import AFTERSALE_EVENTS, AS_WM, TICKET_EVENTS, WAIT_EVENTS, Partition, engine

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


# --- exposition and naming (issue #13, "Metrics and dashboards") ------------------------------------

PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")  # what Prometheus 2.x sends when it scrapes


def _serve(metrics: WorkerMetrics, accept: str = "", encoding: str = "", query: str = "",
           method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    status, headers, body = asyncio.run(metrics.serve(method, [("Accept", accept), ("Accept-Encoding", encoding)],
                                                      query))
    return status, dict(headers), body


def _worker_with_an_ended_week() -> tuple[WorkerMetrics, list[dict]]:
    """One shop with a week that has ended (R5.6), 7 of its 8 sessions answered in time, and a
    new week begun with one session answered in time; its outputs."""
    rt = _runtime()
    views = ShopViews({0: rt})
    out = _feed(rt, *[m for i in range(8) for m in (msg(f"c{i}", "buyer", at(d=1, h=i)),
                                                     msg(f"c{i}", "seller", at(d=1, h=i + (30 if i == 0 else 1))))])
    out += _feed(rt, msg("n1", "buyer", at(d=7, h=1)), msg("n1", "seller", at(d=7, h=2)))  # the new week
    out += _tick(rt, at(d=8, h=2))  # past the week's end and every session's 24 h (+10 min): final
    for r in out:
        if "session_id" in r and r["replied_within_24h"] is not None:
            views.observe(r)
    return WorkerMetrics(views, "all", POLICY.id, POLICY.version), out


def test_issue13_metrics_content_negotiation_openmetrics_and_gzip() -> None:
    """issue #13: /metrics answers like prometheus_client's own handler: OpenMetrics when
    Prometheus asks for it, the 0.0.4 text format otherwise, gzip when allowed, name[] filters."""
    metrics = WorkerMetrics(ShopViews({}), "none", POLICY.id, POLICY.version)
    status, headers, body = _serve(metrics, PROMETHEUS_ACCEPT)
    assert status == 200 and headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert "Content-Encoding" not in headers and body.decode().endswith("# EOF\n")
    status, headers, body = _serve(metrics)
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8" and b"# EOF" not in body
    status, headers, gz = _serve(metrics, PROMETHEUS_ACCEPT, "gzip, deflate")
    assert headers["Content-Encoding"] == "gzip" and gzip.decompress(gz).endswith(b"# EOF\n")
    _, _, only = _serve(metrics, query="name[]=chatsla_owned_partitions")
    assert [line for line in only.decode().splitlines() if not line.startswith("#")] == ["chatsla_owned_partitions 0.0"]
    status, headers, head = _serve(metrics, method="HEAD")
    assert status == 200 and head == b"" and headers["Content-Type"].startswith("text/plain")


def test_issue13_standard_collectors_and_no_created_series() -> None:
    """issue #13: process_*, python_info and python_gc_* are exported; no *_created series."""
    metrics = WorkerMetrics(ShopViews({}), "none", POLICY.id, POLICY.version)
    for accept in ("", PROMETHEUS_ACCEPT):
        text = _serve(metrics, accept)[2].decode()
        names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
        assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_start_time_seconds",
                "python_info", "python_gc_collections_total"} <= names, sorted(names)
        assert not [n for n in names if n.endswith("_created")], sorted(n for n in names if n.endswith("_created"))


def test_issue13_fleet_distribution_is_a_gauge_histogram_that_may_go_down() -> None:
    """issue #13: the shops-per-ratio-bucket snapshot is a gauge histogram (OpenMetrics
    `gaugehistogram`, samples _bucket/_gcount/_gsum), so a bucket going down is not a reset."""
    metrics = WorkerMetrics(ShopViews({}), "all", POLICY.id, POLICY.version)
    empty = _serve(metrics, PROMETHEUS_ACCEPT)[2].decode()
    assert "# TYPE chatsla_fleet_rolling_7d_reply_ratio gaugehistogram" in empty
    assert "chatsla_fleet_rolling_7d_reply_ratio_gcount 0.0" in empty
    metrics, _ = _worker_with_an_ended_week()
    text = _serve(metrics, PROMETHEUS_ACCEPT)[2].decode()
    assert "chatsla_fleet_rolling_7d_reply_ratio_gcount 1.0" in text
    assert 'chatsla_fleet_rolling_7d_reply_ratio_bucket{le="+Inf"} 1.0' in text
    assert "chatsla_fleet_rolling_7d_reply_ratio_count" not in text and "chatsla_fleet_rolling_7d_reply_ratio_sum" not in text


def test_issue13_names_say_ratio_and_7d() -> None:
    """issue #13: shares in 0..1 end in `_ratio`; nothing says `rate` or `24h` any more; the
    rolling series say `rolling_7d`."""
    metrics, _ = _worker_with_an_ended_week()
    names = {s.name for fam in metrics.registry.collect() for s in fam.samples if s.name.startswith("chatsla_")}
    assert not [n for n in names if "_rate" in n or "24h" in n], sorted(names)
    shares = {s.name for fam in metrics.registry.collect() for s in fam.samples
              if s.name.startswith("chatsla_shop_") and "reply" in s.name and "needed" not in s.name}
    assert shares and all(n.endswith("_ratio") for n in shares), sorted(shares)
    assert {n for n in names if "rolling" in n} == {
        "chatsla_shop_rolling_7d_reply_ratio", "chatsla_fleet_rolling_7d_reply_ratio_bucket",
        "chatsla_fleet_rolling_7d_reply_ratio_gcount", "chatsla_fleet_rolling_7d_reply_ratio_gsum"}


def test_issue13_the_worker_exports_exactly_the_metric_contract() -> None:
    """The contract the dashboards and alerts are checked against (tests/promql.py CONTRACT) is
    what a real worker registry exports, names and labels, Prometheus' own labels aside."""
    metrics, _ = _worker_with_an_ended_week()
    # a second partition whose engine hosts Douyin tickets and AliExpress waits too (issue #12),
    # a third with TikTok Shop after-sales (issue #14)
    (collector,) = [c for c in metrics.registry._collector_to_names if isinstance(c, ShopCollector)]
    collector.views.runtimes[1] = Partition(engine([*TICKET_EVENTS, *WAIT_EVENTS]))
    collector.views.runtimes[2] = Partition(engine(AFTERSALE_EVENTS, until=AS_WM))
    metrics.dlq.labels("chat.messages.dlq").inc()
    metrics.dlq_topic.labels("chat.messages.dlq").set(1)
    metrics.poison.labels("not_json").inc()
    metrics.rejected_ticks.inc()
    metrics.watermark_now(0, 1)
    metrics.conversations.labels("0").set(1)
    metrics.latency.observe(0.1)
    metrics.lag_now({("chat.messages", 0): 1})
    exported: dict[str, set[str]] = {}
    for fam in metrics.registry.collect():
        for s in fam.samples:
            if s.name.startswith("chatsla_"):
                exported.setdefault(s.name, set()).update(s.labels)
    assert exported == {name: set(labels) for name, labels in CONTRACT.items()}


def test_r5_6_last_week_series_equal_the_weeks_assessment() -> None:
    """issue #13 (demo): the latest ended week's outcome, status and ratio per shop are the
    assessment the engine emitted for that week (R5.5, R5.6), while the week-to-date series
    already describe the new, empty week."""
    metrics, out = _worker_with_an_ended_week()
    (assessment,) = [r for r in out if "outcome" in r and r["week_start"] == "2026-11-02" and r["status"] == "final"]
    assert assessment["outcome"] == "warning" and assessment["rate"] == 7 / 8  # 87.5 %: under 90 %
    text = generate_latest(metrics.registry).decode()
    assert ('chatsla_shop_last_week_info{outcome="warning",shop="s1",status="final",week_start="2026-11-02"} 1.0'
            in text)
    assert f'chatsla_shop_last_week_reply_ratio{{shop="s1"}} {7 / 8!r}' in text
    assert 'chatsla_shop_penalty_risk{shop="s1"} 0.0' in text  # the new week: not assessed yet
    assert 'chatsla_shop_sessions{shop="s1",state="decided"} 1.0' in text
    body = ShopViews({0: metrics_runtime(metrics)}).shop_json("s1")
    assert body is not None and body["last_week"] == {"week_start": "2026-11-02", "status": "final",
                                                      "outcome": "warning", "rate": 7 / 8}


def metrics_runtime(metrics: WorkerMetrics) -> PartitionRuntime:
    """The runtime behind a WorkerMetrics built by :func:`_worker_with_an_ended_week`."""
    (collector,) = [c for c in metrics.registry._collector_to_names if isinstance(c, ShopCollector)]
    return collector.views.runtimes[0]
