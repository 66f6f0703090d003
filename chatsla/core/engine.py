"""The session engine: event time, watermark, deadlines and the R2-R5 transitions.

Pure and deterministic: no clock, no I/O. Time enters only as event times and ``advance`` ticks
(RULES R6). The same engine serves the offline audit, the Faust worker (one engine per partition)
and the replay, which is why live and audit results agree.

How order is made deterministic (R6.2, R6.3):

* Events are held in a buffer until the watermark (largest event time seen minus
  ``allowed_lateness``) passes them, then applied in ``(time, rank, event_id)`` order, so any
  arrival order within the lateness gives the time-sorted result. ``rank`` breaks ties at one
  instant: shop events first (vacation from ``at`` on, R4), then buyer messages, then seller-side
  messages, then closes (an event at a deadline still belongs to the session, R2.5).
* Deadlines (72 h / 6 h / 10 min closures, the 24 h decision, week ends) sit in a heap and fire
  when the watermark passes them, interleaved with buffered events by time (events first on a tie).
* An event behind the watermark is late (R6.4): applied at once in log order, counted, and every
  record it changes carries ``late: true``.
* Duplicate ``event_id``s (R1) within ``dedupe_window`` of the watermark change nothing.
"""

from __future__ import annotations

import heapq
from collections import Counter, deque
from dataclasses import dataclass
from typing import Callable

from chatsla.core.calendar import Shop, Week
from chatsla.core.policy import Policy
from chatsla.core.records import session_raw, to_record, week_raw
from chatsla.core.sessions import (
    AUTO,
    AUTO_REPLY_RESOLVED,
    BUYER,
    BUYER_TIMEOUT,
    CLOSED_BY_PLATFORM,
    CLOSED_BY_SELLER,
    SELLER,
    SELLER_TIMEOUT,
    Conversation,
)
from chatsla.core.timefmt import DAY, HOUR, MINUTE
from schemas.events import ChatMessage, ShopEvent

_heappush, _heappop = heapq.heappush, heapq.heappop

SESSION = "session"
ASSESSMENT = "assessment"

_RANK_SHOP, _RANK_BUYER, _RANK_SELLER_SIDE, _RANK_CLOSE = 0, 1, 2, 3
_TIMER_CONV, _TIMER_WEEK = 0, 1


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Engine settings that are not platform rules (those are in :class:`Policy`)."""

    allowed_lateness: int = 2 * MINUTE  # R6.2
    default_timezone: str = "UTC"  # R1: a shop never told its zone
    dedupe_window: int = 8 * DAY  # how long an event_id is remembered behind the watermark


def _rank(ev: ChatMessage) -> int:
    if ev.kind == "close":
        return _RANK_CLOSE
    return _RANK_BUYER if ev.sender == "buyer" else _RANK_SELLER_SIDE


class Engine:
    """One ordered input stream (a file, or one Kafka partition) and the state it implies."""

    def __init__(self, policy: Policy, config: EngineConfig = EngineConfig(),
                 sink: Callable[[str, tuple], None] | None = None, session_updates: bool = True) -> None:
        """``session_updates=False`` emits a session only when it closes, and open ones at
        :meth:`finish`: enough for a report of final states (the audit), and far cheaper."""
        self.policy = policy
        self.session_updates = session_updates
        self.config = config
        self.convs: dict[tuple[str, str], Conversation] = {}
        self.shops: dict[str, Shop] = {}
        self.max_seen: int | None = None
        self.counters: Counter[str] = Counter()
        self.out: list[tuple[str, tuple]] = []
        self._sink = sink if sink is not None else self._collect
        self._buffer: list[tuple] = []
        # Deadlines within the current hour of the watermark live in a heap; later ones wait in
        # hour buckets. Most far deadlines (24 h, 72 h) are superseded before they are due, and
        # a superseded entry is dropped when its bucket opens, without ever costing a heap pop.
        self._timers: list[tuple] = []
        self._far: dict[int, list[tuple]] = {}
        self._far_hours: list[int] = []
        self._horizon = -1  # hour index up to which deadlines go straight into the heap
        self._seen: dict[str, int] = {}
        self._seen_order: deque[tuple[int, str]] = deque()
        self._next_prune = 0
        self._window = policy.reply_window
        self._lateness = config.allowed_lateness
        self._valid = 0  # hot counter kept out of the Counter; see :attr:`stats`

    # ------------------------------------------------------------------ input
    @property
    def stats(self) -> Counter[str]:
        """Event and session counters (R8): valid, duplicate, late, outreach, sessions_opened,
        ``closed:<reason>``."""
        c = Counter(self.counters)
        c["valid"] += self._valid
        return c

    @property
    def watermark(self) -> int | None:
        return None if self.max_seen is None else self.max_seen - self._lateness

    def apply(self, ev: ChatMessage | ShopEvent) -> None:
        """Take one valid event in log order."""
        seen = self._seen
        eid = ev.event_id
        n = len(seen)
        t = ev.t
        seen.setdefault(eid, t)
        if len(seen) == n:
            self.counters["duplicate"] += 1
            return
        self._seen_order.append((t, eid))
        self._valid += 1
        max_seen = self.max_seen
        if max_seen is not None and t < max_seen - self._lateness:
            self.counters["late"] += 1
            self._process(ev, True)
            self._drain(max_seen - self._lateness, False)  # deadlines the late event put behind us
            return
        if type(ev) is ShopEvent:
            rank = _RANK_SHOP
        elif ev.kind == "close":
            rank = _RANK_CLOSE
        else:
            rank = _RANK_BUYER if ev.sender == "buyer" else _RANK_SELLER_SIDE
        _heappush(self._buffer, (t, rank, eid, ev))
        if max_seen is None or t > max_seen:
            self.max_seen = t
            self._drain(t - self._lateness, False)

    def advance(self, t: int) -> None:
        """A tick: time ``t`` has been reached on this stream (R6.2 live mode: wall clock)."""
        if self.max_seen is None or t > self.max_seen:
            self.max_seen = t
            self._drain(t - self._lateness, False)

    def finish(self, until: int | None = None) -> None:
        """End of input: apply everything buffered and fire deadlines before ``until``.

        ``until`` defaults to the largest event time seen (``chatsla audit --until``).
        """
        w = until if until is not None else self.max_seen
        if w is None:
            return
        if self.max_seen is None or w > self.max_seen:
            self.max_seen = w
        self._drain(w, True)
        if not self.session_updates:
            for c in self.convs.values():
                if c.opened_at is not None:
                    self._sink(SESSION, session_raw(c))

    # ---------------------------------------------------------------- ordering
    def _push_timer(self, entry: tuple) -> None:
        hour = entry[0] // HOUR
        if hour <= self._horizon:
            _heappush(self._timers, entry)
            return
        bucket = self._far.get(hour)
        if bucket is None:
            bucket = self._far[hour] = []
            _heappush(self._far_hours, hour)
        bucket.append(entry)

    def _open_buckets(self, wm: int) -> None:
        """Move every bucket up to the watermark's hour into the heap, dropping stale entries."""
        hour = wm // HOUR
        self._horizon = hour
        far_hours, convs, timers = self._far_hours, self.convs, self._timers
        while far_hours and far_hours[0] <= hour:
            for entry in self._far.pop(_heappop(far_hours)):
                if entry[1] == _TIMER_CONV:
                    c = convs.get((entry[2], entry[3]))
                    if c is None or c.scheduled != entry[0]:
                        continue
                _heappush(timers, entry)

    def _drain(self, wm: int, flush: bool) -> None:
        if wm // HOUR > self._horizon:
            self._open_buckets(wm)
        buf, timers = self._buffer, self._timers
        pop, process, fire = _heappop, self._process, self._fire
        while True:
            if buf and (flush or buf[0][0] < wm):
                te = buf[0][0]
                if timers and timers[0][0] < te and timers[0][0] < wm:
                    fire(pop(timers))
                else:
                    process(pop(buf)[3], False)
            elif timers and timers[0][0] < wm:
                fire(pop(timers))
            else:
                break
        if wm >= self._next_prune:
            self._prune_seen(wm)

    def _prune_seen(self, wm: int) -> None:
        cutoff = wm - self.config.dedupe_window
        order, seen = self._seen_order, self._seen
        while order and order[0][0] < cutoff:
            t, eid = order.popleft()
            if seen.get(eid) == t:
                del seen[eid]
        self._next_prune = wm + HOUR

    def _fire(self, entry: tuple) -> None:
        when, kind, shop_id, key = entry
        if kind == _TIMER_WEEK:
            shop = self.shops.get(shop_id)
            w = shop.weeks.get(key) if shop is not None else None
            if w is not None and w.status is None and w.end == when:
                w.status = "provisional" if w.pending else "final"
                self._emit_week(shop_id, w)
            return
        c = self.convs.get((shop_id, key))
        if c is None or c.scheduled != when:
            return  # superseded by an earlier entry for the same conversation
        c.scheduled = None
        if c.timer is None:
            return
        if c.timer > when:  # the deadline moved later since this entry was pushed
            self._schedule(c)
            return
        deadline, reason = self._close_deadline(c)
        if deadline <= when:
            self._close(c, deadline, reason)
            return
        if self._evaluate(c, when, True):  # the 24 h mark (R3)
            self._emit_session(c)
        self._reschedule(c)

    # ------------------------------------------------------------- transitions
    def _process(self, ev: ChatMessage | ShopEvent, late: bool) -> None:
        if type(ev) is ShopEvent:
            self._shop_event(ev, late)
            return
        key = (ev.shop_id, ev.conversation_id)
        c = self.convs.get(key)
        if c is None:
            c = self.convs[key] = Conversation(ev.shop_id, ev.conversation_id)
        t = ev.t
        sender = ev.sender
        if ev.kind == "close":  # R2.4 closed_by_seller / closed_by_platform
            if c.opened_at is None:
                self.counters["outreach"] += 1
                return
            if late:
                c.late = True
            self._close(c, t, CLOSED_BY_SELLER if sender == "seller" else CLOSED_BY_PLATFORM)
            return
        if sender == "buyer":
            shop = self.shops.get(ev.shop_id) or self._shop(ev.shop_id)
            if not shop.vacation:  # R4: vacation messages do not count toward the volume
                w = shop._cur
                if w is None or not (w.start <= t < w.end):
                    w = self._week(shop, t)
                w.buyer_messages += 1
                if w.status is not None:  # a late message into an assessed week (R6.4)
                    w.late = True
                    self._emit_week(ev.shop_id, w)
            if c.opened_at is None:  # R2.1 / R2.6
                self._open(c, t, shop, late)
                return
            if c.last_side == BUYER and not late and not c.past24:
                return  # a follow-up while already awaiting the seller: no clock moves (R2.3)
            if c.wait_start is None:
                c.wait_start = t
            c.last_side = BUYER
        elif sender == "system":
            # RULES R2.3 names buyer and seller-side messages only: a system notice neither
            # starts nor stops a clock (seed 000 lists only the seller's and buyer's silences).
            if c.opened_at is None:
                self.counters["outreach"] += 1
            return
        else:
            if c.opened_at is None:  # R2.2 outreach
                self.counters["outreach"] += 1
                return
            if sender == "seller":
                if c.first_human is None or t < c.first_human:
                    c.first_human = t
                c.wait_start = None
                c.last_side = SELLER
            else:
                c.last_side = AUTO
            c.last_seller_at = t
        if late:
            c.late = True
        # Only a reply, a passed 24 h mark or a late event can decide (or re-decide) a session.
        if c.decided_at is None or late:
            changed = self._evaluate(c, t, c.past24 or t > c.opened_at + self._window)
        else:
            changed = False
        self._reschedule(c)
        if changed or late:
            self._emit_session(c)

    def _shop_event(self, ev: ShopEvent, late: bool) -> None:
        shop = self._shop(ev.shop_id)
        if ev.type == "vacation_on":
            shop.vacation = True
        elif ev.type == "vacation_off":
            shop.vacation = False
        else:
            shop.set_timezone(ev.timezone)

    def _shop(self, shop_id: str) -> Shop:
        shop = self.shops.get(shop_id)
        if shop is None:
            shop = self.shops[shop_id] = Shop(shop_id, self.config.default_timezone)
        return shop

    def _week(self, shop: Shop, t: int) -> Week:
        w, created = shop.week_of(t, self.policy.week_starts_on)
        if created:
            self._push_timer((w.end, _TIMER_WEEK, shop.shop_id, w.week_start))
        return w

    def _open(self, c: Conversation, t: int, shop: Shop, late: bool) -> None:
        c.n += 1
        c.opened_at = c.wait_start = t
        c.last_side = BUYER
        c.excluded = shop.vacation  # R4
        c.late = late
        w = self._week(shop, t)
        c.week = w.week_start
        if not c.excluded:
            w.sessions += 1
            w.pending += 1
            if w.status is not None:  # a late session in an assessed week (R6.4)
                w.status = "provisional"
                w.late = True
                self._emit_week(shop.shop_id, w)
        self.counters["sessions_opened"] += 1
        self._reschedule(c)
        self._emit_session(c)

    def _close(self, c: Conversation, t: int, reason: str) -> None:
        c.closed_at = t
        c.close_reason = reason
        self._evaluate(c, t, t > c.opened_at + self._window or c.past24)
        self.counters["closed:" + reason] += 1
        self._sink(SESSION, session_raw(c))
        c.reset()

    def _close_deadline(self, c: Conversation) -> tuple[int, str]:
        """First platform closure of R2.4 (the 72 h clock wins a tie)."""
        p = self.policy
        if c.wait_start is not None:
            best, reason = c.wait_start + p.seller_timeout, SELLER_TIMEOUT
        else:
            best, reason = None, None
        side = c.last_side
        if side == SELLER:
            d = c.last_seller_at + p.buyer_timeout
            if best is None or d < best:
                best, reason = d, BUYER_TIMEOUT
        elif side == AUTO:
            d = c.last_seller_at + p.auto_reply_timeout
            if best is None or d < best:
                best, reason = d, AUTO_REPLY_RESOLVED
        return best, reason

    def _evaluate(self, c: Conversation, now: int, past24: bool) -> bool:
        """Decide the session's 24 h outcome as soon as it is known (R3); True if it changed."""
        d24 = c.opened_at + self._window
        if c.decided_at is None:
            if c.first_human is not None and c.first_human <= d24:
                self._decide(c, True, c.first_human)
            elif c.close_reason is not None:
                self._decide(c, c.close_reason == AUTO_REPLY_RESOLVED and c.last_seller_at <= d24, now)
            elif past24:
                if c.last_side == AUTO and c.last_seller_at <= d24:
                    c.past24 = True  # an in-time auto-reply may still resolve it (R3)
                    return False
                self._decide(c, False, now)
            else:
                return False
            return True
        if c.replied is False and c.first_human is not None and c.first_human <= d24:
            # only a late event can bring an in-time reply after a miss was decided (R6.4)
            self._undecide(c)
            self._decide(c, True, c.first_human)
            return True
        return False

    def _decide(self, c: Conversation, replied: bool, at: int) -> None:
        c.replied = replied
        c.decided_at = at
        if c.excluded:
            return
        shop = self.shops[c.shop_id]
        w = shop.weeks[c.week]
        w.pending -= 1
        if replied:
            w.replied += 1
        if c.late and w.status is not None:
            w.late = True
        if w.status is not None and (w.pending == 0 or c.late):
            if w.pending == 0:
                w.status = "final"
            self._emit_week(c.shop_id, w)

    def _undecide(self, c: Conversation) -> None:
        if not c.excluded:
            w = self.shops[c.shop_id].weeks[c.week]
            w.pending += 1
            if c.replied:
                w.replied -= 1
        c.replied = c.decided_at = None

    # ------------------------------------------------------------------ timers
    def _reschedule(self, c: Conversation) -> None:
        # the same deadlines as _close_deadline, inlined: this runs for nearly every event
        p = self.policy
        side = c.last_side
        deadline = c.wait_start + p.seller_timeout if c.wait_start is not None else None
        if side == SELLER or side == AUTO:
            d = c.last_seller_at + (p.buyer_timeout if side == SELLER else p.auto_reply_timeout)
            if deadline is None or d < deadline:
                deadline = d
        if c.decided_at is None and not c.past24:
            d24 = c.opened_at + self._window
            if d24 < deadline:
                deadline = d24
        c.timer = deadline
        if c.scheduled is None or deadline < c.scheduled:
            self._schedule(c)

    def _schedule(self, c: Conversation) -> None:
        self._push_timer((c.timer, _TIMER_CONV, c.shop_id, c.conversation_id))
        c.scheduled = c.timer

    # ----------------------------------------------------------------- outputs
    def _emit_session(self, c: Conversation) -> None:
        if self.session_updates:
            self._sink(SESSION, session_raw(c))

    def _emit_week(self, shop_id: str, w: Week) -> None:
        self._sink(ASSESSMENT, week_raw(shop_id, w))

    def _collect(self, kind: str, record: tuple) -> None:
        self.out.append((kind, record))

    # --------------------------------------------------------------- snapshots
    def snapshot(self) -> dict:
        """Everything needed to continue exactly where this engine stands (JSON-friendly).

        The timer heap is not stored: it is rebuilt from each conversation's and week's own
        deadline, and its order depends only on their values, so a restored engine fires the
        same deadlines in the same order (R6.1: restarts never change a result).
        """
        return {
            "v": 1,
            "policy": self.policy.ref,
            "max_seen": self.max_seen,
            "conversations": [c.to_list() for c in self.convs.values()],
            "shops": [s.to_list() for s in self.shops.values()],
            "buffer": [_event_to_list(e[3]) for e in sorted(self._buffer)],
            "seen": [[t, eid] for t, eid in self._seen_order if self._seen.get(eid) == t],
            "counters": dict(sorted(self.stats.items())),
            "next_prune": self._next_prune,
        }

    @classmethod
    def restore(cls, policy: Policy, config: EngineConfig, snap: dict,
                sink: Callable[[str, tuple], None] | None = None) -> "Engine":
        if snap.get("policy") != policy.ref:
            raise ValueError(f"snapshot was made under {snap.get('policy')}, not {policy.ref}")
        e = cls(policy, config, sink)
        e.max_seen = snap["max_seen"]
        e._next_prune = snap["next_prune"]
        counters = dict(snap["counters"])
        e._valid = counters.pop("valid", 0)
        e.counters.update(counters)
        for values in snap["conversations"]:
            c = Conversation.from_list(values)
            e.convs[(c.shop_id, c.conversation_id)] = c
            if c.timer is not None:
                e._schedule(c)
        for values in snap["shops"]:
            shop = Shop.from_list(values)
            e.shops[shop.shop_id] = shop
            for w in shop.weeks.values():
                if w.status is None:
                    e._push_timer((w.end, _TIMER_WEEK, shop.shop_id, w.week_start))
        for t, eid in snap["seen"]:
            e._seen[eid] = t
            e._seen_order.append((t, eid))
        for values in snap["buffer"]:
            ev = _event_from_list(values)
            rank = _RANK_SHOP if type(ev) is ShopEvent else _rank(ev)
            e._buffer.append((ev.t, rank, ev.event_id, ev))
        heapq.heapify(e._buffer)
        return e

    def take(self) -> list[tuple[str, tuple]]:
        """Hand over the raw records emitted since the last call (for adapters that batch)."""
        out, self.out = self.out, []
        return out

    def take_records(self) -> list[tuple[str, dict]]:
        """Like :meth:`take`, formatted as output records."""
        return [(kind, to_record(kind, raw, self.policy)) for kind, raw in self.take()]


def _event_to_list(ev: ChatMessage | ShopEvent) -> list:
    if type(ev) is ShopEvent:
        return ["s", ev.event_id, ev.shop_id, ev.type, ev.t, ev.timezone]
    return ["c", ev.event_id, ev.shop_id, ev.conversation_id, ev.sender, ev.t, ev.kind, ev.message_type, ev.platform]


def _event_from_list(v: list) -> ChatMessage | ShopEvent:
    if v[0] == "s":
        return ShopEvent(v[1], v[2], v[3], v[4], v[5])
    return ChatMessage(*v[1:])
