"""``replay()`` and ``export()``: the period's input through one engine, or into a file (module
docs of :mod:`chatsla.replay`)."""

from __future__ import annotations

import asyncio
import gc
import gzip
import time
from collections import Counter
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterable

from chatsla.audit import Collector, engine_stats
from chatsla.core.engine import ASSESSMENT, SESSION, Engine, EngineConfig
from chatsla.core.events import ChatMessage, ShopEvent
from chatsla.core.periods import period_bounds_of
from chatsla.core.policy import Policy
from chatsla.core.timefmt import parse_time
from chatsla.streams.feed import InvalidHook, LateHook, Feeder, named_shop
from chatsla.replay.child import PARALLEL_MIN_RECORDS, ChildInput
from chatsla.replay.inputs import LocalInput, period_reader
from chatsla.replay.period import Period
from chatsla.replay.result import LateEvent, ReplayResult, late_event
from chatsla.streams.reader import KafkaInput, PartitionRange

Progress = Callable[[int, int], None]  # (records read so far, records planned)


class PeriodCollector(Collector):
    """The audit's collector, also noting each assessed week's bounds as the engine knew them."""

    def __init__(self) -> None:
        super().__init__()
        self.engine: Engine | None = None
        self.week_bounds: dict[tuple[str, str], tuple[int, int]] = {}

    def __call__(self, kind: str, raw: tuple) -> None:
        if kind == ASSESSMENT:
            key = (raw[0], raw[1])
            self.assessments[key] = raw
            if key not in self.week_bounds:
                w = self.engine.shops[raw[0]].weeks.get(raw[1])
                if w is not None:
                    self.week_bounds[key] = (w.start, w.end)
        elif kind == SESSION:
            self.sessions[(raw[0], raw[1], raw[2], raw[3])] = raw  # opened_at: numbers restart after eviction
        else:  # tickets, waits, periods (issue #12), after-sales requests (#14): kept as the audit keeps them
            self._add_other(kind, raw)  # type: ignore[arg-type]


def keep_in_period(collector: Collector, period: Period, zones: dict[str, str], default_tz: str) -> None:
    """Keep, of the tickets, waits, requests and periods collected, those the period reports (module docs of
    :mod:`chatsla.replay`: "What is reported"). ``zones``: each shop's time zone at the end of the
    replay (``default_tz`` for a shop that never sent one), for the bounds of period labels.

    * a ticket when its ``created_at`` is in ``[from, to)`` (with ``--week``: its ``week_start``
      is the label), as a session by its opening;
    * a wait when its ``first_at`` is in ``[from, to)`` (with ``--week``: in the shop's own week
      of the label; a wait's ``week_start`` is that of its end, unknown while it is open);
    * an after-sales request (issue #14, R11.5.1) when its ``requested_at`` is in ``[from, to)``
      (with ``--week``: its ``week_start`` is the label), as a ticket;
    * a day, week or month period record when the period **starts** in ``[from, to)`` (with
      ``--week``: the shop's week of the label and its seven days; a month whose first day is one
      of them), as an assessment by its week's start. A period record exists only once the
      watermark passed its end (R9.6, R10.5.2, R11.5.2, R11.6.3).
    """
    def zone(shop: str) -> str:
        return zones.get(shop) or default_tz

    if period.week is None:
        def opened_in(r: dict, key: str) -> bool:
            return parse_time(r[key]) in period

        def period_in(r: dict) -> bool:
            return period_bounds_of(r["period"], r["start"], zone(r["shop_id"]))[0] in period

        tickets = {k: r for k, r in collector.tickets.items() if opened_in(r, "created_at")}
        waits = {k: r for k, r in collector.waits.items() if opened_in(r, "first_at")}
        requests = {k: r for k, r in collector.requests.items() if opened_in(r, "requested_at")}
    else:
        from datetime import date, timedelta

        label = period.week
        monday = date.fromisoformat(label)
        days = {(monday + timedelta(days=i)).isoformat() for i in range(7)}

        def in_own_week(r: dict) -> bool:
            start, end = period_bounds_of("week", label, zone(r["shop_id"]))
            t = parse_time(r["first_at"])
            return t is not None and start <= t < end

        def period_in(r: dict) -> bool:
            return r["start"] == label if r["period"] == "week" else r["start"] in days

        tickets = {k: r for k, r in collector.tickets.items() if r["week_start"] == label}
        waits = {k: r for k, r in collector.waits.items() if in_own_week(r)}
        requests = {k: r for k, r in collector.requests.items() if r["week_start"] == label}
    collector.tickets, collector.waits, collector.requests = tickets, waits, requests
    collector.periods = {k: r for k, r in collector.periods.items() if period_in(r)}


async def replay_async(kin: KafkaInput, period: Period, policy: Policy, config: EngineConfig = EngineConfig(),
                       shops: Iterable[str] | None = None, progress: Progress | None = None,
                       track_late: bool = False, parallel: bool | None = None,
                       shop_counts: bool = False, policies: Iterable[object] = ()) -> ReplayResult:
    """Run the period's input through one engine and build the period's report (module docs).

    ``policy`` is the lead model's (chat sessions); ``policies`` host the other models, one per
    kind, as in ``chatsla audit`` (``chatsla.core.policy.policies_for``: service tickets, IM
    waits, issue #12).

    ``shop_counts``: also count each of ``shops``' own counters (``Engine(shop_stats=...)``),
    for :attr:`ReplayResult.shop_counts`.

    ``parallel``: fetch, decode and merge in a child process (:class:`~chatsla.replay.child.ChildInput`) while this
    one runs the engine, so the two halves of the work use two cores; ``False`` does everything
    here; ``None`` (default) goes parallel when at least ``PARALLEL_MIN_RECORDS`` records are to
    be read (starting the child costs about half a second). Both feed the engine the same records
    in the same order, so the results are identical.
    """
    began = time.perf_counter()
    collector = PeriodCollector()
    invalid: Counter[str] = Counter()
    late: list[LateEvent] = []
    read = 0
    shops = sorted(set(shops)) if shops else None
    reader = period_reader(kin, period, config.allowed_lateness, track_late)
    await reader.__aenter__()  # plans the offsets
    if parallel is None:
        parallel = reader.planned >= PARALLEL_MIN_RECORDS
    if parallel:
        await reader.close()
        source: LocalInput | ChildInput = ChildInput(kin, period, config.allowed_lateness, track_late, reader.ranges)
    else:
        source = LocalInput(reader)
    async with source:
        engine = Engine(policy, config, sink=collector, session_updates=False, sources=source.chat_sources,
                        shop_stats=shops if shop_counts and shops else None, policies=policies)
        collector.engine = engine
        feeder = Feeder(engine, invalid, _shop_invalid_hook(engine),
                        _late_hook(late) if track_late else None)
        gc_was_enabled = gc.isenabled()
        gc.disable()  # as in the audit: the core's state is acyclic (BENCHMARKS.md)
        first = time.perf_counter()
        try:
            async for n in source.feed(feeder):
                read += n
                if progress is not None:
                    progress(read, source.planned)
            read_elapsed = time.perf_counter() - first
            newest = engine.max_seen  # before finish() moves it to ``to``
            engine.finish(period.end)
        finally:
            if gc_was_enabled:
                gc.enable()
        late.extend(source.late)
        ranges = source.ranges
    stats = engine_stats(engine, read, invalid, shops)
    if period.week is None:
        keep_sessions = {k: r for k, r in collector.sessions.items() if period.start <= r[3] < period.end}
        keep_weeks = {k: r for k, r in collector.assessments.items()
                      if k in collector.week_bounds and period.start <= collector.week_bounds[k][0] < period.end}
    else:  # each shop's own week of the label (R5.1, R5.2): the session's and the assessment's week_start
        keep_sessions = {k: r for k, r in collector.sessions.items() if r[12] == period.week}
        keep_weeks = {k: r for k, r in collector.assessments.items() if k[1] == period.week}
    collector.sessions, collector.assessments = keep_sessions, keep_weeks
    zones = {s: shop.tz for s, shop in engine.shops.items()}
    label_zones = dict(zones)
    for m in engine.models:  # a shop known to another model only (no chat): its zone there
        for s, tz in (getattr(m, "shop_tz", None) or {}).items():
            if tz and s not in label_zones:
                label_zones[s] = tz
    keep_in_period(collector, period, label_zones, config.default_timezone)
    report = collector.report(stats, policy, shops)
    shop_weeks = {s: {label: (w.start, w.end, w.status) for label, w in sorted(shop.weeks.items())}
                  for s, shop in sorted(engine.shops.items())}
    counts: dict[str, dict] = {}
    unnamed = 0
    if engine.shop_counters is not None:
        counts = {s: engine.shop_stats(s) for s in sorted(engine.shop_counters)}
        unnamed = engine.unnamed_invalid
    return ReplayResult(report, period, policy, ranges, collector.week_bounds, zones, late,
                        time.perf_counter() - began, read_elapsed, shop_weeks, newest, config.allowed_lateness,
                        counts, unnamed, label_zones)


def _shop_invalid_hook(engine: Engine) -> InvalidHook | None:
    """With per-shop counters (``Engine(shop_stats=...)``): count each invalid record for the shop it names."""
    if engine.shop_counters is None:
        return None
    count_invalid = engine.count_invalid

    def hook(offset: int, reason: str, value: bytes | None) -> None:
        count_invalid(named_shop(value), reason)
    return hook


def _late_hook(late: list[LateEvent]) -> LateHook:
    def hook(ev: ChatMessage | ShopEvent, source: str, offset: int) -> None:
        late.append(late_event(ev, source, offset, "applied_late"))
    return hook


def replay(kin: KafkaInput, period: Period, policy: Policy, config: EngineConfig = EngineConfig(),
           shops: Iterable[str] | None = None, progress: Progress | None = None,
           track_late: bool = False, parallel: bool | None = None, policies: Iterable[object] = ()) -> ReplayResult:
    """Synchronous :func:`replay_async`."""
    return asyncio.run(replay_async(kin, period, policy, config, shops, progress, track_late, parallel,
                                    policies=policies))


# -------------------------------------------------------------------------------------- export


@dataclass
class ExportSummary:
    records: int
    ranges: list[PartitionRange]


def open_output(path: str) -> BinaryIO:
    """``FILE.jsonl`` or ``FILE.jsonl.gz`` (gzip with a zero mtime, so equal exports are equal files)."""
    if path.endswith(".gz"):
        raw = open(path, "wb")
        return gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)  # type: ignore[return-value]
    return open(path, "wb", buffering=1 << 20)


async def export_async(kin: KafkaInput, period: Period, out: BinaryIO, allowed_lateness: int,
                       progress: Progress | None = None) -> ExportSummary:
    """Write the records a replay of ``period`` reads, in its merge order, one per line."""
    n = 0
    async with period_reader(kin, period, allowed_lateness) as reader:
        planned = reader.planned
        async for batch in reader.batches():
            values = []
            for rec in batch:
                v = rec[6] or b""
                if b"\n" in v:
                    v = v.replace(b"\n", b" ")  # JSON allows a line break only as whitespace
                values.append(v)
            values.append(b"")
            out.write(b"\n".join(values))
            n += len(batch)
            if progress is not None:
                progress(n, planned)
        ranges = reader.ranges
    return ExportSummary(n, ranges)
