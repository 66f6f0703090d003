"""Replay of the raw input topics for a period: audits, exports, appeal packs, verification (issue #5).

``chatsla replay`` reads ``chat.messages`` and ``shop.events`` straight from Kafka with a private
aiokafka consumer (no group id, nothing committed, no table or topic of the live app touched) and
runs them through one :class:`~chatsla.core.engine.Engine` configured exactly like the live worker:
every chat partition is a source (tagged ``source_tag(topic, partition)``), so each event is late
or on time against its own partition's watermark and buffered events are released only when the
smallest chat-partition watermark passes them (RULES R6.2-R6.4).

What is read (documented choices)
=================================

* **Lookback** (``DEFAULT_LOOKBACK`` = 9 days). ``chat.messages`` is read from the first offset
  whose Kafka record timestamp is at or after ``from - lookback`` (``offsets_for_times``). 9 days
  covers the longest ordinary session life (the 72 h seller timeout, restarted by every buyer
  message after a human reply), the 8-day dedupe window of the engine (an event of the period
  is recognised as a duplicate of anything the live engine still remembered) and a day of margin
  for delivery delay and producer clock skew. ``--lookback all`` reads from the beginning.
* **Shop events from the beginning.** ``shop.events`` is always read whole: a shop's time zone
  and vacation mode are set by events of any age (a time zone is usually told once), and without
  them the shop's calendar would be wrong. The topic is tiny next to ``chat.messages``.
* **End of input.** Each partition is read up to its end offset as it was when the replay
  started, and stops earlier at the first record whose *event time* is beyond
  ``to + allowed_lateness``: from there on that partition's watermark is past ``to``, so nothing
  after it can be on time for the period. Event time rather than the Kafka timestamp, because a
  log loaded in bulk (a backfill, the simulator) has Kafka timestamps unrelated to event time.
  Records after that point are *late arrivals* for the period: :func:`verify` reads on to the end
  offsets to name them.
* **Order.** Partitions are read in log order each and merged deterministically by the Kafka
  record timestamp, then the event time, then topic, partition and offset. The key of a record
  is the running maximum of ``(Kafka timestamp, event time)`` over its partition, so a
  partition's own order is never broken (two producers' clocks may disagree), and records
  produced within the same millisecond (a bulk load writes dozens per millisecond) are merged by
  event time rather than by partition number, which would reorder them by minutes. The same
  order is what ``chatsla export`` writes, so results never depend on fetch sizes (R6.1).

What is reported (period rule)
==============================

The engine runs over everything read and its watermark is finished at ``to``
(``engine.finish(until=to)``, as ``chatsla audit --until``). The report then keeps

* the sessions **opened** in ``[from, to)``, and
* the assessments of the weeks that **start** in ``[from, to)`` (the shop's local Monday 00:00 in
  the time zone in force, R5.1), which exist only for weeks that ended before ``to``;

A week that overlaps ``[from, to)`` without being reported (it starts before ``from``, has not
ended by ``to``, or is still provisional there) is named by :func:`period_notes`, with the
period that would report it: a ``--from``/``--to`` range in UTC cuts shops of different time
zones at different local times, so one range rarely holds every shop's week.

Replay by week (``--week``)
===========================

:func:`week_period` turns a week label (a local Monday, ``YYYY-MM-DD``) into the period that holds
**every shop's own** week of that label, whatever its time zone, and makes it final:

* ``from`` is that Monday 00:00 in the easternmost time zone of the tz database (the earliest
  instant any shop's week can start; UTC+14 in 2026), so no shop's week starts before it;
* ``to`` is the latest zone's week end (the next Monday 00:00, UTC-12 in 2026) plus the
  policy's reply window, plus its auto-reply timeout, plus the allowed lateness. A week is final
  once every session of it is decided, at the latest its end + reply window + auto-reply timeout
  (R3, R5.6: Tuesday 00:10 local for ``tiktok_shop``); the live pipeline's watermark passes
  that instant when the wall clock is the allowed lateness later (R6.2). So every shop's
  assessment of the week is final at ``to`` whatever its zone.

The report then keeps the sessions and assessments whose ``week_start`` is the label: each shop's
own week, in the zone the engine filed it in (R5.1, R5.2). Zones are not looked up before the
replay (a zone is set by ``shop.events`` of any age, read with everything else), which is why the
bounds span every zone: a few hours more input than one zone would need, and no shop left out.
``stats`` are the whole replay's, as always.

The week's ``to`` may lie beyond the newest event of the input (a week replayed before it is
over, or a quiet log): ``finish(until=to)`` then decides what the data has not (an unanswered
session becomes missed). :func:`period_notes` says so, naming the newest event time.

Shop counters (the appeal pack)
===============================

``stats`` count the whole input. The appeal pack is about one shop, so with ``shop_counts=True``
the engine is built with ``shop_stats`` (``Engine.shop_stats``), so it also counts, per chosen shop, what ``stats``
counts for the whole input (records read, valid, duplicate, invalid by reason, late, outreach,
sessions opened and closed). An invalid record is the shop's when it is a JSON object whose
``shop_id`` is a string naming it; other invalid records (not JSON, no shop) are counted apart
as naming no shop.

``stats`` are those of the whole replay (every record read, lookback included), exactly as
``chatsla audit`` computes them. A full week is therefore audited with ``--from`` at (or before)
its Monday 00:00 and ``--to`` after its end; the assessment is final once ``to`` is past
Tuesday 00:10 (R5.6).

Equivalence with ``chatsla audit`` on an export
===============================================

``chatsla export --from F --to T --out X`` writes exactly the records the replay reads, in the
replay's merge order, original bytes, one per line (a line break inside a record, which JSON
allows only as whitespace, is written as a space). Then
``chatsla audit X --until T --format json`` prints the same bytes as
``chatsla replay --from F --to T --format json`` when

1. no event is late: the audit sees one source (the merged file), the replay one per partition;
   both give the time-sorted result whenever every event is within ``allowed_lateness`` of the
   events merged before it (R6.3), and may flag different events as late otherwise (R6.4); and
2. the period rule keeps everything: no session of the file opened outside ``[F, T)`` and no
   assessed week started before ``F``. Otherwise the replay's report is the audit's report
   without those records (``stats`` are equal either way).

Both must be run with the same ``--allowed-lateness``, ``--policy`` and ``--default-timezone``.

Known limit: session numbers (``conv#n``) count a conversation's sessions from the first one
replayed, so a conversation with sessions before the lookback window is numbered differently
from the live pipeline; ``--lookback all`` removes the difference.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import time
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from typing import AsyncIterator, BinaryIO, Callable, Iterable

import orjson

from chatsla.audit import Collector, Report, engine_stats
from chatsla.core.calendar import IANA_ZONES, week_bounds_of
from chatsla.core.engine import ASSESSMENT, Engine, EngineConfig
from chatsla.core.policy import Policy
from chatsla.core.timefmt import DAY, MS, format_time
from chatsla.schemas.decode import decode
from chatsla.core.events import ChatMessage, Invalid, ShopEvent
from chatsla.streams.codec import source_tag
from chatsla.streams.settings import KafkaSecurity
from chatsla.streams.topics import TopicNames

DEFAULT_LOOKBACK = 9 * DAY
FETCH_RECORDS = 10_000  # records per getmany: large batches keep the per-call overhead small
PARTITION_FETCH_BYTES = 1024 * 1024
FETCH_BYTES = 64 * 1024 * 1024
PENDING_LIMIT = 200_000  # records buffered for the merge per partition before it is paused
IDLE_TIMEOUT = 60.0  # seconds without any progress before the read is abandoned

Progress = Callable[[int, int], None]  # (records read so far, records planned)


class ReplayError(RuntimeError):
    """A one-line reason the replay could not run (unreachable broker, missing topic, ...)."""


@dataclass(frozen=True)
class KafkaInput:
    """Where the replay reads: the cluster, its topic names and credentials."""

    bootstrap: str
    names: TopicNames = field(default_factory=TopicNames)
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    timeout: float = 10.0  # seconds for connecting and each metadata / offset request

    def client_kwargs(self) -> dict:
        return {"bootstrap_servers": self.bootstrap, "request_timeout_ms": int(self.timeout * 1000),
                **self.security.aiokafka_kwargs()}


@dataclass(frozen=True)
class Period:
    """``[start, end)`` in µs, and how far before ``start`` the chat input is read."""

    start: int
    end: int
    lookback: int | None = DEFAULT_LOOKBACK  # None: from the beginning of the topic
    week: str | None = None  # a week label (--week): report each shop's own week of it (module docs)

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError("the period must end after it starts")
        if self.lookback is not None and self.lookback < 0:
            raise ValueError("the lookback must not be negative")

    @property
    def read_from(self) -> int | None:
        return None if self.lookback is None else max(0, self.start - self.lookback)

    def __contains__(self, t: object) -> bool:
        return isinstance(t, int) and self.start <= t < self.end


def week_extent(label: str) -> tuple[int, int]:
    """The earliest start and the latest end (µs) of the week ``label`` over every IANA time zone.

    A shop's week is Monday 00:00 to Monday 00:00 local (R5.1); across zones these instants span
    about 26 hours. Computed from the tz database itself rather than fixed offsets, so a zone that
    moves (Pacific islands have crossed the date line) is covered on the dates it applies.
    """
    bounds = [week_bounds_of(label, name) for name in sorted(IANA_ZONES)]
    return min(b[0] for b in bounds), max(b[1] for b in bounds)


def final_after(week_end: int, policy: Policy, allowed_lateness: int) -> int:
    """The replay ``--to`` (and live wall-clock time) from which a week ending at ``week_end`` is final.

    Every session of the week is decided by its end + reply window + auto-reply timeout (R3:
    opened before the end, decided at the latest 24 h + 10 min after opening; R5.6 "at the
    latest Tuesday 00:10"); the watermark passes that instant once event time is the allowed
    lateness beyond it (R6.2).
    """
    return week_end + policy.reply_window + policy.auto_reply_timeout + allowed_lateness


def week_label(text: str) -> str:
    """``text`` as a week label: an ISO date that is a Monday (R5.1); ValueError saying why not."""
    from datetime import date

    try:
        d = date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a date of the form YYYY-MM-DD: {text!r}") from None
    if len(text) != 10:
        raise ValueError(f"not a date of the form YYYY-MM-DD: {text!r}")
    if d.weekday() != 0:
        raise ValueError(f"{text} is a {d.strftime('%A')}; a week starts on a Monday (R5.1), "
                         f"e.g. {(d.fromordinal(d.toordinal() - d.weekday())).isoformat()}")
    return d.isoformat()


def week_period(label: str, policy: Policy, allowed_lateness: int,
                lookback: int | None = DEFAULT_LOOKBACK) -> Period:
    """The period of ``--week label``: every shop's own week ``label``, final (module docs)."""
    start, end = week_extent(week_label(label))
    return Period(start, final_after(end, policy, allowed_lateness), lookback, week=label)


@dataclass
class PartitionRange:
    """What was read of one input partition: offsets ``[start, stop)`` of ``[start, end)``."""

    topic: str
    partition: int
    start: int
    end: int  # end offset when the replay started
    stop: int | None = None  # first offset beyond the period's horizon (None: read to ``end``)
    read: int = 0
    tail: int = 0  # records after ``stop`` (read by verify only)

    @property
    def source(self) -> str:
        return source_tag(self.topic, self.partition)


@dataclass(frozen=True)
class LateEvent:
    """An event that reached the log later than the allowed lateness (R6.4).

    ``arrival`` is ``applied_late`` (read within the period's input, behind its partition's
    watermark: the replay applied it late, as the live worker did) or ``after_period`` (logged
    after its partition's watermark had passed ``to``: outside the period's input, though the
    live pipeline applied it when it came).
    """

    event_id: str
    shop_id: str
    conversation_id: str | None  # None for a shop event
    t: int
    source: str
    offset: int
    arrival: str

    def to_dict(self) -> dict:
        return {"event_id": self.event_id, "shop_id": self.shop_id, "conversation_id": self.conversation_id,
                "time": format_time(self.t), "source": self.source, "offset": self.offset, "arrival": self.arrival}


@dataclass
class ReplayResult:
    report: Report
    period: Period
    policy: Policy
    ranges: list[PartitionRange]
    week_bounds: dict[tuple[str, str], tuple[int, int]]  # (shop, week_start) -> (start, end) µs
    shop_zones: dict[str, str]  # time zone of each shop at the end of the replay
    late: list[LateEvent] = field(default_factory=list)
    elapsed: float = 0.0  # seconds, connecting to the report
    read_elapsed: float = 0.0  # seconds from the first fetch to the end of the input
    # every week the engine still held at the end, per shop: label -> (start, end, status)
    shop_weeks: dict[str, dict[str, tuple[int, int, str | None]]] = field(default_factory=dict)
    newest: int | None = None  # the newest event time read (before the watermark was finished at ``to``)
    allowed_lateness: int = 0
    # with shop_counts: each chosen shop's own counters (shop_stats), and the invalid records naming no shop
    shop_counts: dict[str, dict] = field(default_factory=dict)
    unnamed_invalid: int = 0

    @property
    def records(self) -> int:
        return sum(r.read for r in self.ranges)

    def week_of(self, shop_id: str, week_start: str, default_tz: str = "UTC") -> tuple[int, int]:
        """Start and end (µs) of a shop's week, also for weeks the replay never assessed."""
        b = self.week_bounds.get((shop_id, week_start))
        if b is not None:
            return b
        return week_bounds_of(week_start, self.shop_zones.get(shop_id, default_tz))


# ------------------------------------------------------------------------------------- reading

_EMPTY = Invalid("not_json")


class _PartitionState:
    __slots__ = ("tp", "range", "source", "clock", "tclock", "pending", "next", "done", "stopped", "paused")

    def __init__(self, tp: object, rng: PartitionRange) -> None:
        self.tp = tp
        self.range = rng
        self.source = rng.source
        self.clock = -1  # running maximum of (Kafka timestamp, event time): the merge key
        self.tclock = -(1 << 62)
        self.pending: list[tuple] = []
        self.next = rng.start
        self.done = rng.start >= rng.end
        self.stopped = False
        self.paused = False


class InputReader:
    """Plans, fetches, decodes and merges the period's input records.

    ``batches()`` yields lists of ``(ts, t, topic, partition, offset, source, value, event)`` in
    merge order, where ``event`` is the decoded event or :class:`Invalid`. With ``tail=True``,
    partitions stopped at the period's horizon are read on to their end offsets and the valid
    events found there with a time before ``period.end`` are collected in :attr:`late`.
    """

    def __init__(self, kin: KafkaInput, period: Period, allowed_lateness: int, tail: bool = False,
                 ranges: list[PartitionRange] | None = None) -> None:
        """``ranges``: offsets already planned (by another reader of the same period), else planned
        here when entered."""
        self.kin = kin
        self.period = period
        self.horizon = period.end + allowed_lateness
        self.tail = tail
        self.late: list[LateEvent] = []
        self._planned = [PartitionRange(r.topic, r.partition, r.start, r.end) for r in ranges] if ranges else None
        self.ranges: list[PartitionRange] = []
        self.chat_sources: list[str] = []
        self._states: list[_PartitionState] = []
        self._consumer = None

    @property
    def planned(self) -> int:
        return sum(r.end - r.start for r in self.ranges)

    async def __aenter__(self) -> "InputReader":
        from aiokafka import AIOKafkaConsumer, TopicPartition
        from aiokafka.errors import KafkaError

        kin = self.kin
        consumer = AIOKafkaConsumer(
            **kin.client_kwargs(), group_id=None, enable_auto_commit=False, client_id="chatsla-replay",
            auto_offset_reset="earliest", fetch_max_bytes=FETCH_BYTES,
            max_partition_fetch_bytes=PARTITION_FETCH_BYTES, fetch_max_wait_ms=100,
            isolation_level="read_uncommitted", retry_backoff_ms=100)
        self._consumer = consumer
        try:
            await _timed(consumer.start(), kin.timeout, f"cannot reach Kafka at {kin.bootstrap}")
            cluster = await _metadata(consumer, kin)
            names = kin.names
            for t in (names.chat, names.shop):
                if t not in cluster.topics():
                    raise ReplayError(f"topic {t!r} does not exist on {kin.bootstrap} (check --topic-prefix)")
            tps = []
            for t in (names.chat, names.shop):
                for p in sorted(cluster.partitions_for_topic(t) or ()):
                    tps.append(TopicPartition(t, p))
            consumer.assign(tps)
            consumer.pause(*tps)  # nothing is fetched before the offsets are chosen
            if self._planned is not None:
                planned = {(r.topic, r.partition): r for r in self._planned}
                if set(planned) != {(tp.topic, tp.partition) for tp in tps}:
                    raise ReplayError("the input topics' partitions changed while the replay started")
                for tp in tps:
                    self.ranges.append(planned[(tp.topic, tp.partition)])
            else:
                begin = await _timed(consumer.beginning_offsets(tps), kin.timeout, "listing offsets failed")
                end = await _timed(consumer.end_offsets(tps), kin.timeout, "listing offsets failed")
                start = dict(begin)
                chat_tps = [tp for tp in tps if tp.topic == names.chat]
                read_from = self.period.read_from
                if read_from is not None and chat_tps:
                    found = await _timed(consumer.offsets_for_times({tp: read_from // MS for tp in chat_tps}),
                                         kin.timeout, "looking up offsets by time failed")
                    for tp in chat_tps:
                        hit = found.get(tp)
                        start[tp] = end[tp] if hit is None else max(begin[tp], hit.offset)
                for tp in tps:
                    self.ranges.append(PartitionRange(tp.topic, tp.partition, start[tp], end[tp]))
            for tp, rng in zip(tps, self.ranges):
                self._states.append(_PartitionState(tp, rng))
            self.chat_sources = [r.source for r in self.ranges if r.topic == names.chat]
            for st in self._states:
                if st.done:
                    st.paused = True
                else:
                    consumer.seek(st.tp, st.range.start)
                    consumer.resume(st.tp)
        except KafkaError as e:
            await self.close()
            raise ReplayError(f"Kafka at {kin.bootstrap}: {_one_line(e)}") from None
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            try:
                await asyncio.wait_for(consumer.stop(), 10)
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    async def batches(self) -> AsyncIterator[list[tuple]]:
        from aiokafka.errors import KafkaError

        consumer = self._consumer
        states = self._states
        by_tp = {st.tp: st for st in states}
        horizon, tail, end_t = self.horizon, self.tail, self.period.end
        last_progress = time.monotonic()
        _decode, _Invalid = decode, Invalid
        while True:
            active = [st for st in states if not st.done]
            if active:
                try:
                    data = await consumer.getmany(timeout_ms=200, max_records=FETCH_RECORDS)
                except KafkaError as e:
                    raise ReplayError(f"reading from Kafka at {self.kin.bootstrap} failed: {_one_line(e)}") from None
                for tp, recs in data.items():
                    st = by_tp[tp]
                    if st.done or not recs:
                        continue
                    last_progress = time.monotonic()
                    rng = st.range
                    stop_at = rng.end
                    pend = st.pending
                    clock, tclock, topic, p, src = st.clock, st.tclock, tp.topic, tp.partition, st.source
                    nxt = st.next
                    before = len(pend)
                    for r in recs:
                        off = r.offset
                        if off >= stop_at:
                            break
                        nxt = off + 1
                        v = r.value
                        ev = _decode(v) if v else _EMPTY
                        if st.stopped:  # the tail after the horizon (verify only)
                            rng.tail += 1
                            if type(ev) is not _Invalid and ev.t < end_t:
                                self.late.append(_late(ev, src, off, "after_period"))
                            continue
                        if type(ev) is not _Invalid and ev.t > horizon:
                            rng.stop = off
                            st.stopped = True
                            if not tail:
                                break
                            rng.tail += 1
                            continue
                        # merge key: the running maximum of (Kafka timestamp, event time)
                        ts = r.timestamp
                        t = tclock if type(ev) is _Invalid else ev.t
                        if ts > clock:
                            clock, tclock = ts, t
                        elif ts == clock and t > tclock:
                            tclock = t
                        pend.append((clock, tclock, topic, p, off, src, v, ev))
                    rng.read += len(pend) - before
                    st.clock, st.tclock, st.next = clock, tclock, nxt
                    if nxt >= stop_at or (st.stopped and not tail):
                        self._finish(st)
                # partitions that returned nothing may be at their end (control records, gaps)
                for st in active:
                    if not st.done and not st.paused and st.tp not in data:
                        try:
                            pos = await consumer.position(st.tp)
                        except KafkaError:
                            continue
                        if pos >= st.range.end:
                            self._finish(st)
                if not data and time.monotonic() - last_progress > IDLE_TIMEOUT:
                    raise ReplayError(f"no records from Kafka at {self.kin.bootstrap} for {IDLE_TIMEOUT:.0f} s "
                                      f"while {len(active)} partition(s) were unfinished")
            out = self._merge()
            self._flow_control()
            if out:
                yield out
            if all(st.done for st in states) and not any(st.pending for st in states):
                return

    def _finish(self, st: _PartitionState) -> None:
        st.done = True
        if not st.paused:
            self._consumer.pause(st.tp)
            st.paused = True

    def _flow_control(self) -> None:
        """Pause partitions far ahead of the merge, resume them once it has caught up."""
        consumer = self._consumer
        for st in self._states:
            if st.done:
                continue
            if st.paused and len(st.pending) < PENDING_LIMIT // 2:
                consumer.resume(st.tp)
                st.paused = False
            elif not st.paused and len(st.pending) >= PENDING_LIMIT:
                consumer.pause(st.tp)
                st.paused = True

    def _merge(self) -> list[tuple]:
        """Every pending record that no unfinished partition can precede any more, in merge order."""
        limit = None
        for st in self._states:
            if not st.done and not st.stopped:  # a stopped partition only reads its tail (verify)
                if not st.pending:
                    return []  # this partition may still deliver something earlier
                last = st.pending[-1]
                if limit is None or last < limit:
                    limit = last
        runs = []
        for st in self._states:
            pend = st.pending
            if not pend:
                continue
            if limit is None:
                runs.append(pend)
                st.pending = []
            else:
                i = bisect_right(pend, limit)
                if i:
                    runs.append(pend[:i])
                    del pend[:i]
        if not runs:
            return []
        if len(runs) == 1:
            return runs[0]
        out = [x for run in runs for x in run]
        out.sort()  # runs are sorted and keys unique: Timsort merges them
        return out


def _late(ev: ChatMessage | ShopEvent, source: str, offset: int, arrival: str) -> LateEvent:
    conv = ev.conversation_id if type(ev) is ChatMessage else None
    return LateEvent(ev.event_id, ev.shop_id, conv, ev.t, source, offset, arrival)


async def _metadata(consumer, kin: KafkaInput):
    """The cluster's full metadata (every topic and its partitions), without creating any topic."""
    # AIOKafkaConsumer.topics() fetches the same metadata but returns only the topic names
    return await _timed(consumer._client.fetch_all_metadata(), kin.timeout,
                        f"no metadata from Kafka at {kin.bootstrap}")


async def _timed(aw, timeout: float, what: str):
    from aiokafka.errors import KafkaConnectionError, KafkaError

    try:
        return await asyncio.wait_for(aw, timeout)
    except asyncio.TimeoutError:
        raise ReplayError(f"{what}: no answer within {timeout:g} s") from None
    except KafkaConnectionError:
        raise ReplayError(f"{what}: connection failed (is the broker up, and --bootstrap right?)") from None
    except KafkaError as e:
        raise ReplayError(f"{what}: {_one_line(e)}") from None
    except OSError as e:
        raise ReplayError(f"{what}: {e.strerror or e}") from None


def _one_line(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return " ".join(text.split())


# -------------------------------------------------------------------------------------- replay


class _PeriodCollector(Collector):
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
        else:
            self.sessions[(raw[0], raw[1], raw[2], raw[3])] = raw  # opened_at: numbers restart after eviction


def named_shop(value: bytes | None) -> str | None:
    """The shop an invalid record names: its ``shop_id`` if it is a JSON object with a string there."""
    if not value:
        return None
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    shop = obj.get("shop_id") if isinstance(obj, dict) else None
    return shop if isinstance(shop, str) else None


def empty_reason(value: bytes | None, ev: Invalid) -> str:
    """The audit's reason for an invalid line: a blank record is ``empty_line`` (docs/rules.md, readings)."""
    return "empty_line" if not value or not value.strip() else ev.reason


async def replay_async(kin: KafkaInput, period: Period, policy: Policy, config: EngineConfig = EngineConfig(),
                       shops: Iterable[str] | None = None, progress: Progress | None = None,
                       track_late: bool = False, parallel: bool | None = None,
                       shop_counts: bool = False) -> ReplayResult:
    """Run the period's input through one engine and build the period's report (module docs).

    ``shop_counts``: also count each of ``shops``' own counters (``Engine(shop_stats=...)``),
    for :attr:`ReplayResult.shop_counts`.

    ``parallel``: fetch, decode and merge in a child process (:class:`_ChildInput`) while this
    one runs the engine, so the two halves of the work use two cores; ``False`` does everything
    here; ``None`` (default) goes parallel when at least ``PARALLEL_MIN_RECORDS`` records are to
    be read (starting the child costs about half a second). Both feed the engine the same records
    in the same order, so the results are identical.
    """
    began = time.perf_counter()
    collector = _PeriodCollector()
    invalid: Counter[str] = Counter()
    late: list[LateEvent] = []
    read = 0
    shops = sorted(set(shops)) if shops else None
    reader = InputReader(kin, period, config.allowed_lateness, track_late)
    await reader.__aenter__()  # plans the offsets
    if parallel is None:
        parallel = reader.planned >= PARALLEL_MIN_RECORDS
    if parallel:
        await reader.close()
        source: _LocalInput | _ChildInput = _ChildInput(kin, period, config.allowed_lateness, track_late,
                                                        reader.ranges)
    else:
        source = _LocalInput(reader)
    async with source:
        engine = Engine(policy, config, sink=collector, session_updates=False, sources=source.chat_sources,
                        shop_stats=shops if shop_counts and shops else None)
        collector.engine = engine
        gc_was_enabled = gc.isenabled()
        gc.disable()  # as in the audit: the core's state is acyclic (BENCHMARKS.md)
        first = time.perf_counter()
        try:
            async for n in source.feed(engine, invalid, late if track_late else None):
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
    report = collector.report(stats, policy, shops)
    zones = {s: shop.tz for s, shop in engine.shops.items()}
    shop_weeks = {s: {label: (w.start, w.end, w.status) for label, w in sorted(shop.weeks.items())}
                  for s, shop in sorted(engine.shops.items())}
    counts: dict[str, dict] = {}
    unnamed = 0
    if engine.shop_counters is not None:
        counts = {s: engine.shop_stats(s) for s in sorted(engine.shop_counters)}
        unnamed = engine.unnamed_invalid
    return ReplayResult(report, period, policy, ranges, collector.week_bounds, zones, late,
                        time.perf_counter() - began, read_elapsed, shop_weeks, newest, config.allowed_lateness,
                        counts, unnamed)


@dataclass(frozen=True)
class WeekNote:
    """A shop's week that the period cuts, or (``--week``) the week reported: what and why.

    ``kind``: ``before_from`` (starts before ``from``: left out), ``not_ended`` (ends at or after
    ``to``: no assessment yet), ``provisional`` (reported, but some sessions still pending at
    ``to``), ``week`` (``--week``: the shop's own week, reported). ``final_to`` is the ``--to``
    from which the week is final (:func:`final_after`).
    """

    shop_id: str
    zone: str
    label: str
    start: int
    end: int
    status: str | None
    kind: str
    final_to: int

    def text(self) -> str:
        head = (f"{self.shop_id} ({self.zone}): week {self.label} runs {format_time(self.start)} .. "
                f"{format_time(self.end)}")
        final = format_time(self.final_to)
        if self.kind == "before_from":
            return (f"{head}, starting before --from: left out of this report; --week {self.label} "
                    f"reports every shop's own week {self.label}")
        if self.kind == "not_ended":
            return (f"{head}, not ended before --to: no assessment yet; it is final with --to {final} "
                    f"or later (or --week {self.label})")
        if self.kind == "provisional":
            return f"{head}: provisional at --to (sessions still pending); final with --to {final} or later"
        return f"{head}; {self.status or 'not assessed'}, final from --to {final}"


def period_notes(result: ReplayResult) -> tuple[list[WeekNote], str | None]:
    """What a reader of the report needs to know about the shops' weeks and the data's end.

    Returns the :class:`WeekNote` of every week (of a reported shop that the engine holds) that
    overlaps the period without being reported final, or with ``--week`` of every shop's own
    week; and a warning when ``to`` lies beyond every event of the input (none was found past
    it), so that the replay's watermark ran ahead of the data (module docs: Replay by week).
    """
    period, policy, lateness = result.period, result.policy, result.allowed_lateness
    scope = result.report.stats.get("shops")
    notes: list[WeekNote] = []
    for shop, weeks in sorted(result.shop_weeks.items()):
        if scope and shop not in scope:
            continue
        zone = result.shop_zones.get(shop, "UTC")
        for label, (start, end, status) in weeks.items():
            final_to = final_after(end, policy, lateness)
            if period.week is not None:
                if label == period.week:
                    notes.append(WeekNote(shop, zone, label, start, end, status, "week", final_to))
                continue
            if end <= period.start or start >= period.end:
                continue
            if start < period.start:
                kind = "before_from"
            elif status is None:
                kind = "not_ended"
            elif status == "provisional":
                kind = "provisional"
            else:
                continue
            notes.append(WeekNote(shop, zone, label, start, end, status, kind, final_to))
    warning = None
    # the data reaches --to when a partition holds an event beyond it (the reader stopped there)
    beyond = any(r.stop is not None for r in result.ranges)
    if result.newest is not None and result.newest < period.end and not beyond:
        warning = (f"the newest event read is at {format_time(result.newest)}, before --to {format_time(period.end)}: "
                   f"the watermark was moved on to --to without data, so a session the data leaves "
                   f"undecided counts as missed; replay a week once it is over")
    elif result.newest is None:
        warning = "no event was read: nothing to report"
    return notes, warning


def replay(kin: KafkaInput, period: Period, policy: Policy, config: EngineConfig = EngineConfig(),
           shops: Iterable[str] | None = None, progress: Progress | None = None,
           track_late: bool = False, parallel: bool | None = None) -> ReplayResult:
    """Synchronous :func:`replay_async`."""
    return asyncio.run(replay_async(kin, period, policy, config, shops, progress, track_late, parallel))


class _LocalInput:
    """The input read in this process: :class:`InputReader` straight into the engine."""

    def __init__(self, reader: InputReader) -> None:
        self.reader = reader  # entered (planned) already

    async def __aenter__(self) -> "_LocalInput":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.reader.close()

    @property
    def chat_sources(self) -> list[str]:
        return self.reader.chat_sources

    @property
    def planned(self) -> int:
        return self.reader.planned

    @property
    def ranges(self) -> list[PartitionRange]:
        return self.reader.ranges

    @property
    def late(self) -> list[LateEvent]:
        return self.reader.late

    async def feed(self, engine: Engine, invalid: Counter, late: list[LateEvent] | None) -> AsyncIterator[int]:
        """Apply every record to ``engine``; yields the number of records after each batch."""
        apply, counters, _Invalid = engine.apply, engine.counters, Invalid
        count_invalid = engine.count_invalid if engine.shop_counters is not None else None
        async for batch in self.reader.batches():
            if late is not None or count_invalid is not None:
                for rec in batch:
                    ev = rec[7]
                    if type(ev) is _Invalid:
                        reason = empty_reason(rec[6], ev)
                        invalid[reason] += 1
                        if count_invalid is not None:
                            count_invalid(named_shop(rec[6]), reason)
                        continue
                    if late is None:
                        apply(ev, rec[5])
                        continue
                    before = counters["late"]
                    apply(ev, rec[5])
                    if counters["late"] != before:
                        late.append(_late(ev, rec[5], rec[4], "applied_late"))
            else:
                for rec in batch:
                    ev = rec[7]
                    if type(ev) is _Invalid:
                        invalid[empty_reason(rec[6], ev)] += 1
                        continue
                    apply(ev, rec[5])
            yield len(batch)


# Records cross the process boundary as plain tuples, which pickle several times faster than the
# event objects: (source index, offset, 0, event_id, shop_id, conversation_id, sender, t, kind,
# message_type, platform) for a chat message, (source index, offset, 1, event_id, shop_id, type,
# t, timezone) for a shop event, (source index, offset, 2, reason, named shop or None) for an
# invalid record. Each message on the child's data pipe is a 4-byte big-endian length and a pickle.
CHUNK_RECORDS = 5_000
PARALLEL_MIN_RECORDS = 200_000
_CHILD = "from chatsla.replay import _child_entry; _child_entry()"


class _ChildInput:
    """The input read by a child Python process (fetch, decode, merge), sent here in chunks.

    A plain subprocess (``python -c``) rather than multiprocessing: nothing of the caller's
    ``__main__`` is re-imported, and the child is ours to kill if this side stops early.
    """

    def __init__(self, kin: KafkaInput, period: Period, allowed_lateness: int, tail: bool,
                 ranges: list[PartitionRange]) -> None:
        self.args = (kin, period, allowed_lateness, tail, ranges)
        self.chat_sources: list[str] = []
        self.sources: list[str] = []
        self.planned = 0
        self.ranges: list[PartitionRange] = []
        self.late: list[LateEvent] = []
        self._proc = None
        self._stderr = None

    async def __aenter__(self) -> "_ChildInput":
        import os
        import pickle
        import sys
        import tempfile
        from pathlib import Path

        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])  # where this chatsla package lives
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._stderr = tempfile.TemporaryFile()
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CHILD, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=self._stderr, env=env, limit=1 << 23)
        try:
            self._proc.stdin.write(pickle.dumps(self.args, protocol=pickle.HIGHEST_PROTOCOL))
            await self._proc.stdin.drain()
            self._proc.stdin.close()
            msg = await self._receive()
            if msg[0] != "plan":
                raise ReplayError(f"replay reader: unexpected message {msg[0]!r}")
            _, self.ranges, self.chat_sources, self.planned = msg
            self.sources = [r.source for r in self.ranges]
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.returncode is None:
                try:
                    await asyncio.wait_for(proc.wait(), 0.5)
                except asyncio.TimeoutError:
                    proc.kill()  # our own child, by its handle
                    await proc.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    async def _receive(self) -> tuple:
        import pickle

        stdout = self._proc.stdout
        try:
            head = await stdout.readexactly(4)
            data = await stdout.readexactly(int.from_bytes(head, "big"))
        except (asyncio.IncompleteReadError, ConnectionError):
            code = await self._proc.wait()
            self._stderr.seek(0)
            lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
            why = f": {lines[-1].strip()}" if lines else ""
            raise ReplayError(f"the replay reader process ended unexpectedly (exit code {code}){why}") from None
        msg = pickle.loads(data)
        if msg[0] == "error":
            raise ReplayError(msg[1])
        return msg

    async def feed(self, engine: Engine, invalid: Counter, late: list[LateEvent] | None) -> AsyncIterator[int]:
        apply, counters, srcs = engine.apply, engine.counters, self.sources
        count_invalid = engine.count_invalid if engine.shop_counters is not None else None
        _Chat, _Shop = ChatMessage, ShopEvent
        while True:
            msg = await self._receive()
            if msg[0] == "end":
                _, self.ranges, self.late = msg
                return
            chunk = msg[1]
            for r in chunk:
                k = r[2]
                if k == 0:
                    ev = _Chat(r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10])
                elif k == 1:
                    ev = _Shop(r[3], r[4], r[5], r[6], r[7])
                else:
                    invalid[r[3]] += 1
                    if count_invalid is not None:
                        count_invalid(r[4], r[3])
                    continue
                if late is None:
                    apply(ev, srcs[r[0]])
                else:
                    before = counters["late"]
                    apply(ev, srcs[r[0]])
                    if counters["late"] != before:
                        late.append(_late(ev, srcs[r[0]], r[1], "applied_late"))
            yield len(chunk)


def _child_entry() -> None:
    """The reader process: arguments pickled on stdin, framed pickles out on the original stdout."""
    import os
    import pickle
    import sys

    import logging

    logging.getLogger("aiokafka").addHandler(logging.NullHandler())  # errors go to the parent as messages
    args = pickle.loads(sys.stdin.buffer.read())
    out_fd = os.dup(1)
    os.dup2(2, 1)  # a stray print can never corrupt the data pipe
    try:
        import fcntl

        # a 1 MiB pipe holds whole chunks: the parent picks them up between engine batches
        fcntl.fcntl(out_fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass
    out = os.fdopen(out_fd, "wb")

    def send(payload: bytes) -> None:
        out.write(len(payload).to_bytes(4, "big"))
        out.write(payload)
        out.flush()

    try:
        asyncio.run(_child_serve(send, *args))
    except ReplayError as e:
        _try(send, pickle.dumps(("error", str(e))))
    except (BrokenPipeError, KeyboardInterrupt):
        pass  # the parent has gone
    except BaseException as e:  # noqa: BLE001 - reported to the parent as one line
        _try(send, pickle.dumps(("error", f"replay reader failed: {type(e).__name__}: {_one_line(e)}")))
    finally:
        try:
            out.close()
        except OSError:
            pass


def _try(fn: Callable, *args: object) -> None:
    try:
        fn(*args)
    except OSError:
        pass


async def _child_serve(send: Callable[[bytes], None], kin: KafkaInput, period: Period, allowed_lateness: int,
                       tail: bool, ranges: list[PartitionRange]) -> None:
    import pickle

    loop = asyncio.get_running_loop()
    dumps, proto = pickle.dumps, pickle.HIGHEST_PROTOCOL
    _Chat, _Invalid = ChatMessage, Invalid
    gc.disable()  # everything here is short-lived and acyclic
    async with InputReader(kin, period, allowed_lateness, tail, ranges) as reader:
        index = {r.source: i for i, r in enumerate(reader.ranges)}
        send(dumps(("plan", reader.ranges, reader.chat_sources, reader.planned), proto))
        sending = None
        async for batch in reader.batches():
            for i in range(0, len(batch), CHUNK_RECORDS):
                out = []
                append = out.append
                for rec in batch[i:i + CHUNK_RECORDS]:
                    ev = rec[7]
                    t = type(ev)
                    if t is _Chat:
                        append((index[rec[5]], rec[4], 0, ev.event_id, ev.shop_id, ev.conversation_id, ev.sender,
                                ev.t, ev.kind, ev.message_type, ev.platform))
                    elif t is _Invalid:
                        append((index[rec[5]], rec[4], 2, empty_reason(rec[6], ev), named_shop(rec[6])))
                    else:
                        append((index[rec[5]], rec[4], 1, ev.event_id, ev.shop_id, ev.type, ev.t, ev.timezone))
                payload = dumps(("batch", out), proto)
                if sending is not None:
                    await sending
                # written from a thread, so the event loop keeps fetching while the parent reads
                sending = loop.run_in_executor(None, send, payload)
        if sending is not None:
            await sending
        send(dumps(("end", reader.ranges, reader.late), proto))


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
    async with InputReader(kin, period, allowed_lateness) as reader:
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


# -------------------------------------------------------------------------------------- verify

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
    """The live outputs as a consumer sees them: the latest record per session and per shop-week."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaError

    names = kin.names
    consumer = AIOKafkaConsumer(**kin.client_kwargs(), group_id=None, enable_auto_commit=False,
                                client_id="chatsla-verify", max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
                                fetch_max_bytes=FETCH_BYTES, fetch_max_wait_ms=100)
    sessions: dict[tuple[str, str], dict] = {}
    assessments: dict[tuple[str, str], dict] = {}
    n = 0
    try:
        await _timed(consumer.start(), kin.timeout, f"cannot reach Kafka at {kin.bootstrap}")
        cluster = await _metadata(consumer, kin)
        for t in (names.sessions, names.assessments):
            if t not in cluster.topics():
                raise ReplayError(f"topic {t!r} does not exist on {kin.bootstrap}: is a live worker deployed "
                                  f"with this --topic-prefix?")
        tps = [TopicPartition(t, p) for t in (names.sessions, names.assessments)
               for p in sorted(cluster.partitions_for_topic(t) or ())]
        consumer.assign(tps)
        consumer.pause(*tps)
        begin = await _timed(consumer.beginning_offsets(tps), kin.timeout, "listing offsets failed")
        end = await _timed(consumer.end_offsets(tps), kin.timeout, "listing offsets failed")
        todo = set()
        for tp in tps:
            if begin[tp] < end[tp]:
                consumer.seek(tp, begin[tp])
                consumer.resume(tp)
                todo.add(tp)
        last = time.monotonic()
        loads = orjson.loads
        while todo:
            data = await consumer.getmany(timeout_ms=200, max_records=FETCH_RECORDS)
            for tp, recs in data.items():
                if tp not in todo:
                    continue
                last = time.monotonic()
                target = sessions if tp.topic == names.sessions else assessments
                field2 = "session_id" if tp.topic == names.sessions else "week_start"
                for r in recs:
                    if r.offset >= end[tp]:
                        break
                    n += 1
                    try:
                        rec = loads(r.value)
                        target[(rec["shop_id"], rec[field2])] = rec
                    except (orjson.JSONDecodeError, KeyError, TypeError):
                        continue
                if recs[-1].offset + 1 >= end[tp]:
                    todo.discard(tp)
                    consumer.pause(tp)
            for tp in list(todo):
                if tp not in data and await consumer.position(tp) >= end[tp]:
                    todo.discard(tp)
                    consumer.pause(tp)
            if todo and not data and time.monotonic() - last > IDLE_TIMEOUT:
                raise ReplayError(f"no records from Kafka at {kin.bootstrap} for {IDLE_TIMEOUT:.0f} s")
    except KafkaError as e:
        raise ReplayError(f"Kafka at {kin.bootstrap}: {_one_line(e)}") from None
    finally:
        try:
            await asyncio.wait_for(consumer.stop(), 10)
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
    return sessions, assessments, n


class _LateIndex:
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
    late = _LateIndex(result.late, result.policy)
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
        t = _parse(s.get("opened_at"))
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
                             and _session_number(r["session_id"]) < _session_number(l["session_id"]))
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


def _session_number(session_id: object) -> int:
    try:
        return int(str(session_id).rsplit("#", 1)[1])
    except (IndexError, ValueError):
        return 0


def _parse(value: object) -> int | None:
    from chatsla.core.timefmt import parse_time

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
