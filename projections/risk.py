"""Sessions at risk and buyer waiting time (RULES R8, third and fourth bullets).

Both are read from the open sessions at the watermark, handed over as :class:`OpenSession` so this
module needs nothing of the engine's internal state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from chatsla.core.timefmt import HOUR

AT_RISK_THRESHOLD = 2 * HOUR  # R8 default, configurable


@dataclass(frozen=True, slots=True)
class OpenSession:
    """What R8 needs of an open session (R2): times in µs since the epoch.

    ``wait_start``: first buyer message not yet followed by a human seller reply, None when the
    session awaits the buyer (R2.3); ``decided``: its 24 h outcome is known (R3); ``excluded``:
    opened in vacation mode (R4).
    """

    session_id: str
    opened_at: int
    wait_start: int | None
    decided: bool
    excluded: bool


def at_risk(sessions: Iterable[OpenSession], watermark: int, reply_window: int,
            threshold: int = AT_RISK_THRESHOLD) -> list[OpenSession]:
    """Pending counted sessions whose 24 h deadline is less than ``threshold`` ahead (R8).

    The deadline is ``opened_at + reply_window`` (R3). A session is at risk when
    ``0 <= deadline - watermark < threshold``:

    - strictly less: with exactly ``threshold`` left it is not yet at risk;
    - a deadline equal to the watermark still counts, because a reply exactly at the deadline is
      in time (R2.5, R3);
    - a deadline already behind the watermark is not at risk any more: a reply now would be late,
      and a session still pending then only waits for its in-time auto-reply's fate (R3), which
      the seller cannot change.

    Decided sessions have nothing left to lose and vacation-excluded ones (R4) count in no rate,
    so neither is at risk. Sorted by deadline, then session id (deterministic output).
    """
    risky = [s for s in sessions
             if not s.decided and not s.excluded and 0 <= s.opened_at + reply_window - watermark < threshold]
    risky.sort(key=lambda s: (s.opened_at, s.session_id))  # same reply_window: deadline order
    return risky


def longest_wait(sessions: Iterable[OpenSession], watermark: int) -> int:
    """Longest current buyer wait in µs: ``watermark - wait_start`` over sessions awaiting the
    seller (R2.3, R8), 0 when none does.

    Every session awaiting the seller counts, decided or vacation-excluded ones too: the buyer is
    waiting all the same, and this measures the buyer's experience, not a rate. A ``wait_start``
    ahead of the watermark (the watermark trails event time by the allowed lateness, R6.2) is a
    wait of 0, never negative.
    """
    starts = [s.wait_start for s in sessions if s.wait_start is not None]
    return max(0, watermark - min(starts)) if starts else 0
