"""One reader of Kafka topics for the offline commands: replay, export and verify (issue #11).

:class:`InputReader` reads a fixed set of topics with a private aiokafka consumer (no group id,
nothing committed, no table or topic of the live app touched) from planned start offsets to the
end offsets the topics had when it started, and yields the records of all partitions merged
into one deterministic order. What it does, in the order records meet it:

* **Planning** (:meth:`InputReader.__aenter__`): every partition of the topics, read from its
  beginning, or for a topic given a start time from the first offset whose Kafka timestamp is at
  or after it (``offsets_for_times``), to its end offset at that moment. A second reader of the
  same input can be given the planned ranges instead (the replay's reader process).
* **Horizon**: with a ``horizon`` (µs of event time) a partition stops at its first record whose
  event time lies beyond it: from there on that partition's watermark is past the horizon. With
  ``tail=True`` it reads on to its end offset and collects the valid events with a time before
  ``late_before`` in :attr:`InputReader.tail_events` (the replay's ``verify``: late arrivals).
* **Merge** (:func:`merge_ready`, pure): partitions are read in log order each and merged by
  the key ``(Kafka timestamp, event time, topic, partition, offset)``, where the first two are
  the running maximum over the partition, so a partition's own order is never broken (two
  producers' clocks may disagree) and records produced within one millisecond (a bulk load
  writes dozens) are merged by event time rather than by partition number. A record is released
  only once no unfinished partition can deliver anything before it, so the order never depends
  on fetch sizes or timing (R6.1).
* **Flow control** (:func:`flow_control`, pure): a partition that has ``PENDING_LIMIT`` records
  waiting for the merge is paused, and resumed once the merge has taken half of them, so one
  partition far ahead of the others cannot fill the memory.

Records are tuples ``(ts, t, topic, partition, offset, source, value, event)`` (the indexes are
named ``TOPIC``, ``OFFSET``, ``SOURCE``, ``VALUE``, ``EVENT`` below); ``event`` is what ``decode`` made of
the value (an event with a ``t``, or :class:`~chatsla.core.events.Invalid`), or
:data:`NOT_DECODED` when the reader was given no decoder (verify reads the output topics).

Errors (unreachable broker, missing topic, a failed request, nothing fetched for
``IDLE_TIMEOUT`` seconds) raise :class:`ReaderError` with a one-line reason.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Iterable, Sequence

from chatsla.core.events import Invalid
from chatsla.core.timefmt import MS
from chatsla.streams.codec import source_tag
from chatsla.streams.settings import KafkaSecurity
from chatsla.streams.topics import TopicNames

FETCH_RECORDS = 10_000  # records per getmany: large batches keep the per-call overhead small
PARTITION_FETCH_BYTES = 1024 * 1024
FETCH_BYTES = 64 * 1024 * 1024
PENDING_LIMIT = 200_000  # records buffered for the merge per partition before it is paused
IDLE_TIMEOUT = 60.0  # seconds without any progress before the read is abandoned

# indexes into a record tuple
TOPIC, OFFSET, SOURCE, VALUE, EVENT = 2, 4, 5, 6, 7

EMPTY = Invalid("not_json")  # an empty (or null) record value
NOT_DECODED = Invalid("not_decoded")  # every record's event when the reader has no decoder
_NO_HORIZON = 1 << 62


class ReaderError(RuntimeError):
    """A one-line reason the topics could not be read (unreachable broker, missing topic, ...)."""


@dataclass(frozen=True)
class KafkaInput:
    """Where the offline commands read: the cluster, its topic names and credentials."""

    bootstrap: str
    names: TopicNames = field(default_factory=TopicNames)
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    timeout: float = 10.0  # seconds for connecting and each metadata / offset request

    def client_kwargs(self) -> dict:
        return {"bootstrap_servers": self.bootstrap, "request_timeout_ms": int(self.timeout * 1000),
                **self.security.aiokafka_kwargs()}


@dataclass
class PartitionRange:
    """What was read of one partition: offsets ``[start, stop)`` of ``[start, end)``."""

    topic: str
    partition: int
    start: int
    end: int  # end offset when the reader started
    stop: int | None = None  # first offset beyond the horizon (None: read to ``end``)
    read: int = 0
    tail: int = 0  # records after ``stop`` (read with tail=True only)

    @property
    def source(self) -> str:
        return source_tag(self.topic, self.partition)


class PartitionState:
    """One partition being read: its range, merge clock, records waiting for the merge, flags."""

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
        self.stopped = False  # past the horizon: only the tail is read (tail=True)
        self.paused = False

    def take(self, recs: Iterable, decode: Callable[[bytes], object], horizon: int, tail: bool,
             late_before: int, tail_events: list[tuple[object, str, int]]) -> None:
        """Decode fetched records (objects with ``offset``, ``timestamp``, ``value``, in log order)
        and append them to ``pending`` with their merge key, up to the end offset and the horizon.

        The key is the running maximum of (Kafka timestamp, event time) over the partition
        (module docs); an invalid record takes the event time of the record before it. The first
        valid event beyond ``horizon`` sets ``range.stop`` and stops the partition; with ``tail``
        the records after it are only counted, and the valid events among them with a time
        before ``late_before`` go to ``tail_events`` as ``(event, source, offset)``.
        """
        rng = self.range
        stop_at = rng.end
        pend = self.pending
        clock, tclock, topic, p, src = self.clock, self.tclock, rng.topic, rng.partition, self.source
        nxt = self.next
        before = len(pend)
        _Invalid = Invalid
        for r in recs:
            off = r.offset
            if off >= stop_at:
                break
            nxt = off + 1
            v = r.value
            ev = decode(v) if v else EMPTY
            if self.stopped:  # the tail after the horizon (tail=True only)
                rng.tail += 1
                if type(ev) is not _Invalid and ev.t < late_before:
                    tail_events.append((ev, src, off))
                continue
            if type(ev) is not _Invalid and ev.t > horizon:
                rng.stop = off
                self.stopped = True
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
        self.clock, self.tclock, self.next = clock, tclock, nxt


def merge_ready(states: Sequence[PartitionState]) -> list[tuple]:
    """Every pending record that no unfinished partition can precede any more, in merge order.

    An unfinished partition with nothing pending may still deliver a record before any pending
    one, so nothing is released until it has delivered (or finished). Keys are unique (topic,
    partition and offset end them), so the order is total. Takes the released records out of
    the states' ``pending`` lists.
    """
    limit = None
    for st in states:
        if not st.done and not st.stopped:  # a stopped partition only reads its tail
            if not st.pending:
                return []
            last = st.pending[-1]
            if limit is None or last < limit:
                limit = last
    runs = []
    for st in states:
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


def flow_control(states: Iterable[PartitionState], pause: Callable[[object], None],
                 resume: Callable[[object], None], limit: int = PENDING_LIMIT) -> None:
    """Pause partitions ``limit`` records ahead of the merge, resume them below ``limit // 2``."""
    for st in states:
        if st.done:
            continue
        if st.paused and len(st.pending) < limit // 2:
            resume(st.tp)
            st.paused = False
        elif not st.paused and len(st.pending) >= limit:
            pause(st.tp)
            st.paused = True


class InputReader:
    """Plans, fetches, decodes and merges the records of ``topics`` (module docs).

    ``start_times``: topic -> µs to read that topic from (by Kafka timestamp; None or absent:
    from the beginning). ``decode``: bytes -> event or Invalid (None: no decoding, every event
    is :data:`NOT_DECODED` and there is no horizon). ``ranges``: offsets already planned by
    another reader of the same input, else planned here when entered. ``missing``: the hint
    added to the error naming a topic that does not exist. ``optional``: topics that may be
    absent (a deployment created before ``ticket.events`` existed, issue #12): a missing one is
    read as empty, with no partition, instead of being an error.
    """

    def __init__(self, kin: KafkaInput, topics: Sequence[str], *, start_times: dict[str, int | None] | None = None,
                 decode: Callable[[bytes], object] | None = None, horizon: int | None = None,
                 tail: bool = False, late_before: int | None = None, ranges: list[PartitionRange] | None = None,
                 client_id: str = "chatsla-replay", missing: str = " (check --topic-prefix)",
                 optional: Iterable[str] = ()) -> None:
        self.kin = kin
        self.topics = list(topics)
        self.optional = frozenset(optional)
        self.start_times = dict(start_times or {})
        self.decode = decode
        self.horizon = _NO_HORIZON if horizon is None or decode is None else horizon
        self.tail = tail
        self.late_before = -_NO_HORIZON if late_before is None else late_before
        self.client_id = client_id
        self.missing = missing
        # (event, source, offset) of the valid events after the horizon with a time before late_before
        self.tail_events: list[tuple[object, str, int]] = []
        self._planned = [PartitionRange(r.topic, r.partition, r.start, r.end) for r in ranges] if ranges else None
        self.ranges: list[PartitionRange] = []
        self._states: list[PartitionState] = []
        self._consumer = None

    @property
    def planned(self) -> int:
        return sum(r.end - r.start for r in self.ranges)

    async def __aenter__(self) -> "InputReader":
        from aiokafka import AIOKafkaConsumer, TopicPartition
        from aiokafka.errors import KafkaError

        kin = self.kin
        consumer = AIOKafkaConsumer(
            **kin.client_kwargs(), group_id=None, enable_auto_commit=False, client_id=self.client_id,
            auto_offset_reset="earliest", fetch_max_bytes=FETCH_BYTES,
            max_partition_fetch_bytes=PARTITION_FETCH_BYTES, fetch_max_wait_ms=100,
            isolation_level="read_uncommitted", retry_backoff_ms=100)
        self._consumer = consumer
        try:
            await timed(consumer.start(), kin.timeout, f"cannot reach Kafka at {kin.bootstrap}")
            cluster = await timed(cluster_metadata(consumer), kin.timeout,
                                  f"no metadata from Kafka at {kin.bootstrap}")
            present = cluster.topics()
            for t in self.topics:
                if t not in present and t not in self.optional:
                    raise ReaderError(f"topic {t!r} does not exist on {kin.bootstrap}{self.missing}")
            tps = []
            for t in self.topics:
                if t not in present:
                    continue  # an optional topic that does not exist: nothing to read
                for p in sorted(cluster.partitions_for_topic(t) or ()):
                    tps.append(TopicPartition(t, p))
            consumer.assign(tps)
            consumer.pause(*tps)  # nothing is fetched before the offsets are chosen
            if self._planned is not None:
                planned = {(r.topic, r.partition): r for r in self._planned}
                if set(planned) != {(tp.topic, tp.partition) for tp in tps}:
                    raise ReaderError("the input topics' partitions changed while the replay started")
                for tp in tps:
                    self.ranges.append(planned[(tp.topic, tp.partition)])
            else:
                begin = await timed(consumer.beginning_offsets(tps), kin.timeout, "listing offsets failed")
                end = await timed(consumer.end_offsets(tps), kin.timeout, "listing offsets failed")
                start = dict(begin)
                by_time = {tp: self.start_times[tp.topic] // MS for tp in tps
                           if self.start_times.get(tp.topic) is not None}
                if by_time:
                    found = await timed(consumer.offsets_for_times(by_time), kin.timeout,
                                        "looking up offsets by time failed")
                    for tp in by_time:
                        hit = found.get(tp)
                        start[tp] = end[tp] if hit is None else max(begin[tp], hit.offset)
                for tp in tps:
                    self.ranges.append(PartitionRange(tp.topic, tp.partition, start[tp], end[tp]))
            for tp, rng in zip(tps, self.ranges):
                self._states.append(PartitionState(tp, rng))
            for st in self._states:
                if st.done:
                    st.paused = True
                else:
                    consumer.seek(st.tp, st.range.start)
                    consumer.resume(st.tp)
        except KafkaError as e:
            await self.close()
            raise ReaderError(f"Kafka at {kin.bootstrap}: {one_line(e)}") from None
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
        """The planned records in merge order, a list per fetch (module docs: record tuples)."""
        from aiokafka.errors import KafkaError

        consumer = self._consumer
        states = self._states
        by_tp = {st.tp: st for st in states}
        horizon, tail, late_before = self.horizon, self.tail, self.late_before
        last_progress = time.monotonic()
        _decode = self.decode or _not_decoded
        while True:
            active = [st for st in states if not st.done]
            if active:
                try:
                    data = await consumer.getmany(timeout_ms=200, max_records=FETCH_RECORDS)
                except KafkaError as e:
                    raise ReaderError(f"reading from Kafka at {self.kin.bootstrap} failed: {one_line(e)}") from None
                for tp, recs in data.items():
                    st = by_tp[tp]
                    if st.done or not recs:
                        continue
                    last_progress = time.monotonic()
                    st.take(recs, _decode, horizon, tail, late_before, self.tail_events)
                    if st.next >= st.range.end or (st.stopped and not tail):
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
                    raise ReaderError(f"no records from Kafka at {self.kin.bootstrap} for {IDLE_TIMEOUT:.0f} s "
                                      f"while {len(active)} partition(s) were unfinished")
            out = merge_ready(states)
            flow_control(states, consumer.pause, consumer.resume)
            if out:
                yield out
            if all(st.done for st in states) and not any(st.pending for st in states):
                return

    def _finish(self, st: PartitionState) -> None:
        st.done = True
        if not st.paused:
            self._consumer.pause(st.tp)
            st.paused = True


def _not_decoded(value: bytes) -> Invalid:
    return NOT_DECODED


async def cluster_metadata(consumer: object) -> object:
    """The cluster's full metadata (every topic and its partitions), without creating any topic.

    The one use of a private aiokafka attribute in chatsla: ``AIOKafkaConsumer.topics()`` fetches
    this same metadata but returns only the topic names, and ``partitions_for_topic`` answers from
    the client's cached metadata, which is refreshed only for the topics the consumer is assigned
    or subscribed to (the partitions are needed before assigning them). aiokafka (0.14.0) has no
    public call returning the fetched cluster metadata; an admin client would be a second
    connection for the same request.
    """
    return await consumer._client.fetch_all_metadata()  # type: ignore[attr-defined]


async def timed(aw: object, timeout: float, what: str) -> object:
    """``await aw`` within ``timeout`` seconds; any failure as a one-line :class:`ReaderError`."""
    from aiokafka.errors import KafkaConnectionError, KafkaError

    try:
        return await asyncio.wait_for(aw, timeout)  # type: ignore[arg-type]
    except asyncio.TimeoutError:
        raise ReaderError(f"{what}: no answer within {timeout:g} s") from None
    except KafkaConnectionError:
        raise ReaderError(f"{what}: connection failed (is the broker up, and --bootstrap right?)") from None
    except KafkaError as e:
        raise ReaderError(f"{what}: {one_line(e)}") from None
    except OSError as e:
        raise ReaderError(f"{what}: {e.strerror or e}") from None


def one_line(e: BaseException) -> str:
    """An exception's text on one line (Kafka errors span several)."""
    text = str(e) or type(e).__name__
    return " ".join(text.split())
