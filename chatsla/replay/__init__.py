"""Replay of the raw input topics for a period: audits, exports, appeal packs, verification (issue #5).

``chatsla replay`` reads ``chat.messages`` and ``shop.events`` straight from Kafka with the one
offline reader (:mod:`chatsla.streams.reader`: a private aiokafka consumer no group id, nothing committed, no table or topic of the live app touched) and
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
Modules
=======

The package is split by concern; every public name is importable from ``chatsla.replay``:

* :mod:`chatsla.replay.period`: the period, ``--week`` arithmetic, the notes on cut weeks (pure);
* :mod:`chatsla.replay.result`: :class:`ReplayResult` and :class:`LateEvent`;
* :mod:`chatsla.replay.inputs`: the period's reader (:mod:`chatsla.streams.reader`) fed to the
  engine in this process through :class:`chatsla.streams.feed.Feeder`, the feeding loop the audit uses;
* :mod:`chatsla.replay.child`: the same input read by a second process, and its wire format;
* :mod:`chatsla.replay.run`: :func:`replay` and :func:`export_async`;
* :mod:`chatsla.replay.verify`: :func:`verify` and the pure :func:`compare`.
"""

from __future__ import annotations

from chatsla.streams.feed import empty_reason, named_shop
from chatsla.replay.child import CHUNK_RECORDS, PARALLEL_MIN_RECORDS, ChildInput
from chatsla.replay.inputs import LocalInput, period_reader
from chatsla.replay.period import (
    DEFAULT_LOOKBACK, Period, WeekNote, final_after, period_notes, week_extent, week_label, week_period,
)
from chatsla.replay.result import LateEvent, ReplayResult
from chatsla.replay.run import (
    ExportSummary, PeriodCollector, Progress, export_async, open_output, replay, replay_async,
)
from chatsla.replay.verify import (
    ASSESSMENT_FIXED, SESSION_FIXED, Difference, VerifyResult, compare, read_live_outputs, verify, verify_async,
)
from chatsla.streams.reader import (
    FETCH_BYTES, FETCH_RECORDS, IDLE_TIMEOUT, PARTITION_FETCH_BYTES, PENDING_LIMIT, InputReader, KafkaInput,
    PartitionRange, ReaderError,
)

ReplayError = ReaderError  # the name the CLI catches: every failure to read the input, one line

__all__ = [
    "ASSESSMENT_FIXED", "CHUNK_RECORDS", "DEFAULT_LOOKBACK", "FETCH_BYTES", "FETCH_RECORDS", "IDLE_TIMEOUT",
    "PARALLEL_MIN_RECORDS", "PARTITION_FETCH_BYTES", "PENDING_LIMIT", "SESSION_FIXED", "ChildInput", "Difference",
    "ExportSummary", "InputReader", "KafkaInput", "LateEvent", "LocalInput", "PartitionRange", "Period",
    "PeriodCollector", "Progress", "ReplayError", "ReplayResult", "VerifyResult", "WeekNote",
    "compare", "empty_reason", "export_async", "final_after", "named_shop", "open_output", "period_notes",
    "period_reader", "read_live_outputs", "replay", "replay_async", "verify", "verify_async", "week_extent",
    "week_label", "week_period",
]
