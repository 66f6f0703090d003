"""A broker outage under traffic (issue #10 finding 7): the worker's log stays small, and once the
broker is back the outputs still equal the audit (RULES R6.1).

Before the fix a 44 s outage wrote 228,000 lines (21 MB) of repeated connection errors. This test
stops the session's broker itself (the same data directory and port, so nothing is lost) and
always starts it again, so it lives in its own module and runs its one test alone.
"""

from __future__ import annotations

import threading

import pytest

from chatsla.dev.broker import start, stop
from chatsla.streams.producer import produce
from tests.integration.harness import Deployment, count, wait_for
from tests.integration.test_pipeline import finish_and_compare, week

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 18
MAX_NEW_LINES = 200


def _lines(path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def test_finding_7_a_broker_outage_does_not_flood_the_log_and_loses_nothing(kafka_broker, deployment: Deployment) -> None:
    """Issue #10 finding 7: during an 18 s outage with traffic in flight the worker's log grows by
    fewer than 200 lines (repeats are summarised once per interval, streams/logs.py), the worker
    survives, and afterwards its outputs equal ``chatsla audit`` of the same events."""
    dep = deployment
    records = week(seed=43, shops=4, conversations=200)
    half = len(records) // 2
    worker = dep.start_worker()
    produce(records[:half], dep.bootstrap, dep.names)
    wait_for(lambda: count(dep.bootstrap, dep.names.sessions) > 300, 180, "the worker making progress")
    log = dep.tmp / "worker-0.log"
    before = _lines(log)
    stop(kafka_broker.config)
    try:
        # The outage itself: its length is the experiment, not a synchronisation.
        threading.Event().wait(OUTAGE_SECONDS)
        during = _lines(log) - before
    finally:
        start(kafka_broker.config, wait_timeout=120)
    produce(records[half:], dep.bootstrap, dep.names)
    finish_and_compare(dep, records)
    # the repeats are not just dropped: each repeated message is summarised once with its count
    summary = wait_for(lambda: [line for line in open(log, errors="replace") if "repeated" in line
                                and "Unable to update metadata" in line], 60, "the summary of the repeats")
    grown = _lines(log) - before
    tail = open(log, errors="replace").read().splitlines()[-20:]
    assert worker.poll() is None, "the worker stopped during the outage:\n" + "\n".join(tail)
    assert grown < MAX_NEW_LINES, f"the log grew by {grown} lines ({during} during the outage):\n" + "\n".join(tail)
    assert len(summary) <= 2, summary  # one per 30 s interval
