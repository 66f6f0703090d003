"""The engine: the runner (``chatsla.core.runner``) hosting the model its policy names.

Callers (the audit, the replay, the Faust worker) build an :class:`Engine` from a policy, as they
always did: a chat policy's engine hosts ``chat_sessions`` (RULES R2-R5) and behaves, counts and
stores exactly as the one-piece engine did. More policies (``policies=[...]``) host more models on
the same runner, one per kind (issue #12). Where each part is explained:

* ordering, watermarks, lateness, time sanity, the buffer, timers, the snapshot envelope (R6):
  ``chatsla.core.runner``;
* the model contract, the registry and the routing rule: ``chatsla.core.models``;
* chat sessions, weeks, eviction and their stored parts: ``chatsla.core.models.chat_sessions``.

The chat-specific parts of the engine's API (``convs``, ``shops``, :meth:`Engine.take_dirty`,
:meth:`Engine.take_evicted`, :meth:`Engine.conversation_entry`, ...) are the chat model's.
"""

from __future__ import annotations

from typing import Hashable, Iterable, Mapping

from chatsla.core.calendar import Shop
from chatsla.core.models import CHAT_SESSIONS, model_class, model_kind
from chatsla.core.models.chat_sessions import ASSESSMENT, SESSION, ChatSessions
from chatsla.core.policy import Policy
from chatsla.core.runner import EngineConfig, Runner, Sink, event_from_list, event_to_list
from chatsla.core.sessions import Conversation

__all__ = ["ASSESSMENT", "SESSION", "Engine", "EngineConfig", "Sink", "event_from_list", "event_to_list"]


class Engine(Runner):
    """One ordered input stream (a file, or one Kafka partition) and the state it implies."""

    def __init__(self, policy: Policy, config: EngineConfig = EngineConfig(), sink: Sink | None = None,
                 session_updates: bool = True, sources: Iterable[Hashable] | None = None,
                 track_dirty: bool = False, keep_rejected: bool = False, *,
                 policies: Iterable[object] = (), shop_stats: Iterable[str] | None = None) -> None:
        """``policy`` and each of ``policies`` bring their model (``policy.model``, chat sessions by
        default), hosted in that order (one per kind; the first counts shop events).
        ``shop_stats``: count these shops' own counters too (:meth:`shop_stats`). For the other
        arguments see :class:`~chatsla.core.runner.Runner`."""
        self._setup(policy, config, sink, session_updates, sources, track_dirty, keep_rejected, policies, shop_stats)
        for p in self.policies:
            self.add_model(model_class(model_kind(p)), p)
        self._bind_chat()

    def _setup(self, policy: Policy, config: EngineConfig, sink: Sink | None, session_updates: bool,
               sources: Iterable[Hashable] | None, track_dirty: bool, keep_rejected: bool,
               policies: Iterable[object], shop_stats: Iterable[str] | None) -> None:
        Runner.__init__(self, config, sink, session_updates, sources, track_dirty, keep_rejected, shop_stats)
        self.policy = policy
        self.policies = [policy, *policies]

    def _bind_chat(self) -> None:
        chat = self.model(CHAT_SESSIONS)
        self.chat: ChatSessions | None = chat
        # the chat model's tables (never rebound by it): callers read them as the engine's
        self.convs: dict[tuple[str, str], Conversation] = chat.convs if chat is not None else {}
        self.shops: dict[str, Shop] = chat.shops if chat is not None else {}

    def _chat(self) -> ChatSessions:
        if self.chat is None:
            raise RuntimeError("this engine hosts no chat_sessions model")
        return self.chat

    # ----------------------------------------------------- chat model's state
    @property
    def dirty_shop_count(self) -> int:
        """Shops changed since the last :meth:`take_dirty` (adapters bound checkpoint size by it)."""
        return self.chat.dirty_shop_count if self.chat is not None else 0

    def mark_dirty(self, shop_ids: Iterable[str]) -> None:
        """Have the next :meth:`take_dirty` include these shops (state restored from a copy that
        the next checkpoint would otherwise overwrite without storing it elsewhere)."""
        self._chat().mark_dirty(shop_ids)

    def take_dirty(self) -> tuple[list[Conversation], list[Shop]]:
        """Conversations and shops changed since the last call (``track_dirty=True``)."""
        return self._chat().take_dirty()

    def take_evicted(self) -> list[Conversation]:
        """The conversations evicted since the last call and not back since (``track_dirty=True``)."""
        return self._chat().take_evicted()

    def conversation_entry(self, c: Conversation) -> list:
        """A conversation's stored form (:meth:`ChatSessions.conversation_entry`)."""
        return self._chat().conversation_entry(c)

    # ------------------------------------------------------------------- state
    @classmethod
    def restore(cls, policy: Policy, config: EngineConfig, snap: dict, sink: Sink | None = None,
                **kwargs: object) -> "Engine":
        """An engine from :meth:`snapshot` (R6.1: it continues exactly where that one stood)."""
        if len(snap.get("policies", ())) > 1:
            return cls._restore_models(policy, config, snap, sink, **kwargs)
        return cls.from_parts(policy, config, snap, snap["conversations"], snap["shops"], sink, **kwargs)

    @classmethod
    def from_parts(cls, policy: Policy, config: EngineConfig, meta: dict | None, conversations: Iterable[list],
                   shops: Iterable[list], sink: Sink | None = None, *,
                   parts: Mapping[str, Iterable[tuple[tuple, list]]] | None = None, **kwargs: object) -> "Engine":
        """Rebuild a chat engine from stored parts, which may have been written at different
        moments (:meth:`ChatSessions.from_parts`): the envelope ``meta`` (or None), then the
        conversations and shops. With more ``policies`` (keyword), each other model is rebuilt
        from its own stored entries, ``parts[kind]`` (its ``from_parts``)."""
        if kwargs.get("policies"):
            return cls._models_from_parts(policy, config, meta, conversations, shops, sink, parts or {}, **kwargs)
        e = cls._empty(policy, config, sink, **kwargs)
        if meta is not None:
            if meta.get("policy") != policy.ref:
                raise ValueError(f"state was made under {meta.get('policy')}, not {policy.ref}")
            e.restore_meta(meta)
        counters = Runner.model_counters(meta, CHAT_SESSIONS, 1) if meta is not None else None
        e._building = 0
        e._host(ChatSessions.from_parts(policy, config, e._proxy, counters, conversations, shops))
        e._bind_chat()
        if meta is not None:
            e.restore_counters(meta)
            e.restore_buffer(meta)
        return e

    @classmethod
    def _models_from_parts(cls, policy: Policy, config: EngineConfig, meta: dict | None,
                           conversations: Iterable[list], shops: Iterable[list], sink: Sink | None,
                           parts: Mapping[str, Iterable[tuple[tuple, list]]], **kwargs: object) -> "Engine":
        """Several models from stored parts (the live worker, streams/runtime.py), hosted in the
        policies' order. State stored by a worker hosting chat sessions alone (no ``policies`` in
        its meta) takes the other models on empty: the chat model gets every stored counter."""
        e = cls._empty(policy, config, sink, **kwargs)
        refs = [p.ref for p in e.policies]
        if meta is not None:
            stored = meta.get("policies") or [meta.get("policy")]
            if stored != refs and not ("policies" not in meta and stored[0] == refs[0]):
                raise ValueError(f"state was made under {', '.join(map(str, stored))}, not {', '.join(refs)}")
            e.restore_meta(meta)
        for i, p in enumerate(e.policies):
            kind = model_kind(p)
            if meta is None:
                counters: dict | None = None
            elif "model_counters" in meta:
                counters = dict(meta["model_counters"].get(kind, {}))
            else:
                counters = dict(meta["counters"]) if i == 0 else {}
            e._building = i
            if kind == CHAT_SESSIONS:
                e._host(ChatSessions.from_parts(p, config, e._proxy, counters, conversations, shops))
            else:
                e._host(model_class(kind).from_parts(p, config, e._proxy, counters or {}, parts.get(kind, ())))
        e._bind_chat()
        if meta is not None:
            e.restore_counters(meta)
            e.restore_buffer(meta)
        return e

    @classmethod
    def _restore_models(cls, policy: Policy, config: EngineConfig, snap: dict, sink: Sink | None,
                        **kwargs: object) -> "Engine":
        """Several models: each restored from its own parts and counters, in the stored order."""
        e = cls._empty(policy, config, sink, **kwargs)
        e.restore_models([(model_class(model_kind(p)), p) for p in e.policies], snap)
        e._bind_chat()
        return e

    @classmethod
    def _empty(cls, policy: Policy, config: EngineConfig, sink: Sink | None, session_updates: bool = True,
               sources: Iterable[Hashable] | None = None, track_dirty: bool = False, keep_rejected: bool = False,
               policies: Iterable[object] = (), shop_stats: Iterable[str] | None = None) -> "Engine":
        e = cls.__new__(cls)
        e._setup(policy, config, sink, session_updates, sources, track_dirty, keep_rejected, policies, shop_stats)
        return e
