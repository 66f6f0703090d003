"""Shop calendars: vacation mode and the shop's week (RULES R4, R5.1).

Weeks run Monday 00:00 to Monday 00:00 in the shop's time zone; a session belongs to the week of
its ``opened_at`` in the zone in force at that moment. Week bounds are cached per shop because
every buyer message needs its week (R4 volume) and zoneinfo arithmetic is comparatively slow.

Zone data comes from the ``tzdata`` package (a dependency, so its version is pinned with the
others), never from the machine's TZPATH: two machines with different system tz databases, or
with extra files such as ``localtime`` or ``right/UTC`` there, compute the same weeks (R6.1).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chatsla.core.sessions import normalise_ids
from chatsla.core.timefmt import from_datetime, to_datetime

_TZDATA = resources.files("tzdata")
# The IANA zone names (R1 ``timezone``), as the tzdata package lists them.
IANA_ZONES: frozenset[str] = frozenset(_TZDATA.joinpath("zones").read_text(encoding="utf-8").split())


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` from the tzdata package (R6.1); ZoneInfoNotFoundError otherwise."""
    if name not in IANA_ZONES:
        raise ZoneInfoNotFoundError(f"not an IANA time zone: {name!r}")
    with _TZDATA.joinpath("zoneinfo", *name.split("/")).open("rb") as f:
        return ZoneInfo.from_file(f, key=name)


def week_bounds(t: int, tz: str, week_starts_on: int = 0) -> tuple[int, int, str]:
    """(start µs, end µs, start date ``YYYY-MM-DD``) of the local week containing ``t``."""
    z = zone(tz)
    local = to_datetime(t).astimezone(z)
    start_date = local.date() - timedelta(days=(local.weekday() - week_starts_on) % 7)
    start = datetime.combine(start_date, time(0), tzinfo=z)
    end = datetime.combine(start_date + timedelta(days=7), time(0), tzinfo=z)
    return from_datetime(start), from_datetime(end), start_date.isoformat()


def week_bounds_of(label: str, tz: str) -> tuple[int, int]:
    """(start µs, end µs) of the week starting on local date ``label`` (``YYYY-MM-DD``)."""
    z = zone(tz)
    d = date.fromisoformat(label)
    start = datetime.combine(d, time(0), tzinfo=z)
    end = datetime.combine(d + timedelta(days=7), time(0), tzinfo=z)
    return from_datetime(start), from_datetime(end)


def month_bounds(t: int, tz: str) -> tuple[int, int, str]:
    """(start µs, end µs, first date ``YYYY-MM-01``) of the local calendar month containing ``t``
    (RULES R11.6.3), resolved like week bounds (``datetime.combine``, fold 0)."""
    local = to_datetime(t).astimezone(zone(tz))
    label = local.date().replace(day=1).isoformat()
    start, end = month_bounds_of(label, tz)
    return start, end, label


def month_bounds_of(label: str, tz: str) -> tuple[int, int]:
    """(start µs, end µs) of the local calendar month starting on ``label`` (``YYYY-MM-01``)."""
    z = zone(tz)
    d = date.fromisoformat(label)
    nxt = date(d.year + 1, 1, 1) if d.month == 12 else date(d.year, d.month + 1, 1)
    return (from_datetime(datetime.combine(d, time(0), tzinfo=z)),
            from_datetime(datetime.combine(nxt, time(0), tzinfo=z)))


class Week:
    """Per shop and week counters of R5.3; ``pending`` counts sessions not yet decided (R3)."""

    __slots__ = ("start", "end", "week_start", "sessions", "replied", "pending", "buyer_messages", "status", "late")

    def __init__(self, start: int, end: int, week_start: str) -> None:
        self.start = start
        self.end = end
        self.week_start = week_start
        self.sessions = 0
        self.replied = 0
        self.pending = 0
        self.buyer_messages = 0
        self.status: str | None = None  # None until the week ends, then "provisional" / "final"
        self.late = False



class Shop:
    """A shop's calendar state as of the latest processed event time.

    The weekly counters are not stored with the shop: they are the sum of its conversations'
    contributions (see ``Conversation.contrib``); only each week's emitted status is.
    """

    __slots__ = ("shop_id", "tz", "vacation", "weeks", "_cur", "seen_ids", "seen_ts", "floor")

    def __init__(self, shop_id: str, tz: str) -> None:
        self.shop_id = shop_id
        self.tz = tz
        self.vacation = False
        self.weeks: dict[str, Week] = {}
        self._cur: Week | None = None  # the week of the latest lookup: nearly every lookup hits it
        self.seen_ids: list[str | int] = []  # shop.event ids applied within the dedupe window (R1)
        self.seen_ts: list[int] = []
        self.floor: int | None = None  # bounded dedupe memory, as a conversation's (sessions.py)

    def week_of(self, t: int, week_starts_on: int) -> tuple[Week, bool]:
        """The week containing ``t`` and whether it was created by this call."""
        cur = self._cur
        if cur is not None and cur.start <= t < cur.end:
            return cur, False
        start, end, label = week_bounds(t, self.tz, week_starts_on)
        w = self.weeks.get(label)
        created = w is None
        if created:
            w = self.weeks[label] = Week(start, end, label)
        if w.start == start and w.end == end:
            # Cached only with this zone's bounds: a week created before a time zone change keeps
            # the old zone's bounds, and a lookup through the cache must give the label computed
            # here, or a restored engine (empty cache) would file a session in another week.
            self._cur = w
        return w, created

    def set_timezone(self, tz: str) -> None:
        self.tz = tz
        self._cur = None

    def week_for_label(self, label: str) -> tuple[Week, bool]:
        w = self.weeks.get(label)
        if w is not None:
            return w, False
        start, end = week_bounds_of(label, self.tz)
        w = self.weeks[label] = Week(start, end, label)
        return w, True

    def week_with_bounds(self, label: str, start: int, end: int) -> Week:
        """The week ``label``, created with the bounds it was stored with if it is new here: they
        were computed in the zone in force when it was created, which this shop state may not
        know yet (a restart from a checkpoint whose shop entry is older, R6.1)."""
        w = self.weeks.get(label)
        if w is None:
            w = self.weeks[label] = Week(start, end, label)
        return w

    def to_list(self) -> list:
        statuses = {label: [w.start, w.end, w.status, w.late] for label, w in self.weeks.items()}
        v = [self.shop_id, self.tz, self.vacation, self.seen_ids, self.seen_ts, statuses]
        if self.floor is not None:  # only a shop past the id bound has one; older entries lack it
            v.append(self.floor)
        return v

    @classmethod
    def from_list(cls, v: list) -> "Shop":
        s = cls(v[0], v[1])
        s.vacation = v[2]
        s.seen_ids, s.seen_ts = normalise_ids(list(v[3])), list(v[4])
        s.floor = v[6] if len(v) > 6 else None
        for label, (start, end, status, late) in v[5].items():
            w = s.weeks[label] = Week(start, end, label)
            w.status, w.late = status, late
        return s
