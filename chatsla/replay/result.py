"""What a replay returns: the report and everything needed to explain it (late events, weeks,
zones, what was read of each partition)."""

from __future__ import annotations

from dataclasses import dataclass, field

from chatsla.audit import Report
from chatsla.core.calendar import week_bounds_of
from chatsla.core.events import ChatMessage, ShopEvent
from chatsla.core.policy import Policy
from chatsla.core.timefmt import format_time
from chatsla.replay.period import Period
from chatsla.streams.reader import PartitionRange


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
    # each shop's zone for the bounds of day and week labels: shop_zones, and the zone another
    # model knows for a shop the chat model never saw (issue #12)
    label_zones: dict[str, str] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return sum(r.read for r in self.ranges)

    def week_of(self, shop_id: str, week_start: str, default_tz: str = "UTC") -> tuple[int, int]:
        """Start and end (µs) of a shop's week, also for weeks the replay never assessed."""
        b = self.week_bounds.get((shop_id, week_start))
        if b is not None:
            return b
        return week_bounds_of(week_start, self.shop_zones.get(shop_id, default_tz))


def late_event(ev: ChatMessage | ShopEvent, source: str, offset: int, arrival: str) -> LateEvent:
    """The :class:`LateEvent` of ``ev``, read at ``offset`` of ``source``."""
    conv = ev.conversation_id if type(ev) is ChatMessage else None
    return LateEvent(ev.event_id, ev.shop_id, conv, ev.t, source, offset, arrival)
