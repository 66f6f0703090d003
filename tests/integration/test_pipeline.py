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
from tests.integration.harness import Deployment, latest_outputs, read_topic, routed_ids, wait_for

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


# The SIGKILL (both stores) and scale-out/in tests run on a mixed week of the three platforms,
# whose TikTok Shop records are exactly this module's week (seed 23 and 24, 5 shops, 400
# conversations), and compare tickets, waits and periods too: tests/integration/test_pipeline_models.py.
