"""Douyin service tickets (RULES R9): deadlines on the service clock, handling, per-ticket and
per-period records, live projections. A model of the runner (docs: the Model contract of
``chatsla/core/models``): built as ``ServiceTickets(policy, config, host)``, fed events in
``(t, rank, event_id)`` order through :meth:`process`, and called back through :meth:`fire` for
the deadlines it scheduled (on its own timer channel, ``host.timer_channel``).

State per ticket is one :class:`Ticket` (a few ints and strings, well under 1 KB stored). A ticket's
outcome is *derived* from its earliest handling, earliest close, deadline and whether the watermark
passed the deadline (:func:`outcome`), never accumulated, so any order of its events within the
lateness gives the same record (R6.3) and a late earlier handling simply re-derives it (R9.4.4).
Per-period counts are kept as sums: a change subtracts the ticket's old contribution and adds the
new one (R9.6.2).

Readings where RULES is silent (also in docs/rules.md, "Readings chatsla chose for R9-R10"):
- a ``handled`` event whose result is not in ``handled_results`` handles nothing (counted as
  ``result_not_handling``);
- a ticket's record is emitted whenever it changes (creation, decision, handling, closing, late
  change); a ``handled`` that changes nothing (R9.4.5, ``rehandled``) emits nothing;
- held orphans (R9.4.7) are applied right after their ``created`` and flag the ticket ``late``;
  orphans still held at the end of input are neither counted nor applied (they may still match);
- a period's record exists once a ticket belongs to it; its status is re-derived at every change
  (``provisional`` while ``pending > 0``), so a late ticket can turn a ``final`` period back to
  ``provisional``; ``late`` is sticky once a late event changed an emitted record (as R5.6);
- shop events only set the shop's zone here (R9.4.9: no vacation); the runner counts them once.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, ClassVar, Hashable, Iterable

from chatsla.core.events import ShopEvent, TicketEvent, ticket_from_list, ticket_to_list
from chatsla.core.periods import DAY, WEEK, period_bounds, period_bounds_of, seconds
from chatsla.core.models.shops import ShopZones
from chatsla.core.policy import TicketPolicy
from chatsla.core.service_clock import ServiceClock, clock_for
from chatsla.core.timefmt import MINUTE, SECOND, format_time, format_time_as

if TYPE_CHECKING:  # (the runner imports the models)
    from chatsla.core.runner import EngineConfig

RANKS = {"created": 1, "handled": 2, "closed": 3}  # R9.1: shop events 0, then these
CLOSED_UNHANDLED = "closed_unhandled"
# contribution of a ticket to its periods' counts (R9.6.2), in record order
COUNTS = ("tickets", "normal", "urgent", "agreed", "handled_in_time", "missed", "handled_late", "pending",
          "excluded", "returned", "unresolved")
_N = len(COUNTS)
# a ticket's record (R9.5), in this key order
RECORD_KEYS = ("ticket_id", "shop_id", "priority", "category", "created_at", "clock_start", "sla", "due_at",
               "computed_due_at", "due_source", "handled_at", "result", "handled_in_time", "decided_at",
               "handled_late", "service_time_to_handle", "wall_time_to_handle", "closed_at", "excluded", "late",
               "day", "week_start", "policy_id", "policy_version")
_ZERO = (0,) * _N


def _fmt(us: int | None) -> str | None:
    return None if us is None else format_time(us)


class Ticket:
    """One ticket's state (R9.3-R9.5). ``clock_tz``: the zone of its service clock, fixed at
    creation (R9.2.2); ``past_due``: the watermark passed ``due_at`` (R9.4.3).

    ``created_text``, ``handled_text``, ``closed_text``: ``format_time`` of ``created_at``,
    ``handled_at``, ``closed_at`` when the event that set the time already had that text
    (``TicketEvent.at_text``), else None: the record reuses them (issue #12). ``code``: its
    contribution code now (:func:`contribution_code`), kept so that a change derives only the
    new one. ``scheduled``: ``due_at`` while its deadline timer is owed (:meth:`undecided`), else
    None (the runner then drops the timer unfired, a supersedable channel). Caches, so not among
    the stored fields (:data:`STORED`): a restored ticket formats its times again, the same text,
    and derives its code and ``scheduled`` from its state. ``plist``: its periods
    (:meth:`ServiceTickets._ticket_periods`, a list shared by the tickets of a shop's day), valid
    while ``pgen`` is the model's ``_pgen`` (no period forgotten since).

    ``past_due`` is set when the watermark passes ``due_at`` while the ticket is undecided (R9.4.3:
    the miss is decided then); a ticket handled or closed first is decided by that, and its
    deadline timer is dropped (nothing would change: its outcome no longer reads ``past_due``)."""

    __slots__ = ("shop_id", "ticket_id", "priority", "category", "created_at", "clock_start", "sla", "due_at",
                 "computed_due_at", "due_source", "handled_at", "result", "past_due", "closed_at", "late",
                 "day", "week", "week_end", "clock_tz", "ids", "last_t", "created_text",
                 "handled_text", "closed_text", "code", "scheduled", "plist", "pgen")
    STORED: ClassVar[tuple[str, ...]] = __slots__[:-7]  # (snapshots and stored parts: unchanged)

    def to_list(self) -> list:
        return [getattr(self, k) for k in Ticket.STORED]

    @classmethod
    def from_list(cls, v: list) -> "Ticket":
        tk = cls.__new__(cls)
        for k, x in zip(Ticket.STORED, v):
            setattr(tk, k, x)
        tk.ids = list(tk.ids)
        tk.created_text = tk.handled_text = tk.closed_text = None
        tk.code = contribution_code(tk)
        tk.scheduled = tk.due_at if tk.undecided() else None
        tk.plist, tk.pgen = None, -1
        return tk

    def undecided(self) -> bool:
        """Neither handled nor closed, and its deadline not passed: its deadline timer is owed."""
        return not self.past_due and self.handled_at is None and self.closed_at is None


def outcome(tk: Ticket) -> tuple[bool, bool | None, int | None]:
    """(excluded, handled_in_time, decided_at) from the ticket's events (R9.4.2, R9.4.3, R9.4.6).

    Excluded: closed at or before due_at while not handled before the close (a handling at the
    close's instant comes first, R9.1 order). In time: handled at or before due_at. Missed: handled
    after due_at, closed after it, or the watermark passed it; decided at due_at."""
    h, k, d = tk.handled_at, tk.closed_at, tk.due_at
    if k is not None and k <= d and (h is None or h > k):
        return True, None, None
    if h is not None and h <= d:
        return False, True, h
    if tk.past_due or h is not None or (k is not None and k > d):
        return False, False, d
    return False, None, None


# A ticket's contribution to its periods' counts (R9.6.2) is one of a few dozen tuples, so it is
# handled as a small int, its *code*: 0 nothing (before creation), 1 excluded, else
# 2 + 12 x (priority - 1) + 3 x state + result, with state 0 pending, 1 handled in time, 2 missed
# unhandled, 3 missed and handled late, and result 0, 1 returned, 2 unresolved (handled only).
# :data:`_CONTRIB` maps a code to its counts, :data:`_DELTAS` two codes to the counts that move
# (index, change): a change costs no tuple building nor comparing (issue #12, the audit's speed).
_STATE_IDX = ((7,), (4,), (5,), (5, 6))
_RES_CODE = {"returned": 1, "unresolved": 2}


def _counts_of(code: int) -> tuple:
    if code == 0:
        return _ZERO
    if code == 1:
        return (0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0)
    prio, rest = divmod(code - 2, 12)
    state, res = divmod(rest, 3)
    v = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    v[1 + prio] = 1
    for i in _STATE_IDX[state]:
        v[i] = 1
    if res:
        v[8 + res] = 1  # 9 returned, 10 unresolved
    return tuple(v)


_CODES = 2 + 12 * 3
_CONTRIB = tuple(_counts_of(c) for c in range(_CODES))
_DELTAS = tuple(tuple(tuple((i, n - o) for i, (n, o) in enumerate(zip(_CONTRIB[new], _CONTRIB[old])) if n != o)
                      for new in range(_CODES)) for old in range(_CODES))
_PRIO_BASE = {"normal": 2, "urgent": 14, "agreed": 26}
_PRIO_IDX = {"normal": 1, "urgent": 2, "agreed": 3}  # (a priority's place in COUNTS)

# format_time of the instants many tickets share: a window's start is the clock start of every
# ticket created outside the windows, and such tickets of one priority are due at one instant
# (:meth:`ServiceTickets.ticket_record`). Bounded; format_time is a pure function.
_TEXTS: dict[int, str] = {}


def _text(us: int) -> str:
    if len(_TEXTS) >= 4096:
        _TEXTS.clear()
    text = _TEXTS[us] = format_time(us)
    return text
_new_ticket = object.__new__


def contribution_code(tk: Ticket) -> int:
    """The code of the ticket's contribution now (see :data:`_CONTRIB`): :func:`outcome` inlined."""
    h, k, d = tk.handled_at, tk.closed_at, tk.due_at
    if k is not None and k <= d and (h is None or h > k):
        return 1  # excluded (R9.4.6)
    if h is not None:
        r = _RES_CODE.get(tk.result, 0)
        return _PRIO_BASE[tk.priority] + (3 if h <= d else 9) + r  # in time, else missed and handled late
    if tk.past_due or (k is not None and k > d):
        return _PRIO_BASE[tk.priority] + 6  # missed unhandled
    return _PRIO_BASE[tk.priority]  # pending


def contribution(tk: Ticket) -> tuple:
    """The ticket's contribution to its day's and week's counts, in :data:`COUNTS` order."""
    return _CONTRIB[contribution_code(tk)]


class Period:
    __slots__ = ("shop_id", "kind", "label", "start", "end", "counts", "status", "late")

    def __init__(self, shop_id: str, kind: str, label: str, start: int, end: int) -> None:
        self.shop_id, self.kind, self.label, self.start, self.end = shop_id, kind, label, start, end
        self.counts = [0] * _N
        self.status: str | None = None  # None until the period ends (R9.6.3)
        self.late = False

    def to_list(self) -> list:
        return [self.shop_id, self.kind, self.label, self.start, self.end, self.counts, self.status, self.late]

    @classmethod
    def from_list(cls, v: list) -> "Period":
        p = cls(v[0], v[1], v[2], v[3], v[4])
        p.counts, p.status, p.late = list(v[5]), v[6], v[7]
        return p


class ServiceTickets(ShopZones):
    """The ``service_tickets`` model (RULES R9). See the module docstring."""

    kind: ClassVar[str] = "service_tickets"
    record_kinds: ClassVar[tuple[str, ...]] = ("ticket", "period")  # formatted dicts (Runner.take_records)

    def __init__(self, policy: TicketPolicy, config: EngineConfig, host: object) -> None:
        self.policy = policy
        self.config = config
        self.host = host
        self.counters: Counter[str] = Counter()
        self.tickets: dict[str, dict[str, Ticket]] = {}  # shop_id -> ticket_id -> Ticket
        self.shop_tz: dict[str, str] = {}  # shops told their zone (R1 shop.event timezone)
        self.shop_ids: dict[str, list] = {}  # shop_id -> [[event_id, t], ...] of shop events applied
        self.periods: dict[tuple[str, str, str], Period] = {}
        self.orphans: dict[tuple[str, str], list[TicketEvent]] = {}  # R9.4.7, held
        self._default_tz = policy.default_timezone or config.default_timezone
        self._dedupe = config.dedupe_window
        self._keep = config.allowed_lateness + self._dedupe
        self._retention = config.week_retention
        self._max_ids = config.max_remembered_ids
        self._clocks: dict[str, ServiceClock] = {}
        # per zone, the day and week of the latest creation: nearly every ticket falls in them
        self._cur: dict[str, tuple] = {}
        # per shop, its latest (day label, week label, [periods]) (:meth:`_ticket_periods`); dropped
        # when one of its periods is forgotten
        self._shop_periods: dict[str, tuple[str, str, list[Period]]] = {}
        self._pgen = 0  # periods forgotten so far (Ticket.plist)
        self._valid = 0  # the hot counter, kept out of the Counter; merged in stats()
        # ``session_updates=False`` (the audit): a ticket's or period's record is a function of its
        # state alone, so instead of formatting one at every change (the costliest step, as for
        # chat sessions) each is emitted once, when it is forgotten (eviction) or at
        # :meth:`finish`: the same final records, read from state (so also after a restore).
        self._defer = not host.session_updates
        # deadlines go straight onto a timer channel of its own (host.schedule's entries, without
        # finding the model among the hosted ones at every call)
        # Deadlines on a supersedable channel of their own (sub-channel 0, so at one instant they
        # fire first, as their "D" keys did among the others'): the entry of a ticket decided
        # before its deadline (tk.scheduled None) is dropped unfired when its bucket opens, most
        # tickets' (issue #12). Evictions, periods and orphans on sub-channel 1.
        self._dch = host.timer_channel(self._on_due, 0, supersedable=True)
        self._ch = host.timer_channel(self._on_timer, 1)
        # Evictions: one timer per shop and week ("W", at the week's end + retention, when its
        # tickets' eviction is first possible, _evict_at), not one per ticket: the (shop, week)
        # pairs scheduled, and per shop the week of its latest creation (nearly every ticket's)
        self._weeks: set[tuple[str, str]] = set()
        self._shop_week: dict[str, str] = {}
        self._push = host.push
        self._shop_window = policy.window_timezone == "shop"  # (else the policy's zone)
        self._tracked = False  # (:meth:`track`: the hot paths then call the wrapped methods)
        # every ticket record starts as a copy of one of the templates, copies of this with its
        # group's values (:meth:`ticket_record`); the values every record has by default
        # (the base template under the key None). Instance attributes are counted: CPython 3.11
        # keeps at most 30 of a class's in its fast shared-key layout (one more made every
        # attribute read of this model slower: BENCHMARKS.md, issue #12)
        base: dict = dict.fromkeys(RECORD_KEYS)
        base["handled_late"] = base["late"] = False
        base["policy_id"], base["policy_version"] = policy.id, policy.version
        self._templates: dict[tuple | None, dict] = {None: base}

    # ------------------------------------------------------------ contract
    def rank(self, ev: TicketEvent | ShopEvent) -> int:
        """Same-instant order (R9.1): shop events, then created, handled, closed."""
        return 0 if type(ev) is ShopEvent else RANKS[ev.type]

    def stats(self) -> Counter[str]:
        """valid, duplicate, late (shop events only when it is the runner's lead: they count once), orphan,
        conflict, rehandled, agreed_sla_below_min, result_not_handling."""
        c = Counter(self.counters)
        c["valid"] += self._valid
        return Counter({k: v for k, v in c.items() if v})

    def clock(self, tz: str) -> ServiceClock:
        c = self._clocks.get(tz)
        if c is None:
            p = self.policy
            c = self._clocks[tz] = clock_for(tz, p.window_start, p.window_end, p.window_days)
        return c

    # ------------------------------------------------------------ stored parts (the live worker)
    # The worker stores this model incrementally (streams/runtime.py): one entry per ticket, per
    # held orphan group, per period and per shop (zone and shop-event ids), each keyed by a tuple
    # whose first item is one of PART_TAGS. :meth:`track` has the model remember which keys
    # changed; :meth:`take_dirty_parts` hands their current entries over (None: gone);
    # :meth:`from_parts` rebuilds the model from entries written at one commit point.
    PART_TAGS: ClassVar[tuple[str, ...]] = ("ticket", "ticket_orphans", "ticket_period", "ticket_shop")

    def track(self) -> None:
        """Remember the keys of what changes from now on. The three places state changes are
        wrapped (not edited): :meth:`process` (the event's ticket, its orphans, its shop), :meth:`fire`
        (the deadline's ticket, period or orphans) and :meth:`_ticket_periods` (every count change
        of a period goes through it, and so does a period's creation)."""
        dirty: set[tuple] = set()
        self._dirty = dirty
        self._tracked = True
        process, fire, ticket_periods = self.process, self.fire, self._ticket_periods

        def tracked_process(ev: TicketEvent | ShopEvent, late: bool) -> None:
            process(ev, late)
            if type(ev) is ShopEvent:
                dirty.add(("ticket_shop", ev.shop_id))
            else:
                dirty.add(("ticket", ev.shop_id, ev.ticket_id))
                dirty.add(("ticket_orphans", ev.shop_id, ev.ticket_id))

        def tracked_fire(when: int, key: Hashable) -> None:
            fire(when, key)
            tag = key[0]  # type: ignore[index]
            if tag in ("D", "E"):
                dirty.add(("ticket", key[1], key[2]))  # type: ignore[index]
            elif tag == "O":
                dirty.add(("ticket_orphans", key[1], key[2]))  # type: ignore[index]
            elif tag != "W":  # P, F (W: _evict_week marks the tickets it evicts)
                dirty.add(("ticket_period", key[1], key[2], key[3]))  # type: ignore[index]

        def tracked_ticket_periods(tk: Ticket, tz: str | None) -> list[Period]:
            out = ticket_periods(tk, tz)
            for p in out:
                dirty.add(("ticket_period", p.shop_id, p.kind, p.label))
            return out

        self.process, self.fire, self._ticket_periods = tracked_process, tracked_fire, tracked_ticket_periods  # type: ignore[method-assign]

    def part(self, key: tuple) -> list | None:
        """The stored entry of ``key`` now; None if it is gone (evicted, forgotten, matched)."""
        tag, shop_id = key[0], key[1]
        if tag == "ticket":
            tk = self.tickets.get(shop_id, {}).get(key[2])
            return tk.to_list() if tk is not None else None
        if tag == "ticket_orphans":
            held = self.orphans.get((shop_id, key[2]))
            return [ticket_to_list(e) for e in held] if held else None
        if tag == "ticket_period":
            p = self.periods.get((shop_id, key[2], key[3]))
            return p.to_list() if p is not None else None
        return self._shop_part(shop_id)

    def parts(self) -> list[tuple[tuple, list]]:
        """Every stored entry of the model now, in key order (what :meth:`from_parts` takes)."""
        keys = [("ticket", s, t) for s, shop in self.tickets.items() for t in shop]
        keys += [("ticket_orphans", s, t) for s, t in self.orphans]
        keys += [("ticket_period", *k) for k in self.periods]
        keys += [("ticket_shop", s) for s in self.shop_ids.keys() | self.shop_tz.keys()]
        return [(k, self.part(k)) for k in sorted(keys)]  # type: ignore[misc]

    @classmethod
    def from_parts(cls, policy: TicketPolicy, config: EngineConfig, host: object, counters: dict,
                   parts: "Iterable[tuple[tuple, list]]") -> "ServiceTickets":
        """The model its stored entries describe (all of one commit point: streams/runtime.py),
        its deadlines scheduled again as :meth:`restore` does; tracked if ``host.track_dirty``."""
        m = cls(policy, config, host)
        m.counters.update(counters)
        for key, v in parts:
            tag = key[0]
            if tag == "ticket":
                tk = Ticket.from_list(v)
                m.tickets.setdefault(tk.shop_id, {})[tk.ticket_id] = tk
                if tk.scheduled is not None:
                    host.schedule(tk.due_at, m, ("D", tk.shop_id, tk.ticket_id))  # type: ignore[attr-defined]
                if (tk.shop_id, tk.week) not in m._weeks:
                    m._weeks.add((tk.shop_id, tk.week))
                    host.schedule(tk.week_end + m._retention, m, ("W", tk.shop_id, tk.week))  # type: ignore[attr-defined]
            elif tag == "ticket_period":
                p = Period.from_list(v)
                m.periods[(p.shop_id, p.kind, p.label)] = p
                if p.status is None:
                    host.schedule(p.end, m, ("P", p.shop_id, p.kind, p.label))  # type: ignore[attr-defined]
                else:
                    host.schedule(p.end + m._retention, m, ("F", p.shop_id, p.kind, p.label))  # type: ignore[attr-defined]
            elif tag == "ticket_orphans":
                evs = [ticket_from_list(x) for x in v]
                m.orphans[(evs[0].shop_id, evs[0].ticket_id)] = evs
                host.schedule(min(e.t for e in evs) + m._dedupe, m, ("O", evs[0].shop_id, evs[0].ticket_id))  # type: ignore[attr-defined]
            elif tag == "ticket_shop":
                m._restore_shop(key[1], v)
            else:
                raise ValueError(f"not a {cls.kind} entry: {key!r}")
        if host.track_dirty:
            m.track()
        return m

    def _day_week(self, t: int, tz: str) -> tuple[str, str, int]:
        """(day label, week label, week end) of ``t`` in ``tz`` (R9.6.1), cached per zone."""
        cur = self._cur.get(tz)
        if cur is not None and cur[0] <= t < cur[1] and cur[3] <= t < cur[4]:
            return cur[2], cur[5], cur[4]
        ds, de, day = period_bounds(DAY, t, tz)
        ws, we, week = period_bounds(WEEK, t, tz, self.policy.week_starts_on)
        self._cur[tz] = (ds, de, day, ws, we, week)
        return day, week, we

    def process(self, ev: TicketEvent | ShopEvent, late: bool) -> None:
        if type(ev) is ShopEvent:
            self._shop_event(ev, late)
            return
        shop = self.tickets.get(ev.shop_id)
        tk = shop.get(ev.ticket_id) if shop is not None else None
        if tk is None:
            # (nearly always none held: the key is built only when some are)
            okey = (ev.shop_id, ev.ticket_id) if self.orphans else None
            held = self.orphans.get(okey) if okey is not None else None
            if held is not None and any(h.event_id == ev.event_id for h in held):
                self.counters["duplicate"] += 1
                return
            self._valid += 1
            if late:
                self.counters["late"] += 1
            if ev.type != "created":  # R9.4.7: held with its ticket id for dedupe_window
                if held is None:
                    okey = (ev.shop_id, ev.ticket_id)
                    held = self.orphans[okey] = []
                    self._schedule(ev.t + self._dedupe, ("O", ev.shop_id, ev.ticket_id))
                held.append(ev)
                return
            tk = self._create(ev, late, shop)
            if held is not None:
                del self.orphans[okey]
                for h in sorted(held, key=lambda e: (e.t, RANKS[e.type], e.event_id)):
                    tk.ids.append(h.event_id)
                    self._apply(tk, h, True)
            return
        if ev.event_id in tk.ids:
            self.counters["duplicate"] += 1
            return
        ids = tk.ids
        ids.append(ev.event_id)
        if len(ids) > self._max_ids:
            del ids[0]
        self._valid += 1
        if late:
            self.counters["late"] += 1
        if ev.type == "created":  # R9.4.7: a second created with another event_id
            self.counters["conflict"] += 1
            return
        self._apply(tk, ev, late)

    def _schedule(self, when: int, key: tuple) -> None:
        """``fire(when, key)`` once the watermark passes ``when`` (stale entries are checked there)."""
        self._push((when, self._ch, key, None))

    def _on_timer(self, entry: tuple) -> None:
        self.fire(entry[0], entry[2])

    def _on_due(self, entry: tuple) -> None:
        if self._tracked:
            self.fire(entry[0], entry[2])
        else:  # (one call less)
            self._due(entry[0], entry[2])

    def _due(self, when: int, key: tuple) -> None:
        """A ticket's deadline (key ``("D", shop_id, ticket_id)``) came due: an undecided ticket is
        missed, decided at due_at (R9.4.3); a handled or closed one is decided already (handled:
        in time or late; closed: excluded, or missed at a close after due_at)."""
        shop = self.tickets.get(key[1])
        tk = shop.get(key[2]) if shop is not None else None
        if tk is None or tk.due_at != when or tk.scheduled is None:
            return
        tk.past_due = True
        tk.scheduled = None
        if not self._defer:
            self.host.emit("ticket", self.ticket_record(tk))
        old = tk.code  # (pending)
        tk.code = old + 6  # (missed unhandled)
        self._bump(tk, old, old + 6, False)

    def _evict_week_of(self, tk: Ticket) -> None:
        """Have the ticket's shop and week an eviction timer ("W"), if not scheduled yet."""
        key = (tk.shop_id, tk.week)
        self._shop_week[tk.shop_id] = tk.week
        if key not in self._weeks:
            self._weeks.add(key)
            self._push((tk.week_end + self._retention, self._ch, ("W", tk.shop_id, tk.week), None))

    def _evict_week(self, when: int, shop_id: str, week: str) -> None:
        """The eviction timer of a shop's week: every ticket of that week that can no longer
        change an output nor recognise a copy of its events (:meth:`_evict_at`) is evicted; the
        others get a timer of their own ("E"), which fires at the same instant as a chain of
        per-ticket timers would have: the first fixed point of _evict_at above the week's end +
        retention (its smallest value), _evict_at only growing with the ticket's state."""
        self._weeks.discard((shop_id, week))
        if self._shop_week.get(shop_id) == week:
            del self._shop_week[shop_id]
        shop = self.tickets.get(shop_id)
        if shop is None:
            return
        gone = []
        for tid, tk in shop.items():
            if tk.week != week:
                continue
            at = self._evict_at(tk)
            if at > when:
                self._schedule(at, ("E", shop_id, tid))
            else:
                gone.append(tid)
        for tid in gone:
            if self._defer:  # (every ticket has a record from its creation on)
                self.host.emit("ticket", self.ticket_record(shop[tid]))
            del shop[tid]
            if self._tracked:
                self._dirty.add(("ticket", shop_id, tid))
        if not shop:
            del self.tickets[shop_id]

    def fire(self, when: int, key: Hashable) -> None:
        tag = key[0]
        if tag == "D":
            self._due(when, key)  # type: ignore[arg-type]
        elif tag == "W":
            self._evict_week(when, key[1], key[2])  # type: ignore[index]
        elif tag == "P":
            p = self.periods.get((key[1], key[2], key[3]))
            if p is None or p.end != when or p.status is not None:
                return
            p.status = "provisional" if p.counts[7] else "final"
            self._emit_period(p)
            self._schedule(p.end + self._retention, ("F", key[1], key[2], key[3]))
        elif tag == "F":
            p = self.periods.get((key[1], key[2], key[3]))
            if p is not None and p.end + self._retention <= when:
                if self._defer and p.status is not None:  # (a period has a record once it ended)
                    self.host.emit("period", self._period_record(p))
                del self.periods[(key[1], key[2], key[3])]
                self._shop_periods.pop(key[1], None)
                self._pgen += 1  # (every ticket's plist is looked up again)
        elif tag == "O":
            okey = (key[1], key[2])
            held = self.orphans.get(okey)
            if not held:
                return
            keep = [h for h in held if h.t + self._dedupe > when]
            self.counters["orphan"] += len(held) - len(keep)
            if keep:
                self.orphans[okey] = keep
                self._schedule(min(h.t for h in keep) + self._dedupe, key)
            else:
                del self.orphans[okey]
        elif tag == "E":
            shop = self.tickets.get(key[1])
            tk = shop.get(key[2]) if shop is not None else None
            if tk is None:
                return
            at = self._evict_at(tk)
            if at > when:
                self._schedule(at, key)
                return
            if self._defer:  # (every ticket has a record from its creation on)
                self.host.emit("ticket", self.ticket_record(tk))
            del shop[key[2]]
            if not shop:
                del self.tickets[key[1]]

    def finish(self, until: int) -> None:
        """End of input: every record is emitted as it changes (with ``session_updates=False``,
        every ticket and ended period still held, once); held orphans stay held (they might still
        meet their ``created`` in a later run) and are not counted."""
        if not self._defer:
            return
        emit, record = self.host.emit, self.ticket_record
        for shop in self.tickets.values():
            for tk in shop.values():
                emit("ticket", record(tk))
        for p in self.periods.values():
            if p.status is not None:
                emit("period", self._period_record(p))

    def snapshot(self) -> dict:
        """This model's parts of a snapshot, under keys of its own (the runner adds the envelope:
        policy refs, counters, buffer). The deadlines are not stored: :meth:`restore` schedules
        them again from each ticket's, period's and orphan's own times."""
        return {
            "ticket_shop_tz": dict(sorted(self.shop_tz.items())),
            "ticket_shop_ids": {s: ids for s, ids in sorted(self.shop_ids.items())},
            "tickets": [tk.to_list() for shop in self.tickets.values() for tk in shop.values()],
            "ticket_periods": [p.to_list() for p in self.periods.values()],
            "ticket_orphans": [[ticket_to_list(e) for e in held] for held in self.orphans.values()],
        }

    @classmethod
    def restore(cls, policy: TicketPolicy, config: EngineConfig, host: object, snap: dict) -> "ServiceTickets":
        """The model a snapshot describes (``snap["counters"]``: the counters the runner gives back
        to it), its deadlines scheduled again with ``host``."""
        m = cls(policy, config, host)
        m.counters.update(snap.get("counters") or {})
        m.shop_tz = dict(snap["ticket_shop_tz"])
        m.shop_ids = {s: [list(x) for x in ids] for s, ids in snap["ticket_shop_ids"].items()}
        for v in snap["tickets"]:
            tk = Ticket.from_list(v)
            m.tickets.setdefault(tk.shop_id, {})[tk.ticket_id] = tk
            if tk.scheduled is not None:
                m._push((tk.due_at, m._dch, ("D", tk.shop_id, tk.ticket_id), tk))
            m._evict_week_of(tk)
        for v in snap["ticket_periods"]:
            p = Period.from_list(v)
            m.periods[(p.shop_id, p.kind, p.label)] = p
            if p.status is None:
                m._schedule(p.end, ("P", p.shop_id, p.kind, p.label))
            else:
                m._schedule(p.end + m._retention, ("F", p.shop_id, p.kind, p.label))
        for held in snap["ticket_orphans"]:
            evs = [ticket_from_list(x) for x in held]
            m.orphans[(evs[0].shop_id, evs[0].ticket_id)] = evs
            m._schedule(min(e.t for e in evs) + m._dedupe, ("O", evs[0].shop_id, evs[0].ticket_id))
        return m

    def view(self, shop_id: str, watermark: int) -> dict:
        """R9.8 at ``watermark``: open tickets by priority; at-risk pending tickets (remaining
        service time under ``ticket_at_risk``), least remaining first; overdue unhandled tickets,
        earliest due first; the day- and week-to-date counts and rate (R9.6)."""
        open_by = {"normal": 0, "urgent": 0, "agreed": 0}
        at_risk, overdue = [], []
        for tk in self.tickets.get(shop_id, {}).values():
            excluded, _, _ = outcome(tk)
            if excluded or tk.handled_at is not None or tk.closed_at is not None:
                continue
            open_by[tk.priority] += 1
            if tk.due_at < watermark:
                overdue.append((tk.due_at, tk.ticket_id, tk))
            else:
                left = self.clock(tk.clock_tz).remaining(watermark, tk.due_at)
                if left < self.config.ticket_at_risk:
                    at_risk.append((left, tk.ticket_id, tk))
        tz = self.shop_tz.get(shop_id, self._default_tz)
        to_date = {}
        for kind in (DAY, WEEK):
            start, end, label = period_bounds(kind, watermark, tz, self.policy.week_starts_on)
            p = self.periods.get((shop_id, kind, label))
            to_date[kind] = self._period_record(p if p is not None else Period(shop_id, kind, label, start, end))
        return {
            "shop_id": shop_id,
            "watermark": format_time(watermark),
            "open": open_by,
            "at_risk": [{"ticket_id": tid, "priority": tk.priority, "due_at": format_time(tk.due_at),
                         "remaining": seconds(left)} for left, tid, tk in sorted(at_risk, key=lambda x: x[:2])],
            "overdue": [{"ticket_id": tid, "priority": tk.priority, "due_at": format_time(due),
                         "overdue_for": seconds(watermark - due)} for due, tid, tk in sorted(overdue, key=lambda x: x[:2])],
            "day": to_date[DAY],
            "week": to_date[WEEK],
        }

    # ------------------------------------------------------------ transitions
    def _create(self, ev: TicketEvent, late: bool, shop: dict[str, Ticket] | None = None) -> Ticket:
        """R9.2.2-R9.3: the ticket, its deadline, its periods; emits its first record. ``shop``:
        the shop's tickets (None: it has none yet). Once per ticket, so the lookups of the zone's
        clock and of its current day and week are inlined (issue #12)."""
        p = self.policy
        shop_id = ev.shop_id
        tz = self.shop_tz.get(shop_id, self._default_tz)
        clock_tz = tz if self._shop_window else p.window_timezone
        clock = self._clocks.get(clock_tz) or self.clock(clock_tz)
        c = ev.t
        priority = ev.priority
        if ev.sla_minutes is not None:
            sla, source = ev.sla_minutes * MINUTE, "event"
            if priority == "agreed" and sla < p.agreed_sla_min:
                self.counters["agreed_sla_below_min"] += 1  # taken as given (R9.9, N15)
        elif ev.category is not None and ev.category in p.category_sla:
            sla, source = p.category_sla[ev.category], "category"
        else:
            sla, source = p.ticket_sla[priority], "priority"
        start, computed = clock.start_due(c, sla)
        tk = _new_ticket(Ticket)
        tk.shop_id = shop_id
        tk.ticket_id = ticket_id = ev.ticket_id
        tk.priority = priority
        tk.category = ev.category
        tk.created_at = c
        tk.clock_start = start
        tk.sla = sla
        tk.created_text = ev.at_text
        tk.computed_due_at = computed
        if ev.due_at is not None:
            tk.due_at = due = ev.due_at
            tk.due_source = "platform"
        else:
            tk.due_at = due = computed
            tk.due_source = source
        tk.handled_at = tk.result = tk.closed_at = tk.handled_text = tk.closed_text = None
        tk.past_due = False
        tk.late = late
        tk.clock_tz = clock_tz
        tk.ids = [ev.event_id]
        tk.last_t = c
        cur = self._cur.get(tz)  # (_day_week's cache)
        if cur is not None and cur[0] <= c < cur[1] and cur[3] <= c < cur[4]:
            week = cur[5]
            tk.day, tk.week, tk.week_end = cur[2], week, cur[4]
        else:
            tk.day, tk.week, tk.week_end = self._day_week(c, tz)
            week = tk.week
        if shop is None:
            shop = self.tickets[shop_id] = {}
        shop[ticket_id] = tk
        # its deadline, dropped unfired if it is decided before (:meth:`_due`); its week's eviction
        tk.scheduled = due
        tk.pgen = -1  # (plist: set below)
        self._push((due, self._dch, ("D", shop_id, ticket_id), tk))
        if self._shop_week.get(shop_id) != week:
            self._evict_week_of(tk)
        if not self._defer:
            self.host.emit("ticket", self.ticket_record(tk))
        # contribution_code(tk) of a ticket just created: pending (nothing handled, closed or due)
        tk.code = code = _PRIO_BASE[priority]
        if self._tracked:
            self._bump(tk, 0, code, late, tz)
            return tk
        # _bump(tk, 0, code, late, tz) inlined (once per ticket): its periods are nearly always
        # the shop's latest, and the counts that move are tickets, its priority's and pending
        cur = self._shop_periods.get(shop_id)
        if cur is not None and cur[0] == tk.day and cur[1] == week:
            periods = cur[2]
        else:
            periods = self._ticket_periods(tk, tz)
        tk.plist, tk.pgen = periods, self._pgen
        pi = _PRIO_IDX[priority]
        for p in periods:
            counts = p.counts
            counts[0] += 1
            counts[pi] += 1
            counts[7] += 1
            if p.status is not None:
                self._period_changed(p, late)
        return tk

    def _apply(self, tk: Ticket, ev: TicketEvent, late: bool) -> None:
        """A handled or closed event of a known ticket (R9.4). Only an earlier handling or close
        changes the ticket (and so its contribution): anything else returns before the
        contribution is derived."""
        t = ev.t
        if t > tk.last_t:
            tk.last_t = t
        if ev.type == "handled":
            if ev.result not in self.policy.handled_results:
                self.counters["result_not_handling"] += 1
                return
            h = tk.handled_at
            if h is not None:
                self.counters["rehandled"] += 1  # R9.4.5; or R9.4.4: the later one is a further handling
                if t >= h:
                    return
            tk.handled_at, tk.result = t, ev.result  # the earliest handling counts (R9.4.4)
            tk.handled_text = ev.at_text
            tk.scheduled = None  # (decided: its deadline timer is dropped)
        else:
            k = tk.closed_at
            if k is not None and t >= k:
                return
            tk.closed_at = t
            tk.closed_text = ev.at_text
            tk.scheduled = None
        if late:
            tk.late = True
        if not self._defer:
            self.host.emit("ticket", self.ticket_record(tk))
        old = tk.code
        new = tk.code = contribution_code(tk)
        if new == old:
            return
        if tk.pgen != self._pgen or self._tracked:
            self._bump(tk, old, new, late)
            return
        # _bump inlined (once per handling or close): the ticket's periods are its kept ones
        delta = _DELTAS[old][new]
        for p in tk.plist:
            counts = p.counts
            for i, d in delta:
                counts[i] += d
            if p.status is not None:
                self._period_changed(p, late)

    def _period(self, shop_id: str, kind: str, label: str, tz: str | None) -> Period:
        key = (shop_id, kind, label)
        p = self.periods.get(key)
        if p is None:
            start, end = period_bounds_of(kind, label, tz or self.shop_tz.get(shop_id, self._default_tz))
            p = self.periods[key] = Period(shop_id, kind, label, start, end)
            self._schedule(end, ("P", shop_id, kind, label))
        return p

    def _ticket_periods(self, tk: Ticket, tz: str | None) -> list[Period]:
        """The ticket's day and week (those of the policy's ``periods``), created if new. The
        shop's latest pair is kept: nearly every ticket of a shop falls in it."""
        cur = self._shop_periods.get(tk.shop_id)
        if cur is not None and cur[0] == tk.day and cur[1] == tk.week:
            return cur[2]
        out = [self._period(tk.shop_id, kind, tk.day if kind == DAY else tk.week, tz) for kind in self.policy.periods]
        self._shop_periods[tk.shop_id] = (tk.day, tk.week, out)
        return out

    def _bump(self, tk: Ticket, old: int, new: int, late: bool, tz: str | None = None) -> None:
        """Move the ticket's contribution from code ``old`` to ``new`` in its day and week (R9.6)."""
        delta = _DELTAS[old][new]  # (two to four of 11)
        # the ticket's own periods, kept since its last change (the shop's latest day is not
        # always the ticket's: a handling often comes the day after the creation); or looked up,
        # always when tracked (_ticket_periods marks them changed)
        if tk.pgen == self._pgen and not self._tracked:
            periods = tk.plist
        else:
            periods = tk.plist = self._ticket_periods(tk, tz)
            tk.pgen = self._pgen
        for p in periods:
            counts = p.counts
            for i, d in delta:
                counts[i] += d
            if p.status is not None:
                self._period_changed(p, late)

    def _period_changed(self, p: Period, late: bool) -> None:
        """An ended period's counts changed: its status again, re-emitted (R9.6.3)."""
        p.status = "provisional" if p.counts[7] else "final"
        if late:
            p.late = True
        self._emit_period(p)

    def _evict_at(self, tk: Ticket) -> int:
        """When a ticket can no longer change an output nor recognise a copy of its events: its
        week is forgotten, and its deadline and last event are out of the dedupe window."""
        return max(tk.week_end + self._retention, tk.due_at + self._keep, tk.last_t + self._keep)

    # ------------------------------------------------------------ records
    def ticket_record(self, tk: Ticket) -> dict:
        """R9.5, keys in order (:data:`RECORD_KEYS`). Every ticket has one record in the audit, so
        this is written for speed (issue #12): the record is a copy of a template (the keys in
        order, the values tickets of one shop, day, priority, due source, sla and category share,
        the others at their most common value; copying a dict with no deleted entries is one
        block copy, far cheaper than storing 24 entries) with the ticket's own values stored
        over it; ``created_at`` is the input's text when that was
        canonical (``created_text``, ``handled_text``, ``closed_text``), equal times share one
        formatted string (clock_start is usually created_at, due_at computed_due_at, decided_at
        handled_at or due_at), a deadline whole hours after its clock start reuses its minutes
        and fraction (``format_time_as``), and :func:`outcome` and :func:`seconds` are inlined."""
        h, k, d, c = tk.handled_at, tk.closed_at, tk.due_at, tk.created_at
        group = (tk.shop_id, tk.day, tk.priority, tk.due_source, tk.sla, tk.category)
        template = self._templates.get(group)
        if template is None:
            template = self._group_template(group, tk.week)
        rec = template.copy()
        rec["ticket_id"] = tk.ticket_id
        rec["created_at"] = created = tk.created_text or format_time(c)
        cs = tk.clock_start
        if cs == c:
            rec["clock_start"] = start = created
            rec["due_at"] = due = format_time_as(d, cs, start)
        else:  # a window's start, and a deadline the same service time after it: shared instants
            rec["clock_start"] = _TEXTS.get(cs) or _text(cs)
            rec["due_at"] = due = _TEXTS.get(d) or _text(d)
        rec["computed_due_at"] = due if tk.computed_due_at == d else format_time(tk.computed_due_at)
        if h is not None:
            rec["handled_at"] = handled = tk.handled_text or format_time(h)
            rec["result"] = tk.result
            clock = self._clocks.get(tk.clock_tz) or self.clock(tk.clock_tz)
            service = clock.service(c, h)
            rec["service_time_to_handle"] = service // SECOND if service % SECOND == 0 else service / SECOND
            wall = h - c
            rec["wall_time_to_handle"] = wall // SECOND if wall % SECOND == 0 else wall / SECOND
            # outcome(tk), with decided_at as its formatted string
            if k is not None and k <= d and h > k:
                rec["excluded"] = CLOSED_UNHANDLED  # (R9.4.6)
                if h > d:
                    rec["handled_late"] = True
            elif h <= d:
                rec["handled_in_time"] = True
                rec["decided_at"] = handled
            else:
                rec["handled_in_time"] = False
                rec["decided_at"] = due
                rec["handled_late"] = True
        else:
            if k is not None and k <= d:
                rec["excluded"] = CLOSED_UNHANDLED  # (R9.4.6)
            elif tk.past_due or (k is not None and k > d):
                rec["handled_in_time"] = False
                rec["decided_at"] = due
        if k is not None:
            rec["closed_at"] = tk.closed_text or format_time(k)
        if tk.late:
            rec["late"] = True
        return rec

    def _group_template(self, group: tuple, week: str) -> dict:
        """The record template of tickets sharing ``group`` (shop, day, priority, due source, sla,
        category) and so the week too: :meth:`ticket_record` copies it and stores the rest."""
        shop_id, day, priority, due_source, sla, category = group
        base = self._templates[None]
        template = base.copy()
        template["shop_id"] = shop_id
        template["priority"] = priority
        template["category"] = category
        template["sla"] = sla // SECOND if sla % SECOND == 0 else sla / SECOND
        template["due_source"] = due_source
        template["day"] = day
        template["week_start"] = week
        if len(self._templates) >= 4096:  # (bounded: a few per shop and day are in use)
            self._templates.clear()
            self._templates[None] = base
        self._templates[group] = template
        return template

    def _period_record(self, p: Period) -> dict:
        """R9.6.2, keys in order (9-P)."""
        c = p.counts
        rec: dict = {"shop_id": p.shop_id, "period": p.kind, "start": p.label}
        for name, v in zip(COUNTS, c):
            rec[name] = v
        rec["rate"] = c[4] / c[0] if c[0] else None
        rec["status"] = p.status
        rec["late"] = p.late
        rec["policy_id"] = self.policy.id
        rec["policy_version"] = self.policy.version
        return rec

    def _emit_ticket(self, tk: Ticket) -> None:
        if not self._defer:
            self.host.emit("ticket", self.ticket_record(tk))

    def _emit_period(self, p: Period) -> None:
        if not self._defer:
            self.host.emit("period", self._period_record(p))
