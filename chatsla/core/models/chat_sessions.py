"""Chat sessions (RULES R2-R5): the transitions of a conversation's sessions and its shop's weeks,
as a model hosted by the runner (``chatsla.core.runner``, issue #12).

The runner hands this model its events in ``(time, rank, event_id)`` order (late ones at once,
with ``late=True``) and fires the deadlines it schedules; everything here is what those events
and deadlines mean for chat sessions. Records go out through ``host.emit``: a ``session`` per
change (or only when final, ``session_updates=False``) and an ``assessment`` when a week's
counters change after it ended.

* Ranks (R6.3): at one instant shop events come first (vacation from ``at`` on, R4), then buyer
  messages, then seller-side messages, then closes (an event at a deadline still belongs to the
  session, R2.5).
* Deadlines: the 72 h / 6 h / 10 min closures (R2.4, precedence in :func:`closure_rule`), the
  24 h decision (R3), week ends (R5) and eviction, each on a timer channel of the runner; a
  conversation's timer entries carry the conversation itself (the channel is ``supersedable``: an
  entry whose ``c.scheduled`` moved on is stale and dropped unfired).
* A late event is counted, and every record it changes carries ``late: true`` (R6.4).
* Duplicate ``event_id``s (R1) change nothing. Ids are remembered where the event was applied (its
  conversation, or its shop) for ``dedupe_window``, so a stored conversation knows by itself which
  events it already contains: that is what makes a restart from partly written state safe. At
  most ``max_remembered_ids`` are kept per conversation or shop; past that bound the oldest are
  forgotten and a ``floor`` time keeps replays out (``chatsla.core.sessions``, issue #10).

State is bounded by what is live (issue #10 finding 3). A conversation without an open session
carries an eviction deadline in its ``timer``. When the watermark passes it the conversation is
evicted (removed from ``convs``, its key handed to adapters by :meth:`ChatSessions.take_evicted`
so they delete its stored entry) if it can no longer change any output or recognise a replay:
every week it contributed to is forgotten by its shop (``week_retention`` after the week ended:
such a conversation's contributions are dropped on restore anyway), and its last remembered event
is more than ``dedupe_window`` behind. Otherwise the deadline moves to when that can first hold.
A conversation that comes back after eviction starts afresh: its sessions are numbered from 1
again (docs/rules.md, "Readings chatsla chose for R1-R8"). Eviction is a timer like any other,
fired in time order and restored from the stored ``timer``, so it happens at the same point of
the log in the audit, the worker and any restart (R6.1).

Snapshot parts: ``conversations`` (each :meth:`ChatSessions.conversation_entry`) and ``shops``;
the weekly counters are not stored apart but rebuilt from the conversations' contributions, so
parts written at different moments restore consistently (:meth:`ChatSessions.from_parts`).

Per-shop counts (``shop_stats`` of the runner, the appeal pack): counted where this model counts,
by wrapping :meth:`process`, :meth:`_open` and :meth:`_close` of this instance only
(:meth:`_count_shops`); without ``shop_stats`` nothing extra runs.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Callable, ClassVar, Iterable

from chatsla.core.calendar import Shop, Week
from chatsla.core.policy import Policy
from chatsla.core.records import session_raw, week_raw
from chatsla.core.sessions import (
    INLINE_ID_CHARS,
    AUTO,
    AUTO_REPLY_RESOLVED,
    BUYER,
    BUYER_TIMEOUT,
    C_LATE,
    C_MESSAGES,
    C_PENDING,
    C_REPLIED,
    C_SESSIONS,
    CLOSE_REASONS,
    CLOSED_BY_PLATFORM,
    CLOSED_BY_SELLER,
    SELLER,
    N_FIELDS,
    SELLER_TIMEOUT,
    Conversation,
    dedupe_key,
    forget_before,
    forget_oldest,
)
from chatsla.core.timefmt import DAY
from chatsla.core.events import ChatMessage, ShopEvent

if TYPE_CHECKING:
    from chatsla.core.runner import EngineConfig, Runner

assert INLINE_ID_CHARS == 40  # written as a literal in ChatSessions.process

SESSION = "session"
ASSESSMENT = "assessment"

RANK_SHOP, RANK_BUYER, RANK_SELLER_SIDE, RANK_CLOSE = 0, 1, 2, 3
# timer sub-channels (runner.timer_channel): at one instant conversations' deadlines fire before
# week ends, as they always did
CH_CONV, CH_WEEK = 0, 1


def rank(ev: ChatMessage | ShopEvent) -> int:
    """Same-instant order (R6.3): shop events, buyer messages, seller-side messages, closes."""
    if type(ev) is ShopEvent:
        return RANK_SHOP
    if ev.kind == "close":
        return RANK_CLOSE
    return RANK_BUYER if ev.sender == "buyer" else RANK_SELLER_SIDE


def closure_rule(seller_timeout: int, buyer_timeout: int,
                 auto_timeout: int) -> Callable[[Conversation], tuple[int | None, str | None]]:
    """R2.4's first platform closure under these timeouts, as a function of a conversation: its
    deadline and reason. The seller's clock runs 72 h from the buyer's first unanswered message;
    the buyer's 6 h after a human seller's reply, or 10 min after an auto-reply (the last
    seller-side message decides which); the seller's 72 h wins a tie. (None, None): no clock
    runs. The one place this precedence is written: the deadline :meth:`ChatSessions._reschedule`
    schedules and the reason :meth:`ChatSessions._fire_conv` closes with both come from here
    (a closure over the timeouts: called for nearly every event, it reads no attributes but the
    conversation's)."""

    def first_closure(c: Conversation) -> tuple[int | None, str | None]:
        ws = c.wait_start
        side = c.last_side
        if side == SELLER:
            d = c.last_seller_at + buyer_timeout
            if ws is not None and ws + seller_timeout <= d:
                return ws + seller_timeout, SELLER_TIMEOUT
            return d, BUYER_TIMEOUT
        if side == AUTO:
            d = c.last_seller_at + auto_timeout
            if ws is not None and ws + seller_timeout <= d:
                return ws + seller_timeout, SELLER_TIMEOUT
            return d, AUTO_REPLY_RESOLVED
        if ws is not None:
            return ws + seller_timeout, SELLER_TIMEOUT
        return None, None

    return first_closure


def _remember(ids: list, ts: list[int], eid: str | int, t: int, cutoff: int) -> None:
    ids.append(eid)
    ts.append(t)
    if ts[0] < cutoff:
        forget_before(ids, ts, cutoff)


class ChatSessions:
    """The chat sessions of one input stream's conversations and their shops' weeks (R2-R5)."""

    kind: ClassVar[str] = "chat_sessions"
    record_kinds: ClassVar[tuple[str, ...]] = (SESSION, ASSESSMENT)

    def __init__(self, policy: Policy, config: "EngineConfig", host: "Runner") -> None:
        self.policy = policy
        self.config = config
        self.host = host
        self.session_updates = host.session_updates
        self.convs: dict[tuple[str, str], Conversation] = {}
        self.shops: dict[str, Shop] = {}
        # cold counters (duplicate, late, outreach, evicted, ...) go to the host's, which
        # adapters read as they go (``engine.counters``); the hot ones are kept here (stats)
        self.counters: Counter[str] = host.counters
        self._sink = host.emit
        self._push = host.push
        self._time = host.time  # the stream's frontier (read for nearly every event)
        self._conv_ch = host.timer_channel(self._fire_conv, CH_CONV, supersedable=True)
        self._week_ch = host.timer_channel(self._fire_week, CH_WEEK)
        self._window = policy.reply_window
        self._first_closure = closure_rule(policy.seller_timeout, policy.buyer_timeout, policy.auto_reply_timeout)
        self._keep_ids = config.allowed_lateness + config.dedupe_window  # ids kept behind the frontier
        self._max_ids = config.max_remembered_ids
        self._dedupe_window = config.dedupe_window
        self._retention = config.week_retention
        self._ids_after_overflow = config.max_remembered_ids * 3 // 4  # forget a quarter at a time
        track_dirty = host.track_dirty
        # conversations evicted since the last take_evicted() (adapters delete their entries)
        self._evicted: dict[tuple[str, str], Conversation] | None = {} if track_dirty else None
        # hot counters kept out of the Counter (plain int and dict updates); see :meth:`stats`
        self._valid = 0
        self._opened = 0
        self._closed: dict[str, int] = dict.fromkeys(CLOSE_REASONS, 0)
        self._dirty_convs: set[tuple[str, str]] | None = set() if track_dirty else None
        self._dirty_shops: set[str] | None = set() if track_dirty else None
        if host.shop_counters is not None:
            self._count_shops(host.shop_counters)

    rank = staticmethod(rank)

    def stats(self) -> Counter[str]:
        """The counters kept here (valid, sessions_opened, ``closed:<reason>``); the others are
        in the host's ``counters``."""
        c: Counter[str] = Counter()
        c["valid"] = self._valid
        if self._opened:
            c["sessions_opened"] = self._opened
        for reason, n in self._closed.items():
            if n:
                c["closed:" + reason] = n
        return c

    def finish(self, until: int) -> None:
        """End of input: with ``session_updates=False``, the sessions still open (the audit)."""
        if not self.session_updates:
            for c in self.convs.values():
                if c.opened_at is not None:
                    self._sink(SESSION, session_raw(c))

    def view(self, shop_id: str, watermark: int | None) -> dict:
        """A shop's live state as this model knows it (R8): its zone, vacation and weeks' counters
        (the projections of chatsla.projections build the dashboards' figures from these)."""
        shop = self.shops.get(shop_id)
        if shop is None:
            return {"shop_id": shop_id, "known": False}
        return {
            "shop_id": shop_id, "known": True, "timezone": shop.tz, "vacation": shop.vacation,
            "watermark": watermark,
            "weeks": {label: {"start": w.start, "end": w.end, "sessions": w.sessions, "replied": w.replied,
                              "pending": w.pending, "buyer_messages": w.buyer_messages, "status": w.status,
                              "late": w.late}
                      for label, w in sorted(shop.weeks.items())},
        }

    # ------------------------------------------------------------------ timers
    def _fire_week(self, entry: tuple) -> None:
        """A week's end (R5): it is assessed, provisional while sessions in it are pending."""
        when = entry[0]
        shop = self.shops.get(entry[2])
        w = shop.weeks.get(entry[3]) if shop is not None else None
        if w is not None and w.status is None and w.end == when:
            w.status = "provisional" if w.pending else "final"
            self._emit_week(shop, w)
            self._forget_old_weeks(shop, when)

    def _fire_conv(self, entry: tuple) -> None:
        """A conversation's deadline: a closure (R2.4), the 24 h mark (R3) or its eviction."""
        when = entry[0]
        c = entry[3]
        if c.scheduled != when:
            return  # superseded by an earlier entry for the same conversation
        c.scheduled = None
        if c.timer is None:
            return
        if c.timer > when:  # the deadline moved later since this entry was pushed
            self._schedule(c)
            return
        if c.opened_at is None:  # no open session: the eviction deadline
            self._evict_or_wait(c, when)
            return
        if self._dirty_convs is not None:
            self._dirty_convs.add(c.key)
        deadline, reason = self._first_closure(c)
        if deadline <= when:
            self._close(c, deadline, reason)
            return
        if self._evaluate(c, when, True) and self.session_updates:  # the 24 h mark (R3)
            self._sink(SESSION, session_raw(c))
        self._reschedule(c)

    # ------------------------------------------------------------- transitions
    def _cutoff(self) -> int:
        f = self._time.frontier
        return -(1 << 62) if f is None else f - self._keep_ids

    def process(self, ev: ChatMessage | ShopEvent, late: bool) -> None:
        """One event, in ``(time, rank, event_id)`` order or, ``late``, at once (R6.4)."""
        if type(ev) is ShopEvent:
            self._shop_event(ev, late)
            return
        # The shop's own id string where the shop exists: conversations then share one string
        # per shop (less memory), and table lookups compare it by identity.
        shop_id = ev.shop_id
        shop = self.shops.get(shop_id)
        if shop is not None:
            shop_id = shop.shop_id
        key = (shop_id, ev.conversation_id)
        c = self.convs.get(key)
        if c is None:
            c = self.convs[key] = Conversation(shop_id, ev.conversation_id, key)
        eid = ev.event_id
        if len(eid) > 40:  # INLINE_ID_CHARS, a constant here: this runs for every event
            eid = dedupe_key(eid)
        seen_ids = c.seen_ids
        if eid in seen_ids:
            self.counters["duplicate"] += 1
            return
        t = ev.t
        if c.floor is not None and t <= c.floor:  # not told apart from a forgotten id (sessions.py)
            self._overflowed()
            return
        # _remember and _cutoff inlined: this runs for every event
        seen_ts = c.seen_ts
        seen_ids.append(eid)
        seen_ts.append(t)
        f = self._time.frontier
        if f is not None and seen_ts[0] < f - self._keep_ids:
            # Out of the dedupe window: forgotten, and the floor keeps their copies out, so a
            # conversation stored after the watermark jumped still refuses an event that a
            # replay from the previous checkpoint delivers again (R6.1). An event that old and
            # not remembered cannot be told from a copy: dropped and counted (dedupe_overflow).
            gone = forget_before(seen_ids, seen_ts, f - self._keep_ids)
            if gone is not None and (c.floor is None or gone > c.floor):
                c.floor = gone
        if len(seen_ids) > self._max_ids:
            c.floor = forget_oldest(seen_ids, seen_ts, self._ids_after_overflow, c.floor)
        self._valid += 1
        if late:
            self.counters["late"] += 1
        if self._dirty_convs is not None:
            self._dirty_convs.add(key)
        sender = ev.sender
        if ev.kind == "close":  # R2.4 closed_by_seller / closed_by_platform
            if c.opened_at is None:
                self.counters["outreach"] += 1
                self._idle(c)
                return
            if late:
                c.late = True
            self._close(c, t, CLOSED_BY_SELLER if sender == "seller" else CLOSED_BY_PLATFORM)
            return
        changed = False  # does the session's record change (beyond a decision)?
        if sender == "buyer":
            if shop is None:
                shop = self._shop(shop_id)
            w = None
            if not shop.vacation:  # R4: vacation messages do not count toward the volume
                w = shop._cur
                if w is None or not (w.start <= t < w.end):
                    w = self._week(shop, t)
                w.buyer_messages += 1
                cc = c.contrib.get(w.week_start)
                if cc is None:
                    cc = c.contrib[w.week_start] = [0, 0, 0, 0, 0]
                cc[C_MESSAGES] += 1
                if w.status is not None:  # a late message into an assessed week (R6.4)
                    w.late = True
                    cc[C_LATE] = 1
                    self._emit_week(shop, w)
            if c.opened_at is None:  # R2.1 / R2.6
                self._open(c, t, shop, w, late)
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
                self._idle(c)
            return
        else:
            if c.opened_at is None:  # R2.2 outreach
                self.counters["outreach"] += 1
                self._idle(c)
                return
            if sender == "seller":
                if c.first_human is None or t < c.first_human:
                    c.first_human = t
                    changed = True  # first_reply_at of the record changes, even after a miss
                c.wait_start = None
                c.last_side = SELLER
            else:
                c.last_side = AUTO
            c.last_seller_at = t
        if late:
            c.late = True
        # Only a reply, a passed 24 h mark or a late event can decide (or re-decide) a session.
        if c.decided_at is None or late:
            changed = self._evaluate(c, t, c.past24 or t > c.opened_at + self._window) or changed
        self._reschedule(c)
        if (changed or late) and self.session_updates:
            self._sink(SESSION, session_raw(c))

    def _shop_event(self, ev: ShopEvent, late: bool) -> None:
        """Vacation (R4) and time zone (R5.1). Every hosted model gets a shop event; only the
        runner's ``lead`` counts it (valid, duplicate, late), so it counts once."""
        counts = self.host.lead is self
        shop = self._shop(ev.shop_id)
        eid = dedupe_key(ev.event_id)
        if eid in shop.seen_ids:
            if counts:
                self.counters["duplicate"] += 1
            return
        if shop.floor is not None and ev.t <= shop.floor:
            if counts:
                self._overflowed()
            return
        _remember(shop.seen_ids, shop.seen_ts, eid, ev.t, self._cutoff())
        if len(shop.seen_ids) > self._max_ids:
            shop.floor = forget_oldest(shop.seen_ids, shop.seen_ts, self._ids_after_overflow, shop.floor)
        if counts:
            self._valid += 1
            if late:
                self.counters["late"] += 1
        if self._dirty_shops is not None:
            self._dirty_shops.add(shop.shop_id)
        if ev.type == "vacation_on":
            shop.vacation = True
        elif ev.type == "vacation_off":
            shop.vacation = False
        elif ev.type == "timezone":  # (an aftersale_rules event, R11.2, is another model's)
            shop.set_timezone(ev.timezone)

    def _shop(self, shop_id: str) -> Shop:
        shop = self.shops.get(shop_id)
        if shop is None:
            shop = self.shops[shop_id] = Shop(shop_id, self.config.default_timezone)
        return shop

    def _week(self, shop: Shop, t: int) -> Week:
        w, created = shop.week_of(t, self.policy.week_starts_on)
        if created:
            self._push((w.end, self._week_ch, shop.shop_id, w.week_start))
        return w

    def _bump(self, c: Conversation, w: Week, sessions: int, replied: int, pending: int) -> None:
        """Change a week's session counters and this conversation's share of them together."""
        w.sessions += sessions
        w.replied += replied
        w.pending += pending
        cc = c.contrib.get(w.week_start)
        if cc is None:
            cc = c.contrib[w.week_start] = [0, 0, 0, 0, 0]
        cc[C_SESSIONS] += sessions
        cc[C_REPLIED] += replied
        cc[C_PENDING] += pending
        if c.late and w.status is not None:
            w.late = True
            cc[C_LATE] = 1

    def _open(self, c: Conversation, t: int, shop: Shop, w: Week | None, late: bool) -> None:
        """Open a session at ``t``; ``w`` is the week of ``t`` if already known."""
        c.n += 1
        c.opened_at = c.wait_start = t
        c.last_side = BUYER
        c.excluded = shop.vacation  # R4
        c.late = late
        if w is None:
            w = self._week(shop, t)
        c.week = w.week_start
        if len(c.contrib) > 1:
            self._forget_old_contrib(c, shop)
        if not c.excluded:
            # _bump(c, w, 1, 0, 1) inlined: one session more, pending
            w.sessions += 1
            w.pending += 1
            cc = c.contrib.get(w.week_start)
            if cc is None:
                cc = c.contrib[w.week_start] = [0, 0, 0, 0, 0]
            cc[C_SESSIONS] += 1
            cc[C_PENDING] += 1
            if late and w.status is not None:
                w.late = True
                cc[C_LATE] = 1
            if w.status is not None:  # a late session in an assessed week (R6.4)
                w.status = "provisional"
                w.late = True
                self._emit_week(shop, w)
        self._opened += 1
        self._reschedule(c)
        if self.session_updates:
            self._sink(SESSION, session_raw(c))

    def _close(self, c: Conversation, t: int, reason: str) -> None:
        self._evaluate(c, t, t > c.opened_at + self._window or c.past24, reason)
        self._closed[reason] += 1
        self._sink(SESSION, session_raw(c, t, reason))
        # Its timer entries are now stale (dropped without firing); its eviction deadline replaces
        # them. A close is frequent, so this is a cheap lower bound of _evict_at: a counted
        # session's week ends after it opened and must be past retention; an excluded one's
        # latest id must leave the dedupe window. _evict_or_wait then sets the exact deadline.
        if not c.excluded:
            at = c.opened_at + self._retention
        else:
            ts = c.seen_ts
            at = ts[-1] + self._dedupe_window if ts else 0
        c.reset()
        at = c.timer = c.scheduled = at + 1
        self._push((at, self._conv_ch, c.key, c))

    def _evaluate(self, c: Conversation, now: int, past24: bool, close_reason: str | None = None) -> bool:
        """Decide the session's 24 h outcome as soon as it is known (R3); True if it changed.
        ``close_reason``: the session is closing now, for that reason."""
        d24 = c.opened_at + self._window
        if c.decided_at is None:
            if c.first_human is not None and c.first_human <= d24:
                self._decide(c, True, c.first_human)
            elif close_reason is not None:
                self._decide(c, close_reason == AUTO_REPLY_RESOLVED and c.last_seller_at <= d24, now)
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
        w = shop.weeks.get(c.week)
        if w is None:
            w, _ = shop.week_for_label(c.week)
        # _bump(c, w, 0, 1 if replied else 0, -1) inlined: decided, no longer pending
        cc = c.contrib.get(w.week_start)
        if cc is None:
            cc = c.contrib[w.week_start] = [0, 0, 0, 0, 0]
        if replied:
            w.replied += 1
            cc[C_REPLIED] += 1
        w.pending -= 1
        cc[C_PENDING] -= 1
        if c.late and w.status is not None:
            w.late = True
            cc[C_LATE] = 1
        if w.status is not None and (w.pending == 0 or c.late):
            if w.pending == 0:
                w.status = "final"
            self._emit_week(shop, w)

    def _undecide(self, c: Conversation) -> None:
        if not c.excluded:
            w, _ = self.shops[c.shop_id].week_for_label(c.week)
            self._bump(c, w, 0, -1 if c.replied else 0, 1)
        c.replied = c.decided_at = None

    def _forget_old_contrib(self, c: Conversation, shop: Shop) -> None:
        for label in [k for k in c.contrib if k not in shop.weeks]:
            del c.contrib[label]

    def _forget_old_weeks(self, shop: Shop, now: int) -> int:
        """Weeks assessed longer ago than ``week_retention`` no longer take late events; returns
        how many were forgotten."""
        horizon = now - self.config.week_retention
        old = [k for k, w in shop.weeks.items() if w.end < horizon and w.status == "final"]
        for label in old:
            del shop.weeks[label]
        shop._cur = None
        return len(old)

    # ---------------------------------------------------------------- eviction
    def _overflowed(self) -> None:
        """An event at or before its conversation's (or shop's) floor whose id is not remembered:
        dropped as a presumed replay (sessions.py), counted among the duplicates."""
        self.counters["duplicate"] += 1
        self.counters["dedupe_overflow"] += 1

    def _idle(self, c: Conversation) -> None:
        """Give a conversation without an open session its eviction deadline (module docstring),
        unless it has one already."""
        if c.timer is None:
            c.timer = self._evict_at(c)
            self._schedule(c)

    def _evict_at(self, c: Conversation) -> int:
        """The first instant at which ``c`` may be evicted, from its state alone: its last
        remembered event out of the dedupe window, and each week it still contributes to past
        ``week_retention``; both strictly, as :meth:`_evict_or_wait` and :meth:`_forget_old_weeks`
        test them."""
        ts = c.seen_ts
        last = max(ts) if ts else c.floor
        at = (last if last is not None else 0) + self.config.dedupe_window
        shop = self.shops.get(c.shop_id)
        if shop is not None:
            retention = self.config.week_retention
            for label in c.contrib:
                w = shop.weeks.get(label)
                if w is not None and w.end + retention > at:
                    at = w.end + retention
        return at + 1

    def _evict_or_wait(self, c: Conversation, when: int) -> None:
        """``c``'s eviction deadline ``when`` has passed: evict it if nothing it holds can still
        matter, else move the deadline. A shop without new weeks would never forget its old ones
        (that happens when one of its weeks ends): they are forgotten here, by the same rule."""
        shop = self.shops.get(c.shop_id)
        if shop is not None and c.contrib and self._forget_old_weeks(shop, when) and self._dirty_shops is not None:
            self._dirty_shops.add(shop.shop_id)
        if shop is not None and any(label in shop.weeks for label in c.contrib):
            at = self._evict_at(c)
            c.timer = at if at > when else when + DAY  # a week not final yet: look again in a day
        else:
            ts = c.seen_ts
            last = max(ts) if ts else c.floor
            if last is None or last + self.config.dedupe_window < when:
                del self.convs[c.key]  # (its timer stays: a stored final state evicts again)
                self.counters["evicted"] += 1
                if self._dirty_convs is not None and self._evicted is not None:
                    self._dirty_convs.discard(c.key)
                    self._evicted[c.key] = c
                return
            c.timer = last + self.config.dedupe_window + 1
        if self._dirty_convs is not None:
            self._dirty_convs.add(c.key)
        self._schedule(c)

    # ------------------------------------------------------------------ timers
    def _reschedule(self, c: Conversation) -> None:
        """Set ``c.timer`` to when the session next needs attention (R2.4 closures, the R3 24 h
        mark). An entry is pushed only when that is earlier than the conversation's earliest
        live entry; a later deadline is pushed when that entry fires (see :meth:`_fire_conv`)."""
        deadline = self._first_closure(c)[0]
        if c.decided_at is None and not c.past24:
            d24 = c.opened_at + self._window
            if d24 < deadline:
                deadline = d24
        c.timer = deadline
        if c.scheduled is None or deadline < c.scheduled:
            c.scheduled = deadline  # _schedule inlined
            self._push((deadline, self._conv_ch, c.key, c))

    def _schedule(self, c: Conversation) -> None:
        """Push a timer entry for ``c.timer``. The entry carries the conversation itself, so a due
        or opened entry needs no table lookup; its key before it orders ties deterministically,
        and entries equal up to the key are the same conversation's, so comparisons never reach
        the object."""
        c.scheduled = c.timer
        self._push((c.timer, self._conv_ch, c.key, c))

    # ----------------------------------------------------------------- outputs
    def _emit_week(self, shop: Shop, w: Week) -> None:
        if self._dirty_shops is not None:
            self._dirty_shops.add(shop.shop_id)
        self._sink(ASSESSMENT, week_raw(shop.shop_id, w))

    # ------------------------------------------------------------------- state
    @property
    def dirty_shop_count(self) -> int:
        """Shops changed since the last :meth:`take_dirty` (adapters bound checkpoint size by it)."""
        return len(self._dirty_shops or ())

    def mark_dirty(self, shop_ids: Iterable[str]) -> None:
        """Have the next :meth:`take_dirty` include these shops (state restored from a copy that
        the next checkpoint would otherwise overwrite without storing it elsewhere)."""
        if self._dirty_shops is not None:
            self._dirty_shops.update(s for s in shop_ids if s in self.shops)

    def take_dirty(self) -> tuple[list[Conversation], list[Shop]]:
        """Conversations and shops changed since the last call (``track_dirty=True``)."""
        if self._dirty_convs is None or self._dirty_shops is None:
            raise RuntimeError("Engine(track_dirty=True) is needed for take_dirty()")
        convs = [self.convs[k] for k in sorted(self._dirty_convs)]
        shops = [self.shops[k] for k in sorted(self._dirty_shops)]
        self._dirty_convs.clear()
        self._dirty_shops.clear()
        return convs, shops

    def take_evicted(self) -> list[Conversation]:
        """The conversations evicted since the last call and not back since, in key order
        (``track_dirty=True``), in their final state: adapters delete their stored entries
        (streams/runtime.py stores that state first, then deletes it a checkpoint later)."""
        if self._evicted is None:
            raise RuntimeError("Engine(track_dirty=True) is needed for take_evicted()")
        gone = [c for k, c in sorted(self._evicted.items(), key=lambda kc: kc[0]) if k not in self.convs]
        self._evicted.clear()
        return gone

    def conversation_entry(self, c: Conversation) -> list:
        """A conversation's stored form: its state, then the bounds of the weeks it contributes
        to. With the bounds a restart rebuilds those weeks exactly even when the shop's stored
        entry is older than the conversation's (a checkpoint cut short, R6.1), e.g. from before
        the shop's time zone was known."""
        shop = self.shops.get(c.shop_id)
        weeks = shop.weeks if shop is not None else {}
        bounds = {}
        for label in c.contrib:
            w = weeks.get(label)
            if w is not None:
                bounds[label] = [w.start, w.end]
        entry = c.to_list()
        entry.append(bounds)
        if c.floor is not None:  # only past the id bound; entries without it load as before
            entry.append(c.floor)
        return entry

    def snapshot(self) -> dict:
        """This model's parts of a snapshot (the runner adds the envelope): ``conversations`` and
        ``shops``. The timer entries are not stored: they are rebuilt from each conversation's
        and week's own deadline (:meth:`from_parts`)."""
        return {"conversations": [self.conversation_entry(c) for c in self.convs.values()],
                "shops": [s.to_list() for s in self.shops.values()]}

    @classmethod
    def restore(cls, policy: Policy, config: "EngineConfig", host: "Runner", snap: dict) -> "ChatSessions":
        """The model from a snapshot; ``snap["counters"]``: the counters given back to it."""
        return cls.from_parts(policy, config, host, snap.get("counters"), snap["conversations"], snap["shops"])

    @classmethod
    def from_parts(cls, policy: Policy, config: "EngineConfig", host: "Runner", counters: dict | None,
                   conversations: Iterable[list], shops: Iterable[list]) -> "ChatSessions":
        """Rebuild the model from stored parts, which may have been written at different moments:
        each conversation carries its own applied event ids and week contributions, so the
        weekly counters are recomputed here and events replayed after the runner's envelope
        apply once. ``host`` has its envelope restored already (its watermark dates the weeks
        already forgotten). Of ``counters`` the model takes back those it keeps (:meth:`stats`);
        the runner keeps the rest. Every deadline is scheduled again from the state."""
        e = cls(policy, config, host)
        if counters is not None:
            e._valid = counters.get("valid", 0)
            e._opened = counters.get("sessions_opened", 0)
            for k, v in counters.items():
                if k.startswith("closed:"):
                    e._closed[k[7:]] = v
        for values in shops:
            shop = Shop.from_list(values)
            e.shops[shop.shop_id] = shop
        wm = host.watermark
        horizon = None if wm is None else wm - config.week_retention
        for values in conversations:
            c = Conversation.from_list(values[:N_FIELDS])
            bounds = values[N_FIELDS] if len(values) > N_FIELDS else {}
            if len(values) > N_FIELDS + 1:
                c.floor = values[N_FIELDS + 1]
            e.convs[c.key] = c
            shop = e._shop(c.shop_id)
            for label, cc in list(c.contrib.items()):
                w = shop.weeks.get(label)
                if w is None:
                    b = bounds.get(label)
                    w = shop.week_with_bounds(label, b[0], b[1]) if b else shop.week_for_label(label)[0]
                    if horizon is not None and w.end < horizon:  # already forgotten (_forget_old_weeks)
                        # The share stays with the conversation, as in an engine that ran through
                        # (nothing reads it: the week is gone), so a restore changes no state.
                        del shop.weeks[label]
                        continue
                w.sessions += cc[C_SESSIONS]
                w.replied += cc[C_REPLIED]
                w.pending += cc[C_PENDING]
                w.buyer_messages += cc[C_MESSAGES]
                w.late = w.late or bool(cc[C_LATE])
            if c.timer is not None:
                e._schedule(c)
            elif c.opened_at is None:  # stored before eviction deadlines existed
                e._idle(c)
        for shop in e.shops.values():
            for w in shop.weeks.values():
                if w.status is None:
                    e._push((w.end, e._week_ch, shop.shop_id, w.week_start))
                else:
                    # An assessed week is final exactly when nothing in it is pending (_fire_week,
                    # _decide, _open keep this). Conversations stored after their shop's entry
                    # may have decided or opened sessions since; their events are skipped on
                    # replay, so the status they changed is restored here (R6.1).
                    w.status = "provisional" if w.pending else "final"
        return e

    # ------------------------------------------------------------ shop counts
    def _count_shops(self, shop_counters: dict[str, Counter[str]]) -> None:
        """Count each ``shop_counters`` shop's own valid, duplicate, late and outreach events, and
        its sessions opened and closed, where this model counts them: :meth:`process`,
        :meth:`_open` and :meth:`_close` of this instance are wrapped (the class's stay as they
        are, so an engine without ``shop_stats`` runs none of this). A shop event is counted
        only if this model counted it (the lead model, ``Runner.lead``)."""
        process, open_, close = self.process, self._open, self._close
        counters = self.counters

        def counting_process(ev: ChatMessage | ShopEvent, late: bool) -> None:
            sc = shop_counters.get(ev.shop_id)
            if sc is None:
                process(ev, late)
                return
            dup, valid, lt, outreach = counters["duplicate"], self._valid, counters["late"], counters["outreach"]
            process(ev, late)
            sc["duplicate"] += counters["duplicate"] - dup
            sc["valid"] += self._valid - valid
            sc["late"] += counters["late"] - lt
            sc["outreach"] += counters["outreach"] - outreach

        def counting_open(c: Conversation, t: int, shop: Shop, w: Week | None, late: bool) -> None:
            sc = shop_counters.get(c.shop_id)
            if sc is not None:
                sc["sessions_opened"] += 1
            open_(c, t, shop, w, late)

        def counting_close(c: Conversation, t: int, reason: str) -> None:
            sc = shop_counters.get(c.shop_id)
            if sc is not None:
                sc["closed:" + reason] += 1
            close(c, t, reason)

        self.process = counting_process  # type: ignore[method-assign]
        self._open = counting_open  # type: ignore[method-assign]
        self._close = counting_close  # type: ignore[method-assign]
