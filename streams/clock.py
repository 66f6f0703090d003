"""The one place chatsla reads the wall clock: live-mode heartbeat ticks (RULES R6.2).

The core never calls this; the worker's ticker does, and writes the reading into the input log as
a tick record, so replays see the same time the live run saw.
"""

from __future__ import annotations

import time


def wall_clock_us() -> int:
    return time.time_ns() // 1_000
