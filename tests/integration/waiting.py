"""Waiting on a condition with a deadline, for integration tests (never a bare sleep as synchronisation)."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 30.0, what: str = "", interval: float = 0.2) -> T:
    """Call ``predicate`` until it returns something truthy and return that; after ``timeout``
    seconds raise ``AssertionError`` naming ``what`` and the last value seen. Exceptions raised by
    ``predicate`` propagate (a condition that cannot be evaluated is a failure, not a retry)."""
    deadline = time.monotonic() + timeout
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or getattr(predicate, '__name__', 'a condition')}"
                                 f" (last value: {str(last)[:300]})")
        time.sleep(interval)  # the polling interval of a deadline-bounded wait
