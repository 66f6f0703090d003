"""One very chatty conversation through the live worker on a real broker (issue #10 finding 1).

A conversation's stored entry used to carry every event id of the last 8 days: past ~18,700
messages it outgrew Kafka's 1 MB record limit, every checkpoint failed, and the worker stopped
(crash loop). The entry now keeps a bounded number of ids (``chatsla.core.sessions``).
"""

from __future__ import annotations

import orjson
import pytest

from chatsla.core.timefmt import HOUR, SECOND, format_time, parse_time
from chatsla.streams.producer import produce
from chatsla.streams.outputs import default_partition
from tests.integration.harness import Deployment, read_topic
from tests.integration.test_pipeline import finish_and_compare

pytestmark = pytest.mark.integration
# A Monday two months before the sample week: the 60 days these logs span must lie in the past of
# the worker's clock (its router sends events ahead of the wall clock to the DLQ, issue #10).
T0 = parse_time("2026-09-07T00:00:00Z")
MESSAGES = 100_000


def _message(eid: str, conv: str, sender: str, t: int) -> tuple[str, bytes, bytes]:
    value = orjson.dumps({"schema": "chat.message/v1", "event_id": eid, "shop_id": "shop-big",
                          "conversation_id": conv, "sender": sender, "sent_at": format_time(t)})
    return "chat.messages", conv.encode(), value


def chatty_log(partitions: int) -> list[tuple[str, bytes, bytes]]:
    """100,000 messages of one conversation, buyer and seller taking turns every 3 s, with a 7 h
    pause every 10,000 (the buyer timeout closes the session, R2.4), retried copies of recent and
    of long-forgotten messages (R1), and a quiet conversation on each other input partition so the
    watermark, which waits for every ``chat.messages`` partition (R6.2), moves. The week has
    ended when the log does."""
    big = "conv-big"
    others = []
    for i in range(1000):
        key = f"conv-quiet-{i}"
        p = default_partition(key.encode(), partitions)
        if p != default_partition(big.encode(), partitions) and p not in [q for q, _ in others]:
            others.append((p, key))
    assert len(others) == partitions - 1
    out = []
    t = T0
    for i in range(MESSAGES):
        if i and i % 10_000 == 0:
            t += 7 * HOUR
        out.append(_message(f"big-{i:06d}", big, ("buyer", "seller")[i % 2], t))
        if i % 100 == 0:
            for k, (_, key) in enumerate(others):
                out.append(_message(f"{key}-{i:06d}", key, ("buyer", "seller")[(i // 100) % 2], t + k * SECOND))
        if i % 25_000 == 24_999:
            out.append(out[-50])  # a producer retry of a recent message: a duplicate
            out.append(out[-20_000])  # a replay of one forgotten long ago: dropped by the floor
        t += 3 * SECOND
    # a message after the week's end, so that the week is assessed (R5.6) before the comparison
    out.append(_message("after-the-week", others[0][1], "buyer", T0 + 8 * 24 * HOUR))
    return out


def test_issue_10_finding_1_a_conversation_of_100k_messages_keeps_the_worker_running(deployment: Deployment) -> None:
    """Fails on main: the conversation's entry exceeds the 1 MB record limit, the checkpoint
    fails and the worker stops, so the outputs never match the audit."""
    records = chatty_log(deployment.partitions)
    produce(records, deployment.bootstrap, deployment.names)
    worker = deployment.start_worker()
    finish_and_compare(deployment, records, timeout=420)
    assert worker.poll() is None, "the worker stopped"
    changelog = read_topic(deployment.bootstrap, f"{deployment.app_id}-conversations-changelog")
    sizes = [len(r.value) for r in changelog if r.value is not None]
    assert sizes and max(sizes) < 64 * 1024, max(sizes)


def _conversations(day: float, tag: str, n: int = 20) -> list[tuple[str, bytes, bytes]]:
    """``n`` conversations that each get a buyer message and a reply on ``day`` (after T0)."""
    out = []
    for i in range(n):
        t = T0 + int(day * 24 * HOUR) + i * 60 * SECOND
        out.append(_message(f"{tag}-{i}-b", f"conv-{i}", "buyer", t))
        out.append(_message(f"{tag}-{i}-s", f"conv-{i}", "seller", t + 30 * SECOND))
    return out


def test_issue_10_finding_3_evicted_conversations_stay_deleted_across_a_restart(deployment: Deployment) -> None:
    """Conversations of the first week are evicted once that week is past retention (35 days): the
    worker writes tombstones to the conversations changelog (one checkpoint later). A worker killed and replaced then
    recovers the table from the changelog; had it brought the evicted conversations back, their
    next sessions would be numbered #2 while the audit of the same input numbers them #1 (README,
    Readings of the rules)."""
    first = _conversations(0, "w1") + [_message("late-day", "conv-other", "buyer", T0 + 50 * 24 * HOUR)]
    produce(first, deployment.bootstrap, deployment.names)
    worker = deployment.start_worker()
    finish_and_compare(deployment, first)
    changelog = f"{deployment.app_id}-conversations-changelog"

    def tombstones() -> int:
        return sum(r.value is None for r in read_topic(deployment.bootstrap, changelog))

    from tests.integration.harness import wait_for

    # the tombstones go out with the checkpoint after the eviction's (streams/runtime.py): more input
    deployment.send_ticks(T0 + 51 * 24 * HOUR, since_us=T0)
    wait_for(lambda: tombstones() >= 20, 120, "tombstones for the evicted conversations in the changelog")
    deployment.kill(worker)
    second = _conversations(52, "w8") + [_message("later", "conv-other", "buyer", T0 + 60 * 24 * HOUR)]
    produce(second, deployment.bootstrap, deployment.names)
    deployment.start_worker()
    finish_and_compare(deployment, first + second)
