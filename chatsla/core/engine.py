"""The session engine: event time, watermark, deadlines and the R2-R5 transitions.

Pure and deterministic: no clock, no I/O. Time enters only as event times and ``advance`` ticks
(RULES R6). The same engine serves the offline audit, the Faust worker (one engine per partition)
and the replay, which is why live and audit results agree.

How order is made deterministic (R6.2, R6.3):

* Events are held in a buffer until the watermark passes them, then applied in
  ``(time, rank, event_id)`` order, so any arrival order within the lateness gives the time-sorted
  result. ``rank`` breaks ties at one instant: shop events first (vacation from ``at`` on, R4),
  then buyer messages, then seller-side messages, then closes (an event at a deadline still
  belongs to the session, R2.5).
* An input may interleave several sources (the partitions of the input topics, in the worker).
  Each source has its own watermark, its largest event time minus ``allowed_lateness`` (R6.2); an
  event is late when it is behind its own source's watermark. Buffered events are released, and
  deadlines fire, only when the *smallest* source watermark passes them, so a source read ahead of
  the others (a backlog, a rebalance) cannot reorder anything.
* Deadlines (72 h / 6 h / 10 min closures, the 24 h decision, week ends) fire when that watermark
  passes them, interleaved with buffered events by time (events first on a tie).
* A late event is applied at once in log order, counted, and every record it changes carries
  ``late: true`` (R6.4).
* Time sanity (issue #10; docs/pipeline.md): one record must not be able to drag the clock into
  the future. An event more than ``max_future`` (1 h) ahead of every event seen so far is *held*:
  it moves nothing until later records give an opinion. A record of any source no more than
  ``max_future`` before it confirms it (independent evidence), and it is then applied exactly as
  it would have been on arrival. Once three current records of its own source (not late, not
  steps themselves) have carried on more than ``max_future`` before it, it is rejected as
  ``future_time``: counted as invalid, and sent to the dead-letter topic by the worker. Other
  sources never contradict it (a partition read ahead of the others is normal, R6.2), and a late
  record gives no opinion. An accepted tick confirms the held events it comes within
  ``max_future`` of (the others stay held: ticks walked through a backfill are no wall clock, and
  the live router refuses events ahead of the real one); at the end of input the events still
  held are applied (nothing decided against them). So honest input gives the results it
  always gave (a confirmed step is applied a record later, before anything that depends on it),
  and one event dated years ahead is rejected instead of closing every session and making every
  later event late. A tick more than ``max_future`` ahead of every event is held until an event
  confirms it (a host's ticks are no second opinion on that host's clock); a held tick never
  applied is counted as ``rejected_ticks``.
* Duplicate ``event_id``s (R1) change nothing. Ids are remembered where the event was applied (its
  conversation, or its shop) for ``dedupe_window``, so a stored conversation knows by itself which
  events it already contains: that is what makes a restart from partly written state safe. At
  most ``max_remembered_ids`` are kept per conversation or shop; past that bound the oldest are
  forgotten and a ``floor`` time keeps replays out (``chatsla.core.sessions``, issue #10).

State is bounded by what is live (issue #10 finding 3). A conversation without an open session
carries an eviction deadline in its ``timer``. When the watermark passes it the conversation is
evicted (removed from ``convs``, its key handed to adapters by :meth:`Engine.take_evicted` so they
delete its stored entry) if it can no longer change any output or recognise a replay: every week
it contributed to is forgotten by its shop (``week_retention`` after the week ended: such a
conversation's contributions are dropped on restore anyway), and its last remembered event is
more than ``dedupe_window`` behind. Otherwise the deadline moves to when that can first hold. A
conversation that comes back after eviction starts afresh: its sessions are numbered from 1
again (docs/rules.md, "Readings chatsla chose for R1-R8"). Eviction is a timer like any other, fired in time order
and restored from the stored ``timer``, so it happens at the same point of the log in the audit,
the worker and any restart (R6.1).
"""

from __future__ import annotations

import heapq
from collections import Counter, deque
from dataclasses import dataclass
from typing import Callable, Hashable, Iterable

from chatsla.core.calendar import Shop, Week
from chatsla.core.policy import Policy
from chatsla.core.records import session_raw, to_record, week_raw
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
from chatsla.core.timefmt import DAY, HOUR, MINUTE
from chatsla.core.events import ChatMessage, ShopEvent, new_chat_message

_heappush, _heappop = heapq.heappush, heapq.heappop
assert INLINE_ID_CHARS == 40  # written as a literal in Engine._process

SESSION = "session"
ASSESSMENT = "assessment"

_RANK_SHOP, _RANK_BUYER, _RANK_SELLER_SIDE, _RANK_CLOSE = 0, 1, 2, 3
_TIMER_CONV, _TIMER_WEEK = 0, 1
# Time sanity (module docstring): a held step is rejected once this many current events of its
# own source have carried on more than max_future before it; a source holds at most _MAX_HELD.
_CONTRADICTIONS = 3
_MAX_HELD = 64
# Width of a timer bucket: the timer heap holds about this much of the deadlines ahead, so its
# pushes and pops stay cheap; each bucket costs one heap operation on an integer when it opens.
_BUCKET = 10 * MINUTE

Sink = Callable[[str, tuple], None]


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Engine settings that are not platform rules (those are in :class:`Policy`)."""

    allowed_lateness: int = 2 * MINUTE  # R6.2
    default_timezone: str = "UTC"  # R1: a shop never told its zone
    dedupe_window: int = 8 * DAY  # how long an event_id is remembered behind the watermark
    week_retention: int = 35 * DAY  # how long a week's counters are kept after it ended
    # How far one event or tick may move its source's clock on its own (None: no limit). A
    # larger step waits for a second opinion (see Engine "Time sanity"); a skewed producer
    # clock or a hand-written record can then never drag the watermark into the future.
    max_future: int | None = HOUR
    # event ids remembered per conversation (and per shop) at most: bounds a stored entry far
    # under Kafka's 1 MB record limit whatever the traffic (chatsla.core.sessions, issue #10)
    max_remembered_ids: int = 1000


def _rank(ev: ChatMessage | ShopEvent) -> int:
    if type(ev) is ShopEvent:
        return _RANK_SHOP
    if ev.kind == "close":
        return _RANK_CLOSE
    return _RANK_BUYER if ev.sender == "buyer" else _RANK_SELLER_SIDE


def _remember(ids: list, ts: list[int], eid: str | int, t: int, cutoff: int) -> None:
    ids.append(eid)
    ts.append(t)
    if ts[0] < cutoff:
        _forget_before(ids, ts, cutoff)


_forget_before = forget_before


class Engine:
    """One ordered input stream (a file, or one Kafka partition) and the state it implies."""

    def __init__(self, policy: Policy, config: EngineConfig = EngineConfig(), sink: Sink | None = None,
                 session_updates: bool = True, sources: Iterable[Hashable] | None = None,
                 track_dirty: bool = False, keep_rejected: bool = False) -> None:
        """``session_updates=False`` emits a session only when it closes, and open ones at
        :meth:`finish`: enough for a report of final states (the audit), and far cheaper.
        ``sources``: the sources whose watermarks must all pass an event before it is applied
        (the input partitions); by default, every source seen so far. ``track_dirty``: remember
        which conversations and shops changed, for adapters that persist state incrementally.
        ``keep_rejected``: keep the events rejected as ``future_time`` for :meth:`take_rejected`
        (the worker sends them to a dead-letter topic; the audit only counts them)."""
        self.policy = policy
        self.config = config
        self.session_updates = session_updates
        self.convs: dict[tuple[str, str], Conversation] = {}
        self.shops: dict[str, Shop] = {}
        self.max_seen: int | None = None  # largest event time of any source
        self.counters: Counter[str] = Counter()
        self.out: list[tuple[str, tuple]] = []
        self._sink = sink if sink is not None else self._collect
        self._src_max: dict[Hashable, int] = {}
        self._sources = tuple(sources) if sources is not None else None
        self._frontier: int | None = None  # smallest source maximum: what the watermark follows
        # Buffered events wait as (t, rank, event_id, event) entries, applied in key order. Nearly
        # every event is later than all buffered ones, so it is appended to ``_inorder``, which
        # stays sorted; only the others go into the ``_buffer`` heap. Releasing merges the two.
        self._inorder: deque[tuple] = deque()
        self._tail = -(1 << 62)  # time of the last entry of _inorder (when it has one)
        self._buffer: list[tuple] = []
        # ids of buffered events: a copy arriving while its original still waits in the buffer
        # (a producer retry, a router replaying after a crash) is a duplicate, not a late event
        self._buffered: set[str] = set()
        # Deadlines within the current minute of the watermark live in a heap; later ones wait in
        # minute buckets. Most far deadlines (24 h, 72 h) are superseded before they are due, and
        # a superseded entry is dropped when its bucket opens, without ever costing a heap pop.
        self._timers: list[tuple] = []
        self._far: dict[int, list[tuple]] = {}
        self._far_slots: list[int] = []
        self._horizon = -1  # bucket index up to which deadlines go straight into the heap
        self._horizon_end = 0  # start of the bucket after it: a watermark there opens buckets
        self._window = policy.reply_window
        self._seller_timeout = policy.seller_timeout
        self._buyer_timeout = policy.buyer_timeout
        self._auto_timeout = policy.auto_reply_timeout
        self._lateness = config.allowed_lateness
        self._screening = config.max_future is not None
        self._max_future = config.max_future if config.max_future is not None else 1 << 62
        # per source, in arrival order: [event, contradictions] of steps awaiting a second opinion
        self._held: dict[Hashable, list[list]] = {}
        self._held_tick: int | None = None
        self._rejected: list[tuple[Hashable, ChatMessage | ShopEvent]] | None = [] if keep_rejected else None
        self._keep_ids = config.allowed_lateness + config.dedupe_window  # ids kept behind the frontier
        self._max_ids = config.max_remembered_ids
        self._dedupe_window = config.dedupe_window
        self._retention = config.week_retention
        self._ids_after_overflow = config.max_remembered_ids * 3 // 4  # forget a quarter at a time
        # conversations evicted since the last take_evicted() (adapters delete their entries)
        self._evicted: dict[tuple[str, str], Conversation] | None = {} if track_dirty else None
        # hot counters kept out of the Counter (plain int and dict updates); see :attr:`stats`
        self._valid = 0
        self._opened = 0
        self._closed: dict[str, int] = dict.fromkeys(CLOSE_REASONS, 0)
        self._dirty_convs: set[tuple[str, str]] | None = set() if track_dirty else None
        self._dirty_shops: set[str] | None = set() if track_dirty else None

    # ------------------------------------------------------------------ input
    @property
    def stats(self) -> Counter[str]:
        """Event and session counters (R8): valid, duplicate, late, outreach, sessions_opened,
        ``closed:<reason>``."""
        c = Counter(self.counters)
        c["valid"] += self._valid
        if self._opened:
            c["sessions_opened"] += self._opened
        for reason, n in self._closed.items():
            if n:
                c["closed:" + reason] += n
        return c

    @property
    def watermark(self) -> int | None:
        """Everything before this instant has been applied and every deadline before it fired."""
        return None if self._frontier is None else self._frontier - self._lateness

    def apply(self, ev: ChatMessage | ShopEvent, source: Hashable = None, screened: bool = False) -> None:
        """Take one valid event in log order, read from ``source`` (an input partition).
        ``screened``: the time-sanity check was done (a held event being released)."""
        eid = ev.event_id
        buffered = self._buffered
        if eid in buffered:
            self.counters["duplicate"] += 1
            return
        t = ev.t
        src_max = self._src_max
        prev = src_max.get(source)
        if not screened and self._screening and (
                (self.max_seen is not None and t > self.max_seen + self._max_future)
                or self._held or self._held_tick is not None):
            if self._screen(ev, source, t):
                return
            prev = src_max.get(source)
        if prev is not None and t <= prev:  # not ahead of its source
            if t < prev - self._lateness:  # behind its source's watermark
                self._process(ev, True)
                if self._frontier is not None:
                    self._drain(self._frontier - self._lateness, False)  # deadlines it put behind us
                return
            buffered.add(eid)
            self._hold((t, _rank(ev), eid, ev))
            return
        # The source moves on, as with nearly every event: _rank inlined.
        if type(ev) is ShopEvent:
            rank = _RANK_SHOP
        elif ev.kind == "close":
            rank = _RANK_CLOSE
        else:
            rank = _RANK_BUYER if ev.sender == "buyer" else _RANK_SELLER_SIDE
        buffered.add(eid)
        if t > self._tail:  # later than every entry of _inorder: it stays sorted
            self._inorder.append((t, rank, eid, ev))
            self._tail = t
        else:  # another source is ahead of this one
            self._hold((t, rank, eid, ev))
        src_max[source] = t
        if self.max_seen is None or t > self.max_seen:
            self.max_seen = t
        if self._sources is None and len(src_max) == 1:
            self._frontier = t
            wm = t - self._lateness
            if self._buffer or wm >= self._horizon_end:
                self._drain(wm, False)
                return
            # One source and nothing in the heap, as for nearly every event: _drain's loop over
            # _inorder alone. The entry just appended is later than ``wm``, so it ends the loop.
            inorder, timers = self._inorder, self._timers
            while inorder[0][0] < wm:
                entry = inorder[0]
                if timers and timers[0][0] < entry[0]:
                    self._fire(_heappop(timers))
                    continue
                inorder.popleft()
                buffered.discard(entry[2])
                self._process(entry[3], False)
            while timers and timers[0][0] < wm:
                self._fire(_heappop(timers))
            return
        if prev is None or prev == self._frontier:
            frontier = self._frontier = self._min_source()
        else:
            frontier = self._frontier
        if frontier is not None:
            self._drain(frontier - self._lateness, False)

    def apply_many(self, events: Iterable[ChatMessage | ShopEvent]) -> None:
        """``apply(ev)`` for each of ``events``, all read from the default source, in log order.

        The offline audit feeds its decoded events here in chunks. Nearly every event takes the
        path that :meth:`apply` singles out (one source, later than everything buffered, nothing in
        the heap); here it runs in one loop on local variables, which saves a call and a dozen
        attribute reads per event (BENCHMARKS.md). Any other event goes through :meth:`apply`.
        """
        apply = self.apply
        src_max = self._src_max
        if self._sources is not None or any(s is not None for s in src_max) or self._held_tick is not None:
            for ev in events:
                apply(ev)
            return
        buffered, inorder, timers, buf = self._buffered, self._inorder, self._timers, self._buffer
        add, discard, append, popleft = buffered.add, buffered.discard, inorder.append, inorder.popleft
        process, fire, lateness = self._process, self._fire, self._lateness
        # The source's maximum, the time of the last entry of _inorder and max_seen live in locals:
        # of what this loop calls only apply reads them (they are written back before it and read
        # again after it, and at the end), and only _drain moves the bucket horizon.
        prev, tail, max_seen = src_max.get(None), self._tail, self.max_seen
        horizon_end = self._horizon_end
        # the largest time an event may have and still take the fast path: not a step of more
        # than max_future, nothing held (time sanity, see the module docstring)
        max_future, held = self._max_future, self._held
        limit = -1 if held else (max_seen if max_seen is not None else 1 << 62) + max_future
        try:
            for ev in events:
                t = ev.t
                eid = ev.event_id
                if (prev is not None and t <= prev) or eid in buffered or t <= tail or t > limit:
                    # not ahead of the source, a duplicate, or a step to screen: the general path
                    if prev is not None:
                        src_max[None] = prev
                    self._tail, self.max_seen = tail, max_seen
                    apply(ev)
                    prev, tail, max_seen = src_max.get(None), self._tail, self.max_seen
                    horizon_end = self._horizon_end
                    limit = -1 if held else (max_seen if max_seen is not None else 1 << 62) + max_future
                    continue
                # the source moves on: apply's fast path, with _rank inlined
                if type(ev) is ShopEvent:
                    rank = _RANK_SHOP
                elif ev.kind == "close":
                    rank = _RANK_CLOSE
                else:
                    rank = _RANK_BUYER if ev.sender == "buyer" else _RANK_SELLER_SIDE
                add(eid)
                append((t, rank, eid, ev))
                self._frontier = prev = tail = t  # one source: its maximum is the frontier
                if max_seen is None or t > max_seen:
                    max_seen = t
                limit = max_seen + max_future
                wm = t - lateness
                if buf or wm >= horizon_end:
                    self._drain(wm, False)
                    horizon_end = self._horizon_end
                    continue
                # _drain's loop over _inorder alone; the entry just appended is later than ``wm``
                while True:
                    entry = inorder[0]
                    te = entry[0]
                    if te >= wm:
                        break
                    if timers and timers[0][0] < te:
                        fire(_heappop(timers))
                        continue
                    popleft()
                    discard(entry[2])
                    process(entry[3], False)
                while timers and timers[0][0] < wm:
                    fire(_heappop(timers))
        finally:
            if prev is not None:
                src_max[None] = prev
            self._tail, self.max_seen = tail, max_seen

    def _screen(self, ev: ChatMessage | ShopEvent, source: Hashable, t: int) -> bool:
        """Time sanity (see the module docstring): settle what ``ev`` says about a held tick and
        the held events, then hold ``ev`` itself if it is a step of more than ``max_future``
        ahead of everything seen. True when ``ev`` is taken care of (held, or a copy of a held
        event)."""
        mf = self._max_future
        tick = self._held_tick
        if tick is not None and t >= tick - mf:  # the data confirms the held tick
            self._held_tick = None
            self.advance(tick, True)
        held = self._held
        if held:
            eid = ev.event_id
            for queue in held.values():
                if any(h[0].event_id == eid for h in queue):
                    self.counters["duplicate"] += 1
                    return True
            prev = self._src_max.get(source)
            if prev is None or t >= prev - self._lateness:  # a late event gives no opinion
                for src in list(held):
                    self._settle(src, held[src], t, src == source)
        max_seen = self.max_seen
        if max_seen is not None and t > max_seen + mf:
            queue = held.get(source)
            if queue is None:
                queue = held[source] = []
            elif len(queue) >= _MAX_HELD:  # bounded: the oldest is applied as it came
                h = queue.pop(0)
                self.apply(h[0], source, True)
            queue.append([ev, 0])
            return True
        return False

    def _settle(self, source: Hashable, queue: list[list], t: int, own: bool) -> None:
        """What a current event at ``t`` says about ``source``'s held events, oldest first: it
        confirms those it comes within ``max_future`` of (from any source: independent evidence),
        and, from their own source, contradicts those it stays more than ``max_future`` behind
        (a source read ahead of the others is not contradicted by them, R6.2)."""
        mf = self._max_future
        while queue:
            h = queue[0]
            ht = h[0].t
            max_seen = self.max_seen
            if (max_seen is not None and ht <= max_seen + mf) or t >= ht - mf:
                queue.pop(0)  # confirmed, or no longer a step: applied as it would have been
                self.apply(h[0], source, True)
                continue
            if own and (max_seen is None or t <= max_seen + mf):  # its source carries on before it
                h[1] += 1
                if h[1] >= _CONTRADICTIONS:
                    queue.pop(0)
                    self._reject(h[0], source)
                    continue
            break
        if not queue and self._held.get(source) is queue:
            del self._held[source]

    def _reject(self, ev: ChatMessage | ShopEvent, source: Hashable) -> None:
        self.counters["invalid:future_time"] += 1
        if self._rejected is not None:
            self._rejected.append((source, ev))

    def take_rejected(self) -> list[tuple[Hashable, ChatMessage | ShopEvent]]:
        """The events rejected as ``future_time`` since the last call, with their sources
        (``keep_rejected=True``), for the adapter's dead-letter topic."""
        out = self._rejected or []
        if self._rejected is not None:
            self._rejected = []
        return out

    def _release_held(self, t: int | None) -> None:
        """Apply the held events that an accepted tick at ``t`` comes within ``max_future`` of
        (the clock has reached them) or, with None, every held event (the end of input: nothing
        decided against them). The others stay held: a tick only confirms (ticks walked through
        a backfill are no wall clock, and the router already refuses events ahead of the real
        one). In arrival order per source."""
        mf = self._max_future
        for source, queue in list(self._held.items()):
            keep = []
            for h in queue:
                if t is None or t >= h[0].t - mf:
                    if keep:  # (an earlier one still held: keep arrival order)
                        keep.append(h)
                        continue
                    self.apply(h[0], source, True)
                else:
                    keep.append(h)
            if keep:
                self._held[source] = keep
            else:
                del self._held[source]

    def _hold(self, entry: tuple) -> None:
        """Buffer an entry that is not later than the latest one. It usually belongs among the
        last few of _inorder (an event of the same second with a smaller rank or id, a little
        disorder): it is inserted there, so _inorder stays sorted; one further back goes into the
        heap. Keys are unique (one entry per buffered event_id): comparisons never reach the event.
        """
        inorder = self._inorder
        n = i = len(inorder)
        stop = n - 16 if n > 16 else 0
        while i > stop and entry < inorder[i - 1]:
            i -= 1
        if i == n:
            inorder.append(entry)
            self._tail = entry[0]
        elif i > stop or stop == 0:
            inorder.insert(i, entry)
        else:
            _heappush(self._buffer, entry)

    def _min_source(self) -> int | None:
        src_max = self._src_max
        if self._sources is None:
            return min(src_max.values())
        try:
            return min(src_max[s] for s in self._sources)
        except KeyError:
            return None  # a source not heard from yet holds the watermark back

    def advance(self, t: int, screened: bool = False) -> None:
        """A tick: every source has reached time ``t`` (R6.2 live mode: the wall clock).
        A tick more than ``max_future`` ahead of every event is held until an event confirms it
        (module docstring); an accepted tick confirms or rejects the events held before it."""
        if not screened and self._screening:
            ref = self.max_seen
            mf = self._max_future
            if ref is not None and t > ref + mf and not any(
                    t >= h[0].t - mf for queue in self._held.values() for h in queue):
                # (a held event it comes within max_future of is a second opinion: the data and
                # the clock agree, as after a backfill's jump of days; both are then applied)
                if self._held_tick is not None:
                    self.counters["rejected_ticks"] += 1
                self._held_tick = t
                return
            if self._held_tick is not None and self._held_tick <= t:
                self.counters["rejected_ticks"] += 1  # time caught up with it unconfirmed
                self._held_tick = None
            if self._held and (ref is None or t >= ref):  # a tick behind the clock gives no opinion
                self._release_held(t)
        src_max = self._src_max
        for s in (self._sources or ()):
            src_max.setdefault(s, t)
        if not src_max:
            src_max[None] = t
        for s, v in src_max.items():
            if t > v:
                src_max[s] = t
        if self.max_seen is None or t > self.max_seen:
            self.max_seen = t
        self._frontier = self._min_source()
        if self._frontier is not None:
            self._drain(self._frontier - self._lateness, False)

    def finish(self, until: int | None = None) -> None:
        """End of input: apply everything buffered and fire deadlines before ``until``.

        ``until`` defaults to the largest event time seen (``chatsla audit --until``).
        """
        if self._held:
            self._release_held(None)  # nothing contradicted them
        if self._held_tick is not None:
            self.counters["rejected_ticks"] += 1
            self._held_tick = None
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
        slot = entry[0] // _BUCKET
        if slot <= self._horizon:
            _heappush(self._timers, entry)
            return
        bucket = self._far.get(slot)
        if bucket is None:
            bucket = self._far[slot] = []
            _heappush(self._far_slots, slot)
        bucket.append(entry)

    def _open_buckets(self, wm: int) -> None:
        """Move every bucket up to the watermark's into the heap, dropping stale entries."""
        slot = wm // _BUCKET
        self._horizon = slot
        self._horizon_end = (slot + 1) * _BUCKET
        far_slots, timers = self._far_slots, self._timers
        while far_slots and far_slots[0] <= slot:
            for entry in self._far.pop(_heappop(far_slots)):
                if entry[1] == _TIMER_CONV and entry[3].scheduled != entry[0]:
                    continue  # superseded by an earlier entry for the same conversation
                _heappush(timers, entry)

    def _drain(self, wm: int, flush: bool) -> None:
        """Apply buffered events before ``wm`` (all of them when ``flush``) and fire deadlines
        before ``wm``, in time order; a deadline fires before an event only if strictly earlier."""
        if wm >= self._horizon_end:  # wm // _BUCKET > self._horizon, without a division
            self._open_buckets(wm)
        inorder, buf, timers, buffered = self._inorder, self._buffer, self._timers, self._buffered
        pop, popleft, process, fire = _heappop, inorder.popleft, self._process, self._fire
        while inorder or buf:
            # the smaller head of the two (keys are unique: one entry per buffered event_id)
            if buf and (not inorder or buf[0] < inorder[0]):
                entry = buf[0]
                in_heap = True
            else:
                entry = inorder[0]
                in_heap = False
            te = entry[0]
            if te >= wm and not flush:
                break
            due = te if te < wm else wm
            while timers and timers[0][0] < due:  # firing never adds events: entry stays first
                fire(pop(timers))
            if in_heap:
                pop(buf)
            else:
                popleft()
            buffered.discard(entry[2])
            process(entry[3], False)
        while timers and timers[0][0] < wm:
            fire(pop(timers))

    def _fire(self, entry: tuple) -> None:
        when = entry[0]
        if entry[1] == _TIMER_WEEK:
            shop = self.shops.get(entry[2])
            w = shop.weeks.get(entry[3]) if shop is not None else None
            if w is not None and w.status is None and w.end == when:
                w.status = "provisional" if w.pending else "final"
                self._emit_week(shop, w)
                self._forget_old_weeks(shop, when)
            return
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
        deadline, reason = self._close_deadline(c)
        if deadline <= when:
            self._close(c, deadline, reason)
            return
        if self._evaluate(c, when, True) and self.session_updates:  # the 24 h mark (R3)
            self._sink(SESSION, session_raw(c))
        self._reschedule(c)

    # ------------------------------------------------------------- transitions
    def _cutoff(self) -> int:
        f = self._frontier
        return -(1 << 62) if f is None else f - self._keep_ids

    def _process(self, ev: ChatMessage | ShopEvent, late: bool) -> None:
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
        f = self._frontier
        if f is not None and seen_ts[0] < f - self._keep_ids:
            # Out of the dedupe window: forgotten, and the floor keeps their copies out, so a
            # conversation stored after the watermark jumped still refuses an event that a
            # replay from the previous checkpoint delivers again (R6.1). An event that old and
            # not remembered cannot be told from a copy: dropped and counted (dedupe_overflow).
            gone = _forget_before(seen_ids, seen_ts, f - self._keep_ids)
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
        shop = self._shop(ev.shop_id)
        eid = dedupe_key(ev.event_id)
        if eid in shop.seen_ids:
            self.counters["duplicate"] += 1
            return
        if shop.floor is not None and ev.t <= shop.floor:
            self._overflowed()
            return
        _remember(shop.seen_ids, shop.seen_ts, eid, ev.t, self._cutoff())
        if len(shop.seen_ids) > self._max_ids:
            shop.floor = forget_oldest(shop.seen_ids, shop.seen_ts, self._ids_after_overflow, shop.floor)
        self._valid += 1
        if late:
            self.counters["late"] += 1
        if self._dirty_shops is not None:
            self._dirty_shops.add(shop.shop_id)
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
        slot = at // _BUCKET  # _push_timer inlined
        if slot <= self._horizon:
            _heappush(self._timers, (at, _TIMER_CONV, c.key, c))
            return
        bucket = self._far.get(slot)
        if bucket is None:
            bucket = self._far[slot] = []
            _heappush(self._far_slots, slot)
        bucket.append((at, _TIMER_CONV, c.key, c))

    def _close_deadline(self, c: Conversation) -> tuple[int, str]:
        """First platform closure of R2.4 (the 72 h clock wins a tie)."""
        if c.wait_start is not None:
            best, reason = c.wait_start + self._seller_timeout, SELLER_TIMEOUT
        else:
            best, reason = None, None
        side = c.last_side
        if side == SELLER:
            d = c.last_seller_at + self._buyer_timeout
            if best is None or d < best:
                best, reason = d, BUYER_TIMEOUT
        elif side == AUTO:
            d = c.last_seller_at + self._auto_timeout
            if best is None or d < best:
                best, reason = d, AUTO_REPLY_RESOLVED
        return best, reason

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
        live entry; a later deadline is pushed when that entry fires (see :meth:`_fire`)."""
        # the same deadlines as _close_deadline, inlined: this runs for nearly every event
        side = c.last_side
        deadline = c.wait_start + self._seller_timeout if c.wait_start is not None else None
        if side == SELLER or side == AUTO:
            d = c.last_seller_at + (self._buyer_timeout if side == SELLER else self._auto_timeout)
            if deadline is None or d < deadline:
                deadline = d
        if c.decided_at is None and not c.past24:
            d24 = c.opened_at + self._window
            if d24 < deadline:
                deadline = d24
        c.timer = deadline
        if c.scheduled is None or deadline < c.scheduled:
            c.scheduled = deadline  # _schedule and _push_timer inlined
            entry = (deadline, _TIMER_CONV, c.key, c)
            slot = deadline // _BUCKET
            if slot <= self._horizon:
                _heappush(self._timers, entry)
                return
            bucket = self._far.get(slot)
            if bucket is None:
                bucket = self._far[slot] = []
                _heappush(self._far_slots, slot)
            bucket.append(entry)

    def _schedule(self, c: Conversation) -> None:
        """Push a timer entry for ``c.timer``. The entry carries the conversation itself, so a due
        or opened entry needs no table lookup; its key before it orders ties deterministically,
        and entries equal up to the key are the same conversation's, so comparisons never reach
        the object."""
        c.scheduled = c.timer
        self._push_timer((c.timer, _TIMER_CONV, c.key, c))

    # ----------------------------------------------------------------- outputs
    def _emit_week(self, shop: Shop, w: Week) -> None:
        if self._dirty_shops is not None:
            self._dirty_shops.add(shop.shop_id)
        self._sink(ASSESSMENT, week_raw(shop.shop_id, w))

    def _collect(self, kind: str, record: tuple) -> None:
        self.out.append((kind, record))

    def take(self) -> list[tuple[str, tuple]]:
        """Hand over the raw records emitted since the last call (for adapters that batch)."""
        out, self.out = self.out, []
        return out

    def take_records(self) -> list[tuple[str, dict]]:
        """Like :meth:`take`, formatted as output records."""
        return [(kind, to_record(kind, raw, self.policy)) for kind, raw in self.take()]

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

    def settle(self) -> None:
        """Fire the deadlines already behind the watermark: after a restore, those of conversations
        evicted after their stored entry was written (an adapter deletes entries a checkpoint
        late, streams/runtime.py), so they go before any late event could find them. Every other
        stored deadline is ahead of the stored watermark, so nothing else happens here."""
        wm = self.watermark
        if wm is not None:
            if wm >= self._horizon_end:
                self._open_buckets(wm)
            timers = self._timers
            while timers and timers[0][0] < wm:
                self._fire(_heappop(timers))

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

    def meta(self) -> dict:
        """Stream-level state: watermarks, the not yet applied events, counters (JSON-friendly)."""
        return {
            "v": 2,
            "policy": self.policy.ref,
            "max_seen": self.max_seen,
            "sources": [[s, t] for s, t in self._src_max.items()],
            "buffer": [event_to_list(e[3]) for e in sorted((*self._inorder, *self._buffer), key=lambda e: e[:3])],
            "counters": dict(sorted(self.stats.items())),
            "held": [[s, [[event_to_list(ev), n] for ev, n in q]] for s, q in self._held.items()],
            "held_tick": self._held_tick,
        }

    def snapshot(self) -> dict:
        """Everything needed to continue exactly where this engine stands (JSON-friendly).

        The timer heap is not stored: it is rebuilt from each conversation's and week's own
        deadline, and its order depends only on their values, so a restored engine fires the
        same deadlines in the same order (R6.1: restarts never change a result).
        """
        snap = self.meta()
        snap["conversations"] = [self.conversation_entry(c) for c in self.convs.values()]
        snap["shops"] = [s.to_list() for s in self.shops.values()]
        return snap

    @classmethod
    def restore(cls, policy: Policy, config: EngineConfig, snap: dict, sink: Sink | None = None,
                **kwargs: object) -> "Engine":
        return cls.from_parts(policy, config, snap, snap["conversations"], snap["shops"], sink, **kwargs)

    @classmethod
    def from_parts(cls, policy: Policy, config: EngineConfig, meta: dict | None, conversations: Iterable[list],
                   shops: Iterable[list], sink: Sink | None = None, **kwargs: object) -> "Engine":
        """Rebuild an engine from stored parts, which may have been written at different moments:
        each conversation carries its own applied event ids and week contributions, so the
        weekly counters are recomputed here and events replayed after ``meta`` apply once."""
        e = cls(policy, config, sink, **kwargs)  # type: ignore[arg-type]
        if meta is not None:
            if meta.get("policy") != policy.ref:
                raise ValueError(f"state was made under {meta.get('policy')}, not {policy.ref}")
            e.max_seen = meta["max_seen"]
            for s, t in meta["sources"]:
                e._src_max[s if not isinstance(s, list) else tuple(s)] = t
            counters = dict(meta["counters"])
            e._valid = counters.pop("valid", 0)
            e._opened = counters.pop("sessions_opened", 0)
            for k in [k for k in counters if k.startswith("closed:")]:
                e._closed[k[7:]] = counters.pop(k)
            e.counters.update(counters)
            if e._src_max:
                e._frontier = e._min_source()
            for s, values in meta.get("held", ()):
                e._held[s if not isinstance(s, list) else tuple(s)] = [[event_from_list(v), n] for v, n in values]
            e._held_tick = meta.get("held_tick")
        for values in shops:
            shop = Shop.from_list(values)
            e.shops[shop.shop_id] = shop
        horizon = None if e._frontier is None else e._frontier - e._lateness - config.week_retention
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
                    e._push_timer((w.end, _TIMER_WEEK, shop.shop_id, w.week_start))
                else:
                    # An assessed week is final exactly when nothing in it is pending (_fire,
                    # _decide, _open keep this). Conversations stored after their shop's entry
                    # may have decided or opened sessions since; their events are skipped on
                    # replay, so the status they changed is restored here (R6.1).
                    w.status = "provisional" if w.pending else "final"
        if meta is not None:
            for values in meta["buffer"]:
                ev = event_from_list(values)
                if ev.event_id in e._buffered:  # (t, rank, event_id) keys are unique, as in apply
                    e.counters["duplicate"] += 1
                    continue
                e._buffer.append((ev.t, _rank(ev), ev.event_id, ev))
                e._buffered.add(ev.event_id)
            heapq.heapify(e._buffer)
        return e


def event_to_list(ev: ChatMessage | ShopEvent) -> list:
    if type(ev) is ShopEvent:
        return ["s", ev.event_id, ev.shop_id, ev.type, ev.t, ev.timezone]
    return ["c", ev.event_id, ev.shop_id, ev.conversation_id, ev.sender, ev.t, ev.kind, ev.message_type, ev.platform]


def event_from_list(v: list) -> ChatMessage | ShopEvent:
    if v[0] == "s":
        return ShopEvent(v[1], v[2], v[3], v[4], v[5])
    return new_chat_message(v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8])
