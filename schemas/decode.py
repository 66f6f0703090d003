"""Bytes -> typed event, or a precise machine-readable reason (RULES R1).

Runs on every record, so it checks fields by hand instead of running a general JSON Schema
validator; ``tests/schemas/test_schemas.py`` keeps it in step with the JSON Schema files beside it.
Reasons have the form ``<code>`` or ``<code>:<field>``:

``not_json``, ``not_object``, ``missing_field:F``, ``bad_type:F`` (wrong JSON type or empty id),
``bad_value:F`` (not one of the allowed values), ``bad_time:F`` (not RFC 3339 with an offset),
``bad_timezone:timezone`` (not an IANA zone), ``unknown_schema:schema``, ``too_large`` (the record
is longer than ``max_bytes``, by default :data:`MAX_RECORD_BYTES`), ``duplicate_key`` (an object of
the record names a key twice, at any depth).

Duplicate keys are rejected because parsers disagree on them (RFC 8259 §4: the behaviour is
unpredictable): orjson keeps the last value, another reader of the same log may keep the first, so
``{"shop_id": "a", ..., "shop_id": "b"}`` would be credited to a different shop by each. orjson
cannot report them, so :func:`has_duplicate_keys` counts instead. A JSON text has two ``"`` per
string token (key or string value) plus one per escaped quote ``\\"``; a repeated key is a string
token that the parsed value no longer has. So a text with exactly twice as many ``"`` as the parsed
value has string tokens repeats no key (a key spelt with escapes, ``"shop\\u005fid"``, is still one
token), and a text without a backslash and with more ``"`` repeats one. Only a text with a
backslash and a count that does not match is parsed again, by the standard library with an
``object_pairs_hook`` that sees every pair.
"""

from __future__ import annotations

import json

import orjson

from chatsla.core.calendar import IANA_ZONES
from chatsla.core.timefmt import MIN_SEC_DOT, MIN_SEC_UTC, MS3, US3_UTC, hour_cache, parse_time
from chatsla.core.events import (
    AFTERSALE_DECISIONS,
    AFTERSALE_PLATFORM,
    AFTERSALE_REQUEST_TYPES,
    AFTERSALE_REVIEWERS,
    AFTERSALE_SCHEMA,
    AFTERSALE_TYPES,
    AftersaleRequest,
    CHAT_SCHEMA,
    DEFAULT_PLATFORM,
    KINDS,
    MESSAGE_TYPES,
    SENDERS,
    SHOP_EVENT_TYPES,
    SHOP_SCHEMA,
    TICKET_PLATFORM,
    TICKET_PRIORITIES,
    TICKET_RESULTS,
    TICKET_SCHEMA,
    TICKET_TYPES,
    ChatMessage,
    Invalid,
    ShopEvent,
    TicketEvent,
    new_chat_message,
)

_loads = orjson.loads
# The largest record decode accepts by default: Kafka's default message.max.bytes (1 MB) rounded up,
# so nothing the default broker delivers is cut; ``chatsla audit --max-record-bytes`` changes it.
MAX_RECORD_BYTES = 1 << 20
# Event times chatsla accepts: 1970 to 9000. Outside that, week and deadline arithmetic would leave
# the range of Python's datetime; no real chat message is sent there (bad_time).
MIN_TIME = 0
MAX_TIME = 221_845_392_000_000_000
_JSONDecodeError = orjson.JSONDecodeError


def valid_timezone(name: str) -> bool:
    """An IANA zone name as listed by the tzdata package (R1), whatever zone files this machine's
    TZPATH holds (``localtime``, ``posixrules``, ``right/UTC`` are not zone names; R6.1)."""
    return name in IANA_ZONES


def _required_id(obj: dict, field: str) -> str | Invalid:
    v = obj.get(field)
    if type(v) is str and v:
        return v
    if v is None:
        return Invalid("missing_field:" + field)
    return Invalid("bad_type:" + field)


_ABSENT = object()
DUPLICATE_KEY = Invalid("duplicate_key")


def _decode_chat(obj: dict, raw: bytes | None = None) -> ChatMessage | Invalid:
    """A parsed ``chat.message/v1`` object -> event; with ``raw`` (its text, bytes), a valid
    message is also checked for repeated keys (a repeated key of an invalid one is the caller's
    check: :func:`has_duplicate_keys`)."""
    # Fast path: subscripts (no method calls) and identity checks for the common shape; any
    # surprise falls through to _explain_chat, which finds the precise reason.
    try:
        event_id = obj["event_id"]
        shop_id = obj["shop_id"]
        conversation_id = obj["conversation_id"]
        sender = obj["sender"]
        sent_at = obj["sent_at"]
    except KeyError:
        return _explain_chat(obj)
    if not (type(event_id) is str and type(shop_id) is str and type(conversation_id) is str
            and type(sent_at) is str and type(sender) is str and event_id and shop_id and conversation_id and sender in SENDERS):
        return _explain_chat(obj)
    # parse_time's fast path for ``YYYY-MM-DDTHH:MM:SSZ`` inlined: its hour cache holds valid
    # ``YYYY-MM-DDTHH`` prefixes only, and MIN_SEC_UTC exactly the valid ``:MM:SSZ`` tails, so two
    # lookups validate and convert the whole string; anything else goes through parse_time.
    base = hour_cache.get(sent_at[:13])
    rest = MIN_SEC_UTC.get(sent_at[13:])
    if base is not None and rest is not None:
        t = base + rest
    else:
        t = parse_time(sent_at)
    if t is None or not (MIN_TIME <= t <= MAX_TIME):
        return Invalid("bad_time:sent_at", sent_at[:64])
    # Repeated keys (module docstring): every field of a valid message is a string, so a text
    # with no field but these has exactly 4 quotes (34) per distinct key unless a key repeats.
    # The count is most of the check's cost: about 6 % of the audit path's instructions
    # (benchmarks/audit_path.py under callgrind, issue #10 finding 10).
    n = len(obj)
    if n == 6:  # schema + the five required fields: every optional field at its default
        if raw is not None and raw.count(34) != 24 and has_duplicate_keys(raw, obj):
            return DUPLICATE_KEY
        return new_chat_message(event_id, shop_id, conversation_id, sender, t)
    get = obj.get
    known = 6  # fields of the schema present
    kind = get("kind", _ABSENT)
    if kind is _ABSENT:
        kind = "message"
    else:
        known += 1
        if kind != "message":
            if type(kind) is not str:
                return Invalid("bad_type:kind")
            if kind not in KINDS:
                return Invalid("bad_value:kind")
            if sender != "seller" and sender != "system":
                return Invalid("bad_value:kind", "only seller or system can close a conversation")
    message_type = get("message_type", _ABSENT)
    if message_type is _ABSENT:
        message_type = "text"
    else:
        known += 1
        if message_type != "text":
            if type(message_type) is not str:
                return Invalid("bad_type:message_type")
            if message_type not in MESSAGE_TYPES:
                return Invalid("bad_value:message_type")
    platform = get("platform", _ABSENT)
    if platform is _ABSENT:
        platform = DEFAULT_PLATFORM
    else:
        known += 1
        if type(platform) is not str or not platform:
            return Invalid("bad_type:platform")
    if raw is not None and not (known == n and raw.count(34) == 4 * n) and has_duplicate_keys(raw, obj):
        return DUPLICATE_KEY
    return new_chat_message(event_id, shop_id, conversation_id, sender, t, kind, message_type, platform)


decode_chat = _decode_chat  # a parsed ``chat.message/v1`` object -> event; for loops that inline decode


def _explain_chat(obj: dict) -> Invalid:
    for field in ("event_id", "shop_id", "conversation_id"):
        r = _required_id(obj, field)
        if type(r) is Invalid:
            return r
    sender = obj.get("sender")
    if sender is None:
        return Invalid("missing_field:sender")
    if type(sender) is not str:
        return Invalid("bad_type:sender")
    if sender not in SENDERS:
        return Invalid("bad_value:sender")
    sent_at = obj.get("sent_at")
    return Invalid("missing_field:sent_at" if sent_at is None else "bad_type:sent_at")


def _decode_shop(obj: dict) -> ShopEvent | Invalid:
    for field in ("event_id", "shop_id"):
        r = _required_id(obj, field)
        if type(r) is Invalid:
            return r
    head = _type_and_time(obj, SHOP_EVENT_TYPES)
    if type(head) is Invalid:
        return head
    typ, at, t = head
    tz = obj.get("timezone")
    if typ == "timezone":
        if tz is None:
            return Invalid("missing_field:timezone")
        if type(tz) is not str:
            return Invalid("bad_type:timezone")
        if not valid_timezone(tz):
            return Invalid("bad_timezone:timezone", tz[:64])
    else:
        # Optional on vacation events and not used, but a present value must still be a string
        # (R1: a wrong type makes the event invalid; null counts as present, as for kind).
        if "timezone" in obj and type(tz) is not str:
            return Invalid("bad_type:timezone")
        tz = None
    if typ == "aftersale_rules":  # R11.2: rules is "<id>@<version>" or "none"
        rules = obj.get("rules")
        if rules is None:
            return Invalid("missing_field:rules")
        if type(rules) is not str:
            return Invalid("bad_type:rules")
        if rules != "none" and _RULES_REF.fullmatch(rules) is None:
            return Invalid("bad_value:rules", rules[:64])
        return ShopEvent(obj["event_id"], obj["shop_id"], typ, t, tz, rules)
    return ShopEvent(obj["event_id"], obj["shop_id"], typ, t, tz)


_RULES_REF = __import__("re").compile(r"[^@/\s]+@[^@/\s]+")
_DECIMAL = __import__("re").compile(r"(0|[1-9][0-9]{0,17})(\.[0-9]{1,6})?")  # as chatsla.core.rulesets.DECIMAL
_CURRENCY = __import__("re").compile(r"[A-Z]{3}")


def _opt_str(obj: dict, field: str) -> str | None | Invalid:
    v = obj.get(field, _ABSENT)
    if v is _ABSENT:
        return None
    if type(v) is not str or not v:
        return Invalid("bad_type:" + field)
    return v


def _decimal(obj: dict, field: str, required: bool) -> str | None | Invalid:
    """A decimal string (``"98.00"``), kept as sent: amounts are exact (R11.1), never floats."""
    v = obj.get(field, _ABSENT)
    if v is _ABSENT or (v is None and required):
        return Invalid("missing_field:" + field) if required else None
    if type(v) is not str:
        return Invalid("bad_type:" + field)  # 98.0 as a JSON number would be a float: refused
    if _DECIMAL.fullmatch(v) is None:
        return Invalid("bad_value:" + field, v[:64])
    return v


def _record_head(obj: dict, id_field: str, types: frozenset[str] | tuple[str, ...] | set[str],
                 default_platform: str) -> tuple[str, str, int, str] | Invalid:
    """The fields every typed record of R9.1 and R11.1 starts with, checked in one order (so both
    inputs give the same reason for the same fault): ``event_id``, ``shop_id`` and the record's own
    id, ``type`` (one of ``types``), ``at`` (RFC 3339 within the representable range) and the
    optional ``platform``. Returns ``(type, at text, at µs, platform)``."""
    for field in ("event_id", "shop_id", id_field):
        r = _required_id(obj, field)
        if type(r) is Invalid:
            return r
    head = _type_and_time(obj, types)
    if type(head) is Invalid:
        return head
    typ, at, t = head
    platform = obj.get("platform", _ABSENT)
    if platform is _ABSENT:
        platform = default_platform
    elif type(platform) is not str or not platform:
        return Invalid("bad_type:platform")
    return typ, at, t, platform


def _type_and_time(obj: dict, types: frozenset[str] | tuple[str, ...] | set[str]) -> tuple[str, str, int] | Invalid:
    """``type`` (one of ``types``) and ``at`` (RFC 3339 within the representable range), checked
    in the same order and with the same reasons for every typed input (shop events, R9.1, R11.1).
    Returns ``(type, at text, at µs)``."""
    typ = obj.get("type")
    if typ is None:
        return Invalid("missing_field:type")
    if type(typ) is not str:
        return Invalid("bad_type:type")
    if typ not in types:
        return Invalid("bad_value:type")
    at = obj.get("at")
    if type(at) is not str:
        return Invalid("missing_field:at" if at is None else "bad_type:at")
    t = parse_time(at)
    if t is None or not (MIN_TIME <= t <= MAX_TIME):
        return Invalid("bad_time:at", at[:64])
    return typ, at, t


def _decode_aftersale(obj: dict) -> AftersaleRequest | Invalid:
    """A parsed ``aftersale.request/v1`` object -> event (RULES R11.1). Reasons beyond R1's
    generic ones: ``missing_field:F`` for the fields ``requested`` (request_type, reason, amount,
    currency) or ``reviewed`` (by, decision) require; ``bad_value:amount`` and
    ``bad_value:return_shipping_cost`` (not a decimal string such as ``"98.00"``: no sign, exponent
    or separators; a JSON number is ``bad_type``), ``bad_value:currency`` (not three capitals),
    ``bad_value:buyer_credit`` (not an integer 0-100), ``bad_time:delivered_at``. Fields that do
    not belong to the event's type are ignored, unchecked (as R9.1)."""
    head = _record_head(obj, "request_id", AFTERSALE_TYPES, AFTERSALE_PLATFORM)
    if type(head) is Invalid:
        return head
    typ, at, t, platform = head
    if typ == "reviewed":
        vals = []
        for field, allowed in (("by", AFTERSALE_REVIEWERS), ("decision", AFTERSALE_DECISIONS)):
            v = obj.get(field)
            if v is None:
                return Invalid("missing_field:" + field)
            if type(v) is not str:
                return Invalid("bad_type:" + field)
            if v not in allowed:
                return Invalid("bad_value:" + field)
            vals.append(v)
        return AftersaleRequest(obj["event_id"], obj["shop_id"], obj["request_id"], typ, t, by=vals[0],
                                decision=vals[1], platform=platform)
    rt = obj.get("request_type")
    if rt is None:
        return Invalid("missing_field:request_type")
    if type(rt) is not str:
        return Invalid("bad_type:request_type")
    if rt not in AFTERSALE_REQUEST_TYPES:
        return Invalid("bad_value:request_type")
    reason = obj.get("reason")
    if reason is None:
        return Invalid("missing_field:reason")
    if type(reason) is not str or not reason:
        return Invalid("bad_type:reason")  # other codes are allowed and match only literally (R11.1)
    amount = _decimal(obj, "amount", True)
    if type(amount) is Invalid:
        return amount
    cur = obj.get("currency")
    if cur is None:
        return Invalid("missing_field:currency")
    if type(cur) is not str:
        return Invalid("bad_type:currency")
    if _CURRENCY.fullmatch(cur) is None:
        return Invalid("bad_value:currency", cur[:64])
    opt = {}
    for field in ("category", "sku_id", "buyer_ref"):
        v = _opt_str(obj, field)
        if type(v) is Invalid:
            return v
        opt[field] = v
    credit = obj.get("buyer_credit", _ABSENT)
    if credit is _ABSENT:
        credit = None
    elif type(credit) is not int or not 0 <= credit <= 100:
        return Invalid("bad_value:buyer_credit" if type(credit) is int else "bad_type:buyer_credit")
    flags = {}
    for field in ("shipped", "awaiting_seller"):
        v = obj.get(field, _ABSENT)
        if v is _ABSENT:
            v = None
        elif type(v) is not bool:
            return Invalid("bad_type:" + field)
        flags[field] = v
    delivered = obj.get("delivered_at", _ABSENT)
    if delivered is _ABSENT:
        delivered = None
    else:
        if type(delivered) is not str:
            return Invalid("bad_type:delivered_at")
        d = parse_time(delivered)
        if d is None or not (MIN_TIME <= d <= MAX_TIME):
            return Invalid("bad_time:delivered_at", delivered[:64])
        delivered = d
    cost = _decimal(obj, "return_shipping_cost", False)
    if type(cost) is Invalid:
        return cost
    return AftersaleRequest(obj["event_id"], obj["shop_id"], obj["request_id"], typ, t, rt, reason,
                            opt["category"], amount, cur, opt["sku_id"], opt["buyer_ref"], credit, flags["shipped"],
                            delivered, cost, flags["awaiting_seller"], platform=platform)


# The largest sla_minutes a ticket may carry: a year (the policies' own bound on durations). Beyond
# it a deadline is surely a typo, and the service-clock walk would leave datetime's range (RULES
# R9.1 only says "positive integer": this bound is chatsla's reading, docs/rules.md).
MAX_SLA_MINUTES = 366 * 24 * 60


def _decode_ticket(obj: dict) -> TicketEvent | Invalid:
    """A parsed ``ticket.event/v1`` object -> event (RULES R9.1). Reasons beyond R1's generic ones:
    ``missing_field:priority`` (a ``created`` without it), ``missing_field:sla_minutes`` (an
    ``agreed`` without it), ``missing_field:result`` (a ``handled`` without it),
    ``bad_value:sla_minutes`` (not an integer from 1 to :data:`MAX_SLA_MINUTES`; JSON ``true`` is no
    integer), ``bad_value:due_at`` (not RFC 3339 with an offset, or before ``at``). A field that does
    not belong to the event's type is ignored, unchecked (R9.1)."""
    head = _record_head(obj, "ticket_id", TICKET_TYPES, TICKET_PLATFORM)
    if type(head) is Invalid:
        return head
    typ, at, t, platform = head
    priority = category = sla = due = result = None
    if typ == "created":
        priority = obj.get("priority")
        if priority is None:
            return Invalid("missing_field:priority")
        if type(priority) is not str:
            return Invalid("bad_type:priority")
        if priority not in TICKET_PRIORITIES:
            return Invalid("bad_value:priority")
        category = obj.get("category", _ABSENT)
        if category is _ABSENT:
            category = None
        elif type(category) is not str or not category:
            return Invalid("bad_type:category")
        sla = obj.get("sla_minutes", _ABSENT)
        if sla is _ABSENT:
            if priority == "agreed":
                return Invalid("missing_field:sla_minutes")
            sla = None
        elif type(sla) is not int or not 1 <= sla <= MAX_SLA_MINUTES:
            return Invalid("bad_value:sla_minutes", str(sla)[:64])
        due_raw = obj.get("due_at", _ABSENT)
        if due_raw is not _ABSENT:
            due = parse_time(due_raw) if type(due_raw) is str else None
            if due is None or not (t <= due <= MAX_TIME):
                return Invalid("bad_value:due_at", str(due_raw)[:64])
    elif typ == "handled":
        result = obj.get("result")
        if result is None:
            return Invalid("missing_field:result")
        if type(result) is not str:
            return Invalid("bad_type:result")
        if result not in TICKET_RESULTS:
            return Invalid("bad_value:result")
    return TicketEvent(obj["event_id"], obj["shop_id"], obj["ticket_id"], typ, t, priority, category, sla, due,
                       result, platform)


_new_object = object.__new__


def decode_ticket(obj: dict, raw: bytes) -> TicketEvent | Invalid:
    """A parsed ``ticket.event/v1`` object (``obj["schema"]`` checked by the caller, as the
    feeder's loop does) and its text -> event, ``duplicate_key`` if the text
    repeats a key: what ``decode(raw)`` answers, parsing once (issue #12: the audit path of a
    ticket as fast as a chat message's).

    Fast path for the common shapes, as :func:`decode_chat`: ``closed`` with the six required
    fields only, ``handled`` with ``result``, ``created`` with ``priority`` and optionally an
    integer ``sla_minutes``, no ``platform``; subscripts and identity checks, the time through the
    hour cache, the event built without calling the class, and the repeated-key check as a quote
    count (every value a string but ``sla_minutes``: 4 ``"`` per field, 2 fewer for the integer).
    Anything else, valid or not, goes through :func:`_decode_ticket`, which finds the reason."""
    try:
        event_id = obj["event_id"]
        shop_id = obj["shop_id"]
        ticket_id = obj["ticket_id"]
        typ = obj["type"]
        at = obj["at"]
    except KeyError:
        return _decode_ticket_checked(obj, raw)
    if not (type(event_id) is str and type(shop_id) is str and type(ticket_id) is str and type(at) is str
            and event_id and shop_id and ticket_id):
        return _decode_ticket_checked(obj, raw)
    n = len(obj)
    priority = sla = result = None
    quotes = 4 * n
    # the types by frequency (a ticket is created once, handled about once, closed less often);
    # a required field read by subscript: its absence goes to the full decoder, like any surprise
    try:
        if typ == "created":
            priority = obj["priority"]
            if type(priority) is not str or priority not in TICKET_PRIORITIES:
                return _decode_ticket_checked(obj, raw)
            if n == 8:
                sla = obj["sla_minutes"]
                if type(sla) is not int or not 1 <= sla <= MAX_SLA_MINUTES:
                    return _decode_ticket_checked(obj, raw)
                quotes -= 2
            elif n != 7 or priority == "agreed":
                return _decode_ticket_checked(obj, raw)
        elif typ == "handled":
            result = obj["result"]
            if n != 7 or type(result) is not str or result not in TICKET_RESULTS:
                return _decode_ticket_checked(obj, raw)
        elif typ != "closed" or n != 6:
            return _decode_ticket_checked(obj, raw)
    except KeyError:
        return _decode_ticket_checked(obj, raw)
    # The hour cache holds valid ``YYYY-MM-DDTHH`` prefixes only (``T`` or ``t``), the tables valid
    # tails only: ``:MM:SS.fffuuuZ`` in three lookups (tried first: producers that send fractions
    # send them on every record), or ``:MM:SSZ`` in one. ``at_text``: the text when it is what
    # format_time(t) writes (``T``; six fraction digits only when the last three are not 000),
    # so the ticket's record need not format created_at again.
    base = hour_cache.get(at[:13])
    text = None
    if (base is not None and (rest := MIN_SEC_DOT.get(at[13:20])) is not None
            and (ms := MS3.get(at[20:23])) is not None and (us := US3_UTC.get(at[23:])) is not None):
        t = base + rest + ms + us
        if us and at[10] == "T":
            text = at
    elif base is not None and (rest := MIN_SEC_UTC.get(at[13:])) is not None:
        t = base + rest
        if at[10] == "T":
            text = at
    else:
        t = parse_time(at)
    if t is None or not (MIN_TIME <= t <= MAX_TIME):
        return _decode_ticket_checked(obj, raw)
    if raw.count(34) != quotes and has_duplicate_keys(raw, obj):
        return DUPLICATE_KEY
    ev = _new_object(TicketEvent)  # TicketEvent(...) without the call, every slot stored
    ev.event_id = event_id
    ev.shop_id = shop_id
    ev.ticket_id = ticket_id
    ev.platform = TICKET_PLATFORM
    ev.type = typ
    ev.t = t
    ev.priority = priority
    ev.category = None
    ev.sla_minutes = sla
    ev.due_at = None
    ev.result = result
    ev.at_text = text
    return ev


def _decode_ticket_checked(obj: dict, raw: bytes) -> TicketEvent | Invalid:
    """:func:`decode_ticket` off its fast path: repeated keys first, then every check."""
    return DUPLICATE_KEY if has_duplicate_keys(raw, obj) else _decode_ticket(obj)


def decode_obj(obj: object) -> ChatMessage | ShopEvent | TicketEvent | Invalid:
    """Validate an already-parsed JSON value (used by the Kafka adapters' deserialisers too)."""
    if type(obj) is not dict:
        return Invalid("not_object")
    schema = obj.get("schema")
    if schema == CHAT_SCHEMA:
        return _decode_chat(obj)
    if schema == SHOP_SCHEMA:
        return _decode_shop(obj)
    if schema == TICKET_SCHEMA:
        return _decode_ticket(obj)
    if schema == AFTERSALE_SCHEMA:
        return _decode_aftersale(obj)
    if schema is None:
        return Invalid("missing_field:schema")
    if type(schema) is not str:
        return Invalid("bad_type:schema")
    return Invalid("unknown_schema:schema", schema[:64])


_NOT_JSON = object()
_DUPLICATE = object()


def _reject_constant(name: str) -> object:
    raise ValueError(name)  # NaN, Infinity, -Infinity: Python extensions, not JSON (RFC 8259)


def _int_or_float(digits: str) -> int | float:
    try:
        return int(digits)
    except ValueError:  # beyond sys.get_int_max_str_digits(): the value is never used (R1)
        return float(digits)


def _loads_strict_fallback(raw: bytes | bytearray | memoryview | str) -> object:
    """The JSON value of a line orjson rejected, ``_NOT_JSON``, or ``_DUPLICATE`` (a repeated key).

    orjson refuses some valid JSON texts (RFC 8259): numbers beyond the range of a double
    (``1e400``, a 400-digit integer), which may sit in an unknown extra field that R1 ignores.
    The standard library parser accepts them; made as strict as orjson otherwise (UTF-8 only, no
    BOM, no NaN/Infinity, no unpaired surrogate). Runs only on lines orjson rejected, so valid
    lines pay nothing.
    """
    repeated: list[bool] = []

    def pairs_hook(pairs: list[tuple[str, object]]) -> dict:  # sees every pair, in order
        obj = dict(pairs)
        if len(obj) != len(pairs):
            repeated.append(True)  # decided only if the whole text is JSON: not_json comes first
        return obj

    try:
        text = raw if type(raw) is str else bytes(raw).decode("utf-8")
        obj = json.loads(text, parse_constant=_reject_constant, parse_int=_int_or_float, object_pairs_hook=pairs_hook)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return _NOT_JSON
    stack = [obj]  # no recursion: nesting as deep as json.loads accepts
    pop, push = stack.pop, stack.append
    while stack:
        node = pop()
        if type(node) is str:
            if not node.isascii():
                try:
                    node.encode("utf-8")
                except UnicodeEncodeError:  # an unpaired surrogate such as "\ud800": not text
                    return _NOT_JSON
        elif type(node) is dict:
            for k, v in node.items():
                push(k)
                push(v)
        elif type(node) is list:
            stack.extend(node)
    return _DUPLICATE if repeated else obj


def _string_tokens(value: object) -> int:
    """Keys and string values in a parsed JSON value (each is two ``"`` in its text without escapes)."""
    n = 0
    stack = [value]
    pop, push = stack.pop, stack.append
    while stack:
        node = pop()
        if type(node) is dict:
            n += len(node)
            values = node.values()
        elif type(node) is list:
            values = node
        else:
            n += type(node) is str
            continue
        types = [*map(type, values)]
        n += types.count(str)
        if dict in types or list in types:
            for v in values:
                if type(v) is dict or type(v) is list:
                    push(v)
    return n


def has_duplicate_keys(raw: bytes | bytearray | memoryview | str, value: object) -> bool:
    """Does the JSON text ``raw``, which orjson parsed to ``value``, repeat a key in any object?

    Without a backslash in ``raw``, every ``"`` delimits a key or a string value, and a repeated key
    is a string token that ``value`` lost: a count, no parsing (see the module docstring). With one,
    the standard library parses ``raw`` again and sees every key as written.
    """
    if type(raw) is memoryview or type(raw) is bytearray:
        raw = bytes(raw)
    if type(raw) is str:
        quotes, backslash = raw.count('"'), "\\" in raw
    else:
        quotes, backslash = raw.count(b'"'), b"\\" in raw
    if quotes == 2 * _string_tokens(value):
        return False  # escaped quotes only add to the count: equal means no key was dropped
    if not backslash:
        return True
    return _loads_strict_fallback(raw) is _DUPLICATE


def _record_bytes(raw: bytes | bytearray | memoryview | str) -> int:
    if type(raw) is str:
        return len(raw.encode("utf-8", "surrogatepass"))
    return memoryview(raw).nbytes if type(raw) is memoryview else len(raw)


def decode(raw: bytes | bytearray | memoryview | str,
           max_bytes: int = MAX_RECORD_BYTES) -> ChatMessage | ShopEvent | TicketEvent | Invalid:
    """One record's bytes -> event or :class:`Invalid`; never raises.

    A record longer than ``max_bytes`` is ``too_large`` without being parsed; one that repeats a
    key is ``duplicate_key`` whatever else is wrong with it (which value is meant is unknown).
    """
    if len(raw) > max_bytes or (type(raw) is not bytes and _record_bytes(raw) > max_bytes):
        return Invalid("too_large", f"longer than {max_bytes} bytes")
    try:
        obj = _loads(raw)
    except _JSONDecodeError:
        obj = _loads_strict_fallback(raw)
        if obj is _NOT_JSON:
            return Invalid("not_json")
        if obj is _DUPLICATE:
            return DUPLICATE_KEY
    else:
        if type(obj) is dict and obj.get("schema") == CHAT_SCHEMA and type(raw) is bytes:  # the hot case
            ev = _decode_chat(obj, raw)  # checks a valid message for repeated keys itself
            if type(ev) is Invalid and ev is not DUPLICATE_KEY and has_duplicate_keys(raw, obj):
                return DUPLICATE_KEY
            return ev
        if (type(obj) is dict or type(obj) is list) and has_duplicate_keys(raw, obj):
            return DUPLICATE_KEY
    if type(obj) is dict and obj.get("schema") == CHAT_SCHEMA:
        return _decode_chat(obj)
    return decode_obj(obj)
