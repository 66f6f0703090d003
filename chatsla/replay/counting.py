"""The appeal pack's per-shop counters: :class:`ShopCountingEngine` (module docs of
:mod:`chatsla.replay`: "Shop counters")."""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from chatsla.core.engine import Engine
from chatsla.core.events import ChatMessage, ShopEvent


class ShopCountingEngine(Engine):
    """The core's engine, also counting each chosen shop's own input and processing counters.

    ``Engine.stats`` count the whole stream; an appeal pack shows one shop's (issue #13). The
    counts are taken where the engine counts, by extending the methods that do (``apply``,
    ``_process``, ``_open``, ``_close``, ``_reject``): the engine's results are unchanged, and
    nothing is counted a second way that could disagree with it. This leans on the engine's
    internals, so ``tests/test_appeal.py`` runs a week with every shop chosen and checks that the
    shops' counts add up to the engine's own ``stats``: a change in where the core counts fails
    there. Slower than the plain engine, so the replay uses it only when asked (``shop_counts``).
    """

    def __init__(self, *args: object, shops: Iterable[str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.shop_counters: dict[str, Counter[str]] = {s: Counter() for s in shops}
        self.unnamed_invalid = 0  # invalid records naming no shop (not JSON, no shop_id)
        self._attributed = 0  # duplicates already counted for some shop (or for none, untracked)

    def count_invalid(self, shop_id: str | None, reason: str) -> None:
        """An input record that decoding rejected (R1), with the shop it names, if any."""
        if shop_id is None:
            self.unnamed_invalid += 1
            return
        c = self.shop_counters.get(shop_id)
        if c is not None:
            c["read"] += 1
            c["invalid:" + reason] += 1

    def apply(self, ev: ChatMessage | ShopEvent, source: object = None, screened: bool = False) -> None:
        c = self.shop_counters.get(ev.shop_id)
        if c is not None and not screened:  # screened: a held event applied again, read once
            c["read"] += 1
        counters = self.counters
        dup, attributed = counters["duplicate"], self._attributed
        super().apply(ev, source, screened)
        own = counters["duplicate"] - dup - (self._attributed - attributed)
        if own:  # a copy of a buffered or held event, dropped before _process
            self._attributed += own
            if c is not None:
                c["duplicate"] += own

    def _process(self, ev: ChatMessage | ShopEvent, late: bool) -> None:
        counters = self.counters
        dup = counters["duplicate"]
        c = self.shop_counters.get(ev.shop_id)
        if c is None:
            super()._process(ev, late)
            self._attributed += counters["duplicate"] - dup
            return
        valid, lt, outreach = self._valid, counters["late"], counters["outreach"]
        super()._process(ev, late)
        d = counters["duplicate"] - dup
        self._attributed += d
        c["duplicate"] += d
        c["valid"] += self._valid - valid
        c["late"] += counters["late"] - lt
        c["outreach"] += counters["outreach"] - outreach

    def _open(self, c, t, shop, w, late) -> None:  # type: ignore[no-untyped-def]
        sc = self.shop_counters.get(c.shop_id)
        if sc is not None:
            sc["sessions_opened"] += 1
        super()._open(c, t, shop, w, late)

    def _close(self, c, t: int, reason: str) -> None:  # type: ignore[no-untyped-def]
        sc = self.shop_counters.get(c.shop_id)
        if sc is not None:
            sc["closed:" + reason] += 1
        super()._close(c, t, reason)

    def _reject(self, ev: ChatMessage | ShopEvent, source: object) -> None:
        c = self.shop_counters.get(ev.shop_id)
        if c is not None:
            c["invalid:future_time"] += 1
        super()._reject(ev, source)

    def shop_stats(self, shop_id: str) -> dict:
        """The shop's counters, keyed as ``stats`` are (read = valid + duplicate + invalid)."""
        c = self.shop_counters[shop_id]
        invalid = {k.split(":", 1)[1]: v for k, v in sorted(c.items()) if k.startswith("invalid:") and v}
        closed = {k.split(":", 1)[1]: v for k, v in sorted(c.items()) if k.startswith("closed:") and v}
        return {"read": c["read"], "valid": c["valid"], "duplicate": c["duplicate"], "invalid": sum(invalid.values()),
                "invalid_by_reason": invalid, "late": c["late"], "outreach": c["outreach"],
                "sessions_opened": c["sessions_opened"], "sessions_closed": closed}
