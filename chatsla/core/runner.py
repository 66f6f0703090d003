"""The model-independent runner: event time, watermarks, lateness, time sanity, the buffer, the
timer queue and the snapshot envelope (RULES R6; issue #12).

Pure and deterministic: no clock, no I/O. Time enters only as event times and ``advance`` ticks
(RULES R6). The same runner serves the offline audit, the Faust worker (one per partition) and
the replay, which is why live and audit results agree. What the events *mean* is left to the
models it hosts (``chatsla.core.models``: chat sessions R2-R5, and the models plugged in after
them); the runner only decides when each event and each deadline reaches its model.

How order is made deterministic (R6.2, R6.3):

* Events are held in a buffer until the watermark passes them, then applied in
  ``(time, rank, event_id)`` order, so any arrival order within the lateness gives the time-sorted
  result. ``rank`` (the model's :meth:`~chatsla.core.models.Model.rank`) breaks ties at one
  instant; a shop event's is always 0, so it comes first.
* An input may interleave several sources (the partitions of the input topics, in the worker).
  Each source has its own watermark, its largest event time minus ``allowed_lateness`` (R6.2); an
  event is late when it is behind its own source's watermark. Buffered events are released, and
  deadlines fire, only when the *smallest* source watermark passes them, so a source read ahead of
  the others (a backlog, a rebalance) cannot reorder anything.
* Deadlines that models schedule fire when that watermark passes them, interleaved with buffered
  events by time: a deadline fires before an event at the same instant only if strictly earlier.
* A late event is applied at once in log order (``late=True`` for its model, which flags what
  it changes, R6.4).
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
* Duplicates: a copy of an event still waiting in the buffer (or held) is dropped here; every
  other duplicate is recognised by the model, which remembers ids with its entity (a
  conversation, a shop), so a stored entity knows by itself which events it already contains.

Timers. A model schedules a deadline with :meth:`Runner.schedule` (``model.fire(when, key)`` once
the watermark passes ``when``) or, on its hot paths, pushes a ready-made entry ``(when, channel,
key, obj)`` with ``host.push`` on a channel it opened with :meth:`Runner.timer_channel`.
Entries at one instant fire in (channel, key) order; channels are numbered by the model's place
among the hosted models, so that order is the same in every run and after every restore (R6.1).
Deadlines within the current ten minutes of the watermark live in a heap; later ones wait in
ten-minute buckets. Most far deadlines (24 h, 72 h) are superseded before they are due: on a
``supersedable`` channel, an entry whose ``obj.scheduled`` is no longer its time is dropped when
its bucket opens, without ever costing a heap pop. The timer queue is not stored: each model
re-schedules its deadlines from its own state on restore, and the order depends only on their
values, so a restored runner fires the same deadlines in the same order.

Routing (``chatsla.core.models.route``): with one model hosted every event goes to it (a chat
policy's engine is exactly the engine it always was); with several, each event goes to the model
of its kind, and a shop event to every hosted model (``lead``, the first, counts it).
"""

from __future__ import annotations

import heapq
import weakref
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable

from chatsla.core.events import (AftersaleRequest, ChatMessage, ShopEvent, TicketEvent, aftersale_from_list,
                                 aftersale_to_list, new_chat_message, ticket_from_list, ticket_to_list)
from chatsla.core.models import route
from chatsla.core.records import to_record
from chatsla.core.timefmt import DAY, HOUR, MINUTE

_heappush, _heappop = heapq.heappush, heapq.heappop

# Time sanity (module docstring): a held step is rejected once this many current events of its
# own source have carried on more than max_future before it; a source holds at most MAX_HELD.
CONTRADICTIONS = 3
MAX_HELD = 64
# Width of a timer bucket: the timer heap holds about this much of the deadlines ahead, so its
# pushes and pops stay cheap; each bucket costs one heap operation on an integer when it opens.
BUCKET = 10 * MINUTE
# Timer channels per hosted model (channel = model index * CHANNELS + sub-channel); the last one
# is the model's :meth:`Runner.schedule` channel.
CHANNELS = 8

Sink = Callable[[str, tuple], None]
Event = Any  # ChatMessage | ShopEvent, and the models' own event types


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Engine settings that are not platform rules (those are in :class:`Policy`)."""

    allowed_lateness: int = 2 * MINUTE  # R6.2
    default_timezone: str = "UTC"  # R1: a shop never told its zone
    dedupe_window: int = 8 * DAY  # how long an event_id is remembered behind the watermark
    week_retention: int = 35 * DAY  # how long a week's counters are kept after it ended
    # How far one event or tick may move its source's clock on its own (None: no limit). A
    # larger step waits for a second opinion (see the runner's "Time sanity"); a skewed producer
    # clock or a hand-written record can then never drag the watermark into the future.
    max_future: int | None = HOUR
    # event ids remembered per conversation (and per shop) at most: bounds a stored entry far
    # under Kafka's 1 MB record limit whatever the traffic (chatsla.core.sessions, issue #10)
    max_remembered_ids: int = 1000
    # R9.8: a pending ticket is "at risk" once its remaining service time is under this (the
    # service_tickets model's live view; an engine setting, not a platform rule)
    ticket_at_risk: int = HOUR


def _collector(out: list) -> Sink:
    def collect(kind: str, record: tuple) -> None:
        out.append((kind, record))

    return collect


class StreamTime:
    """The stream's frontier and its timer queue, shared by the runner and its models.

    It refers to neither (the channels' handlers stay with the runner, and models reach the
    runner through a weak proxy), so a runner and its models form no reference cycle: a dropped
    engine is freed at once by reference counting, as the one-piece engine was, and the audit's
    ``gc.disable()`` leaves nothing behind (BENCHMARKS.md)."""

    __slots__ = ("frontier", "heap", "far", "far_slots", "horizon", "horizon_end", "supersedable")

    def __init__(self) -> None:
        self.frontier: int | None = None  # the smallest source maximum: what the watermark follows
        # Deadlines within the current bucket of the watermark live in a heap; later ones wait in
        # buckets until the watermark reaches them (module docstring).
        self.heap: list[tuple] = []
        self.far: dict[int, list[tuple]] = {}
        self.far_slots: list[int] = []
        self.horizon = -1  # bucket index up to which deadlines go straight into the heap
        self.horizon_end = 0  # start of the bucket after it: a watermark there opens buckets
        self.supersedable: list[bool] = []  # per channel

    def push(self, entry: tuple) -> None:
        """Queue a timer entry ``(when, channel, key, obj)`` (see :meth:`Runner.timer_channel`)."""
        slot = entry[0] // BUCKET
        if slot <= self.horizon:
            _heappush(self.heap, entry)
            return
        bucket = self.far.get(slot)
        if bucket is None:
            bucket = self.far[slot] = []
            _heappush(self.far_slots, slot)
        bucket.append(entry)

    def open_buckets(self, wm: int) -> None:
        """Move every bucket up to the watermark's into the heap, dropping superseded entries."""
        slot = wm // BUCKET
        self.horizon = slot
        self.horizon_end = (slot + 1) * BUCKET
        far_slots, timers, supersedable, far = self.far_slots, self.heap, self.supersedable, self.far
        while far_slots and far_slots[0] <= slot:
            for entry in far.pop(_heappop(far_slots)):
                if supersedable[entry[1]] and entry[3].scheduled != entry[0]:
                    continue  # superseded by an earlier entry for the same object
                _heappush(timers, entry)


def _rank_zero(ev: Event) -> int:
    return 0  # a shop event's rank (R6.3, R9.1); an event no hosted model takes


class _Router:
    """Several models hosted: each event to its own model (``chatsla.core.models.route``), a shop
    event to every model.

    ``route`` depends on an event's type alone, and for a chat message on its platform (RULES
    A.3: by schema, then platform), so its answer is kept per type (``procs``, ``ranks``: the
    target model's bound ``process`` and ``rank``) and per chat platform, filled from ``route``
    at the first event of each and emptied when a model is hosted. The runner's hot loops look
    an event's type up in these tables themselves: a ticket reaches its model with no call in
    between, a chat message through one (its platform), where ``route`` and this router's
    methods cost two calls per event each for ranking and applying (issue #12). Models install
    their wrappers (``track``, shop counts) before they are hosted, as with one model hosted."""

    __slots__ = ("models", "by_kind", "counters", "procs", "ranks", "chat_procs", "chat_ranks", "_fixed", "_target")

    def __init__(self, models: list, by_kind: dict[str, Any], counters: Counter[str]) -> None:
        self.models, self.by_kind, self.counters = models, by_kind, counters
        procs: dict[type, Callable[[Event, bool], None]] = {}
        ranks: dict[type, Callable[[Event], int]] = {}
        chat_procs: dict[str, Callable[[Event, bool], None]] = {}
        chat_ranks: dict[str, Callable[[Event], int]] = {}
        self.procs, self.ranks, self.chat_procs, self.chat_ranks = procs, ranks, chat_procs, chat_ranks

        # The tables' entries are closures over the tables and the model list, never over the
        # router or the runner: a runner and its models form no reference cycle (StreamTime).
        def unrouted(ev: Event, late: bool) -> None:
            counters["unrouted"] += 1  # (no model of its kind hosted here)

        def target(ev: Event) -> tuple[Callable[[Event, bool], None], Callable[[Event], int]]:
            m = by_kind.get(route(ev))
            if m is None:
                return unrouted, _rank_zero
            return m.process, m.rank

        def shop(ev: Event, late: bool) -> None:
            for m in models:
                m.process(ev, late)

        def chat_process(ev: ChatMessage, late: bool) -> None:
            try:
                f = chat_procs[ev.platform]
            except KeyError:
                chat_procs[ev.platform], chat_ranks[ev.platform] = target(ev)
                f = chat_procs[ev.platform]
            f(ev, late)

        def chat_rank(ev: ChatMessage) -> int:
            try:
                f = chat_ranks[ev.platform]
            except KeyError:
                chat_procs[ev.platform], chat_ranks[ev.platform] = target(ev)
                f = chat_ranks[ev.platform]
            return f(ev)

        self._target = target
        self._fixed = ((ShopEvent, shop, _rank_zero), (ChatMessage, chat_process, chat_rank))
        self.reset()

    def reset(self) -> None:
        """Forget the routes (a model was hosted)."""
        for table in (self.procs, self.ranks, self.chat_procs, self.chat_ranks):
            table.clear()
        for tp, proc, rank in self._fixed:
            self.procs[tp], self.ranks[tp] = proc, rank

    def process(self, ev: Event, late: bool) -> None:
        try:
            f = self.procs[type(ev)]
        except KeyError:
            self.procs[type(ev)], self.ranks[type(ev)] = self._target(ev)
            f = self.procs[type(ev)]
        f(ev, late)

    def rank(self, ev: Event) -> int:
        try:
            f = self.ranks[type(ev)]
        except KeyError:
            self.procs[type(ev)], self.ranks[type(ev)] = self._target(ev)
            f = self.ranks[type(ev)]
        return f(ev)


class Runner:
    """One ordered input stream (a file, or one Kafka partition), hosting one model per kind.

    Models are added with :meth:`add_model` (or :meth:`restore_model`), in a fixed order: that
    order numbers their timer channels and decides which counts a shop event (``lead``)."""

    def __init__(self, config: EngineConfig = EngineConfig(), sink: Sink | None = None,
                 session_updates: bool = True, sources: Iterable[Hashable] | None = None,
                 track_dirty: bool = False, keep_rejected: bool = False,
                 shop_stats: Iterable[str] | None = None) -> None:
        """``session_updates=False``: models emit an entity's record only when it is final, and
        what is still open at :meth:`finish` (enough for a report of final states: the audit).
        ``sources``: the sources whose watermarks must all pass an event before it is applied
        (the input partitions); by default, every source seen so far. ``track_dirty``: models
        remember what changed, for adapters that persist state incrementally. ``keep_rejected``:
        keep the events rejected as ``future_time`` for :meth:`take_rejected` (the worker sends
        them to a dead-letter topic; the audit only counts them). ``shop_stats``: also count
        these shops' own counters (:meth:`shop_stats`, the appeal pack, issue #13)."""
        self.config = config
        self.session_updates = session_updates
        self.track_dirty = track_dirty
        self.max_seen: int | None = None  # largest event time of any source
        self.counters: Counter[str] = Counter()  # the runner's counters, and models' cold ones
        self.out: list[tuple[str, tuple]] = []
        # models' output (host.emit); the default collects into ``out`` (no reference to self)
        self.emit: Sink = sink if sink is not None else _collector(self.out)
        self.time = StreamTime()
        self.push = self.time.push  # (host.push: a model may keep it, it holds no runner)
        # what models are handed as their host: a runner is owned by its caller, not its models
        self._proxy = weakref.proxy(self)
        self.models: list = []
        self.lead = None  # the first hosted model: it counts shop events (a shop event counts once)
        self._by_kind: dict[str, Any] = {}
        self._building = 0  # index of the model being built or restored (its timer channels)
        self._src_max: dict[Hashable, int] = {}
        self._sources = tuple(sources) if sources is not None else None
        # Buffered events wait as (t, rank, event_id, event) entries, applied in key order. Nearly
        # every event is later than all buffered ones, so it is appended to ``_inorder``, which
        # stays sorted; only the others go into the ``_buffer`` heap. Releasing merges the two.
        self._inorder: deque[tuple] = deque()
        self._tail = -(1 << 62)  # time of the last entry of _inorder (when it has one)
        self._buffer: list[tuple] = []
        # ids of buffered events: a copy arriving while its original still waits in the buffer
        # (a producer retry, a router replaying after a crash) is a duplicate, not a late event
        self._buffered: set[str] = set()
        # Timers (module docstring): (when, channel, key, obj) entries in self.time's queue
        self._timers = self.time.heap  # (never rebound)
        self._handlers: list[Callable[[tuple], None] | None] = []  # per channel: fire(entry)
        self._lateness = config.allowed_lateness
        self._screening = config.max_future is not None
        self._max_future = config.max_future if config.max_future is not None else 1 << 62
        # per source, in arrival order: [event, contradictions] of steps awaiting a second opinion
        self._held: dict[Hashable, list[list]] = {}
        self._held_tick: int | None = None
        self._rejected: list[tuple[Hashable, Event]] | None = [] if keep_rejected else None
        # per-shop counters (shop_stats), None when not asked for: nothing is counted then
        self.shop_counters: dict[str, Counter[str]] | None = (
            {s: Counter() for s in shop_stats} if shop_stats is not None else None)
        self.unnamed_invalid = 0  # invalid records naming no shop (count_invalid)
        # how an event reaches its model: the one model's own methods when only one is hosted,
        # else the router's (an object apart: the runner keeps no bound method of its own)
        self._router = _Router(self.models, self._by_kind, self.counters)
        self._process: Callable[[Event, bool], None] = self._router.process
        self._rank: Callable[[Event], int] = self._router.rank
        # the hot loops' dispatch (apply_many, _drain) with several models hosted: an event's type
        # -> its model's process and rank; a type missing here goes through _process / _rank
        # (which route it, and fill the tables). None with one model: its own methods are called.
        self._procs: dict[type, Callable[[Event, bool], None]] | None = self._router.procs
        self._ranks: dict[type, Callable[[Event], int]] | None = self._router.ranks

    # ----------------------------------------------------------------- models
    def add_model(self, cls: type, policy: object) -> Any:
        """Build and host a model of ``cls`` (``cls(policy, config, host)``)."""
        self._building = len(self.models)
        return self._host(cls(policy, self.config, self._proxy))

    def restore_model(self, cls: type, policy: object, snap: dict) -> Any:
        """Host a model restored from a snapshot (``cls.restore(policy, config, host, snap)``);
        it re-schedules its own deadlines."""
        self._building = len(self.models)
        return self._host(cls.restore(policy, self.config, self._proxy, snap))

    def _host(self, model: Any) -> Any:
        kind = model.kind
        if kind in self._by_kind:
            raise ValueError(f"one model per kind: {kind} is hosted already")
        self.models.append(model)
        self._by_kind[kind] = model
        if self.lead is None:
            self.lead = model
        if len(self.models) == 1:  # no routing: the model's own bound methods, as fast as can be
            self._process, self._rank = model.process, model.rank
            self._procs = self._ranks = None  # (the hot loops call those directly)
        else:
            self._process, self._rank = self._router.process, self._router.rank
            self._router.reset()
            self._procs, self._ranks = self._router.procs, self._router.ranks
        return model

    def model(self, kind: str) -> Any:
        """The hosted model of ``kind``, or None."""
        return self._by_kind.get(kind)

    # ------------------------------------------------------------------ timers
    def timer_channel(self, fire: Callable[[tuple], None], sub: int = 0, supersedable: bool = False) -> int:
        """Open the model being built's timer channel ``sub`` (0 to CHANNELS - 2): entries
        ``(when, channel, key, obj)`` pushed on it are handed to ``fire(entry)`` once the
        watermark passes ``when``. Keys on one channel must compare with each other (ties fire
        in key order); ``supersedable``: ``obj.scheduled != when`` marks an entry as superseded,
        dropped unfired when its bucket opens. Returns the channel number."""
        if not 0 <= sub < CHANNELS - 1:
            raise ValueError(f"timer sub-channel {sub} outside 0..{CHANNELS - 2}")
        ch = self._building * CHANNELS + sub
        self._open_channel(ch, fire, supersedable)
        return ch

    def _open_channel(self, ch: int, fire: Callable[[tuple], None], supersedable: bool) -> None:
        handlers = self._handlers
        while len(handlers) <= ch:
            handlers.append(None)
            self.time.supersedable.append(False)
        handlers[ch] = fire
        self.time.supersedable[ch] = supersedable

    def schedule(self, when: int, model: Any, key: Hashable) -> None:
        """Have ``model.fire(when, key)`` called once the watermark passes ``when`` (the model
        checks its own state then: an entry may be stale). Keys of one model must compare with
        each other."""
        try:
            idx = self.models.index(model)
        except ValueError:
            idx = self._building  # a model scheduling while it is built or restored
        ch = idx * CHANNELS + CHANNELS - 1
        if ch >= len(self._handlers) or self._handlers[ch] is None:
            self._open_channel(ch, lambda e, m=model: m.fire(e[0], e[2]), False)
        self.push((when, ch, key, None))

    @property
    def frontier(self) -> int | None:
        """The smallest source maximum: what the watermark follows (``self.time.frontier``)."""
        return self.time.frontier

    def _fire(self, entry: tuple) -> None:
        self._handlers[entry[1]](entry)  # type: ignore[misc]

    # ------------------------------------------------------------------ input
    @property
    def stats(self) -> Counter[str]:
        """The runner's counters (``duplicate`` of buffered copies, ``invalid:future_time``,
        ``rejected_ticks``) merged with every hosted model's (R8)."""
        c = Counter(self.counters)
        for m in self.models:
            c.update(m.stats())
        return c

    @property
    def watermark(self) -> int | None:
        """Everything before this instant has been applied and every deadline before it fired."""
        f = self.time.frontier
        return None if f is None else f - self._lateness

    def apply(self, ev: Event, source: Hashable = None, screened: bool = False) -> None:
        """Take one valid event in log order, read from ``source`` (an input partition).
        ``screened``: the time-sanity check was done (a held event being released)."""
        eid = ev.event_id
        if self.shop_counters is not None and not screened:  # screened: held, read once already
            sc = self.shop_counters.get(ev.shop_id)
            if sc is not None:
                sc["read"] += 1
        buffered = self._buffered
        if eid in buffered:
            self._duplicate(ev)
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
                if self.time.frontier is not None:
                    self._drain(self.time.frontier - self._lateness, False)  # deadlines it put behind us
                return
            buffered.add(eid)
            self._hold((t, self._rank(ev), eid, ev))
            return
        # The source moves on, as with nearly every event.
        rank = self._rank(ev)
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
            self.time.frontier = t
            wm = t - self._lateness
            if self._buffer or wm >= self.time.horizon_end:
                self._drain(wm, False)
                return
            # One source and nothing in the heap, as for nearly every event: _drain's loop over
            # _inorder alone. The entry just appended is later than ``wm``, so it ends the loop.
            inorder, timers, handlers = self._inorder, self._timers, self._handlers
            while inorder[0][0] < wm:
                entry = inorder[0]
                if timers and timers[0][0] < entry[0]:
                    fired = _heappop(timers)
                    handlers[fired[1]](fired)
                    continue
                inorder.popleft()
                buffered.discard(entry[2])
                self._process(entry[3], False)
            while timers and timers[0][0] < wm:
                fired = _heappop(timers)
                handlers[fired[1]](fired)
            return
        if prev is None or prev == self.time.frontier:
            frontier = self.time.frontier = self._min_source()
        else:
            frontier = self.time.frontier
        if frontier is not None:
            self._drain(frontier - self._lateness, False)

    def apply_many(self, events: Iterable[Event]) -> None:
        """``apply(ev)`` for each of ``events``, all read from the default source, in log order.

        The offline audit feeds its decoded events here in chunks. Nearly every event takes the
        path that :meth:`apply` singles out (one source, later than everything buffered, nothing in
        the heap); here it runs in one loop on local variables, which saves a call and a dozen
        attribute reads per event (BENCHMARKS.md). Any other event goes through :meth:`apply`.
        """
        apply = self.apply
        src_max = self._src_max
        if (self._sources is not None or any(s is not None for s in src_max) or self._held_tick is not None
                or self.shop_counters is not None):
            for ev in events:
                apply(ev)
            return
        buffered, inorder, timers, buf = self._buffered, self._inorder, self._timers, self._buffer
        add, discard, append, popleft = buffered.add, buffered.discard, inorder.append, inorder.popleft
        lateness, handlers = self._lateness, self._handlers
        # The source's maximum, the time of the last entry of _inorder and max_seen live in locals:
        # of what this loop calls only apply reads them (they are written back before it and read
        # again after it, and at the end), and only _drain moves the bucket horizon. The model's
        # methods are read again after apply and _drain too (hosting never happens in between,
        # but it costs nothing).
        prev, tail, max_seen = src_max.get(None), self._tail, self.max_seen
        clock = self.time
        horizon_end = clock.horizon_end
        # dispatch by the event's type (the tables of _host and _Router); a type not there yet
        # goes through _process / _rank, which route it
        process, rank_of, procs, ranks = self._process, self._rank, self._procs, self._ranks
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
                    horizon_end = clock.horizon_end
                    limit = -1 if held else (max_seen if max_seen is not None else 1 << 62) + max_future
                    continue
                # the source moves on: apply's fast path
                add(eid)
                if ranks is None:
                    append((t, rank_of(ev), eid, ev))
                else:
                    try:
                        rank = ranks[type(ev)]
                    except KeyError:
                        rank = rank_of
                    append((t, rank(ev), eid, ev))
                clock.frontier = prev = tail = t  # one source: its maximum is the frontier
                if max_seen is None or t > max_seen:
                    max_seen = t
                limit = max_seen + max_future
                wm = t - lateness
                if buf or wm >= horizon_end:
                    self._drain(wm, False)
                    horizon_end = clock.horizon_end
                    continue
                # _drain's loop over _inorder alone; the entry just appended is later than ``wm``
                while True:
                    entry = inorder[0]
                    te = entry[0]
                    if te >= wm:
                        break
                    if timers and timers[0][0] < te:
                        fired = _heappop(timers)
                        handlers[fired[1]](fired)
                        continue
                    popleft()
                    discard(entry[2])
                    if procs is None:
                        process(entry[3], False)
                    else:
                        e = entry[3]
                        try:
                            to = procs[type(e)]
                        except KeyError:
                            to = process
                        to(e, False)
                while timers and timers[0][0] < wm:
                    fired = _heappop(timers)
                    handlers[fired[1]](fired)
        finally:
            if prev is not None:
                src_max[None] = prev
            self._tail, self.max_seen = tail, max_seen

    def _duplicate(self, ev: Event) -> None:
        """A copy of an event still buffered or held: dropped before any model sees it."""
        self.counters["duplicate"] += 1
        if self.shop_counters is not None:
            sc = self.shop_counters.get(ev.shop_id)
            if sc is not None:
                sc["duplicate"] += 1

    def _screen(self, ev: Event, source: Hashable, t: int) -> bool:
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
                    self._duplicate(ev)
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
            elif len(queue) >= MAX_HELD:  # bounded: the oldest is applied as it came
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
                if h[1] >= CONTRADICTIONS:
                    queue.pop(0)
                    self._reject(h[0], source)
                    continue
            break
        if not queue and self._held.get(source) is queue:
            del self._held[source]

    def _reject(self, ev: Event, source: Hashable) -> None:
        self.counters["invalid:future_time"] += 1
        if self.shop_counters is not None:
            sc = self.shop_counters.get(ev.shop_id)
            if sc is not None:
                sc["invalid:future_time"] += 1
        if self._rejected is not None:
            self._rejected.append((source, ev))

    def take_rejected(self) -> list[tuple[Hashable, Event]]:
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
        frontier = self.time.frontier = self._min_source()
        if frontier is not None:
            self._drain(frontier - self._lateness, False)

    def finish(self, until: int | None = None) -> None:
        """End of input: apply everything buffered and fire deadlines before ``until``, then
        let each model finish (what is still open, for ``session_updates=False``).

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
        for m in self.models:
            m.finish(w)

    def settle(self) -> None:
        """Fire the deadlines already behind the watermark: after a restore, those of entities
        evicted after their stored entry was written (an adapter deletes entries a checkpoint
        late, streams/runtime.py), so they go before any late event could find them. Every other
        stored deadline is ahead of the stored watermark, so nothing else happens here."""
        wm = self.watermark
        if wm is not None:
            if wm >= self.time.horizon_end:
                self.time.open_buckets(wm)
            timers, handlers = self._timers, self._handlers
            while timers and timers[0][0] < wm:
                fired = _heappop(timers)
                handlers[fired[1]](fired)

    # ---------------------------------------------------------------- ordering
    def _drain(self, wm: int, flush: bool) -> None:
        """Apply buffered events before ``wm`` (all of them when ``flush``) and fire deadlines
        before ``wm``, in time order; a deadline fires before an event only if strictly earlier."""
        if wm >= self.time.horizon_end:  # wm // BUCKET > horizon, without a division
            self.time.open_buckets(wm)
        inorder, buf, timers, buffered = self._inorder, self._buffer, self._timers, self._buffered
        pop, popleft, handlers, process, procs = _heappop, inorder.popleft, self._handlers, self._process, self._procs
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
                fired = pop(timers)
                handlers[fired[1]](fired)
            if in_heap:
                pop(buf)
            else:
                popleft()
            buffered.discard(entry[2])
            if procs is None:
                process(entry[3], False)
            else:
                ev = entry[3]
                try:
                    to = procs[type(ev)]
                except KeyError:
                    to = process
                to(ev, False)
        while timers and timers[0][0] < wm:
            fired = pop(timers)
            handlers[fired[1]](fired)

    # ----------------------------------------------------------------- outputs
    def take(self) -> list[tuple[str, tuple]]:
        """Hand over the raw records emitted since the last call (for adapters that batch)."""
        out = self.out[:]  # (the default sink appends to this very list)
        self.out.clear()
        return out

    def take_records(self) -> list[tuple[str, dict]]:
        """Like :meth:`take`, formatted as output records (each kind with its model's policy)."""
        policies = {}
        for m in reversed(self.models):
            for kind in getattr(m, "record_kinds", ()):
                policies[kind] = m.policy
        lead = self.lead.policy if self.lead is not None else None
        # chat sessions emit compact tuples (formatted here); the other models emit their records
        # formatted already (dicts: "ticket", "wait", "period")
        return [(kind, raw if type(raw) is dict else to_record(kind, raw, policies.get(kind, lead)))
                for kind, raw in self.take()]

    # ------------------------------------------------------------ shop counts
    def count_invalid(self, shop_id: str | None, reason: str) -> None:
        """An input record that decoding rejected (R1), with the shop it names, if any
        (``shop_stats``; otherwise nothing is counted)."""
        if self.shop_counters is None:
            return
        if shop_id is None:
            self.unnamed_invalid += 1
            return
        c = self.shop_counters.get(shop_id)
        if c is not None:
            c["read"] += 1
            c["invalid:" + reason] += 1

    def shop_stats(self, shop_id: str) -> dict:
        """A ``shop_stats`` shop's own counters, keyed as the report's ``stats`` are (read = valid
        + duplicate + invalid). Counted where the runner and the models count (the models add
        theirs to ``shop_counters``), so the shops' counts add up to :attr:`stats`."""
        if self.shop_counters is None:
            raise RuntimeError("Engine(shop_stats=...) is needed for shop_stats()")
        c = self.shop_counters[shop_id]
        invalid = {k.split(":", 1)[1]: v for k, v in sorted(c.items()) if k.startswith("invalid:") and v}
        closed = {k.split(":", 1)[1]: v for k, v in sorted(c.items()) if k.startswith("closed:") and v}
        return {"read": c["read"], "valid": c["valid"], "duplicate": c["duplicate"], "invalid": sum(invalid.values()),
                "invalid_by_reason": invalid, "late": c["late"], "outreach": c["outreach"],
                "sessions_opened": c["sessions_opened"], "sessions_closed": closed}

    # ------------------------------------------------------------------- state
    def meta(self) -> dict:
        """Stream-level state: watermarks, the not yet applied events, counters (JSON-friendly).
        With several models, also each model's own counters (so a restore can hand them back)."""
        meta = {
            "v": 2,
            "policy": self.lead.policy.ref if self.lead is not None else None,
            "max_seen": self.max_seen,
            "sources": [[s, t] for s, t in self._src_max.items()],
            "buffer": [event_to_list(e[3]) for e in sorted((*self._inorder, *self._buffer), key=lambda e: e[:3])],
            "counters": dict(sorted(self.stats.items())),
            "held": [[s, [[event_to_list(ev), n] for ev, n in q]] for s, q in self._held.items()],
            "held_tick": self._held_tick,
        }
        if len(self.models) > 1:
            meta["policies"] = [m.policy.ref for m in self.models]
            meta["model_counters"] = {m.kind: dict(sorted(m.stats().items())) for m in self.models}
        return meta

    def snapshot(self) -> dict:
        """Everything needed to continue exactly where this runner stands (JSON-friendly): the
        envelope (:meth:`meta`), then each model's own parts under its own top-level keys.

        The timer queue is not stored (module docstring)."""
        snap = self.meta()
        for m in self.models:
            parts = m.snapshot()
            clash = snap.keys() & parts.keys()
            if clash:
                raise ValueError(f"model {m.kind} snapshot keys {sorted(clash)} are taken")
            snap.update(parts)
        return snap

    @classmethod
    def from_snapshot(cls, config: EngineConfig, models: Iterable[tuple[type, Any]], snap: dict,
                      sink: Sink | None = None, **kwargs: Any) -> "Runner":
        """A runner hosting ``models`` (``(class, policy)`` pairs, in the stored order) restored from
        :meth:`snapshot` (R6.1: it continues exactly where that one stood)."""
        runner = cls(config, sink, **kwargs)
        runner.restore_models(list(models), snap)
        return runner

    def restore_models(self, models: list[tuple[type, Any]], snap: dict) -> None:
        """Restore the envelope, then each model from its own parts and counters, then the
        buffer (its ranks are the models')."""
        refs = [p.ref for _, p in models]
        stored = snap.get("policies") or [snap.get("policy")]
        if refs != stored:
            raise ValueError(f"state was made under {', '.join(map(str, stored))}, not {', '.join(refs)}")
        self.restore_meta(snap)
        for cls, policy in models:
            self.restore_model(cls, policy, dict(snap, counters=self.model_counters(snap, cls.kind, len(models))))
        self.restore_counters(snap)
        self.restore_buffer(snap)

    def restore_meta(self, meta: dict) -> None:
        """The envelope of a snapshot, before the models are restored (their restore reads
        ``frontier``)."""
        self.max_seen = meta["max_seen"]
        for s, t in meta["sources"]:
            self._src_max[s if not isinstance(s, list) else tuple(s)] = t
        if self._src_max:
            self.time.frontier = self._min_source()
        for s, values in meta.get("held", ()):
            self._held[s if not isinstance(s, list) else tuple(s)] = [[event_from_list(v), n] for v, n in values]
        self._held_tick = meta.get("held_tick")

    @staticmethod
    def model_counters(meta: dict, kind: str, n_models: int) -> dict:
        """The counters a snapshot gives back to the model of ``kind``: all of them with one
        model hosted (it takes its own, :meth:`restore_counters` keeps the rest), its own part
        with several."""
        if n_models > 1 and "model_counters" in meta:
            return dict(meta["model_counters"].get(kind, {}))
        return dict(meta["counters"])

    def restore_counters(self, meta: dict) -> None:
        """After the models' restore: the runner keeps what no model took back, so :attr:`stats`
        are the stored ones."""
        rest = Counter(meta["counters"])
        for m in self.models:
            rest.subtract(m.stats())
        self.counters.update({k: v for k, v in rest.items() if v})

    def restore_buffer(self, meta: dict) -> None:
        """The events a snapshot had not applied yet, after the models are hosted (rank)."""
        for values in meta["buffer"]:
            ev = event_from_list(values)
            if ev.event_id in self._buffered:  # (t, rank, event_id) keys are unique, as in apply
                self.counters["duplicate"] += 1
                continue
            self._buffer.append((ev.t, self._rank(ev), ev.event_id, ev))
            self._buffered.add(ev.event_id)
        heapq.heapify(self._buffer)


# Other event types' list codecs (e.g. "t" for TicketEvent): type -> (tag, to_list); tag -> from_list.
# to_list gives the whole tagged list (its first item the tag).
_ENCODERS: dict[type, Callable[[Any], list]] = {}
_DECODERS: dict[str, Callable[[list], Any]] = {}


def register_event_codec(tag: str, cls: type, to_list: Callable[[Any], list], from_list: Callable[[list], Any]) -> None:
    """Let snapshots store events of ``cls`` (buffered or held) as lists tagged ``tag``: the
    models' own event types plug in here (chat messages ``c`` and shop events ``s`` are built in)."""
    if tag in ("c", "s") or _DECODERS.get(tag, from_list) is not from_list:
        raise ValueError(f"event list tag {tag!r} is taken")
    _ENCODERS[cls] = to_list
    _DECODERS[tag] = from_list


# The core's own third event type (RULES A.1, R9.1), registered once here where the runner is
# defined: every snapshot or buffer holding a ticket event can be read back by any caller.
register_event_codec("t", TicketEvent, ticket_to_list, ticket_from_list)
register_event_codec("a", AftersaleRequest, aftersale_to_list, aftersale_from_list)  # RULES R11.1


def event_to_list(ev: Any) -> list:
    """An event's stored form (snapshots, buffers): a list tagged by its type."""
    tp = type(ev)
    if tp is ShopEvent:
        if ev.rules is not None:  # (R11.2: only an aftersale_rules event has it; older lists stay as they were)
            return ["s", ev.event_id, ev.shop_id, ev.type, ev.t, ev.timezone, ev.rules]
        return ["s", ev.event_id, ev.shop_id, ev.type, ev.t, ev.timezone]
    if tp is ChatMessage:
        return ["c", ev.event_id, ev.shop_id, ev.conversation_id, ev.sender, ev.t, ev.kind, ev.message_type,
                ev.platform]
    try:
        return _ENCODERS[tp](ev)
    except KeyError:
        raise TypeError(f"no list codec for {tp.__name__} (register_event_codec)") from None


def event_from_list(v: list) -> Any:
    tag = v[0]
    if tag == "s":
        return ShopEvent(v[1], v[2], v[3], v[4], v[5], v[6] if len(v) > 6 else None)
    if tag == "c":
        return new_chat_message(v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8])
    try:
        return _DECODERS[tag](v)
    except KeyError:
        raise ValueError(f"unknown event list tag {tag!r}") from None
