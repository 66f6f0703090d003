"""The period a replay reports, and the notes on the shops' weeks it cuts (module docs of
:mod:`chatsla.replay`: "What is reported", "Replay by week"). Pure: no Kafka, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatsla.core.calendar import IANA_ZONES, week_bounds_of
from chatsla.core.policy import Policy
from chatsla.core.timefmt import DAY, format_time

if TYPE_CHECKING:
    from chatsla.replay.result import ReplayResult

DEFAULT_LOOKBACK = 9 * DAY
# How far before ``from`` ``aftersale.requests`` is read at least (issue #14): a request's signals
# and per-buyer limit look back over the buyer's requests of the last ``repeat_window`` (30 days
# under tiktok_aftersale@2026-01) and the rule sets' per-buyer windows (R11.3.5, R11.4), and its
# review is due up to 48 h later (R11.6). Requests are sparse, so reading 40 days of them costs
# little; a rule set with a longer per-buyer window needs ``--lookback all``.
AFTERSALE_LOOKBACK = 40 * DAY


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

    @property
    def aftersale_from(self) -> int | None:
        """Where ``aftersale.requests`` is read from: the lookback, and never less than
        ``AFTERSALE_LOOKBACK`` (the buyer history R11.4 looks back over)."""
        return None if self.lookback is None else max(0, self.start - max(self.lookback, AFTERSALE_LOOKBACK))

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

