"""The live pipeline on a real Kafka broker (issue #3; RULES R1, R6).

Each test feeds a simulated week through real workers (``chatsla worker`` processes) and checks
that ``chatsla.sessions`` / ``chatsla.assessments``, read as a consumer would (latest record per
key), carry exactly what ``chatsla audit`` reports for the same events.
"""

from __future__ import annotations

import pytest

from chatsla.audit import run_audit
from chatsla.core.policy import load_policy
from chatsla.core.timefmt import HOUR, MINUTE
from chatsla.streams.producer import produce
from chatsla.simulate import SimConfig, generate
from chatsla.schemas.decode import decode
from chatsla.core.events import Invalid
from chatsla.streams.admin import committed_lag
from tests.integration.harness import Deployment, count, latest_outputs, read_topic, routed_ids, wait_for

pytestmark = pytest.mark.integration
LATENESS = 2 * MINUTE


def week(seed: int, shops: int = 5, conversations: int = 400, bad: float = 0.0) -> list[tuple[str, bytes, bytes]]:
    return generate(SimConfig(seed=seed, shops=shops, conversations_per_shop=conversations, jitter_seconds=60,
                              bad_fraction=bad))


def valid_events(records: list) -> list:
    return [ev for ev in (decode(v) for _, _, v in records) if type(ev) is not Invalid]


def expected(records: list, until: int) -> tuple[dict, dict]:
    report = run_audit([v for _, _, v in records], load_policy(), until=until)
    return ({(s["shop_id"], s["session_id"]): s for s in report.sessions},
            {(a["shop_id"], a["week_start"]): a for a in report.assessments})


def finish_and_compare(dep: Deployment, records: list, timeout: float = 240) -> None:
    """Wait for the router to forward everything, tick past the end, and compare with the audit."""
    ids = {ev.event_id for ev in valid_events(records)}
    # the end-of-input ticks must come after every event, or the tail would be late (R6.2)
    wait_for(lambda: routed_ids(dep.bootstrap, dep.names.events) >= ids, timeout, "all events routed")
    times = [ev.t for ev in valid_events(records)]
    end = max(times) + LATENESS + HOUR
    # walked from the first event: each partition's clock is where its own events left it
    dep.send_ticks(end, since_us=min(times))
    want = expected(records, end - LATENESS)
    assert want[1], "the simulated week must produce assessments"

    summary = ["nothing read yet"]

    def converged() -> bool:
        got = latest_outputs(dep.bootstrap, dep.names)
        summary[0] = _diff(got, want)
        return got == want

    try:
        wait_for(converged, timeout, "outputs equal to chatsla audit")
    except AssertionError as e:
        raise AssertionError(f"{e}; {summary[0]}") from None


def _diff(got: tuple[dict, dict], want: tuple[dict, dict]) -> str:
    parts = []
    for name, g, w in (("sessions", got[0], want[0]), ("assessments", got[1], want[1])):
        missing = [k for k in w if k not in g]
        extra = [k for k in g if k not in w]
        wrong = [k for k in w if k in g and g[k] != w[k]]
        example = (wrong or missing or extra)[:1]
        detail = f" e.g. {example[0]}: got {g.get(example[0])} want {w.get(example[0])}" if example else ""
        parts.append(f"{name}: {len(missing)} missing, {len(extra)} extra, {len(wrong)} differ{detail}")
    return "; ".join(parts)


def test_r6_5_live_outputs_equal_the_audit_of_the_same_events(deployment: Deployment) -> None:
    records = week(seed=21)
    assert len({k for t, k, _ in records if t == "chat.messages"}) >= 1500  # thousands of conversations
    produce(records, deployment.bootstrap, deployment.names)
    deployment.start_worker()
    finish_and_compare(deployment, records)


def test_r1_invalid_records_go_to_the_dlq_with_reason_and_the_pipeline_is_unharmed(deployment: Deployment) -> None:
    records = week(seed=22, shops=3, conversations=150, bad=0.03)
    bad = [(t, k, v) for t, k, v in records if type(decode(v)) is Invalid]
    assert len(bad) >= 10
    deployment.start_worker()
    produce(records, deployment.bootstrap, deployment.names)
    dlq = wait_for(lambda: (r := read_topic(deployment.bootstrap, deployment.names.chat_dlq)) and len(r) >= len(bad)
                   and r, 120, "every bad record in the DLQ")
    assert sorted(r.value for r in dlq) == sorted(v for _, _, v in bad)  # the original bytes, each once
    for r in dlq:
        headers = dict(r.headers)
        assert headers["chatsla-reason"].decode() == decode(r.value).reason
        assert headers["chatsla-source"].decode().startswith(deployment.names.chat + "/")
    finish_and_compare(deployment, records)


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_r6_1_sigkill_mid_stream_loses_nothing_and_counts_nothing_twice(deployment: Deployment, store: str) -> None:
    """Both table stores. The RocksDB workers share one data directory, so each restart starts
    from what the killed one had in its local store (written before the changelog, possibly by a
    checkpoint cut short) plus the changelogs; the memory store recovers from the changelogs."""
    records = week(seed=23)
    store_args = ["--store", store] + (["--data-dir", str(deployment.tmp / "rocksdb")] if store == "rocksdb" else [])
    thirds = [records[: len(records) // 3], records[len(records) // 3: 2 * len(records) // 3],
              records[2 * len(records) // 3:]]
    sessions_topic = deployment.names.sessions
    seen = 0
    redo = []  # records of chatsla.events not yet committed at each kill: work the next owner redoes
    for part in thirds:
        produce(part, deployment.bootstrap, deployment.names)
        worker = deployment.start_worker(*store_args)
        seen = wait_for(lambda: (n := count(deployment.bootstrap, sessions_topic)) > seen + 200 and n, 180,
                        "the worker making progress")
        deployment.kill(worker)  # SIGKILL, mid-stream
        redo.append(committed_lag(deployment.bootstrap, deployment.app_id, [deployment.names.events]))
    assert any(redo), f"no kill left uncommitted work to recover: {redo}"
    deployment.start_worker(*store_args)
    finish_and_compare(deployment, records)


def test_r6_1_adding_and_removing_a_worker_mid_stream_changes_nothing(deployment: Deployment) -> None:
    records = week(seed=24)
    half = len(records) // 2
    first = deployment.start_worker()
    produce(records[:half], deployment.bootstrap, deployment.names)
    wait_for(lambda: count(deployment.bootstrap, deployment.names.sessions) > 500, 180, "progress with one worker")
    deployment.start_worker()  # scale out: partitions move to the new worker
    produce(records[half:], deployment.bootstrap, deployment.names)
    wait_for(lambda: count(deployment.bootstrap, deployment.names.sessions) > 1500, 180, "progress with two workers")
    first.terminate()  # scale in: the first worker leaves, its partitions move back
    first.wait(timeout=60)
    finish_and_compare(deployment, records)
