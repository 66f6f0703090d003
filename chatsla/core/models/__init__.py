"""The models a runner hosts (issue #12): their contract, their registry and the routing rule.

A *model* turns ordered events and due deadlines into state and records for one kind of service
level: ``chat_sessions`` (RULES R2-R5), and the models added after it. The runner
(``chatsla.core.runner``) owns everything model-independent: ordering, watermarks, lateness, time
sanity, the buffer, the timer queue and the snapshot envelope. A model is built as
``Cls(policy, config, host)``, the host being a weak proxy of the runner (the runner owns its
models, not the other way round: no reference cycle, so a dropped engine is freed at once; a
model keeps no bound method of the host either, but ``host.push`` and ``host.emit`` hold no
runner and may be kept). What the host gives it:

- ``host.schedule(when, model, key)``: ``model.fire(when, key)`` once the watermark passes
  ``when`` (a deadline fires before an event at the same instant only if strictly earlier). The
  model must tolerate stale or repeated entries (a deadline that moved: check its own state in
  ``fire``). For hot paths, ``host.timer_channel(fire, sub, supersedable)`` opens a channel of
  ready-made entries ``(when, channel, key, obj)`` queued with ``host.push(entry)``; ``fire(entry)``
  is called with the entry (chat sessions use two: conversations, then week ends).
- ``host.emit(kind, record)``: an output record (kinds: ``session``, ``assessment``; the other
  models' own).
- ``host.frontier`` / ``host.watermark`` (int | None; on hot paths read ``host.time.frontier``
  from a kept ``host.time``), ``host.counters`` (the stream's shared
  counters; what a model adds there is counted in ``stats`` once), ``host.lead`` (the first
  hosted model: the one that counts a shop event), ``host.session_updates``, ``host.track_dirty``,
  ``host.shop_counters`` (None, or per chosen shop a Counter the model adds its counts to).

Routing (:func:`route`) is written here once.
"""

from __future__ import annotations

import importlib
from collections import Counter
from typing import Any, ClassVar, Hashable, Protocol

from chatsla.core.events import AftersaleRequest, ChatMessage, ShopEvent

CHAT_SESSIONS = "chat_sessions"
SERVICE_TICKETS = "service_tickets"
IM_WAITS = "im_waits"
AFTERSALE = "aftersale"

# kind -> "module:Class", imported on first use: a model module may import the runner, which
# imports this package (route), without a cycle
MODELS: dict[str, str] = {
    CHAT_SESSIONS: "chatsla.core.models.chat_sessions:ChatSessions",
    SERVICE_TICKETS: "chatsla.core.models.service_tickets:ServiceTickets",
    IM_WAITS: "chatsla.core.models.im_waits:ImWaits",
    AFTERSALE: "chatsla.core.models.aftersale:Aftersale",
}


class Model(Protocol):
    """What the runner needs of a model (duck-typed)."""

    kind: ClassVar[str]  # "chat_sessions" | "service_tickets" | "im_waits"
    record_kinds: ClassVar[tuple[str, ...]]  # the kinds it emits (take_records formats them with its policy)
    policy: Any  # its policy object (.ref "id@version", .model)

    def rank(self, ev: Any) -> int:
        """Same-instant order; a ShopEvent is always 0 (R6.3, R9.1)."""

    def process(self, ev: Any, late: bool) -> None:
        """One event, in (t, rank, event_id) order, or at once when ``late`` (R6.4)."""

    def fire(self, when: int, key: Hashable) -> None:
        """A deadline it scheduled with ``host.schedule`` came due (models using only timer
        channels need not have it)."""

    def finish(self, until: int) -> None:
        """End of input (the audit): what is still open."""

    def stats(self) -> Counter[str]:
        """The counters it keeps itself (not those it added to ``host.counters``)."""

    def snapshot(self) -> dict:
        """Its parts of a snapshot, JSON-friendly, under top-level keys of its own."""

    @classmethod
    def restore(cls, policy: Any, config: Any, host: Any, snap: dict) -> "Model":
        """From a snapshot (``snap["counters"]``: the counters given back to it); re-schedules
        its deadlines."""

    def view(self, shop_id: str, watermark: int | None) -> dict:
        """A shop's live projection (R8, R9.8, R10.3)."""


def route(ev: Any) -> str | None:
    """The kind of model an event belongs to (A.3); None for a shop event: every hosted model.

    ``TicketEvent`` -> service_tickets; ``AftersaleRequest`` -> aftersale; a chat message on AliExpress -> im_waits; any other chat
    message -> chat_sessions."""
    tp = type(ev)
    if tp is ChatMessage:
        return IM_WAITS if ev.platform == "aliexpress" else CHAT_SESSIONS
    if tp is ShopEvent:
        return None
    if tp is AftersaleRequest:
        return AFTERSALE  # R11 (A.3: by schema)
    return SERVICE_TICKETS  # (TicketEvent, the only other event type)


def model_class(kind: str) -> type:
    """The model class registered for ``kind`` (a policy's ``model``)."""
    try:
        where = MODELS[kind]
    except KeyError:
        raise ValueError(f"unknown model {kind!r} (known: {', '.join(sorted(MODELS))})") from None
    module, _, name = where.partition(":")
    return getattr(importlib.import_module(module), name)


def model_kind(policy: Any) -> str:
    """A policy's model: ``policy.model``, chat sessions when it has none (older policies)."""
    return getattr(policy, "model", None) or CHAT_SESSIONS
