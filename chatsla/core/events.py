"""Typed input events of wire format v1 (RULES R1).

Plain ``__slots__`` classes: they are created once per input event, so they must be cheap to build
and small; message text and buyer identity are never carried (R1).
"""

from __future__ import annotations

CHAT_SCHEMA = "chat.message/v1"
SHOP_SCHEMA = "shop.event/v1"
TICKET_SCHEMA = "ticket.event/v1"
AFTERSALE_SCHEMA = "aftersale.request/v1"

SENDERS = frozenset({"buyer", "seller", "auto_reply", "system"})
KINDS = frozenset({"message", "close"})
MESSAGE_TYPES = frozenset({"text", "image", "video", "emoji", "sticker", "product_card", "order_card", "other"})
SHOP_EVENT_TYPES = frozenset({"vacation_on", "vacation_off", "timezone", "aftersale_rules"})  # the last: R11.2
DEFAULT_PLATFORM = "tiktok_shop"


class ChatMessage:
    """``chat.message/v1``; ``t`` is ``sent_at`` in microseconds (event time, R6)."""

    __slots__ = ("event_id", "shop_id", "conversation_id", "platform", "sender", "kind", "message_type", "t")

    def __init__(
        self,
        event_id: str,
        shop_id: str,
        conversation_id: str,
        sender: str,
        t: int,
        kind: str = "message",
        message_type: str = "text",
        platform: str = DEFAULT_PLATFORM,
    ) -> None:
        self.event_id = event_id
        self.shop_id = shop_id
        self.conversation_id = conversation_id
        self.sender = sender
        self.t = t
        self.kind = kind
        self.message_type = message_type
        self.platform = platform

    def __repr__(self) -> str:
        return (
            f"ChatMessage({self.event_id!r}, {self.shop_id!r}, {self.conversation_id!r}, "
            f"{self.sender!r}, t={self.t}, kind={self.kind!r})"
        )


_new_object = object.__new__


def new_chat_message(event_id: str, shop_id: str, conversation_id: str, sender: str, t: int,
                     kind: str = "message", message_type: str = "text",
                     platform: str = DEFAULT_PLATFORM) -> ChatMessage:
    """``ChatMessage(...)`` for the decoder, which builds one per input event: the same object,
    without calling the class (``type.__call__`` enters ``__init__`` through C, in a new
    interpreter frame; a plain function call and slot stores cost about a quarter less)."""
    ev = _new_object(ChatMessage)
    ev.event_id = event_id
    ev.shop_id = shop_id
    ev.conversation_id = conversation_id
    ev.sender = sender
    ev.t = t
    ev.kind = kind
    ev.message_type = message_type
    ev.platform = platform
    return ev


class ShopEvent:
    """``shop.event/v1``: vacation mode and the shop's time zone (R1, R4, R5.1); the after-sales
    rule set assigned to the shop (type ``aftersale_rules``, ``rules``: ``"<id>@<version>"`` or
    ``"none"``, RULES R11.2; None on the other types)."""

    __slots__ = ("event_id", "shop_id", "type", "timezone", "t", "rules")

    def __init__(self, event_id: str, shop_id: str, type: str, t: int, timezone: str | None = None,
                 rules: str | None = None) -> None:
        self.event_id = event_id
        self.shop_id = shop_id
        self.type = type
        self.t = t
        self.timezone = timezone
        self.rules = rules

    def __repr__(self) -> str:
        return f"ShopEvent({self.event_id!r}, {self.shop_id!r}, {self.type!r}, t={self.t}, tz={self.timezone!r})"


TICKET_TYPES = frozenset({"created", "handled", "closed"})
TICKET_PRIORITIES = frozenset({"normal", "urgent", "agreed"})
TICKET_RESULTS = frozenset({"resolved", "unresolved", "returned"})
TICKET_PLATFORM = "douyin"  # R9.1: the default platform of a ticket.event/v1


class TicketEvent:
    """``ticket.event/v1`` (RULES R9.1); ``t`` is ``at`` in microseconds, ``due_at`` the platform's
    deadline in µs or None. Fields that do not belong to the event's ``type`` are None (R9.1: they
    are ignored), so two copies of one event compare equal whatever extras they carried.

    ``at_text``: the input's ``at`` when it is already what ``format_time(t)`` would write (set by
    the decoder only then, else None), so a ticket's record reuses it for ``created_at`` instead
    of formatting the time again (issue #12). A cache, not data: not stored (``ticket_to_list``)."""

    __slots__ = ("event_id", "shop_id", "ticket_id", "platform", "type", "t", "priority", "category",
                 "sla_minutes", "due_at", "result", "at_text")

    def __init__(self, event_id: str, shop_id: str, ticket_id: str, type: str, t: int,
                 priority: str | None = None, category: str | None = None, sla_minutes: int | None = None,
                 due_at: int | None = None, result: str | None = None, platform: str = TICKET_PLATFORM,
                 at_text: str | None = None) -> None:
        self.event_id = event_id
        self.shop_id = shop_id
        self.ticket_id = ticket_id
        self.platform = platform
        self.type = type
        self.t = t
        self.priority = priority
        self.category = category
        self.sla_minutes = sla_minutes
        self.due_at = due_at
        self.result = result
        self.at_text = at_text

    def __repr__(self) -> str:
        return f"TicketEvent({self.event_id!r}, {self.shop_id!r}, {self.ticket_id!r}, {self.type!r}, t={self.t})"


def ticket_to_list(ev: TicketEvent) -> list:
    """A ticket event as a JSON-friendly list tagged ``"t"`` (the runner's buffer and snapshots)."""
    return ["t", ev.event_id, ev.shop_id, ev.ticket_id, ev.type, ev.t, ev.priority, ev.category,
            ev.sla_minutes, ev.due_at, ev.result, ev.platform]


def ticket_from_list(v: list) -> TicketEvent:
    return TicketEvent(v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11])


AFTERSALE_TYPES = frozenset({"requested", "reviewed"})
AFTERSALE_REQUEST_TYPES = ("cancel", "refund_only", "return_refund", "exchange")  # R11.1, this order in records
AFTERSALE_REVIEWERS = frozenset({"seller", "seller_rule", "platform"})
AFTERSALE_DECISIONS = frozenset({"approved", "rejected"})
AFTERSALE_PLATFORM = "tiktok_shop"  # R11.1: the default platform of an aftersale.request/v1


class AftersaleRequest:
    """``aftersale.request/v1`` (RULES R11.1); ``t`` is ``at`` in µs, ``delivered_at`` µs or None.
    Amounts are kept as the decimal strings the producer sent (``"98.00"``): exact, compared as
    ``decimal.Decimal`` by the model, never as floats. Fields that do not belong to the event's
    ``type`` are None (the decoder ignores them), so two copies of one event compare equal.
    ``buyer_ref`` is the producer's pseudonym of the buyer (Amendment A.1), never the platform's id."""

    __slots__ = ("event_id", "shop_id", "request_id", "platform", "type", "t", "request_type", "reason",
                 "category", "amount", "currency", "sku_id", "buyer_ref", "buyer_credit", "shipped",
                 "delivered_at", "return_shipping_cost", "awaiting_seller", "by", "decision")

    def __init__(self, event_id: str, shop_id: str, request_id: str, type: str, t: int,
                 request_type: str | None = None, reason: str | None = None, category: str | None = None,
                 amount: str | None = None, currency: str | None = None, sku_id: str | None = None,
                 buyer_ref: str | None = None, buyer_credit: int | None = None, shipped: bool | None = None,
                 delivered_at: int | None = None, return_shipping_cost: str | None = None,
                 awaiting_seller: bool | None = None, by: str | None = None, decision: str | None = None,
                 platform: str = AFTERSALE_PLATFORM) -> None:
        self.event_id = event_id
        self.shop_id = shop_id
        self.request_id = request_id
        self.platform = platform
        self.type = type
        self.t = t
        self.request_type = request_type
        self.reason = reason
        self.category = category
        self.amount = amount
        self.currency = currency
        self.sku_id = sku_id
        self.buyer_ref = buyer_ref
        self.buyer_credit = buyer_credit
        self.shipped = shipped
        self.delivered_at = delivered_at
        self.return_shipping_cost = return_shipping_cost
        # R11.1: default true on ``requested``
        self.awaiting_seller = (True if awaiting_seller is None else awaiting_seller) if type == "requested" else None
        self.by = by
        self.decision = decision

    def __repr__(self) -> str:
        return f"AftersaleRequest({self.event_id!r}, {self.shop_id!r}, {self.request_id!r}, {self.type!r}, t={self.t})"


def aftersale_to_list(ev: AftersaleRequest) -> list:
    """An after-sales event as a JSON-friendly list tagged ``"a"`` (the runner's buffer and snapshots)."""
    return ["a"] + [getattr(ev, k) for k in AftersaleRequest.__slots__]


def aftersale_from_list(v: list) -> AftersaleRequest:
    ev = AftersaleRequest.__new__(AftersaleRequest)
    for k, x in zip(AftersaleRequest.__slots__, v[1:]):
        setattr(ev, k, x)
    return ev


Event = ChatMessage | ShopEvent | TicketEvent | AftersaleRequest


class Invalid:
    """Why a record could not be decoded: ``reason`` is machine-readable (``missing_field:shop_id``)."""

    __slots__ = ("reason", "detail")

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail

    def __repr__(self) -> str:
        return f"Invalid({self.reason!r})"
