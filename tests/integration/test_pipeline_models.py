"""A mixed week of all four platforms through the live pipeline on a real Kafka broker (issue #12,
"Done when": worker outputs equal ``chatsla audit``; the SIGKILL and scale tests include ticket
and wait state; RULES A.1-A.4, R6.1, R6.5, R9, R10; issue #14, R11: the same with after-sales
requests and their state).

TikTok Shop chats and AliExpress chats on ``chat.messages``, Douyin tickets on ``ticket.events``,
TikTok Shop after-sales requests on ``aftersale.requests`` (R11.1), shop events on ``shop.events``
(the after-sales shops' ``aftersale_rules`` among them, R11.2), all from ``chatsla simulate``'s
generator. The final record per identity on ``chatsla.sessions``, ``chatsla.assessments``,
``chatsla.tickets``, ``chatsla.waits``, ``chatsla.aftersale`` and ``chatsla.periods`` (as a
consumer keeps them, docs/pipeline.md) must equal the audit's records of the same file with the
same policies, up to the same watermark.
"""

from __future__ import annotations

import subprocess

import orjson
import pytest

from chatsla.audit import run_audit
from chatsla.core.events import Invalid
from chatsla.core.policy import policies_for
from chatsla.core.timefmt import HOUR, MINUTE, format_time, parse_time
from chatsla.schemas.decode import decode
from chatsla.simulate import SimConfig, generate
from chatsla.streams.admin import committed_lag
from chatsla.streams.producer import produce
from tests.integration.harness import (CHATSLA, MODEL_OUTPUTS, Deployment, count, latest_model_outputs, record_identity,
                                       routed_ids, wait_for)

pytestmark = pytest.mark.integration
LATENESS = 2 * MINUTE
MIXED = ("tiktok_shop", "douyin", "aliexpress", "aftersale")


def mixed_week(seed: int, shops: int = 3, conversations: int = 200, tickets: int = 150,
               ae_conversations: int = 150, requests: int = 120) -> list[tuple[str, bytes, bytes]]:
    """A simulated week of the four platforms in log order (jitter within the lateness, R6.3): the
    simulator's two after-sales shops (R11.8's abuse patterns among their requests, one shop
    assigned its rule set mid-week) beside the others."""
    return generate(SimConfig(seed=seed, shops=shops, conversations_per_shop=conversations, jitter_seconds=60,
                              platforms=MIXED, douyin_shops=2, tickets_per_shop=tickets, aliexpress_shops=2,
                              aliexpress_conversations=ae_conversations, aftersale_shops=2,
                              aftersale_requests=requests))


def valid_events(records: list) -> list:
    return [ev for ev in (decode(v) for _, _, v in records) if type(ev) is not Invalid]


def expected(records: list, until: int) -> dict[str, dict]:
    """``chatsla audit --until`` of the records with each platform's current policy (what a worker
    without ``--policy`` runs), keyed as :func:`latest_model_outputs` keys the topics."""
    lead, *others = policies_for([])
    report = run_audit([v for _, _, v in records], lead, until=until, policies=others)
    return {kind: {record_identity(kind, r): r for r in getattr(report, kind)} for kind in MODEL_OUTPUTS}


def diff(got: dict[str, dict], want: dict[str, dict]) -> str:
    parts = []
    for kind in MODEL_OUTPUTS:
        g, w = got.get(kind, {}), want[kind]
        missing = [k for k in w if k not in g]
        extra = [k for k in g if k not in w]
        wrong = [k for k in w if k in g and g[k] != w[k]]
        example = (wrong or missing or extra)[:1]
        detail = ""
        if example:
            k = example[0]
            gk, wk = g.get(k) or {}, w.get(k) or {}
            fields = {f: (gk.get(f), wk.get(f)) for f in set(gk) | set(wk) if gk.get(f) != wk.get(f)}
            detail = f" e.g. {k}: (got, want) {fields}"
        parts.append(f"{kind}: {len(missing)} missing, {len(extra)} extra, {len(wrong)} differ{detail}")
    return "; ".join(parts)


def finish_and_compare(dep: Deployment, records: list, timeout: float = 300, past: int | None = None) -> dict:
    """Wait until the router forwarded every valid event of the four input topics, tick past the
    end (or to ``past`` + the lateness, if later), and wait until every output topic's latest
    records equal the audit's; returns them."""
    events = valid_events(records)
    ids = {ev.event_id for ev in events}
    wait_for(lambda: routed_ids(dep.bootstrap, dep.names.events) >= ids, timeout, "all events routed")
    times = [ev.t for ev in events]
    end = max(max(times) + LATENESS + HOUR, (past or 0) + LATENESS)
    dep.send_ticks(end, since_us=min(times))
    want = expected(records, end - LATENESS)
    assert all(want[k] for k in MODEL_OUTPUTS), {k: len(v) for k, v in want.items()}  # every model has records

    summary = ["nothing read yet"]

    def converged() -> bool:
        got = latest_model_outputs(dep.bootstrap, dep.names)
        summary[0] = diff(got, want)
        return got == want

    try:
        wait_for(converged, timeout, "every model's outputs equal to chatsla audit", interval=1.0)
    except AssertionError as e:
        raise AssertionError(f"{e}; {summary[0]}") from None
    return want


def test_issue12_mixed_week_live_outputs_equal_the_audit(deployment: Deployment) -> None:
    """Issue #12 and issue #14 "Done when", R6.5: one worker, a mixed week of the four platforms
    produced to the four input topics; sessions, assessments, tickets, waits, after-sales requests
    (R11.5.1) and periods (day/week R11.5.2, month R11.6.3 among them) equal the audit, byte for
    byte per record; chatsla verify then finds nothing, after-sales included."""
    records = mixed_week(seed=31)
    topics = {t for t, _, _ in records}
    assert topics == {"chat.messages", "shop.events", "ticket.events", "aftersale.requests"}, topics
    produce(records, deployment.bootstrap, deployment.names)
    deployment.start_worker()
    # ticked past November's end in every shop's zone, so the month's review timeliness (R11.6.3) is out
    want = finish_and_compare(deployment, records, past=parse_time("2026-12-01T01:00:00Z"))
    months = [p for p in want["periods"].values() if p["period"] == "month"]
    assert {(p["group"], p["status"]) for p in months} >= {("cancellation", "final"), ("return_refund", "final")}
    # ... and `chatsla verify` of the live worker's output topics against a replay of the same
    # input finds nothing to report, for every model (issue #12 "Done when")
    times = [ev.t for ev in valid_events(records)]
    flags = ["--bootstrap", deployment.bootstrap, "--topic-prefix", deployment.prefix,
             "--from", format_time(min(times)), "--to", format_time(max(times) + HOUR)]
    v = subprocess.run([CHATSLA, "verify", *flags, "--format", "json"], capture_output=True, timeout=300,
                       stdin=subprocess.DEVNULL)
    result = orjson.loads(v.stdout) if v.stdout else {}
    assert v.returncode == 0, (v.stderr.decode()[-2000:], result.get("differences", [])[:5])
    compared = result["compared"]
    assert all(compared.get(kind) for kind in ("tickets", "waits", "requests", "periods")), compared


def progress(dep: Deployment) -> tuple[int, int, int, int]:
    """Records written so far to chatsla.sessions, chatsla.tickets, chatsla.waits and chatsla.aftersale."""
    names = dep.names
    return (count(dep.bootstrap, names.sessions), count(dep.bootstrap, names.ticket_records),
            count(dep.bootstrap, names.waits), count(dep.bootstrap, names.aftersale_records))


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_r6_1_sigkill_mid_stream_loses_nothing_and_counts_nothing_twice(deployment: Deployment, store: str) -> None:
    """R6.1 and issue #12 / #14 "Done when" (the SIGKILL test includes ticket, wait and
    after-sales state), both table stores. Each third of a mixed week is produced, a worker makes
    progress on chat sessions, tickets, waits and after-sales requests alike (so each kill leaves
    open tickets, open waits, requests awaiting review, buyer histories and periods in its
    state) and is SIGKILLed; a last worker finishes. The RocksDB workers share one data
    directory, so each restart starts from what the killed one had in its local store (written
    before the changelog, possibly by a checkpoint cut short) plus the changelogs; the memory
    store recovers from the changelogs. The TikTok Shop records are the chat-only week of seed 23."""
    records = mixed_week(seed=23, shops=5, conversations=400)
    store_args = ["--store", store] + (["--data-dir", str(deployment.tmp / "rocksdb")] if store == "rocksdb" else [])
    thirds = [records[: len(records) // 3], records[len(records) // 3: 2 * len(records) // 3],
              records[2 * len(records) // 3:]]
    seen = (0, 0, 0, 0)
    redo = []  # records of chatsla.events not yet committed at each kill: work the next owner redoes
    for part in thirds:
        produce(part, deployment.bootstrap, deployment.names)
        # A third is done within a second; its checkpoint then follows a quarter-second pause and
        # its offsets are committed at once, so a kill after the progress check found nothing to
        # recover. The killed workers wait a minute of quiet before checkpointing: each kill
        # leaves everything since the last one uncommitted, for the next worker to redo.
        worker = deployment.start_worker(*store_args, "--checkpoint-idle", "60")
        before = seen
        seen = wait_for(lambda: (n := progress(deployment)) and n[0] > before[0] + 200 and n[1] > before[1]
                        and n[2] > before[2] and n[3] > before[3] and n, 180,
                        "the worker making progress on sessions, tickets, waits and after-sales requests")
        deployment.kill(worker)  # SIGKILL, mid-stream
        redo.append(committed_lag(deployment.bootstrap, deployment.app_id, [deployment.names.events]))
    assert all(redo), f"a kill left no uncommitted work to recover: {redo}"
    deployment.start_worker(*store_args)
    finish_and_compare(deployment, records)


def test_r6_1_adding_and_removing_a_worker_mid_stream_changes_nothing(deployment: Deployment) -> None:
    """R6.1 and issue #12 / #14 "Done when" (the scale test includes ticket, wait and after-sales
    state): partitions, with their tickets, waits, after-sales requests and periods, move to a
    second worker and back mid-stream. The TikTok Shop records are the chat-only week of seed 24."""
    records = mixed_week(seed=24, shops=5, conversations=400)
    half = len(records) // 2
    first = deployment.start_worker()
    produce(records[:half], deployment.bootstrap, deployment.names)
    wait_for(lambda: (n := progress(deployment))[0] > 500 and n[1] > 0 and n[2] > 0 and n[3] > 0, 180,
             "progress with one worker")
    at_scale_out = progress(deployment)
    deployment.start_worker()  # scale out: partitions move to the new worker
    produce(records[half:], deployment.bootstrap, deployment.names)
    wait_for(lambda: (n := progress(deployment))[0] > 1500 and n[1] > at_scale_out[1] and n[2] > at_scale_out[2]
             and n[3] > at_scale_out[3], 180, "progress with two workers")
    first.terminate()  # scale in: the first worker leaves, its partitions move back
    first.wait(timeout=60)
    finish_and_compare(deployment, records)
