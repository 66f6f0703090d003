"""The replay's input: the period's records from :mod:`chatsla.streams.reader`, fed to the engine.

:func:`period_reader` configures the one Kafka reader for a period (module docs of
:mod:`chatsla.replay`: "What is read"); :class:`LocalInput` runs it in this process and hands
each merged batch to the :class:`~chatsla.streams.feed.Feeder`. :class:`chatsla.replay.child.ChildInput`
is the same input read by a second process.
"""

from __future__ import annotations

from typing import AsyncIterator

from chatsla.streams.feed import Feeder
from chatsla.replay.period import Period
from chatsla.replay.result import LateEvent, late_event
from chatsla.schemas.decode import decode
from chatsla.streams.reader import InputReader, KafkaInput, PartitionRange
from chatsla.streams.topics import watermark_sources


def period_reader(kin: KafkaInput, period: Period, allowed_lateness: int, tail: bool = False,
                  ranges: list[PartitionRange] | None = None) -> InputReader:
    """The reader of ``period``'s input: ``chat.messages`` and ``ticket.events`` from the lookback
    on, ``aftersale.requests`` from at least 40 days back (``Period.aftersale_from``), ``shop.events``
    whole, each partition up to the first event beyond ``to + allowed_lateness`` (with ``tail`` on
    to its end, collecting the events before ``to`` logged there: late arrivals).

    ``ticket.events`` (issue #12) is read like ``chat.messages``: a primary input, whose open
    tickets the lookback rebuilds. ``aftersale.requests`` (issue #14, R11.1) too, further back: the
    buyer histories of R11.4 span 30 days. Either may be missing (a deployment older than the
    topic): it is then read as empty."""
    names = kin.names
    return InputReader(kin, (names.chat, names.shop, names.tickets, names.aftersale),
                       start_times={names.chat: period.read_from, names.tickets: period.read_from,
                                    names.aftersale: period.aftersale_from}, decode=decode,
                       horizon=period.end + allowed_lateness, tail=tail, late_before=period.end, ranges=ranges,
                       optional=(names.tickets, names.aftersale))


def chat_sources(kin: KafkaInput, ranges: list[PartitionRange]) -> list[str]:
    """The engine's watermark sources for the partitions read: those
    :func:`~chatsla.streams.topics.watermark_sources` names (every chat partition; the ticket
    partitions do not hold the watermark, see its docstring)."""
    return watermark_sources(kin.names, (r.partition for r in ranges if r.topic == kin.names.chat))


def tail_late(reader: InputReader) -> list[LateEvent]:
    """The reader's events logged after their partition's horizon, as late arrivals."""
    return [late_event(ev, src, off, "after_period") for ev, src, off in reader.tail_events]  # type: ignore[arg-type]


class LocalInput:
    """The input read in this process: :class:`InputReader` straight into the engine."""

    def __init__(self, reader: InputReader) -> None:
        self.reader = reader  # entered (planned) already

    async def __aenter__(self) -> "LocalInput":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.reader.close()

    @property
    def chat_sources(self) -> list[str]:
        return chat_sources(self.reader.kin, self.reader.ranges)

    @property
    def planned(self) -> int:
        return self.reader.planned

    @property
    def ranges(self) -> list[PartitionRange]:
        return self.reader.ranges

    @property
    def late(self) -> list[LateEvent]:
        return tail_late(self.reader)

    async def feed(self, feeder: Feeder) -> AsyncIterator[int]:
        """Feed every record to ``feeder``; yields the number of records after each batch."""
        async for batch in self.reader.batches():
            yield feeder.feed(batch)
