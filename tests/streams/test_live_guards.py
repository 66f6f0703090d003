"""Guards of the live worker that need no broker (issue #10 findings 5 and 7).

- streams/logs.py: repeated log lines are summarised once per interval (finding 7: a broker
  outage wrote 5,700 lines/s). The limiter is pure: its clock is injected, nothing sleeps.
- streams/metrics.py: one shop whose projection fails (a year-9999 watermark overflowed in
  calendar.week_bounds, finding 5) is skipped and counted; /metrics and /shops keep answering.
"""

from __future__ import annotations

import io
import logging

import orjson
from prometheus_client import generate_latest

from chatsla.core.engine import EngineConfig
from chatsla.core.policy import load_policy
from chatsla.schemas.decode import decode
from chatsla.streams.codec import encode_event
from chatsla.streams.logs import RepeatFilter, RepeatLimiter
from chatsla.streams.metrics import ShopViews, WorkerMetrics
from chatsla.streams.runtime import PartitionRuntime, Tables
from tests.builders import at, msg


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_finding_7_first_record_passes_repeats_are_summarised_once_per_interval() -> None:
    clock = Clock()
    lim = RepeatLimiter(30.0, clock)
    key = ("aiokafka.conn", logging.ERROR, "Unable to connect to node %s")
    assert lim.offer(key, "aiokafka.conn", logging.ERROR, lambda: "node 1") == (True, [])
    for i in range(5431):
        clock.now += 0.005
        assert lim.offer(key, "aiokafka.conn", logging.ERROR, lambda: f"node {i}") == (False, [])
    assert lim.flush() == []  # its interval is not over yet
    clock.now = 1030.0
    (s,) = lim.flush()
    assert (s.count, s.level, s.name) == (5431, logging.ERROR, "aiokafka.conn")
    assert s.text() == "node 5430 ... repeated 5,431 times in the last 30 s"
    assert lim.flush() == []  # summarised once
    # after the interval the message passes again and starts a new interval
    assert lim.offer(key, "aiokafka.conn", logging.ERROR, lambda: "x") == (True, [])


def test_finding_7_a_repeat_after_the_interval_brings_the_summary_with_it() -> None:
    clock = Clock()
    lim = RepeatLimiter(30.0, clock)
    lim.offer("k", "n", logging.WARNING, lambda: "m")
    lim.offer("k", "n", logging.WARNING, lambda: "m")
    clock.now += 31
    ok, summaries = lim.offer("k", "n", logging.WARNING, lambda: "m")
    assert ok and [s.count for s in summaries] == [1]
    other_ok, none = lim.offer("other", "n", logging.WARNING, lambda: "m")
    assert other_ok and none == []  # keys are independent


def test_finding_7_the_key_count_is_bounded() -> None:
    clock = Clock()
    lim = RepeatLimiter(30.0, clock, max_keys=3)
    for k in range(3):
        lim.offer(k, "n", logging.WARNING, lambda: "m")
        lim.offer(k, "n", logging.WARNING, lambda: "m")
    ok, summaries = lim.offer(99, "n", logging.WARNING, lambda: "m")
    assert ok and sorted(s.count for s in summaries) == [1, 1, 1]
    assert len(lim._windows) == 1


def test_finding_7_the_handler_filter_limits_warnings_by_template_and_info_by_text() -> None:
    clock = Clock()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    f = RepeatFilter(handler, RepeatLimiter(30.0, clock))
    handler.addFilter(f)
    logger = logging.getLogger("test.finding7")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        for i in range(1000):
            logger.error("Unable to connect to node %s", i % 3)
        for p in range(3):  # distinct informational lines all pass
            for _ in range(7):  # and five exact repeats of each, not more
                logger.info("partition %d loaded", p)
        clock.now += 30
        f.flush_summaries()
    finally:
        logger.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert lines == [
        "ERROR test.finding7 Unable to connect to node 0",
        *[f"INFO test.finding7 partition {p} loaded" for p in range(3) for _ in range(5)],
        "ERROR test.finding7 Unable to connect to node 0 ... repeated 999 times in the last 30 s",
        "INFO test.finding7 partition 0 loaded ... repeated 2 times in the last 30 s",
        "INFO test.finding7 partition 1 loaded ... repeated 2 times in the last 30 s",
        "INFO test.finding7 partition 2 loaded ... repeated 2 times in the last 30 s",
    ]


def _partition(p: int, shop: str) -> PartitionRuntime:
    rt = PartitionRuntime.load(p, load_policy(), EngineConfig(), ["chat.messages/0"], Tables({}, {}, {}))
    rt.handle(encode_event(decode(orjson.dumps(msg(f"c-{shop}", "buyer", at(d=1), shop=shop))), "chat.messages/0"))
    return rt


def test_finding_5_a_shop_whose_view_fails_is_skipped_and_the_endpoints_answer() -> None:
    """A tick at the end of year 9999 moved a partition's watermark there; the engine took it, but
    calendar.week_bounds raised OverflowError inside the /metrics and /shops views, so every
    scrape of the worker failed with 500. Now that partition's shop is skipped and counted, the
    other shops are served. (The tick itself is now refused: streams/codec.py, test_codec.py.)"""
    good, bad = _partition(0, "shop-ok"), _partition(1, "shop-9999")
    # the ticks are forced past the engine's own time sanity (which would hold both: they are
    # days ahead of every event, chatsla/core/engine.py) to reach the state the views must survive
    good.engine.advance(decode(orjson.dumps(msg("x", "buyer", at(d=2)))).t, True)
    bad.engine.advance(253402300799000000 - 3 * 86_400_000_000, True)  # 9999-12-28T23:59:59Z
    for rt in (good, bad):
        rt.outputs()
    views = ShopViews({0: good, 1: bad})
    metrics = WorkerMetrics(views, "all", "p", "v")
    text = generate_latest(metrics.registry).decode()  # no exception: the scrape answers
    assert 'shop="shop-ok"' in text and 'shop="shop-9999"' not in text
    assert "chatsla_view_errors_total 1.0" in text
    assert views.shop_json("shop-ok") is not None and views.shop_json("shop-9999") is None
