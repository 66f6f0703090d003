"""Waiting on a condition with a deadline, for integration tests (never a bare sleep as synchronisation)."""

from __future__ import annotations

import threading
import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 30.0, what: str = "", interval: float = 0.2) -> T:
    """Call ``predicate`` until it returns something truthy and return that; after ``timeout``
    seconds raise ``AssertionError`` naming ``what`` and the last value seen. Exceptions raised by
    ``predicate`` propagate (a condition that cannot be evaluated is a failure, not a retry).

    Between evaluations it waits at most ``interval`` and never past the deadline, so the last
    evaluation happens at the deadline itself; the conditions are Kafka reads and HTTP requests,
    which have nothing to notify a waiter with, and evaluating them back to back would take the
    CPU the workers under test need."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: its timed wait paces the evaluations
    while True:
        last = predicate()
        if last:
            return last
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or getattr(predicate, '__name__', 'a condition')}"
                                 f" (last value: {str(last)[:300]})")
        pause.wait(min(interval, remaining))
