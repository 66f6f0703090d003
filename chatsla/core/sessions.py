"""Per-conversation session state (RULES R2, R3).

One small ``__slots__`` object per conversation holds the open session, so the state of an open
conversation stays well under 1 KB (BENCHMARKS.md). Times are integer microseconds. The
transitions themselves live in :mod:`chatsla.core.engine`, which owns time and timers.

Bounded dedupe memory (issue #10 finding 1). A conversation (and a shop, for shop events)
remembers the ids of the events it applied so that a replayed or retried copy changes nothing
(R1). That memory is bounded twice:

* by time: ids older than the dedupe window (8 days behind the watermark) are forgotten, and
  ``floor`` (below) rises to the latest of them, so an older copy is still refused;
* by count: at most ``EngineConfig.max_remembered_ids`` (default 1,000). Past that, the oldest
  quarter is forgotten at once (amortised cost), and ``floor`` becomes the largest event time
  forgotten so far. Every remembered id is of an event after the floor. A later event whose id
  is not remembered and whose time is at or before the floor cannot be told apart from a replay
  of a forgotten one, so it is dropped and counted (``duplicate`` and ``dedupe_overflow``): a
  crash replay never applies an event twice. An event after the floor is new. By count, only a
  conversation with more than ~750 events inside 8 days gets a floor; by time, an event that
  arrives more than 8 days late into a conversation that has forgotten ids that old is dropped
  (R6.4 applies late events up to that bound: beyond it a late event cannot be told from a copy).

Ids are remembered as they are when they have at most :data:`INLINE_ID_CHARS` characters (UUIDs,
ULIDs, the simulator's ids); a longer id is remembered as a 64-bit BLAKE2b digest of its UTF-8
bytes, an ``int`` (never equal to a ``str``). A stored entry therefore holds at most 1,000 ids of
at most 242 JSON bytes each (40 characters, each escaped as six bytes at worst) and their
times: under 300 KB whatever the producer sends, about 45 KB for ids of 20-odd characters, far
under Kafka's 1 MB record limit; a normal conversation (a few events) keeps a few ids, as before.
Hashing only long ids keeps the per-event cost of the common case at one ``len``. The chance
that two different long ids of one conversation share a digest is about n^2 / 2^65.
"""

from __future__ import annotations

from hashlib import blake2b
from operator import attrgetter

NONE, BUYER, SELLER, AUTO = 0, 1, 2, 3  # who sent the latest message of the open session

SELLER_TIMEOUT = "seller_timeout"
BUYER_TIMEOUT = "buyer_timeout"
AUTO_REPLY_RESOLVED = "auto_reply_resolved"
CLOSED_BY_SELLER = "closed_by_seller"
CLOSED_BY_PLATFORM = "closed_by_platform"
CLOSE_REASONS = (SELLER_TIMEOUT, BUYER_TIMEOUT, AUTO_REPLY_RESOLVED, CLOSED_BY_SELLER, CLOSED_BY_PLATFORM)

_FIELDS = (
    "shop_id", "conversation_id", "n", "opened_at", "wait_start", "last_side", "last_seller_at",
    "first_human", "decided_at", "replied", "excluded", "late", "closed_at", "close_reason",
    "week", "timer", "past24", "seen_ids", "seen_ts", "contrib",
)
N_FIELDS = len(_FIELDS)  # a stored entry may carry more after these (Engine.conversation_entry)
INLINE_ID_CHARS = 40  # longer event ids are remembered as a digest (module docstring)
_NOT_HELD = ("closed_at", "close_reason")  # stored fields without a slot (see Conversation)
_get_fields = attrgetter(*_FIELDS)

# contrib[week_start] = [sessions, replied, pending, buyer_messages, late] this conversation added
# to the shop's week (R5.3). Keeping them with the conversation makes each conversation's stored
# entry self-contained: the shop's weekly counters are their sum, so a worker restarting from a
# partly written changelog can never count a session twice or lose one (R6.1).
C_SESSIONS, C_REPLIED, C_PENDING, C_MESSAGES, C_LATE = range(5)


class Conversation:
    """A conversation and its open session, if any (``opened_at is None``: no open session).

    ``wait_start``: first buyer message not yet followed by a human seller reply (R2.3);
    ``last_seller_at``: latest seller-side message (human or auto-reply), the start of the
    6 h / 10 min clocks (R2.4); ``past24``: the 24 h window has passed while an auto-reply was
    still inside its 10 minutes, so the decision waits for that auto-reply's fate (R3).
    """

    # ``closed_at`` and ``close_reason`` are stored (always None) but not held: a session is closed
    # and forgotten in one step (ChatSessions._close passes them to its record), so they are class
    # constants here and an open conversation is two slots smaller.
    __slots__ = tuple(f for f in _FIELDS if f not in _NOT_HELD) + ("scheduled", "key", "floor")
    closed_at: None = None
    close_reason: None = None

    def __init__(self, shop_id: str, conversation_id: str, key: tuple[str, str] | None = None) -> None:
        self.shop_id = shop_id
        self.conversation_id = conversation_id
        # (shop_id, conversation_id): the engine's table key, shared with its timer entries
        self.key = key if key is not None else (shop_id, conversation_id)
        self.n = 0
        self.opened_at: int | None = None
        self.wait_start: int | None = None
        self.last_side = NONE
        self.last_seller_at: int | None = None
        self.first_human: int | None = None
        self.decided_at: int | None = None
        self.replied: bool | None = None
        self.excluded = False
        self.late = False
        self.week: str | None = None
        self.timer: int | None = None  # when this session next needs attention (R2.4 / R3)
        self.past24 = False
        self.seen_ids: list[str | int] = []  # dedupe keys of events applied here (R1, see dedupe_key)
        self.seen_ts: list[int] = []
        self.contrib: dict[str, list[int]] = {}
        self.scheduled: int | None = None  # earliest live entry in the engine's timer heap
        self.floor: int | None = None  # largest time of an id forgotten for the count bound

    @property
    def session_id(self) -> str:
        return f"{self.conversation_id}#{self.n}"

    def reset(self) -> None:
        """Forget the closed session; ``n`` stays so the next one gets the next number (R2.6)."""
        self.opened_at = self.wait_start = self.last_seller_at = self.first_human = None
        self.decided_at = self.replied = None
        self.week = self.timer = None
        self.last_side = NONE
        self.excluded = self.late = self.past24 = False

    def to_list(self) -> list:
        # one C call for every field (a checkpoint stores thousands of conversations)
        return list(_get_fields(self))

    @classmethod
    def from_list(cls, values: list) -> "Conversation":
        c = cls.__new__(cls)
        for f, v in zip(_FIELDS, values, strict=True):
            if f not in _NOT_HELD:
                setattr(c, f, v)
        c.scheduled = None
        c.key = (c.shop_id, c.conversation_id)
        c.floor = None  # stored after the entry's week bounds (Engine.conversation_entry)
        c.seen_ids = normalise_ids(c.seen_ids)
        return c


def dedupe_key(event_id: str) -> str | int:
    """What is remembered of an event id: itself if short, else a 64-bit digest (module doc)."""
    if len(event_id) <= INLINE_ID_CHARS:
        return event_id
    return int.from_bytes(blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


def normalise_ids(ids: list) -> list:
    """Stored ids in today's form: entries written before digests were introduced hold long ids
    as they are, and a replayed copy is looked up by its digest (existing changelogs)."""
    if any(type(i) is str and len(i) > INLINE_ID_CHARS for i in ids):
        return [dedupe_key(i) if type(i) is str else i for i in ids]
    return ids


def forget_before(ids: list, ts: list[int], cutoff: int) -> int | None:
    """Drop the remembered ids of events before ``cutoff`` (out of the dedupe window); return the
    largest time forgotten (None if nothing was)."""
    forgotten = max((x for x in ts if x < cutoff), default=None)
    keep = [i for i, x in enumerate(ts) if x >= cutoff]
    ids[:] = [ids[i] for i in keep]
    ts[:] = [ts[i] for i in keep]
    return forgotten


def forget_oldest(ids: list, ts: list[int], keep: int, floor: int | None) -> int:
    """Forget the oldest remembered ids so that at most ``keep`` remain; return the new floor,
    the largest time forgotten. The ids at the instant where the cut falls are all kept when
    possible, so an event at that instant applied next (same-instant events are applied in
    order) is still after the floor; only a burst of one instant longer than the bound forgets
    that instant too."""
    k = len(ts) - keep
    if k <= 0:
        return floor  # type: ignore[return-value]
    cut = sorted(ts)[k - 1]  # the k-th oldest time
    drop = [x < cut for x in ts]
    if not any(drop):  # everything oldest is at one instant: forget that instant too
        drop = [x <= cut for x in ts]
    forgotten = max(x for x, d in zip(ts, drop) if d)
    ids[:] = [i for i, d in zip(ids, drop) if not d]
    ts[:] = [x for x, d in zip(ts, drop) if not d]
    return forgotten if floor is None or forgotten > floor else floor
