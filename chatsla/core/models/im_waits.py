"""AliExpress IM buyer waits (RULES R10): waits, the unreplied-conversations view, the 24 h
auto-reply periods and the day / week period records. A model of the runner (the Model contract
of ``chatsla/core/models``): built as ``ImWaits(policy, config, host)``, fed ``chat.message/v1``
events with ``platform: "aliexpress"`` (and every shop event) in ``(t, rank, event_id)`` order.

State per conversation is one :class:`WaitConv`: the open wait (if any), the current auto-reply
period and the remembered event ids; per shop and period, the counts of R10.5.2 and the answered
waits' two measures (exact µs, for the nearest-rank percentiles of R10.5.3).

Readings where RULES is silent (also in docs/rules.md, "Readings chatsla chose for R9-R10"):
- a period's record is emitted once the watermark reaches its end: the model schedules it at
  ``end - 1 µs``, which fires before any event at ``end`` is applied, so ``open_at_end`` and the
  oldest waits are measured on exactly the events before the end (a reply at the end instant
  belongs to the next period, R10.5.2); buyer messages at the end instant are not in ``last_at``;
- a period record exists for every period in which something was counted (a wait opened or
  ended, an eligible message, an auto-reply); a day without any of these has no record, even if a
  wait stays open through it;
- R10.5.2 lists no ``status`` key (10-G has none): every period record is final when emitted, and
  a late event re-emits it with ``late: true``; a late event does not revise ``open_at_end`` and the
  oldest waits of a period already emitted (they are measured at the end instant);
- a late event is applied at once against the current state, as R6.4 does for sessions: a late
  buyer message joins the open wait (``first_at`` becomes the earlier of the two) or opens one;
- ``seller_messages_no_wait`` counts human seller messages and auto-replies with no open wait;
  system messages do nothing (R10.2.4) and a close with no open wait is counted ``closes_no_wait``;
- a conversation with no open wait is forgotten once its last event is older than the dedupe
  window and the week retention, and its auto-reply period has ended; if it comes back its waits
  are numbered from 1 again (as sessions, docs/rules.md).
"""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from math import ceil
from typing import TYPE_CHECKING, ClassVar, Hashable, Iterable

from chatsla.core.events import ChatMessage, ShopEvent
from chatsla.core.periods import DAY, WEEK, period_bounds, seconds
from chatsla.core.models.shops import ShopZones
from chatsla.core.policy import WaitPolicy
from chatsla.core.timefmt import SECOND, format_time

if TYPE_CHECKING:  # (the runner imports the models)
    from chatsla.core.runner import EngineConfig

_RANK_SHOP, _RANK_BUYER, _RANK_SELLER_SIDE, _RANK_CLOSE = 0, 1, 2, 3  # R10.2.6 (R6.3)
ANSWERED, CLOSED = "answered", "closed"


def _fmt(us: int | None) -> str | None:
    return None if us is None else format_time(us)


def nearest_rank(sorted_values: list[int], p: int | Fraction) -> int | None:
    """R10.5.3: the value at 1-based rank ceil(p x n / 100) of the ascending values; None if n = 0."""
    n = len(sorted_values)
    if n == 0:
        return None
    return sorted_values[max(1, ceil(Fraction(p) * n / 100)) - 1]


def _pname(p: int | Fraction) -> str:
    return str(p) if type(p) is int else str(float(p))


class WaitConv:
    """One conversation: its open wait (``first_at`` None when there is none, R10.2), the current
    auto-reply period ``[ar_start, ar_end)`` and whether it had its auto-reply (R10.4)."""

    __slots__ = ("shop_id", "conversation_id", "n", "first_at", "last_at", "buyer_messages", "auto_replied_at",
                 "wait_late", "ar_start", "ar_end", "ar_has", "ids", "last_t")

    def __init__(self, shop_id: str, conversation_id: str) -> None:
        self.shop_id, self.conversation_id = shop_id, conversation_id
        self.n = 0
        self.first_at: int | None = None
        self.last_at: int | None = None
        self.buyer_messages = 0
        self.auto_replied_at: int | None = None
        self.wait_late = False
        self.ar_start: int | None = None
        self.ar_end: int | None = None
        self.ar_has = False
        self.ids: dict[str, int] = {}  # event_id -> t, remembered for the dedupe window
        self.last_t = 0

    def to_list(self) -> list:
        v = [getattr(self, k) for k in WaitConv.__slots__]
        v[WaitConv.__slots__.index("ids")] = list(self.ids.items())  # insertion (= arrival) order
        return v

    @classmethod
    def from_list(cls, v: list) -> "WaitConv":
        c = cls.__new__(cls)
        for k, x in zip(WaitConv.__slots__, v):
            setattr(c, k, x)
        c.ids = dict(c.ids)
        return c


_INTS = ("closed_unanswered", "opened", "open_at_end", "oldest", "oldest_ff", "eligible", "period_ar", "extra_ar",
         "unprompted_ar")


class WaitPeriod:
    __slots__ = ("shop_id", "kind", "label", "start", "end", "waited", "from_first", *_INTS, "emitted", "late")

    def __init__(self, shop_id: str, kind: str, label: str, start: int, end: int) -> None:
        self.shop_id, self.kind, self.label, self.start, self.end = shop_id, kind, label, start, end
        self.waited: list[int] = []
        self.from_first: list[int] = []
        for k in _INTS:
            setattr(self, k, 0)
        self.oldest = self.oldest_ff = None
        self.emitted = False
        self.late = False

    def to_list(self) -> list:
        return [getattr(self, k) for k in WaitPeriod.__slots__]

    @classmethod
    def from_list(cls, v: list) -> "WaitPeriod":
        p = cls.__new__(cls)
        for k, x in zip(WaitPeriod.__slots__, v):
            setattr(p, k, x)
        return p


class ImWaits(ShopZones):
    """The ``im_waits`` model (RULES R10). See the module docstring."""

    kind: ClassVar[str] = "im_waits"
    record_kinds: ClassVar[tuple[str, ...]] = ("wait", "period")  # formatted dicts (Runner.take_records)

    def __init__(self, policy: WaitPolicy, config: EngineConfig, host: object) -> None:
        self.policy = policy
        self.config = config
        self.host = host
        self.counters: Counter[str] = Counter()
        self.convs: dict[str, dict[str, WaitConv]] = {}  # shop_id -> conversation_id -> state
        self.shop_tz: dict[str, str] = {}
        self.shop_ids: dict[str, list] = {}
        self.periods: dict[tuple[str, str, str], WaitPeriod] = {}
        self._default_tz = policy.default_timezone or config.default_timezone
        dedupe = config.dedupe_window
        self._keep = config.allowed_lateness + dedupe
        self._retention = config.week_retention
        self._max_ids = config.max_remembered_ids
        self._ar_period = policy.auto_reply_period
        # per zone, the bounds of the latest period asked for, by kind: nearly every event falls in them
        self._cur: dict[tuple[str, str], tuple[int, int, str]] = {}
        # ``session_updates=False`` (the audit): a period's record is emitted when it is forgotten
        # or at :meth:`finish`, read from state, instead of at every late change (each re-emission
        # sorts its waits). An open wait's opening record (R10.5.1: emitted when it opens and on
        # late changes only, so its state may be ahead of its last record) is deferred too, see
        # :meth:`_emit_open`.
        self._defer = not host.session_updates
        self._by_first = policy.wait_measured_from == "first_unanswered"
        # deadlines go straight onto a timer channel of its own (as service_tickets); the frontier
        # is read from the kept host.time (the Model contract's hot-path reading)
        self._ch = host.timer_channel(self._on_timer)
        self._push = host.push
        self._time = host.time
        # per shop, its current day and week: (from, until, [day, week periods]) for the instants
        # both contain (nearly every event of the shop falls there); dropped when a period is
        # forgotten or the shop's zone changes
        self._shop_periods: dict[str, tuple[int, int, list[WaitPeriod]]] = {}
        self._labels: dict[str, tuple[int, int, str, str]] = {}  # per zone, for wait records
        self._valid = 0  # the hot counter, kept out of the Counter; merged in stats()

    # ------------------------------------------------------------ contract
    def rank(self, ev: ChatMessage | ShopEvent) -> int:
        """R10.2.6: shop events, buyer messages, seller-side messages, closes."""
        if type(ev) is ShopEvent:
            return _RANK_SHOP
        if ev.kind == "close":
            return _RANK_CLOSE
        return _RANK_BUYER if ev.sender == "buyer" else _RANK_SELLER_SIDE

    def stats(self) -> Counter[str]:
        """valid, duplicate, late (shop events only when it is the runner's lead: they count once),
        seller_messages_no_wait, closes_no_wait, waits_opened, waits_answered, waits_closed."""
        c = Counter(self.counters)
        c["valid"] += self._valid
        return Counter({k: v for k, v in c.items() if v})

    def process(self, ev: ChatMessage | ShopEvent, late: bool) -> None:
        if type(ev) is ShopEvent:
            if self._shop_event(ev, late) and ev.type == "timezone":
                self._shop_periods.pop(ev.shop_id, None)  # its days and weeks move
            return
        shop = self.convs.get(ev.shop_id)
        if shop is None:
            shop = self.convs[ev.shop_id] = {}
        c = shop.get(ev.conversation_id)
        if c is None:
            c = shop[ev.conversation_id] = WaitConv(ev.shop_id, ev.conversation_id)
            self._schedule(ev.t + self._evict_after(), ("E", ev.shop_id, ev.conversation_id))
        eid, t = ev.event_id, ev.t
        ids = c.ids
        if eid in ids:
            self.counters["duplicate"] += 1
            return
        ids[eid] = t
        f = self._time.frontier
        cutoff = -(1 << 62) if f is None else f - self._keep
        if len(ids) > self._max_ids or t < cutoff or next(iter(ids.values())) < cutoff:
            kept = [(k, v) for k, v in ids.items() if v >= cutoff or k == eid][-self._max_ids:]
            c.ids = dict(kept)
        if t > c.last_t:
            c.last_t = t
        self._valid += 1
        if late:
            self.counters["late"] += 1
        sender = ev.sender
        if ev.kind == "close":
            if c.first_at is None:
                self.counters["closes_no_wait"] += 1
                return
            self._end(c, t, CLOSED, late)
            return
        if sender == "buyer":
            self._buyer(c, t, late)
        elif sender == "seller":
            if c.first_at is None:
                self.counters["seller_messages_no_wait"] += 1  # R10.2.5
            else:
                self._end(c, t, ANSWERED, late)
        elif sender == "auto_reply":
            self._auto_reply(c, t, late)
        # system messages do nothing (R10.2.4)

    # ------------------------------------------------------------ stored parts (the live worker)
    # The worker stores this model incrementally (streams/runtime.py): one entry per conversation,
    # per period and per shop (zone and shop-event ids), keyed by a tuple whose first item is one
    # of PART_TAGS. :meth:`track` has the model remember which keys changed;
    # :meth:`take_dirty_parts` hands their current entries over (None: gone); :meth:`from_parts`
    # rebuilds the model from entries written at one commit point.
    PART_TAGS: ClassVar[tuple[str, ...]] = ("wait", "wait_period", "wait_shop")

    def track(self) -> None:
        """Remember the keys of what changes from now on. The places state changes are wrapped
        (not edited): :meth:`process` (the event's conversation, its shop), :meth:`fire` (the
        deadline's period or conversation) and :meth:`_periods_at` (every count change of a period
        goes through it, and so does a period's creation)."""
        dirty: set[tuple] = set()
        self._dirty = dirty
        process, fire, periods_at = self.process, self.fire, self._periods_at

        def tracked_process(ev: ChatMessage | ShopEvent, late: bool) -> None:
            process(ev, late)
            if type(ev) is ShopEvent:
                dirty.add(("wait_shop", ev.shop_id))
            else:
                dirty.add(("wait", ev.shop_id, ev.conversation_id))

        def tracked_fire(when: int, key: Hashable) -> None:
            fire(when, key)
            if key[0] == "E":  # type: ignore[index]
                dirty.add(("wait", key[1], key[2]))  # type: ignore[index]
            else:  # P, F
                dirty.add(("wait_period", key[1], key[2], key[3]))  # type: ignore[index]

        def tracked_periods_at(shop_id: str, t: int) -> list[WaitPeriod]:
            out = periods_at(shop_id, t)
            for p in out:
                dirty.add(("wait_period", shop_id, p.kind, p.label))
            return out

        self.process, self.fire, self._periods_at = tracked_process, tracked_fire, tracked_periods_at  # type: ignore[method-assign]

    def part(self, key: tuple) -> list | None:
        """The stored entry of ``key`` now; None if it is gone (evicted, forgotten)."""
        tag, shop_id = key[0], key[1]
        if tag == "wait":
            c = self.convs.get(shop_id, {}).get(key[2])
            return c.to_list() if c is not None else None
        if tag == "wait_period":
            p = self.periods.get((shop_id, key[2], key[3]))
            return p.to_list() if p is not None else None
        return self._shop_part(shop_id)

    def parts(self) -> list[tuple[tuple, list]]:
        """Every stored entry of the model now, in key order (what :meth:`from_parts` takes)."""
        keys = [("wait", s, c) for s, shop in self.convs.items() for c in shop]
        keys += [("wait_period", *k) for k in self.periods]
        keys += [("wait_shop", s) for s in self.shop_ids.keys() | self.shop_tz.keys()]
        return [(k, self.part(k)) for k in sorted(keys)]  # type: ignore[misc]

    @classmethod
    def from_parts(cls, policy: WaitPolicy, config: EngineConfig, host: object, counters: dict,
                   parts: "Iterable[tuple[tuple, list]]") -> "ImWaits":
        """The model its stored entries describe (all of one commit point: streams/runtime.py),
        its deadlines scheduled again as :meth:`restore` does; tracked if ``host.track_dirty``."""
        m = cls(policy, config, host)
        m.counters.update(counters)
        for key, v in parts:
            tag = key[0]
            if tag == "wait":
                c = WaitConv.from_list(v)
                m.convs.setdefault(c.shop_id, {})[c.conversation_id] = c
                m._schedule(m._evict_at(c), ("E", c.shop_id, c.conversation_id))
            elif tag == "wait_period":
                p = WaitPeriod.from_list(v)
                m.periods[(p.shop_id, p.kind, p.label)] = p
                if p.emitted:
                    m._schedule(p.end + m._retention, ("F", p.shop_id, p.kind, p.label))
                else:
                    m._schedule(p.end - 1, ("P", p.shop_id, p.kind, p.label))
            elif tag == "wait_shop":
                m._restore_shop(key[1], v)
            else:
                raise ValueError(f"not a {cls.kind} entry: {key!r}")
        if host.track_dirty:
            m.track()
        return m

    def _schedule(self, when: int, key: tuple) -> None:
        """``fire(when, key)`` once the watermark passes ``when`` (stale entries are checked there)."""
        self._push((when, self._ch, key, None))

    def _on_timer(self, entry: tuple) -> None:
        self.fire(entry[0], entry[2])

    def fire(self, when: int, key: Hashable) -> None:
        tag = key[0]
        if tag == "P":
            p = self.periods.get((key[1], key[2], key[3]))
            if p is None or p.end - 1 != when or p.emitted:
                return
            self._measure_end(p)
            p.emitted = True
            self._emit_period(p)
            self._schedule(p.end + self._retention, ("F", key[1], key[2], key[3]))
        elif tag == "F":
            p = self.periods.get((key[1], key[2], key[3]))
            if p is not None and p.end + self._retention <= when:
                if self._defer and p.emitted:
                    self.host.emit("period", self.period_record(p))
                del self.periods[(key[1], key[2], key[3])]
                self._shop_periods.pop(key[1], None)
        elif tag == "E":
            shop = self.convs.get(key[1])
            c = shop.get(key[2]) if shop is not None else None
            if c is None:
                return
            at = self._evict_at(c)
            if c.first_at is not None or at > when:
                # an open wait is kept (R10.3): looked at again an eviction interval later, not
                # at the next microsecond (a run's end far ahead would fire it for every µs)
                self._schedule(at if at > when else when + self._evict_after(), key)
                return
            del shop[key[2]]
            if not shop:
                del self.convs[key[1]]

    def finish(self, until: int) -> None:
        """End of input: waits still open have had their opening record (with
        ``session_updates=False``, the emitted periods get theirs now, once each, and so do the
        open waits whose opening record was deferred, :meth:`_emit_open`)."""
        if not self._defer:
            return
        emit = self.host.emit
        for p in self.periods.values():
            if p.emitted:
                emit("period", self.period_record(p))
        for shop in self.convs.values():
            for c in shop.values():
                if c.first_at is not None and not c.wait_late:
                    emit("wait", self._opening_record(c))

    def _bounds(self, kind: str, t: int, tz: str) -> tuple[int, int, str]:
        """:func:`period_bounds`, cached per zone and kind (the same day and week over and over)."""
        cur = self._cur.get((tz, kind))
        if cur is not None and cur[0] <= t < cur[1]:
            return cur
        cur = self._cur[(tz, kind)] = period_bounds(kind, t, tz, self.policy.week_starts_on)
        return cur

    def snapshot(self) -> dict:
        """This model's parts of a snapshot, under keys of its own (the runner adds the envelope:
        policy refs, counters, buffer). The deadlines are not stored: :meth:`restore` schedules
        them again from each conversation's and period's own times."""
        return {
            "wait_shop_tz": dict(sorted(self.shop_tz.items())),
            "wait_shop_ids": {s: ids for s, ids in sorted(self.shop_ids.items())},
            "wait_convs": [c.to_list() for shop in self.convs.values() for c in shop.values()],
            "wait_periods": [p.to_list() for p in self.periods.values()],
        }

    @classmethod
    def restore(cls, policy: WaitPolicy, config: EngineConfig, host: object, snap: dict) -> "ImWaits":
        """The model a snapshot describes (``snap["counters"]``: the counters the runner gives back
        to it), its deadlines scheduled again with ``host``."""
        m = cls(policy, config, host)
        m.counters.update(snap.get("counters") or {})
        m.shop_tz = dict(snap["wait_shop_tz"])
        m.shop_ids = {s: [list(x) for x in ids] for s, ids in snap["wait_shop_ids"].items()}
        for v in snap["wait_convs"]:
            c = WaitConv.from_list(v)
            m.convs.setdefault(c.shop_id, {})[c.conversation_id] = c
            m._schedule(m._evict_at(c), ("E", c.shop_id, c.conversation_id))
        for v in snap["wait_periods"]:
            p = WaitPeriod.from_list(v)
            m.periods[(p.shop_id, p.kind, p.label)] = p
            if p.emitted:
                m._schedule(p.end + m._retention, ("F", p.shop_id, p.kind, p.label))
            else:
                m._schedule(p.end - 1, ("P", p.shop_id, p.kind, p.label))
        return m

    def view(self, shop_id: str, watermark: int) -> dict:
        """R10.3 at ``watermark``: one row per unreplied conversation (an open wait), sorted by
        the policy's primary measure (``waiting`` = W - last_at by default), longest first, then
        by conversation_id; the count and the longest of both measures."""
        rows = []
        for c in self.convs.get(shop_id, {}).values():
            if c.first_at is None:
                continue
            rows.append({"conversation_id": c.conversation_id, "wait_id": f"{c.conversation_id}#{c.n}",
                         "first_at": format_time(c.first_at), "last_at": format_time(c.last_at),
                         "buyer_messages": c.buyer_messages, "auto_replied": c.auto_replied_at is not None,
                         "waiting": watermark - c.last_at, "waiting_from_first": watermark - c.first_at})
        primary = "waiting_from_first" if self._by_first else "waiting"
        rows.sort(key=lambda r: (-r[primary], r["conversation_id"]))
        longest = max((r["waiting"] for r in rows), default=None)
        longest_ff = max((r["waiting_from_first"] for r in rows), default=None)
        for r in rows:
            r["waiting"], r["waiting_from_first"] = seconds(r["waiting"]), seconds(r["waiting_from_first"])
        return {"shop_id": shop_id, "watermark": format_time(watermark), "measured_from": self.policy.wait_measured_from,
                "unreplied": len(rows), "longest_waiting": seconds(longest),
                "longest_waiting_from_first": seconds(longest_ff), "conversations": rows}

    # ------------------------------------------------------------ transitions
    def _buyer(self, c: WaitConv, t: int, late: bool) -> None:
        # R10.4.1: the first buyer message at or after the current period's end opens the next
        # (a late message before the current period is not re-segmented: it opens none)
        if c.ar_end is None or t >= c.ar_end:
            c.ar_start, c.ar_end, c.ar_has = t, t + self._ar_period, False
            self._count(c.shop_id, t, "eligible", late)
        if c.first_at is None:  # R10.2.1: opens a wait
            c.n += 1
            c.first_at = c.last_at = t
            c.buyer_messages = 1
            c.auto_replied_at = None
            c.wait_late = late
            self.counters["waits_opened"] += 1
            self._count(c.shop_id, t, "opened", late)
            self._emit_open(c)
            return
        c.buyer_messages += 1
        if t > c.last_at:
            c.last_at = t
        if t < c.first_at:
            if self._defer and not c.wait_late:
                # the deferred opening record is keyed by the first_at it had (audit.Collector):
                # a record under the new first_at does not supersede it, so it is emitted now
                self.host.emit("wait", self._opening_record(c))
            c.first_at = t
        if late:
            c.wait_late = True
            self._emit_open(c)

    def _auto_reply(self, c: WaitConv, t: int, late: bool) -> None:
        if c.ar_start is not None and c.ar_start <= t < c.ar_end:  # R10.4.2
            if c.ar_has:
                self._count(c.shop_id, t, "extra_ar", late)
            else:
                c.ar_has = True
                self._count(c.shop_id, t, "period_ar", late)
        else:
            self._count(c.shop_id, t, "unprompted_ar", late)
        if c.first_at is None:
            self.counters["seller_messages_no_wait"] += 1
            return
        if self.policy.auto_reply_ends_wait:
            self._end(c, t, ANSWERED, late)
            return
        if c.auto_replied_at is None or (late and t < c.auto_replied_at):
            c.auto_replied_at = t  # R10.2.4: recorded, not a reply
            if late:
                c.wait_late = True
                self._emit_open(c)

    def _end(self, c: WaitConv, t: int, reason: str, late: bool) -> None:
        """R10.2.3: the open wait ends at ``t``; answered waits get their two measures (R10.2.7)."""
        if late:
            c.wait_late = True
        self.host.emit("wait", self._wait_record(c, t, reason))
        if reason == ANSWERED:
            self.counters["waits_answered"] += 1
            for p in self._periods_at(c.shop_id, t):
                p.waited.append(t - c.last_at)
                p.from_first.append(t - c.first_at)
                if p.emitted:
                    self._changed(p, late)
        else:
            self.counters["waits_closed"] += 1
            self._count(c.shop_id, t, "closed_unanswered", late)
        c.first_at = c.last_at = c.auto_replied_at = None
        c.buyer_messages = 0
        c.wait_late = False

    # ------------------------------------------------------------ periods
    def _periods_at(self, shop_id: str, t: int) -> list[WaitPeriod]:
        cur = self._shop_periods.get(shop_id)
        if cur is not None and cur[0] <= t < cur[1]:
            return cur[2]
        tz = self.shop_tz.get(shop_id, self._default_tz)
        out = []
        for kind in self.policy.periods:
            start, end, label = self._bounds(kind, t, tz)
            key = (shop_id, kind, label)
            p = self.periods.get(key)
            if p is None:
                p = self.periods[key] = WaitPeriod(shop_id, kind, label, start, end)
                self._schedule(end - 1, ("P", shop_id, kind, label))
            out.append(p)
        if out:
            self._shop_periods[shop_id] = (max(p.start for p in out), min(p.end for p in out), out)
        return out

    def _count(self, shop_id: str, t: int, field: str, late: bool) -> None:
        for p in self._periods_at(shop_id, t):
            setattr(p, field, getattr(p, field) + 1)
            if p.emitted:  # (_changed's test: nearly always False, a call saved)
                self._changed(p, late)

    def _changed(self, p: WaitPeriod, late: bool) -> None:
        if p.emitted:  # R10.5.4: late events re-emit it with late: true
            p.late = True
            self._emit_period(p)

    def _measure_end(self, p: WaitPeriod) -> None:
        """open_at_end and the oldest waits at the end instant (fired at end - 1 µs: every event
        before the end is applied, none at or after it)."""
        end = p.end
        n, oldest, oldest_ff = 0, None, None
        for c in self.convs.get(p.shop_id, {}).values():
            if c.first_at is not None and c.first_at < end:
                n += 1
                w, wf = end - c.last_at, end - c.first_at
                oldest = w if oldest is None or w > oldest else oldest
                oldest_ff = wf if oldest_ff is None or wf > oldest_ff else oldest_ff
        p.open_at_end, p.oldest, p.oldest_ff = n, oldest, oldest_ff

    def _evict_after(self) -> int:
        return max(self._keep, self._retention)

    def _evict_at(self, c: WaitConv) -> int:
        return max(c.last_t + self._evict_after(), c.ar_end or 0)

    # ------------------------------------------------------------ records
    def _wait_record(self, c: WaitConv, ended_at: int | None, reason: str | None) -> dict:
        """R10.5.1, keys in order; ``day`` / ``week_start`` are those of ``ended_at``."""
        answered = reason == ANSWERED
        if ended_at is None:
            day = week = None
        else:
            tz = self.shop_tz.get(c.shop_id, self._default_tz)
            cur = self._labels.get(tz)  # (from, until, day, week): the instants both labels hold for
            if cur is None or not cur[0] <= ended_at < cur[1]:
                ds, de, day = self._bounds(DAY, ended_at, tz)
                ws, we, week = self._bounds(WEEK, ended_at, tz)
                cur = self._labels[tz] = (max(ds, ws), min(de, we), day, week)
            day, week = cur[2], cur[3]
        # equal instants share one formatted string (a single buyer message: last_at is first_at)
        first_at, last_at = c.first_at, c.last_at
        first = format_time(first_at)
        if answered:
            waited = ended_at - last_at  # seconds(), inlined
            waited = waited // SECOND if waited % SECOND == 0 else waited / SECOND
            from_first = ended_at - first_at
            from_first = from_first // SECOND if from_first % SECOND == 0 else from_first / SECOND
        else:
            waited = from_first = None
        ar = c.auto_replied_at
        policy = self.policy
        return {
            "wait_id": f"{c.conversation_id}#{c.n}",
            "shop_id": c.shop_id,
            "conversation_id": c.conversation_id,
            "first_at": first,
            "last_at": first if last_at == first_at else format_time(last_at),
            "buyer_messages": c.buyer_messages,
            "auto_replied_at": None if ar is None else format_time(ar),
            "ended_at": None if ended_at is None else format_time(ended_at),
            "end_reason": reason,
            "waited": waited,
            "waited_from_first": from_first,
            "day": day,
            "week_start": week,
            "late": c.wait_late,
            "policy_id": policy.id,
            "policy_version": policy.version,
        }

    def period_record(self, p: WaitPeriod) -> dict:
        """R10.5.2, keys in order (10-G)."""
        waited, ff = sorted(p.waited), sorted(p.from_first)
        rec: dict = {"shop_id": p.shop_id, "period": p.kind, "start": p.label, "answered": len(waited)}
        for name, vals in (("waited", waited), ("from_first", ff)):
            for q in self.policy.percentiles:
                rec[f"{name}_p{_pname(q)}"] = seconds(nearest_rank(vals, q))
            rec[f"{name}_max"] = seconds(vals[-1]) if vals else None
        rec["closed_unanswered"] = p.closed_unanswered
        rec["opened"] = p.opened
        rec["open_at_end"] = p.open_at_end
        rec["oldest_waiting_at_end"] = seconds(p.oldest)
        rec["oldest_waiting_from_first_at_end"] = seconds(p.oldest_ff)
        rec["eligible_messages"] = p.eligible
        rec["period_auto_replies"] = p.period_ar
        rec["extra_auto_replies"] = p.extra_ar
        rec["unprompted_auto_replies"] = p.unprompted_ar
        rec["late"] = p.late
        rec["policy_id"] = self.policy.id
        rec["policy_version"] = self.policy.version
        return rec

    def _emit_period(self, p: WaitPeriod) -> None:
        if not self._defer:
            self.host.emit("period", self.period_record(p))

    def _emit_open(self, c: WaitConv) -> None:
        """An open wait's record: when it opens, and on late changes (R10.5.1).

        With ``session_updates=False`` (the audit, replay) a wait's records are kept last per
        (shop, conversation, first_at), as a compacted topic keeps them: the record of a wait that
        opens in order is superseded by the one of its end, so formatting it at opening is wasted
        (it was a fifth of a wait line's cost, BENCHMARKS.md). It is not emitted then; the state
        says when it is owed: an open wait with ``wait_late`` False has had no record but its
        opening one (every late change sets ``wait_late`` and emits), and that record is a function
        of ``first_at`` and ``n`` (:meth:`_opening_record`). It is emitted at :meth:`finish` if the
        wait is still open, or before ``first_at`` moves (:meth:`_buyer`); derived from state, it
        survives a snapshot and restore."""
        if self._defer and not c.wait_late:
            return
        self.host.emit("wait", self._wait_record(c, None, None))

    def _opening_record(self, c: WaitConv) -> dict:
        """The record :meth:`_buyer` emitted when ``c``'s open wait opened in order: one buyer
        message at ``first_at``, no auto-reply yet, not late."""
        rec = self._wait_record(c, None, None)
        rec["last_at"] = rec["first_at"]
        rec["buyer_messages"] = 1
        rec["auto_replied_at"] = None
        rec["late"] = False
        return rec
