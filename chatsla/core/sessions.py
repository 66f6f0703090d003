"""Per-conversation session state (RULES R2, R3).

One small ``__slots__`` object per conversation holds the open session, so the state of an open
conversation stays well under 1 KB (BENCHMARKS.md). Times are integer microseconds. The
transitions themselves live in :mod:`chatsla.core.engine`, which owns time and timers.
"""

from __future__ import annotations

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
_NOT_HELD = ("closed_at", "close_reason")  # stored fields without a slot (see Conversation)

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
    # and forgotten in one step (Engine._close passes them to its record), so they are class
    # constants here and an open conversation is two slots smaller.
    __slots__ = tuple(f for f in _FIELDS if f not in _NOT_HELD) + ("scheduled", "key")
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
        self.seen_ids: list[str] = []  # event_ids applied here within the dedupe window (R1)
        self.seen_ts: list[int] = []
        self.contrib: dict[str, list[int]] = {}
        self.scheduled: int | None = None  # earliest live entry in the engine's timer heap

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
        return [getattr(self, f) for f in _FIELDS]

    @classmethod
    def from_list(cls, values: list) -> "Conversation":
        c = cls.__new__(cls)
        for f, v in zip(_FIELDS, values, strict=True):
            if f not in _NOT_HELD:
                setattr(c, f, v)
        c.scheduled = None
        c.key = (c.shop_id, c.conversation_id)
        return c
