"""What ``service_tickets``, ``im_waits`` and ``aftersale`` share, written once (issue #12): a shop's zone from
its shop events, the events' ids remembered against copies, and the dirty-key bookkeeping of
their stored parts (streams/runtime.py stores both models the same way).

:class:`ShopZones` is a mixin. The model sets ``host``, ``counters``, ``shop_tz``, ``shop_ids``,
``_max_ids`` (and ``_dirty`` once tracked) and defines ``part(key)``.
"""

from __future__ import annotations

from typing import Any

from chatsla.core.events import ShopEvent


class ShopZones:
    """Shop events and dirty stored parts, as both ticket-like models handle them."""

    host: Any
    counters: Any
    shop_tz: dict[str, str]
    shop_ids: dict[str, list]
    _max_ids: int
    _dirty: set[tuple]

    def _shop_event(self, ev: ShopEvent, late: bool) -> bool:
        """Every hosted model gets a shop event; only the runner's ``lead`` counts it (valid,
        duplicate, late), so it counts once (issue #12; as chat_sessions does). Only the zone is
        used here (R9.4.9, R10: no vacation). True when the event was new (not a copy)."""
        counts = self.host.lead is self
        ids = self.shop_ids.setdefault(ev.shop_id, [])
        if any(x[0] == ev.event_id for x in ids):
            if counts:
                self.counters["duplicate"] += 1
            return False
        ids.append([ev.event_id, ev.t])
        if len(ids) > self._max_ids:
            del ids[0]
        if counts:
            self.counters["valid"] += 1
            if late:
                self.counters["late"] += 1
        if ev.type == "timezone":
            self.shop_tz[ev.shop_id] = ev.timezone
        return True

    def _shop_part(self, shop_id: str) -> list | None:
        """A shop's stored entry: its zone (None: never told) and its shop events' ids."""
        if shop_id not in self.shop_ids and shop_id not in self.shop_tz:
            return None
        return [self.shop_tz.get(shop_id), self.shop_ids.get(shop_id, [])]

    def _restore_shop(self, shop_id: str, entry: list) -> None:
        """The inverse of :meth:`_shop_part`."""
        tz, ids = entry
        if tz is not None:
            self.shop_tz[shop_id] = tz
        self.shop_ids[shop_id] = [list(x) for x in ids]

    def part(self, key: tuple) -> list | None:  # pragma: no cover (each model defines it)
        raise NotImplementedError

    @property
    def dirty_parts_count(self) -> int:
        return len(getattr(self, "_dirty", ()))

    def mark_dirty_parts(self, keys: list[tuple]) -> None:
        """Have the next :meth:`take_dirty_parts` include these keys (entries restored from a copy
        the next checkpoint would otherwise drop)."""
        self._dirty.update(keys)

    def take_dirty_parts(self) -> list[tuple[tuple, list | None]]:
        """``(key, entry or None)`` of every key changed since the last call, in key order."""
        out = [(k, self.part(k)) for k in sorted(self._dirty)]
        self._dirty.clear()
        return out
