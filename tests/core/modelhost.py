"""A small in-test host for one model (the contract of issue #12, until the runner exists).

It does what the runner will do, and nothing more: events are buffered and applied in
``(t, rank, event_id)`` order once the watermark (largest event time minus ``lateness``) passes
them (R6.2, R6.3); an event behind the watermark is applied at once with ``late=True`` (R6.4); a
deadline the model scheduled fires once the watermark passes it, and before an event at the same
instant only if strictly earlier; deadlines at one instant fire in key order. ``snapshot`` /
``restore`` carry the buffer and the model's own snapshot (through JSON, as a changelog would).
The tests drive models only through this module, so they switch to the real runner by changing
it alone.
"""

from __future__ import annotations

import heapq
from typing import Hashable

import orjson

from chatsla.core.events import ChatMessage, ShopEvent, TicketEvent, ticket_from_list, ticket_to_list
from chatsla.core.timefmt import MINUTE


def event_to_list(ev) -> list:
    if type(ev) is TicketEvent:
        return ticket_to_list(ev)
    if type(ev) is ShopEvent:
        return ["s", ev.event_id, ev.shop_id, ev.type, ev.t, ev.timezone]
    return ["c", ev.event_id, ev.shop_id, ev.conversation_id, ev.sender, ev.t, ev.kind, ev.message_type, ev.platform]


def event_from_list(v: list):
    if v[0] == "t":
        return ticket_from_list(v)
    if v[0] == "s":
        return ShopEvent(v[1], v[2], v[3], v[4], v[5])
    return ChatMessage(v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8])


class Host:
    def __init__(self, model_cls, policy, config=None, lateness: int = 2 * MINUTE) -> None:
        self.policy, self.config, self.lateness = policy, config, lateness
        self.out: list[tuple[str, dict]] = []
        self.frontier: int | None = None
        self._buffer: list[tuple] = []
        self._timers: list[tuple] = []
        self._scheduled: set[tuple] = set()
        self._buffered: set[str] = set()
        self.duplicates = 0  # copies of an event still in the buffer (the runner counts these)
        self.model = model_cls(policy, config, self)

    # -------------------------------------------------------------- host API
    @property
    def watermark(self) -> int | None:
        return None if self.frontier is None else self.frontier - self.lateness

    def schedule(self, when: int, model, key: Hashable) -> None:
        entry = (when, key)
        if entry not in self._scheduled:  # a repeated entry fires once
            self._scheduled.add(entry)
            heapq.heappush(self._timers, entry)

    def emit(self, kind: str, record: dict) -> None:
        self.out.append((kind, record))

    # -------------------------------------------------------------- driving
    def feed(self, events) -> "Host":
        for ev in events:
            wm = self.watermark
            if wm is not None and ev.t < wm:
                self.model.process(ev, True)
                continue
            if ev.event_id in self._buffered:
                self.duplicates += 1
                continue
            self._buffered.add(ev.event_id)
            heapq.heappush(self._buffer, (ev.t, self.model.rank(ev), ev.event_id, ev))
            if self.frontier is None or ev.t > self.frontier:
                self.frontier = ev.t
                self._drain(self.watermark, False)
        return self

    def advance(self, t: int) -> "Host":
        """A tick: the watermark moves to ``t - lateness`` (if later)."""
        if self.frontier is None or t > self.frontier:
            self.frontier = t
        self._drain(self.watermark, False)
        return self

    def finish(self, until: int) -> "Host":
        """End of input: apply everything buffered, fire deadlines before ``until``."""
        if self.frontier is None or until > self.frontier:
            self.frontier = until
        self._drain(until, True)
        self.model.finish(until)
        return self

    def _fire_before(self, t: int) -> None:
        while self._timers and self._timers[0][0] < t:
            entry = heapq.heappop(self._timers)
            self._scheduled.discard(entry)
            self.model.fire(entry[0], entry[1])

    def _drain(self, wm: int, flush: bool) -> None:
        while self._buffer and (flush or self._buffer[0][0] < wm):
            te = self._buffer[0][0]
            self._fire_before(te if te < wm else wm)
            ev = heapq.heappop(self._buffer)[3]
            self._buffered.discard(ev.event_id)
            self.model.process(ev, False)
        self._fire_before(wm)

    # -------------------------------------------------------------- state
    def snapshot(self) -> bytes:
        return orjson.dumps({"frontier": self.frontier, "duplicates": self.duplicates, "buffer": [event_to_list(e[3]) for e in sorted(self._buffer, key=lambda e: e[:3])],
                             "model": self.model.snapshot()})

    @classmethod
    def restore(cls, model_cls, policy, config, raw: bytes, lateness: int = 2 * MINUTE) -> "Host":
        snap = orjson.loads(raw)
        h = cls.__new__(cls)
        h.policy, h.config, h.lateness = policy, config, lateness
        h.out, h._buffer, h._timers, h._scheduled, h._buffered = [], [], [], set(), set()
        h.frontier, h.duplicates = snap["frontier"], snap["duplicates"]
        h.model = model_cls.restore(policy, config, h, snap["model"])
        for v in snap["buffer"]:
            ev = event_from_list(v)
            heapq.heappush(h._buffer, (ev.t, h.model.rank(ev), ev.event_id, ev))
            h._buffered.add(ev.event_id)
        return h

    # -------------------------------------------------------------- reading
    def stats(self):
        """The model's counters plus the host's buffered duplicates (the runner adds its own)."""
        c = self.model.stats()
        c["duplicate"] += self.duplicates
        return +c

    def records(self, kind: str) -> list[dict]:
        return [r for k, r in self.out if k == kind]

    def latest(self, kind: str, key) -> dict[tuple, dict]:
        """The last record of each identity (later records supersede earlier ones)."""
        out = {}
        for k, r in self.out:
            if k == kind:
                out[key(r)] = r
        return out
