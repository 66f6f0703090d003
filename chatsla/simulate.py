"""Deterministic marketplace traffic simulator: a week of input events for demos, tests and benchmarks.

Why it exists: the processor's rules (RULES R2-R6) only show their corners under traffic that
actually reaches them -- 72 h / 6 h / 10 min closures, explicit closes, outreach, vacation mode,
shops on both sides of the 85 % / 90 % thresholds, shops too quiet to be assessed, invalid
records, disorder within and beyond the allowed lateness. This module produces such traffic.
``SimConfig.platforms`` adds the other two models' corners (issue #12): Douyin service tickets
(R9: every priority and deadline source, inside / outside / at the bounds of the service window,
in time, late, missed, excluded, returned) and AliExpress chats (R10: follow-ups, keyword
auto-replies, closes, long unreplied waits); ``aftersale`` adds TikTok Shop after-sales requests
(R11, issue #14: the R11.2 rule set's every rule, amounts at and around its thresholds, R11.8's
abuse patterns, reviews in time / late / by the platform / never, and a shop whose rule set is
assigned mid-week). The default is TikTok Shop alone, byte for byte as before.

Determinism (R6.1): no wall clock is read; every instant derives from ``SimConfig.week_start``
and every random choice from ``random.Random`` instances seeded from ``SimConfig.seed``. Each
concern has its own stream (one per shop for the traffic, one each for jitter, lateness and bad
records; one per Douyin / AliExpress shop and their own bad records), so the same config gives
byte-identical output, adding a shop or a platform leaves the others' traffic unchanged, and
changing only ``jitter_seconds`` / ``late_fraction`` / ``bad_fraction`` changes delivery, not the
conversations and tickets themselves.
"""

from __future__ import annotations

import functools
import os
import random
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import IO, Any, NoReturn
from zoneinfo import ZoneInfo

import click
import orjson

from chatsla.cli import kafka_security_options
from chatsla.core.policy import load_policy
from chatsla.core.service_clock import clock_for
from chatsla.streams.topics import TopicNames

__all__ = [
    "CHAT_TOPIC",
    "PLATFORMS",
    "SHOP_TOPIC",
    "TICKET_TOPIC",
    "DEFAULT_PROFILES",
    "DEFAULT_TIMEZONES",
    "DEFAULT_WEEK_START",
    "Record",
    "Responsiveness",
    "SimConfig",
    "generate",
    "simulate",
    "write_jsonl",
]

CHAT_TOPIC = "chat.messages"
SHOP_TOPIC = "shop.events"
TICKET_TOPIC = TopicNames().tickets  # RULES R9.1 / A.1: the default name; --ticket-topic changes it
TICKET_SCHEMA = "ticket.event/v1"
AFTERSALE_TOPIC = TopicNames().aftersale  # RULES R11.1: aftersale.requests, keyed by request_id
AFTERSALE_SCHEMA = "aftersale.request/v1"
#: The rule set the after-sales shops are assigned (R11.2's example, bundled in chatsla/aftersale_rules).
AFTERSALE_RULES = "shop-S9-aftersale@2026-01-22"

#: The platforms the simulator plays, in the order their traffic is generated.
PLATFORMS = ("tiktok_shop", "douyin", "aliexpress", "aftersale")
DOUYIN_TICKET_POLICY = "douyin_ticket@2024-09"  # the deadlines Douyin tickets are aimed at

#: One log entry: (topic, Kafka key, value bytes).
Record = tuple[str, bytes, bytes]

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR
# The tiktok_shop 2023-11 windows (R2.4, R3); the simulator aims events at and around them.
SELLER_WINDOW = 72 * HOUR
BUYER_WINDOW = 6 * HOUR
AUTO_WINDOW = 10 * MINUTE
REPLY_WINDOW = 24 * HOUR

DEFAULT_WEEK_START = datetime(2026, 11, 2, tzinfo=UTC)
_EPOCH_DATE = date(1970, 1, 1)
DEFAULT_TIMEZONES = ("UTC", "Asia/Bangkok", "Asia/Jakarta", "Europe/London", "America/Los_Angeles")

MESSAGE_TYPES = ("text", "image", "video", "emoji", "sticker", "product_card", "order_card", "other")
_MESSAGE_TYPE_WEIGHTS = (70, 8, 3, 6, 4, 4, 4, 1)
# Local hour of day -> relative chance that a buyer starts a conversation then (daytime-heavy).
_HOUR_WEIGHTS = (1, 1, 1, 1, 1, 1, 2, 3, 5, 6, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 5, 4, 3, 2)
# Offsets (minutes) used when a timestamp is written as "+07:00" rather than "Z" (same instant).
_OFFSET_MINUTES = (420, 480, 330, -480, 0, -180)
_OFFSET_SHARE = 0.15
_PLATFORM_SHARE = 0.25
_OUTREACH_SHARE = 0.05
_LATE_DELAY = (15 * MINUTE, 12 * HOUR)


@dataclass(frozen=True)
class Responsiveness:
    """How a shop's agents behave; decides which weekly outcome (R5.5) the shop lands in.

    ``replied_share`` is dealt from a shuffled deck (denominator <= 40) rather than drawn
    independently per session, so a shop's weekly rate stays within about one session of the
    target and the ok / warning / violation bands hold for every seed, not just most.
    ``chattiness`` scales the buyer's extra messages (bursts, nudges, follow-ups); 0 keeps
    exactly one buyer message per conversation, which with ``max_conversations`` < 5 makes a
    shop ``not_assessed`` (R5.4).
    """

    name: str
    replied_share: float
    auto_reply: float = 0.2
    chattiness: float = 1.0
    max_conversations: int | None = None


DEFAULT_PROFILES = (
    Responsiveness("ok", replied_share=0.96, auto_reply=0.3),
    Responsiveness("warning", replied_share=0.875, auto_reply=0.2),
    Responsiveness("violation", replied_share=0.70, auto_reply=0.1),
    Responsiveness("quiet", replied_share=1.0, auto_reply=0.0, chattiness=0.0, max_conversations=3),
)
# Sessions opened while the shop is on vacation (R4): mostly auto-replies, few human answers.
_VACATION = Responsiveness("vacation", replied_share=0.3, auto_reply=0.9)


@dataclass(frozen=True)
class SimConfig:
    """Everything that determines the output; equal configs give byte-identical logs (R6.1).

    Shop ``i`` (1-based) gets ``timezones[(i-1) % len]`` and ``profiles[(i-1) % len]``; with the
    defaults the five shops end the week ok, warning, violation, not_assessed and ok (R5.5), and
    shop ``vacation_shop`` has a vacation period (R4). Conversations start within each shop's
    local week ``[week_start's date 00:00, + days)`` (R5.1); their events run up to ~3 days past it.
    """

    seed: int
    shops: int = 5
    conversations_per_shop: int = 200
    week_start: datetime = DEFAULT_WEEK_START
    days: int = 7
    timezones: tuple[str, ...] = DEFAULT_TIMEZONES
    profiles: tuple[Responsiveness, ...] = DEFAULT_PROFILES
    vacation_shop: int | None = 1
    bad_fraction: float = 0.0
    jitter_seconds: int = 0
    late_fraction: float = 0.0
    # Which platforms to play (issue #12); the fields above them are TikTok Shop's. The default
    # is the traffic of before, byte for byte.
    platforms: tuple[str, ...] = ("tiktok_shop",)
    douyin_shops: int = 2
    tickets_per_shop: int = 150
    # A Douyin shop in the policy's default zone (Asia/Shanghai, R9.2.2) sends no timezone event.
    douyin_timezones: tuple[str, ...] = ("Asia/Shanghai", "Asia/Urumqi")
    aliexpress_shops: int = 2
    aliexpress_conversations: int = 150
    # An AliExpress shop in UTC (R1's default) sends no timezone event.
    aliexpress_timezones: tuple[str, ...] = ("UTC", "Asia/Shanghai")
    # After-sales requests (R11, issue #14), TikTok Shop's policy ``tiktok_aftersale``.
    aftersale_shops: int = 2
    aftersale_requests: int = 120
    aftersale_timezones: tuple[str, ...] = ("UTC", "Asia/Bangkok")

    @property
    def shop_count(self) -> int:
        """Shops of every platform played (``generate`` reports progress out of these)."""
        counts = {"tiktok_shop": self.shops, "douyin": self.douyin_shops, "aliexpress": self.aliexpress_shops,
                  "aftersale": self.aftersale_shops}
        return sum(counts[p] for p in self.platforms)

    def __post_init__(self) -> None:
        """Reject impossible configs early with one-line messages (the CLI prints them as is)."""
        if self.shops < 1:
            raise ValueError("shops must be at least 1")
        if self.conversations_per_shop < 0:
            raise ValueError("conversations_per_shop must not be negative")
        if self.days < 1:
            raise ValueError("days must be at least 1")
        ws = self.week_start
        if ws.tzinfo is None or ws.utcoffset() is None:
            raise ValueError("week_start needs a timezone offset")
        if ws.weekday() != 0 or (ws.hour, ws.minute, ws.second, ws.microsecond) != (0, 0, 0, 0):
            raise ValueError(f"week_start must be a Monday at 00:00, not {ws.isoformat()}")
        if not self.timezones or not self.profiles:
            raise ValueError("timezones and profiles must not be empty")
        if not self.platforms or len(set(self.platforms)) != len(self.platforms):
            raise ValueError("platforms must name at least one platform, each once")
        for platform in self.platforms:
            if platform not in PLATFORMS:
                raise ValueError(f"unknown platform {platform!r} (known: {', '.join(PLATFORMS)})")
        if self.douyin_shops < 1 or self.aliexpress_shops < 1:
            raise ValueError("douyin_shops and aliexpress_shops must be at least 1")
        if self.aftersale_shops < 1 or self.aftersale_requests < 0:
            raise ValueError("aftersale_shops must be at least 1 and aftersale_requests not negative")
        if self.tickets_per_shop < 0 or self.aliexpress_conversations < 0:
            raise ValueError("tickets_per_shop and aliexpress_conversations must not be negative")
        if not self.douyin_timezones or not self.aliexpress_timezones or not self.aftersale_timezones:
            raise ValueError("douyin_timezones, aliexpress_timezones and aftersale_timezones must not be empty")
        for name in (*self.timezones, *self.douyin_timezones, *self.aliexpress_timezones, *self.aftersale_timezones):
            try:
                ZoneInfo(name)
            except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
                raise ValueError(f"unknown timezone {name!r}") from None
        if self.vacation_shop is not None and not 1 <= self.vacation_shop <= self.shops:
            raise ValueError(f"vacation_shop must be between 1 and {self.shops}")
        if not 0.0 <= self.bad_fraction < 1.0:
            raise ValueError("bad_fraction must be in [0, 1)")
        if self.jitter_seconds < 0:
            raise ValueError("jitter_seconds must not be negative")
        if not 0.0 <= self.late_fraction <= 1.0:
            raise ValueError("late_fraction must be in [0, 1]")


# --------------------------------------------------------------------------------------------
# Traffic of one shop


@dataclass(slots=True)
class _Event:
    """A generated good event before delivery order is decided."""

    t: int  # event time, epoch seconds
    topic: str
    key: str
    value: bytes


class _Deck:
    """Deals True/False with an exact share per shuffled block, so small samples hit the target."""

    def __init__(self, rng: random.Random, share: float) -> None:
        frac = Fraction(share).limit_denominator(40)
        self._block = [True] * frac.numerator + [False] * (frac.denominator - frac.numerator)
        self._rng = rng
        self._cards: list[bool] = []

    def draw(self) -> bool:
        if not self._cards:
            self._cards = self._block[:]
            self._rng.shuffle(self._cards)
        return self._cards.pop()


def _stamp_formats() -> list[tuple[int, str]]:
    """(shift seconds, suffix) for each offset, e.g. (25200, '+07:00')."""
    out = []
    for minutes in _OFFSET_MINUTES:
        sign = "+" if minutes >= 0 else "-"
        out.append((minutes * MINUTE, f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"))
    return out


_STAMP_FORMATS = _stamp_formats()
# Weighted choices as bags for rng.choice: several times faster than rng.choices on the hot path.
_MESSAGE_TYPE_BAG = tuple(
    m for m, w in zip(MESSAGE_TYPES, _MESSAGE_TYPE_WEIGHTS, strict=True) for _ in range(w)
)
_HOUR_BAG = tuple(h for h, w in enumerate(_HOUR_WEIGHTS) for _ in range(w))
# (sender, message_type) of messages sent before any buyer message (R2.2).
_OUTREACH_KINDS = (
    ("seller", "product_card"),
    ("seller", "text"),
    ("system", "order_card"),
    ("auto_reply", "text"),
)


@functools.lru_cache(maxsize=4096)
def _utc_date(day: int) -> str:
    """``YYYY-MM-DD`` of a day number since the epoch; a week touches only a dozen of them."""
    return (_EPOCH_DATE + timedelta(days=day)).isoformat()


def _wall_clock(t: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of epoch second ``t`` in UTC (time.strftime was the hot spot)."""
    day, rest = divmod(t, DAY)
    hours, rest = divmod(rest, HOUR)
    return f"{_utc_date(day)}T{hours:02d}:{rest // MINUTE:02d}:{rest % MINUTE:02d}"


def _stream(config: SimConfig, name: str) -> random.Random:
    """An independent, seed-derived stream per concern (str seeds hash stably, unlike hash())."""
    return random.Random(f"chatsla.simulate/{config.seed}/{name}")


class _Shop:
    """What every simulated shop has, whatever its platform: an id, a zone and the local midnights
    of its week (R5.1), its own random stream, event ids unique in the log, and the R1 time stamps."""

    def __init__(self, config: SimConfig, number: int, shop_id: str, tz: str, stream: str, id_prefix: str) -> None:
        self.number = number
        self.shop_id = shop_id
        self.tz = ZoneInfo(tz)
        self.days = config.days
        self.rng = _stream(config, stream)
        self.events: list[_Event] = []
        # Epoch second of each local midnight: the window honours the shop's calendar (R5.1).
        first_day = config.week_start.date()
        self.midnights = [
            int(datetime.combine(first_day + timedelta(days=d), datetime.min.time(), self.tz).timestamp())
            for d in range(self.days + 1)
        ]
        self.window_start, self.window_end = self.midnights[0], self.midnights[-1]
        self._id_prefix = id_prefix
        self._next_id = 0

    def _event_id(self) -> str:
        self._next_id += 1
        return f"{self._id_prefix}{self._next_id}"

    def _stamp(self, t: int) -> str:
        """RFC 3339: mostly 'Z', sometimes a numeric offset naming the same instant (R1)."""
        if self.rng.random() < _OFFSET_SHARE:
            shift, suffix = self.rng.choice(_STAMP_FORMATS)
            return _wall_clock(t + shift) + suffix
        return _wall_clock(t) + "Z"

    def shop_event(self, t: int, kind: str, **extra: str) -> None:
        """Append one shop.event/v1 event (R1)."""
        ev = {"schema": "shop.event/v1", "event_id": self._event_id(), "shop_id": self.shop_id}
        ev.update(type=kind, **extra, at=self._stamp(t))
        self.events.append(_Event(t, SHOP_TOPIC, self.shop_id, orjson.dumps(ev)))

    def _typed(self, t: int, schema: str, topic: str, record_id: tuple[str, str], platform: str, kind: str,
               fields: dict[str, Any]) -> None:
        """Append one typed record (``ticket.event/v1`` R9.1, ``aftersale.request/v1`` R11.1), keyed
        by its own id; ``platform`` is present only sometimes (it is optional on the wire)."""
        ev: dict[str, Any] = {"schema": schema, "event_id": self._event_id(), "shop_id": self.shop_id,
                              record_id[0]: record_id[1]}
        if self.rng.random() < _PLATFORM_SHARE:
            ev["platform"] = platform
        ev["type"] = kind
        ev.update(fields)
        ev["at"] = self._stamp(t)
        self.events.append(_Event(t, topic, record_id[1], orjson.dumps(ev)))

    def _start_time(self) -> int:
        """A start inside the window, more likely in the shop's local daytime."""
        rng = self.rng
        day = rng.randrange(self.days)
        hour = rng.choice(_HOUR_BAG)
        t = self.midnights[day] + hour * HOUR + rng.randrange(HOUR)
        return min(t, self.window_end - 1)  # only on a short DST day can this overflow


class _ShopTraffic(_Shop):
    """Plays every conversation of one TikTok Shop shop (shop ``number``, 1-based) into ``events``."""

    def __init__(self, config: SimConfig, number: int) -> None:
        tz = config.timezones[(number - 1) % len(config.timezones)]
        super().__init__(config, number, f"shop-{number:02d}", tz, f"shop/{number}", f"e-{number:02d}-")
        self.profile = config.profiles[(number - 1) % len(config.profiles)]
        limit = self.profile.max_conversations
        self.conversations = config.conversations_per_shop if limit is None else min(limit, config.conversations_per_shop)
        self.vacation = config.vacation_shop == number
        self.vacation_span: tuple[int, int] | None = None
        self.deck = _Deck(self.rng, self.profile.replied_share)

    # -- emitting ------------------------------------------------------------------------------

    def chat(self, t: int, conv: str, sender: str, kind: str = "message", mtype: str | None = None) -> None:
        """Append one chat.message/v1 event; optional fields are present only sometimes (R1)."""
        rng = self.rng
        ev: dict[str, Any] = {
            "schema": "chat.message/v1",
            "event_id": self._event_id(),
            "shop_id": self.shop_id,
            "conversation_id": conv,
        }
        if rng.random() < _PLATFORM_SHARE:
            ev["platform"] = "tiktok_shop"
        ev["sender"] = sender
        if kind == "close":
            ev["kind"] = "close"
        else:
            if rng.random() < 0.2:
                ev["kind"] = "message"
            if mtype is None:
                mtype = rng.choice(_MESSAGE_TYPE_BAG)
            if mtype != "text" or rng.random() < 0.5:
                ev["message_type"] = mtype
        ev["sent_at"] = self._stamp(t)
        self.events.append(_Event(t, CHAT_TOPIC, conv, orjson.dumps(ev)))

    # -- the shop's week ------------------------------------------------------------------------

    def play(self) -> list[_Event]:
        if self.tz.key != "UTC":
            # A day before anything else, so every message is read in the shop's calendar (R1).
            self.shop_event(self.window_start - DAY, "timezone", timezone=self.tz.key)
        if self.vacation:
            span = self.window_end - self.window_start
            on = self.window_start + round(span * 0.55 / HOUR) * HOUR
            off = on + max(HOUR, round(span * 0.2 / HOUR) * HOUR)
            self.vacation_span = (on, off)
            self.shop_event(on, "vacation_on")
            self.shop_event(off, "vacation_off")
        for n in range(1, self.conversations + 1):
            self._conversation(f"c-{self.number:02d}-{n}")
        return self.events

    def _conversation(self, conv: str) -> None:
        """Outreach now and then (R2.2), then sessions until the buyer stops or the window ends."""
        rng = self.rng
        start: int | None = self._start_time()
        if rng.random() < _OUTREACH_SHARE:
            sender, mtype = rng.choice(_OUTREACH_KINDS)
            self.chat(start - rng.randint(10 * MINUTE, 12 * HOUR), conv, sender, mtype=mtype)
        while start is not None and start < self.window_end:
            start = self._session(conv, start)

    def _in_vacation(self, t: int) -> bool:
        return self.vacation_span is not None and self.vacation_span[0] <= t < self.vacation_span[1]

    # -- one session ----------------------------------------------------------------------------

    def _session(self, conv: str, opened: int) -> int | None:
        """Play a session opened by a buyer message (R2.1); return the next session's start or None.

        Whether the session is replied within 24 h (R3) is decided first, then events are placed
        so that the rules give exactly that answer.
        """
        rng = self.rng
        on_vacation = self._in_vacation(opened)
        profile = _VACATION if on_vacation else self.profile
        # Vacation sessions are excluded from rates (R4): keep them off the deck.
        replied = rng.random() < profile.replied_share if on_vacation else self.deck.draw()
        self.chat(opened, conv, "buyer")
        last_buyer = opened
        if rng.random() < profile.auto_reply:
            auto = opened + rng.randint(1, 3)
            self.chat(auto, conv, "auto_reply", mtype="text")
            if replied and rng.random() < 0.5:
                # Buyer silent for 10 min: auto_reply_resolved, counts as replied (R2.4, R3).
                return self._after_close(conv, auto + AUTO_WINDOW, profile)
            # The buyer answers within 10 min (at the inclusive bound now and then, R2.5), so the
            # auto-reply resolves nothing and a human must still reply (R3).
            at_bound = rng.random() < 0.05
            last_buyer = auto + (AUTO_WINDOW if at_bound else rng.randint(20, AUTO_WINDOW - 1))
            self.chat(last_buyer, conv, "buyer")
        last_buyer = self._burst(conv, last_buyer, profile)
        if replied:
            # At most ~16 min of bursts + 23 h of delay: always within 24 h; sometimes exactly at it.
            reply = opened + REPLY_WINDOW if rng.random() < 0.02 else last_buyer + self._reply_delay()
        else:
            mode = rng.random()
            if mode < 0.35:  # never answered: seller_timeout at opened + 72 h
                self._nudge(conv, last_buyer, opened + SELLER_WINDOW, profile)
                return self._after_close(conv, opened + SELLER_WINDOW, profile)
            if mode < 0.5:  # the platform closes it unanswered: closed_by_platform
                closed = opened + rng.randint(HOUR, SELLER_WINDOW - HOUR)
                self._nudge(conv, last_buyer, closed, profile)
                self.chat(closed, conv, "system", kind="close")
                return self._after_close(conv, closed, profile)
            late = rng.random()
            if late < 0.05:
                reply = opened + REPLY_WINDOW + 1  # one second too late (R3)
            elif late < 0.1:
                reply = opened + SELLER_WINDOW  # exactly at the 72 h deadline: still in (R2.5)
            else:
                reply = opened + rng.randint(REPLY_WINDOW + 1, SELLER_WINDOW - HOUR)
        self._nudge(conv, last_buyer, reply, profile)
        self.chat(reply, conv, "seller")
        return self._after_reply(conv, reply, profile)

    def _reply_delay(self) -> int:
        """Human response time: mostly minutes, some hours, never beyond 23 h."""
        x = self.rng.random()
        if x < 0.55:
            return self.rng.randint(20, 10 * MINUTE)
        if x < 0.80:
            return self.rng.randint(10 * MINUTE, 2 * HOUR)
        if x < 0.95:
            return self.rng.randint(2 * HOUR, 12 * HOUR)
        return self.rng.randint(12 * HOUR, 23 * HOUR)

    def _burst(self, conv: str, t: int, profile: Responsiveness) -> int:
        """Extra buyer messages right after ``t`` (weekly volume, R5.3); return the last one's time."""
        if self.rng.random() < 0.35 * profile.chattiness:
            for _ in range(self.rng.randint(1, 2)):
                t += self.rng.randint(5, 90)
                self.chat(t, conv, "buyer")
        return t

    def _nudge(self, conv: str, after: int, before: int, profile: Responsiveness) -> None:
        """A buyer's "hello??" while still waiting: it must not move wait_start (R2.3)."""
        if before - after > 2 * HOUR and self.rng.random() < 0.3 * profile.chattiness:
            self.chat(self.rng.randint(after + HOUR, before - 1), conv, "buyer")

    def _after_reply(self, conv: str, reply: int, profile: Responsiveness) -> int | None:
        """After a human reply: explicit close, same-session turns within 6 h, or buyer_timeout."""
        rng = self.rng
        for _turn in range(4):
            x = rng.random()
            if x < 0.08:  # closed_by_seller / closed_by_platform (R2.4)
                closed = reply + rng.randint(MINUTE, 5 * HOUR)
                self.chat(closed, conv, "seller" if rng.random() < 0.7 else "system", kind="close")
                return self._after_close(conv, closed, profile)
            if x < 0.08 + 0.3 * profile.chattiness and reply < self.window_end:
                # Follow-up inside the 6 h window (sometimes exactly at it, R2.5): same session.
                at_bound = rng.random() < 0.03
                back = reply + (BUYER_WINDOW if at_bound else rng.randint(MINUTE, BUYER_WINDOW - 1))
                self.chat(back, conv, "buyer")
                if rng.random() < 0.05:
                    return None  # left unanswered: seller_timeout 72 h after the follow-up
                reply = back + self._reply_delay()
                self.chat(reply, conv, "seller")
                continue
            break
        return self._after_close(conv, reply + BUYER_WINDOW, profile)  # buyer_timeout

    def _after_close(self, conv: str, closed: int, profile: Responsiveness) -> int | None:
        """After a session's end: a later buyer message opens the next session (R2.6), or the
        seller writes once more into the closed conversation (outreach, R2.2)."""
        rng = self.rng
        if rng.random() < 0.3 * profile.chattiness:
            return closed + rng.randint(1, 2 * DAY)
        if rng.random() < 0.1:
            self.chat(closed + rng.randint(MINUTE, 3 * HOUR), conv, "seller")
        return None


# --------------------------------------------------------------------------------------------
# Douyin service tickets (RULES R9)

# Problem categories: the codes of douyin_ticket@2024-09's category_sla (R9.3.3), and one code no
# policy maps (the priority's limit then applies).
_CATEGORIES = (
    "exchange", "product", "negotiated_refund", "refund", "order_operation", "courier_problem",
    "merchant_service", "second_complaint", "voucher_booking", "risk_product", "courier_related",
    "logistics_query",
)
_AGREED_MINUTES = (60, 120, 240, 480, 720, 1440, 2880)  # 60: under agreed_sla_min, taken as given (R9.9)
_RESULT_BAG = ("resolved",) * 15 + ("unresolved",) * 3 + ("returned",) * 2  # R9.1
_OUTSIDE_HOURS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 21, 22, 23)  # local hours outside 09:00-21:00 (R9.2.1)


@functools.lru_cache(maxsize=1)
def _ticket_policy() -> Any:
    """The policy whose deadlines the ticket traffic aims at: ``douyin_ticket@2024-09``, the one
    with per-category limits, so that under it every deadline source of R9.3 occurs (under
    ``@seed001`` the same tickets simply fall back to their priority's limit)."""
    return load_policy(DOUYIN_TICKET_POLICY)


class _TicketTraffic(_Shop):
    """Plays the service tickets of one Douyin shop (``douyin-NN``) into ``events`` (RULES R9).

    Like the chat traffic, each ticket's outcome is decided first and its events are then placed
    against the deadline the rules give it (R9.2, R9.3, computed with the engine's own service
    clock): handled in time (sometimes exactly at due_at, inclusive), handled late (sometimes one
    second late), never handled (missed), closed before handling (excluded), closed after
    handling; results resolved / unresolved / returned, a returned ticket sometimes resubmitted
    as a new ticket (R9.4.8); now and then a second handling (rehandled), a second ``created``
    (conflict) or a handling of a ticket never created (orphan, R9.4.7).
    """

    def __init__(self, config: SimConfig, number: int) -> None:
        tz = config.douyin_timezones[(number - 1) % len(config.douyin_timezones)]
        super().__init__(config, number, f"douyin-{number:02d}", tz, f"douyin/{number}", f"e-dy{number:02d}-")
        self.tickets = config.tickets_per_shop
        self.policy = _ticket_policy()
        self.clock = clock_for(tz, self.policy.window_start, self.policy.window_end, self.policy.window_days)
        self._resubmitted = 0
        # Rare cases dealt from decks (exactly 1 in 40 per block), so that every seed has some.
        self._orphans = _Deck(self.rng, 0.025)
        self._conflicts = _Deck(self.rng, 0.025)

    def ticket(self, t: int, ticket_id: str, kind: str, **fields: Any) -> None:
        """Append one ticket.event/v1 event (R9.1); ``platform`` is present only sometimes."""
        self._typed(t, TICKET_SCHEMA, TICKET_TOPIC, ("ticket_id", ticket_id), "douyin", kind, fields)

    def play(self) -> list[_Event]:
        if self.tz.key != self.policy.default_timezone:
            self.shop_event(self.window_start - DAY, "timezone", timezone=self.tz.key)
        for n in range(1, self.tickets + 1):
            ticket_id = f"t-dy{self.number:02d}-{n}"
            if self._orphans.draw():  # a handling whose ticket never comes: orphan (R9.4.7)
                self.ticket(self._created_time(), ticket_id + "-orphan", "handled", result="resolved")
            self._ticket(ticket_id, self._created_time())
        return self.events

    def _created_time(self) -> int:
        """Mostly inside the local 09:00-21:00 window, a fifth outside it, and now and then exactly
        at its bounds (09:00:00 starts at once, 21:00:00 at 09:00 the next day: R9.2.4)."""
        rng = self.rng
        midnight = self.midnights[rng.randrange(self.days)]
        x = rng.random()
        if x < 0.03:
            return midnight + 9 * HOUR
        if x < 0.06:
            return midnight + 21 * HOUR
        if x < 0.8:
            return midnight + 9 * HOUR + rng.randrange(12 * HOUR)
        return midnight + rng.choice(_OUTSIDE_HOURS) * HOUR + rng.randrange(HOUR)

    def _due(self, created: int, priority: str, category: str | None, sla_minutes: int | None) -> int:
        """The computed deadline (R9.3 steps 2-4) in epoch seconds, by the engine's service clock."""
        policy = self.policy
        if sla_minutes is not None:
            service = sla_minutes * MINUTE * 1_000_000
        elif category in policy.category_sla:
            service = policy.category_sla[category]
        else:
            service = policy.ticket_sla[priority]
        return self.clock.due(created * 1_000_000, service) // 1_000_000

    def _ticket(self, ticket_id: str, created: int, priority: str | None = None) -> None:
        rng = self.rng
        if priority is None:
            x = rng.random()
            priority = "normal" if x < 0.6 else "urgent" if x < 0.88 else "agreed"
        fields: dict[str, Any] = {"priority": priority}
        category = sla_minutes = None
        if rng.random() < 0.4:
            category = fields["category"] = rng.choice(_CATEGORIES)
        if priority == "agreed":
            sla_minutes = fields["sla_minutes"] = rng.choice(_AGREED_MINUTES)
        due = self._due(created, priority, category, sla_minutes)
        if rng.random() < 0.1:  # the back office shows its own deadline, which prevails (R9.3.1)
            due = max(created + MINUTE, due + rng.randint(-2, 3) * HOUR)
            fields["due_at"] = self._stamp(due)
        self.ticket(created, ticket_id, "created", **fields)
        if self._conflicts.draw():  # the same ticket sent twice: conflict, ignored (R9.4.7)
            again = {k: v for k, v in fields.items() if k != "due_at"}  # (it may be due by then)
            self.ticket(created + rng.randint(1, HOUR), ticket_id, "created", **again)

        x = rng.random()
        if x < 0.06:  # closed by the platform before any handling: excluded (R9.4.6)
            self.ticket(created + rng.randint(0, due - created), ticket_id, "closed")
            return
        if x < 0.14:  # never handled: missed at due_at; the platform may close it later
            if rng.random() < 0.3:
                self.ticket(due + rng.randint(MINUTE, 2 * DAY), ticket_id, "closed")
            return
        if x < 0.26:  # handled late (R9.4.4), sometimes by one second
            handled = due + (1 if rng.random() < 0.2 else rng.randint(MINUTE, 12 * HOUR))
        else:  # in time, sometimes exactly at due_at (inclusive, R9.4.2)
            handled = due if rng.random() < 0.05 else created + rng.randint(0, due - created)
        result = rng.choice(_RESULT_BAG)
        self.ticket(handled, ticket_id, "handled", result=result)
        if rng.random() < 0.05:  # a second handling changes nothing: rehandled (R9.4.5)
            self.ticket(handled + rng.randint(MINUTE, DAY), ticket_id, "handled", result="resolved")
        if rng.random() < 0.25:  # closed after handling: only closed_at (R9.4.6)
            self.ticket(handled + rng.randint(HOUR, 3 * DAY), ticket_id, "closed")
        if result == "returned" and rng.random() < 0.6:  # resubmitted as a new ticket (R9.4.8)
            self._resubmitted += 1
            resubmitted = handled + rng.randint(10 * MINUTE, DAY)
            self._ticket(f"{ticket_id}-r{self._resubmitted}", resubmitted, priority)


# --------------------------------------------------------------------------------------------
# AliExpress chats (RULES R10)


class _AliExpressTraffic(_Shop):
    """Plays the conversations of one AliExpress shop (``aliexpress-NN``) into ``events`` (R10).

    A conversation is a run of waits (R10.2): a buyer message opens one, follow-ups extend it, and
    it ends answered by a human seller (sometimes at the very instant of the buyer's message,
    R10.2.6; sometimes days later), closed unanswered, or not at all (a long unreplied wait, the
    R10.3 view). The keyword auto-reply answers some buyer messages that open a 24 h period
    (R10.4: the period's auto-reply), a few others (extra), and a few come outside every period
    (unprompted); none of them ends a wait. Sellers also write with no open wait.
    """

    def __init__(self, config: SimConfig, number: int) -> None:
        tz = config.aliexpress_timezones[(number - 1) % len(config.aliexpress_timezones)]
        super().__init__(config, number, f"aliexpress-{number:02d}", tz, f"aliexpress/{number}", f"e-ae{number:02d}-")
        self.conversations = config.aliexpress_conversations
        self._period_end: int | None = None  # end of the current conversation's 24 h period
        self._last = 0  # the current conversation's latest event time

    def chat(self, t: int, conv: str, sender: str, kind: str = "message") -> None:
        """Append one chat.message/v1 event with ``platform: "aliexpress"`` (R10.1: it routes them)."""
        rng = self.rng
        ev: dict[str, Any] = {
            "schema": "chat.message/v1",
            "event_id": self._event_id(),
            "shop_id": self.shop_id,
            "conversation_id": conv,
            "platform": "aliexpress",
            "sender": sender,
        }
        if kind == "close":
            ev["kind"] = "close"
        else:
            mtype = "text" if sender == "auto_reply" else rng.choice(_MESSAGE_TYPE_BAG)
            if mtype != "text" or rng.random() < 0.5:
                ev["message_type"] = mtype
        ev["sent_at"] = self._stamp(t)
        self.events.append(_Event(t, CHAT_TOPIC, conv, orjson.dumps(ev)))
        self._last = max(self._last, t)

    def play(self) -> list[_Event]:
        if self.tz.key != "UTC":  # R1: a shop never told its zone is read in UTC
            self.shop_event(self.window_start - DAY, "timezone", timezone=self.tz.key)
        for n in range(1, self.conversations + 1):
            self._conversation(f"c-ae{self.number:02d}-{n}")
        return self.events

    def _conversation(self, conv: str) -> None:
        rng = self.rng
        self._period_end = None
        first = self._last = self._start_time()
        if rng.random() < 0.04:  # the seller writes first: no wait to end (R10.2.5)
            self.chat(first - rng.randint(10 * MINUTE, 12 * HOUR), conv, "seller")
        start: int | None = first
        while start is not None and start < self.window_end:
            start = self._wait(conv, start)
        if self._period_end is not None and rng.random() < 0.04:  # outside every period: unprompted
            self.chat(max(self._last, self._period_end) + rng.randint(MINUTE, DAY), conv, "auto_reply")

    def _buyer(self, conv: str, t: int) -> None:
        """A buyer message, and the keyword auto-reply it may trigger (R10.4)."""
        rng = self.rng
        self.chat(t, conv, "buyer")
        if self._period_end is None or t >= self._period_end:  # eligible: opens a 24 h period
            self._period_end = t + DAY
            if rng.random() < 0.5:  # a keyword matched
                self.chat(t + rng.randint(1, 5), conv, "auto_reply")
        elif rng.random() < 0.08:  # another keyword reply in the same period: extra
            self.chat(t + rng.randint(1, 5), conv, "auto_reply")

    def _wait(self, conv: str, opened: int) -> int | None:
        """One wait (R10.2); return the next wait's opening time, or None."""
        rng = self.rng
        self._buyer(conv, opened)
        last = opened
        for _ in range(rng.choice((0, 0, 0, 1, 1, 2, 3))):  # follow-ups: they move last_at only
            last += rng.randint(20, 2 * HOUR)
            self._buyer(conv, last)
        x = rng.random()
        if x < 0.68:
            if last == opened and rng.random() < 0.04:
                reply = opened  # the same instant: the buyer's message first, waited 0 (R10.2.6)
            elif rng.random() < 0.05:
                reply = last + rng.randint(2 * DAY, 4 * DAY)  # a long wait, answered at last
            else:
                reply = last + _human_delay(rng)
            self.chat(reply, conv, "seller")
            end = reply
            if rng.random() < 0.1:  # a follow-up by the seller with no open wait (R10.2.5)
                end = reply + rng.randint(MINUTE, 6 * HOUR)
                self.chat(end, conv, "seller")
            return end + rng.randint(10 * MINUTE, 2 * DAY) if rng.random() < 0.45 else None
        if x < 0.8:  # closed unanswered (R10.2.3): no waiting time
            closed = last + rng.randint(10 * MINUTE, 2 * DAY)
            self.chat(closed, conv, "seller" if rng.random() < 0.7 else "system", kind="close")
            return closed + rng.randint(HOUR, 2 * DAY) if rng.random() < 0.25 else None
        return None  # never answered: an unreplied conversation to the end (R10.3)


# --------------------------------------------------------------------------------------------
# TikTok Shop after-sales requests (RULES R11)

# (request_type, reason, category): every rule of the R11.2 rule set matches some of these, and
# some match none (no_rule_matched).
_AFTERSALE_KINDS = (
    ("cancel", "address_error", "home"),
    ("cancel", "changed_mind", "apparel"),
    ("cancel", "not_received", "electronics"),
    ("refund_only", "damaged", "home"),
    ("refund_only", "not_received", "home"),
    ("refund_only", "wrong_item", "electronics"),
    ("return_refund", "damaged", "electronics"),
    ("return_refund", "not_as_described", "jewelry"),
    ("return_refund", "changed_mind", "beauty"),
    ("return_refund", "quality", "apparel"),
    ("exchange", "size_issue", "apparel"),
    ("exchange", "wrong_item", "home"),
)
# The rule set's amount_max per request type (cents): amounts are aimed at, on and just above them.
_THRESHOLDS = {"cancel": 5000, "refund_only": 10000, "return_refund": 20000, "exchange": 10000}
_REVIEW_WINDOW = 48 * HOUR  # tiktok_aftersale@2026-01's review_window for every type (R11.7)
_JEWELRY_WINDOW = 7 * DAY  # its platform_return_window for jewelry (R11.3.2)


def _cents(c: int) -> str:
    """A decimal string with two places ("98.00"): amounts are exact decimals (R11.1)."""
    return f"{c // 100}.{c % 100:02d}"


class _AftersaleTraffic(_Shop):
    """Plays the after-sales requests of one shop (``aftersale-NN``) into ``events`` (RULES R11).

    The shop is assigned the R11.2 rule set by an ``aftersale_rules`` shop event: odd-numbered
    shops before the week, even-numbered ones at noon of the week's second local day, so that
    their earlier requests meet no rule set (``no_rule_set``, R11.2). Requests are of every type,
    aimed at the rules (amounts below, exactly at and one cent above each ``amount_max``; credit
    around 60; shipped or not; jewelry delivered inside, exactly at and beyond the platform's 7 d
    window), sometimes without ``buyer_ref`` (``limit:buyer_unknown``). R11.8's abuse patterns
    come on purpose: a home refund without buyer_ref (u1), a buyer refunding the 98.00 vase every other day (repeat_sku, then the
    per-buyer limit with repeat_buyer; near_threshold every time) and a buyer with a request of
    another kind every day. Reviews (R11.6) come in time (odd shops mostly, even ones often not) (sometimes exactly at the due time, by
    the seller or the seller's rule), late, by the platform after the miss (its auto-approval) or
    before it, or never; a few requests are decided by the platform alone (``awaiting_seller``
    false).
    """

    def __init__(self, config: SimConfig, number: int) -> None:
        tz = config.aftersale_timezones[(number - 1) % len(config.aftersale_timezones)]
        super().__init__(config, number, f"aftersale-{number:02d}", tz, f"aftersale/{number}", f"e-as{number:02d}-")
        self.requests = config.aftersale_requests
        # Odd shops review 95 % in time (R11.6: ok), even ones 60 % (auto_approval_tool_risk); a
        # deck keeps the monthly rate on its side of the 90 % threshold for every seed.
        self._in_time = _Deck(self.rng, 0.95 if number % 2 else 0.6)

    def request(self, t: int, request_id: str, kind: str, **fields: Any) -> None:
        """Append one aftersale.request/v1 event (R11.1), keyed by request_id."""
        self._typed(t, AFTERSALE_SCHEMA, AFTERSALE_TOPIC, ("request_id", request_id), "tiktok_shop", kind, fields)

    def play(self) -> list[_Event]:
        if self.tz.key != "UTC":  # R1: a shop never told its zone is read in UTC
            self.shop_event(self.window_start - DAY, "timezone", timezone=self.tz.key)
        assigned = self.window_start - DAY if self.number % 2 else self.midnights[min(1, self.days - 1)] + 12 * HOUR
        self.shop_event(assigned, "aftersale_rules", rules=AFTERSALE_RULES)
        prefix = f"as-{self.number:02d}"
        for n in range(1, self.requests + 1):
            self._request(f"{prefix}-{n}", self._start_time())
        # R11.8 v1-v3: the 98.00 vase under the 100.00 rule, again and again (every other day)
        for k, day in enumerate(range(0, self.days, 2), 1):
            t = self.midnights[day] + 8 * HOUR
            self._request(f"{prefix}-vase{k}", t, ("refund_only", "damaged", "home"), 9800, f"b-{self.number:02d}-vase",
                          "vase-1")
        # a buyer with a request every day, of varying kinds and SKUs: repeat_buyer from the third
        for day in range(self.days):
            t = self.midnights[day] + 15 * HOUR
            self._request(f"{prefix}-serial{day + 1}", t, None, None, f"b-{self.number:02d}-serial")
        # R11.8 u1: a home refund under the per-buyer rule from a buyer nobody can name
        t = self.midnights[min(2, self.days - 1)] + 13 * HOUR
        self._request(f"{prefix}-anonymous", t, ("refund_only", "damaged", "home"), 2000, anonymous=True)
        return self.events

    def _request(self, request_id: str, t: int, kind: tuple[str, str, str] | None = None, cents: int | None = None,
                 buyer: str | None = None, sku: str | None = None, anonymous: bool = False) -> None:
        rng = self.rng
        request_type, reason, category = kind or rng.choice(_AFTERSALE_KINDS)
        if cents is None:
            top = _THRESHOLDS[request_type]
            x = rng.random()
            if x < 0.1:
                cents = top  # exactly at amount_max: inclusive (R11.3.3, N32)
            elif x < 0.15:
                cents = top + 1  # one cent above
            elif x < 0.35:
                cents = top - rng.randrange(top // 10)  # in the near_threshold band (R11.4)
            else:
                cents = rng.randrange(500, top * 3 // 2)
        fields: dict[str, Any] = {"request_type": request_type, "reason": reason, "category": category,
                                  "amount": _cents(cents), "currency": "USD"}
        if sku is None and rng.random() < 0.8:
            sku = f"sku-{rng.randrange(30)}"
        if sku is not None:
            fields["sku_id"] = sku
        if buyer is None and not anonymous and rng.random() < 0.92:  # else no buyer_ref: limit:buyer_unknown (R11.3.5)
            buyer = f"b-{self.number:02d}-{rng.randrange(60)}"
        if buyer is not None:
            fields["buyer_ref"] = buyer
        if rng.random() < 0.85:
            fields["buyer_credit"] = 60 if rng.random() < 0.1 else rng.randint(30, 100)  # 60: not "below 60"
        if rng.random() < 0.85:
            fields["shipped"] = rng.random() < (0.3 if request_type == "cancel" else 0.9)
        if request_type != "cancel" and (category == "jewelry" or rng.random() < 0.4):
            x = rng.random()  # R11.3.2: exactly 7 d is inside the window, one second more outside
            ago = _JEWELRY_WINDOW if x < 0.15 else _JEWELRY_WINDOW + 1 if x < 0.25 else rng.randint(HOUR, 12 * DAY)
            fields["delivered_at"] = self._stamp(t - ago)
        if request_type == "return_refund" and rng.random() < 0.2:
            fields["return_shipping_cost"] = _cents(rng.randrange(300, 3000))
        awaiting = rng.random() >= 0.08
        if not awaiting:
            fields["awaiting_seller"] = False
        self.request(t, request_id, "requested", **fields)
        decision = "approved" if rng.random() < 0.75 else "rejected"
        if not awaiting:  # the platform decided it itself
            self.request(t + rng.randint(0, 2 * HOUR), request_id, "reviewed", by="platform", decision=decision)
            return
        due = t + _REVIEW_WINDOW
        x = rng.random()
        if self._in_time.draw():  # reviewed in time (R11.6.2), sometimes exactly at the due time (inclusive)
            at = due if rng.random() < 0.05 else t + rng.randint(MINUTE, _REVIEW_WINDOW)
            self.request(at, request_id, "reviewed", by="seller_rule" if rng.random() < 0.3 else "seller",
                         decision=decision)
        elif x < 0.3:  # the seller, too late
            self.request(due + rng.randint(1, DAY), request_id, "reviewed", by="seller", decision=decision)
        elif x < 0.7:  # missed; the platform's auto-approval after the deadline
            self.request(due + rng.randint(1, 6 * HOUR), request_id, "reviewed", by="platform", decision="approved")
        elif x < 0.85:  # the platform before the deadline: not a review by the seller (else: never reviewed)
            self.request(t + rng.randint(MINUTE, _REVIEW_WINDOW), request_id, "reviewed", by="platform",
                         decision=decision)
        if rng.random() < 0.02:  # another review after the deadline: only the first one counts (R11.5.1)
            self.request(due + rng.randint(1, DAY), request_id, "reviewed", by="seller", decision="rejected")


def _human_delay(rng: random.Random) -> int:
    """A human seller's response time: mostly minutes, some hours, a few up to 30 h."""
    x = rng.random()
    if x < 0.5:
        return rng.randint(30, 10 * MINUTE)
    if x < 0.8:
        return rng.randint(10 * MINUTE, 2 * HOUR)
    if x < 0.95:
        return rng.randint(2 * HOUR, 12 * HOUR)
    return rng.randint(12 * HOUR, 30 * HOUR)


# --------------------------------------------------------------------------------------------
# Bad records (R1: invalid events go to the DLQ and processing goes on)

_NOT_JSON = (
    b"not json",
    b"<html><body>502 Bad Gateway</body></html>",
    b"\xff\xfe\x00\x01 binary garbage",
    b"{'schema': 'chat.message/v1', 'event_id': 'single-quoted'}",
    b"chat.message/v1,e-1,shop-01,c-01-1,buyer",
)
_NOT_OBJECT = (b"[]", b"null", b"42", b'"chat.message/v1"')
_REQUIRED = ("schema", "event_id", "shop_id", "conversation_id", "sender", "sent_at")
_WRONG_TYPES: tuple[tuple[str, Any], ...] = (
    ("schema", 1),
    ("event_id", 12345),
    ("shop_id", None),
    ("conversation_id", ["c-01-1"]),
    ("sender", 1),
    ("kind", True),
    ("message_type", 3),
    ("platform", {"name": "tiktok_shop"}),
    ("sent_at", 1793577600),
)
_BAD_TIMES = (
    "yesterday",
    "",
    "2026-11-03T10:00:00",  # no offset
    "2026-13-03T10:00:00Z",
    "2026-11-31T10:00:00Z",
    "2026-11-03T25:00:00Z",
    "03/11/2026 10:00",
)
_BAD_SENDERS = ("bot", "customer", "agent", "")


def _bad_record(rng: random.Random, template: bytes, number: int) -> bytes:
    """One invalid record modelled on a good chat event; never contains a newline (JSONL)."""
    kind = rng.randrange(7)
    if kind == 0:
        return rng.choice(_NOT_JSON)
    if kind == 1:
        return rng.choice(_NOT_OBJECT)
    ev: dict[str, Any] = orjson.loads(template)
    ev["event_id"] = f"e-bad-{number}"  # never collides with a good event's idempotency key
    if kind == 2:
        whole = orjson.dumps(ev)
        return whole[: rng.randrange(1, len(whole) - 1)]  # any strict prefix of an object is invalid
    if kind == 3:
        del ev[rng.choice(_REQUIRED)]
    elif kind == 4:
        name, value = rng.choice(_WRONG_TYPES)
        ev[name] = value
    elif kind == 5:
        ev["sent_at"] = rng.choice(_BAD_TIMES)
    else:
        ev["sender"] = rng.choice(_BAD_SENDERS)
    return orjson.dumps(ev)


_TICKET_REQUIRED = ("event_id", "shop_id", "ticket_id", "type", "at")


def _bad_ticket(rng: random.Random, template: bytes, number: int) -> bytes:
    """One invalid ticket.event/v1 record modelled on a good one, covering R9.1's reasons
    (``missing_field:priority``, ``missing_field:sla_minutes``, ``missing_field:result``,
    ``bad_value:sla_minutes``, ``bad_value:due_at``) besides R1's generic ones."""
    kind = rng.randrange(9)
    if kind == 0:
        return rng.choice(_NOT_JSON)
    ev: dict[str, Any] = orjson.loads(template)
    ev["event_id"] = f"e-bad-dy-{number}"  # never collides with a good event's idempotency key
    if kind == 1:
        whole = orjson.dumps(ev)
        return whole[: rng.randrange(1, len(whole) - 1)]
    if kind == 2:
        ev["type"] = "created"
        ev.pop("priority", None)
    elif kind == 3:
        ev.update(type="created", priority="agreed")
        ev.pop("sla_minutes", None)
    elif kind == 4:
        ev["type"] = "handled"
        ev.pop("result", None)
    elif kind == 5:
        ev["type"] = "created"
        ev.setdefault("priority", "normal")
        ev["sla_minutes"] = rng.choice((0, -30, "120", 1.5, True))
    elif kind == 6:
        ev["type"] = "created"
        ev.setdefault("priority", "normal")
        ev["due_at"] = rng.choice(("tomorrow", "2026-11-03T10:00:00", "2020-01-01T00:00:00Z"))
    elif kind == 7:
        del ev[rng.choice(_TICKET_REQUIRED)]
    else:
        ev["type"] = rng.choice(("opened", "Created", "escalated"))
    return orjson.dumps(ev)


_AFTERSALE_REQUIRED = ("event_id", "shop_id", "request_id", "type", "at")


def _bad_aftersale(rng: random.Random, template: bytes, number: int) -> bytes:
    """One invalid aftersale.request/v1 record modelled on a good one (R11.1): not JSON, cut short,
    a required field missing, an unknown type or request_type, an amount that is no decimal
    string (a JSON number is refused: amounts are exact), a buyer_credit out of 0-100."""
    kind = rng.randrange(7)
    if kind == 0:
        return rng.choice(_NOT_JSON)
    ev: dict[str, Any] = orjson.loads(template)
    ev["event_id"] = f"e-bad-as-{number}"  # never collides with a good event's idempotency key
    if kind == 1:
        whole = orjson.dumps(ev)
        return whole[: rng.randrange(1, len(whole) - 1)]
    if kind == 2:
        del ev[rng.choice(_AFTERSALE_REQUIRED)]
    elif kind == 3:
        ev["type"] = rng.choice(("approved", "Requested", "cancelled"))
    elif kind == 4:
        ev.update(type="requested", request_type=rng.choice(("refund", "return", "")))
    elif kind == 5:
        ev.update(type="requested", amount=rng.choice((98.0, "98,00", "-5.00", "", "ninety")))
    else:
        ev.update(type="requested", buyer_credit=rng.choice((101, -1, "80", 59.5)))
    return orjson.dumps(ev)


# --------------------------------------------------------------------------------------------
# Public API


def generate(config: SimConfig, on_shop: Callable[[int, int], None] | None = None) -> list[Record]:
    """All events of the simulated week in LOG ORDER as (topic, key, value) (R1).

    Delivery: an input event (chat message or ticket event) is logged at ``event time + U(0,
    jitter_seconds)``, so any event is at most ``jitter_seconds`` behind one logged before it
    (R6.3 with allowed lateness >= jitter); a ``late_fraction`` of them is logged 15 min - 12 h
    late instead (R6.4). Shop events are logged on time, so a shop's timezone event always
    precedes its first message whatever the jitter. Bad records follow the good event they were
    modelled on.

    Platforms are generated in the order of :data:`PLATFORMS` (TikTok Shop first), each with its
    own random streams and its own bad records, so adding a platform leaves the others' records,
    and their order among themselves, exactly as without it.
    """
    players: list[tuple[str, Callable[[], list[_Event]]]] = []
    if "tiktok_shop" in config.platforms:
        players += [("tiktok_shop", _ShopTraffic(config, n).play) for n in range(1, config.shops + 1)]
    if "douyin" in config.platforms:
        players += [("douyin", _TicketTraffic(config, n).play) for n in range(1, config.douyin_shops + 1)]
    if "aliexpress" in config.platforms:
        players += [("aliexpress", _AliExpressTraffic(config, n).play) for n in range(1, config.aliexpress_shops + 1)]
    if "aftersale" in config.platforms:
        players += [("aftersale", _AftersaleTraffic(config, n).play) for n in range(1, config.aftersale_shops + 1)]
    events: list[_Event] = []
    platform_of: list[str] = []
    for done, (platform, play) in enumerate(players, 1):
        shop_events = play()
        events.extend(shop_events)
        platform_of.extend([platform] * len(shop_events))
        if on_shop is not None:  # progress (chatsla simulate): shops done, shops in all
            on_shop(done, len(players))

    jitter_rng, late_rng = _stream(config, "jitter"), _stream(config, "late")
    jitter, late_share = config.jitter_seconds, config.late_fraction
    ordered: list[tuple[int, int, int, int, str, str, bytes]] = []
    for i, ev in enumerate(events):
        logged = ev.t
        if ev.topic != SHOP_TOPIC:
            logged += int(jitter_rng.random() * (jitter + 1))  # U{0..jitter}: random() < 1
            if late_share and late_rng.random() < late_share:
                logged = ev.t + late_rng.randint(*_LATE_DELAY)
        ordered.append((logged, ev.t, i, 0, ev.topic, ev.key, ev.value))

    if config.bad_fraction:
        bad: list[tuple[int, int, int, int, str, str, bytes]] = []
        for platform in config.platforms:
            mine = [entry for entry, p in zip(ordered, platform_of, strict=True) if p == platform]
            templates = [entry for entry in mine if entry[4] != SHOP_TOPIC]
            if not templates:
                continue
            # TikTok Shop's stream keeps its name of before (samples/week.jsonl stays as it is)
            bad_rng = _stream(config, "bad" if platform == "tiktok_shop" else f"bad/{platform}")
            make = {"douyin": _bad_ticket, "aftersale": _bad_aftersale}.get(platform, _bad_record)
            count = round(len(mine) * config.bad_fraction / (1.0 - config.bad_fraction))
            for n in range(1, count + 1):
                logged, t, i, _, topic, key, value = templates[bad_rng.randrange(len(templates))]
                bad.append((logged, t, i, n, topic, key, make(bad_rng, value, n)))
        ordered += bad

    ordered.sort()
    return [(topic, key.encode(), value) for _, _, _, _, topic, key, value in ordered]


def write_jsonl(events: Iterable[Record], path_or_file: str | os.PathLike[str] | IO[bytes]) -> int:
    """Write each value on its own line, bytes as they are; return the number of lines.

    Accepts a path or an open binary file (e.g. ``sys.stdout.buffer``), which is not closed.
    """
    lines = [value for _, _, value in events]
    data = b"".join(line + b"\n" for line in lines)
    if isinstance(path_or_file, (str, os.PathLike)):
        with open(path_or_file, "wb") as fh:
            fh.write(data)
    else:
        path_or_file.write(data)
        path_or_file.flush()
    return len(lines)


# --------------------------------------------------------------------------------------------
# Command line


def _fail(message: str) -> NoReturn:
    """Bad arguments: one plain line on stderr and exit code 2, inside a group or standalone."""
    click.echo(" ".join(message.split()), err=True)
    raise click.exceptions.Exit(2)


class _OneLineErrors(click.Command):
    """Turns click's multi-line usage errors into ``_fail``'s single line.

    Overriding ``make_context`` (not ``main``) keeps this working when the command is registered
    in the ``chatsla`` group, whose main would otherwise print the usage block.
    """

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            if isinstance(exc, click.BadParameter):  # name the CHATSLA_* variable or config key
                from chatsla.config import relabel

                relabel(exc)
            _fail(f"{info_name or 'simulate'}: {exc.format_message()}")


class _Platforms(click.ParamType):
    """A comma-separated list of :data:`PLATFORMS`, each at most once (order does not matter)."""

    name = "LIST"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        names = [v.strip() for v in str(value).split(",") if v.strip()]
        unknown = [n for n in names if n not in PLATFORMS]
        if unknown or not names:
            self.fail(f"{value!r}: name one or more of {','.join(PLATFORMS)}", param, ctx)
        if len(set(names)) != len(names):
            self.fail(f"{value!r} names a platform twice", param, ctx)
        return tuple(p for p in PLATFORMS if p in names)


class _WeekStart(click.ParamType):
    """A date (``2026-11-02``, midnight UTC) or an RFC 3339 timestamp with offset."""

    name = "DATE|RFC3339"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            if len(value) == 10:
                return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
            parsed = datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is neither a date nor an RFC 3339 timestamp", param, ctx)
        if parsed.tzinfo is None:
            self.fail(f"{value!r} has no timezone offset", param, ctx)
        return parsed


def _option(name: str, type_: Any, default: Any, help_: str) -> Any:
    """A click option that shows its default (keeps the decorator list below readable)."""
    return click.option(name, type=type_, default=default, show_default=True, help=help_)


@click.command("simulate", cls=_OneLineErrors)
@_option("--platforms", _Platforms(), "tiktok_shop", "Platforms to simulate, comma-separated: tiktok_shop "
         "(chats, R2-R5), douyin (service tickets, R9), aliexpress (chats, R10), aftersale (TikTok Shop "
         "after-sales requests, R11).")
@_option("--shops", click.IntRange(min=1), 5, "Number of TikTok Shop shops.")
@_option("--conversations", click.IntRange(min=0), 200, "Conversations per TikTok Shop shop.")
@_option("--douyin-shops", click.IntRange(min=1), 2, "Number of Douyin shops (with --platforms douyin).")
@_option("--tickets", click.IntRange(min=0), 150, "Service tickets per Douyin shop.")
@_option("--aliexpress-shops", click.IntRange(min=1), 2, "Number of AliExpress shops (with --platforms aliexpress).")
@_option("--aliexpress-conversations", click.IntRange(min=0), 150, "Conversations per AliExpress shop.")
@_option("--aftersale-shops", click.IntRange(min=1), 2, "Number of after-sales shops (with --platforms aftersale).")
@_option("--aftersale-requests", click.IntRange(min=0), 120, "After-sales requests per shop (besides R11.8's abuse).")
@_option("--week-start", _WeekStart(), "2026-11-02", "Monday the week starts (date or RFC 3339).")
@_option("--days", click.IntRange(min=1), 7, "Days over which conversations start.")
@_option("--seed", int, 0, "Random seed; the same arguments give identical bytes.")
@_option("--bad-fraction", click.FloatRange(0.0, 1.0, max_open=True), 0.0, "Share of invalid records (R1).")
@_option("--jitter-seconds", click.IntRange(min=0), 0, "Max log-order disorder in seconds (R6.3).")
@_option("--late-fraction", click.FloatRange(0.0, 1.0), 0.0, "Share of chat events logged far late (R6.4).")
@_option("--out", click.Path(dir_okay=False, allow_dash=True), "-", "JSONL output file, '-' for stdout.")
@click.option("--bootstrap", metavar="HOST:PORT", envvar="CHATSLA_BOOTSTRAP",
              help="Produce to Kafka instead of writing JSONL.")
@_option("--rate", click.FloatRange(min=0.0), 0.0, "With --bootstrap: events per second (0: full speed).")
@_option("--chat-topic", str, "chat.messages", "With --bootstrap: topic for chat.message/v1 records.")
@_option("--shop-topic", str, "shop.events", "With --bootstrap: topic for shop.event/v1 records.")
@_option("--ticket-topic", str, TICKET_TOPIC, "With --bootstrap: topic for ticket.event/v1 records.")
@_option("--aftersale-topic", str, AFTERSALE_TOPIC, "With --bootstrap: topic for aftersale.request/v1 records.")
@_option("--partitions", click.IntRange(min=1), 4, "With --bootstrap: partitions of topics created if missing.")
@kafka_security_options
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr (a bar on a terminal, else a line "
              "every 10 s once a run takes that long).")
def simulate(
    platforms: tuple[str, ...],
    shops: int,
    conversations: int,
    douyin_shops: int,
    tickets: int,
    aliexpress_shops: int,
    aliexpress_conversations: int,
    aftersale_shops: int,
    aftersale_requests: int,
    week_start: datetime,
    days: int,
    seed: int,
    bad_fraction: float,
    jitter_seconds: int,
    late_fraction: float,
    out: str,
    bootstrap: str | None,
    rate: float,
    chat_topic: str,
    shop_topic: str,
    ticket_topic: str,
    aftersale_topic: str,
    partitions: int,
    quiet: bool = False,
    **kafka: Any,
) -> None:
    """Generate a deterministic week of marketplace traffic (RULES R1, R9.1, R10.1) as JSONL.

    By default TikTok Shop chats only; --platforms adds Douyin service tickets, AliExpress
    chats and TikTok Shop after-sales requests, each platform with its own shops (shop-NN,
    douyin-NN, aliexpress-NN, aftersale-NN).

    With --bootstrap the records go to Kafka instead, with the same security flags, -X
    properties and --topic-prefix as the other Kafka commands (the prefix goes before
    --chat-topic, --shop-topic, --ticket-topic and --aftersale-topic).
    """
    from chatsla.cli import security_settings
    from chatsla.progress import Progress

    security = security_settings(kafka)  # checked with or without --bootstrap: a wrong flag is never ignored
    prefix = kafka.pop("topic_prefix", "") or ""
    try:
        config = SimConfig(
            seed=seed,
            shops=shops,
            conversations_per_shop=conversations,
            week_start=week_start,
            days=days,
            bad_fraction=bad_fraction,
            jitter_seconds=jitter_seconds,
            late_fraction=late_fraction,
            platforms=platforms,
            douyin_shops=douyin_shops,
            tickets_per_shop=tickets,
            aliexpress_shops=aliexpress_shops,
            aliexpress_conversations=aliexpress_conversations,
            aftersale_shops=aftersale_shops,
            aftersale_requests=aftersale_requests,
        )
    except ValueError as exc:
        _fail(f"simulate: {exc}")
    with Progress("chatsla simulate", "shops", config.shop_count, quiet=quiet) as progress:
        events = generate(config, progress.update)
    if bootstrap is not None:
        from chatsla.streams.producer import ProduceError, produce
        from chatsla.streams.topics import topic_specs
        from chatsla.streams.admin import TopicError, ensure_topics

        chat_topic, shop_topic = prefix + chat_topic, prefix + shop_topic
        ticket_topic, aftersale_topic = prefix + ticket_topic, prefix + aftersale_topic
        names = TopicNames(chat=chat_topic, shop=shop_topic, tickets=ticket_topic, aftersale=aftersale_topic)
        client = security.kafka_python_kwargs()
        written = [chat_topic, shop_topic]
        if "douyin" in platforms:
            written.append(ticket_topic)  # (produce maps the logical ticket.events to names.tickets)
        if "aftersale" in platforms:  # issue #14: the worker's router reads it (R11.1), keyed by request_id
            written.append(aftersale_topic)
        specs = [s for s in topic_specs(names, partitions) if s.name in written]
        try:
            ensure_topics(bootstrap, specs, client_kwargs=client)
            with Progress("chatsla simulate", "events", len(events), quiet=quiet) as progress:
                sent = produce(events, bootstrap, names, rate, client, progress.update)
        except (ProduceError, TopicError) as exc:  # a run that failed, not bad arguments: exit 1
            click.echo(" ".join(f"simulate: {exc}".split()), err=True)
            raise click.exceptions.Exit(1) from None
        click.echo(f"produced {sent} events to {bootstrap} ({', '.join(written)})", err=True)
        return
    if out == "-":
        write_jsonl(events, click.get_binary_stream("stdout"))
    else:
        write_jsonl(events, out)
        click.echo(f"wrote {len(events)} events to {out}", err=True)


if __name__ == "__main__":
    simulate(sys.argv[1:], prog_name="simulate")
