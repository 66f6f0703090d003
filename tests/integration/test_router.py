"""The router's at-least-once promise on a real broker (issue #15): a worker killed after the
broker acknowledged the batch records it forwarded, but before it committed their input offsets,
loses nothing and counts nothing twice: the next worker forwards those events again and the
engine drops the duplicates by ``event_id`` (RULES R6.1, R6.5).

The kill comes from the worker itself at exactly that point (``CHATSLA_TEST_KILL_BEFORE_COMMIT``,
a test hook in ``streams/router.py``): SIGKILL from outside could not aim between two steps.
"""

from __future__ import annotations

import signal

import pytest

from chatsla.streams.admin import committed_lag
from chatsla.streams.producer import produce
from chatsla.streams.router import router_group
from tests.integration.harness import Deployment, routed_ids, wait_for
from tests.integration.test_pipeline import finish_and_compare, valid_events, week

pytestmark = pytest.mark.integration


def test_issue_15_sigkill_between_forwarding_a_batch_and_committing_its_offsets_loses_nothing(
        deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    records = week(seed=25)
    produce(records, deployment.bootstrap, deployment.names)
    inputs = [deployment.names.chat, deployment.names.shop]
    monkeypatch.setenv("CHATSLA_TEST_KILL_BEFORE_COMMIT", "1")  # after the first acknowledged delivery
    first = deployment.start_worker()
    monkeypatch.delenv("CHATSLA_TEST_KILL_BEFORE_COMMIT")
    assert first.wait(timeout=180) == -signal.SIGKILL, "the worker must die at the hook"
    forwarded = routed_ids(deployment.bootstrap, deployment.names.events)
    assert forwarded, "the killed worker forwarded a batch (acknowledged by the broker)"
    # ... and committed none of its input offsets: the next worker forwards those events again
    assert committed_lag(deployment.bootstrap, router_group(deployment.app_id), inputs) == len(records)
    deployment.start_worker()
    # The killed worker forwarded every id already, so "all routed" holds at once; the end ticks
    # must still come after the re-forwarded copies, as a live clock would (it does not jump a
    # week while a worker restarts): wait until the new router committed the whole input.
    wait_for(lambda: committed_lag(deployment.bootstrap, router_group(deployment.app_id), inputs) == 0, 180,
             "the input forwarded again and committed")
    finish_and_compare(deployment, records)  # duplicates dropped: outputs equal the audit
    assert forwarded <= {ev.event_id for ev in valid_events(records)}
