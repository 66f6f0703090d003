"""The worker's Prometheus metrics and shop API on a real broker (issue #4; RULES R8)."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chatsla.streams.producer import produce
from tests.integration.harness import Deployment, latest_outputs, scrape, shop_series, wait_for
from tests.integration.test_pipeline import finish_and_compare, week

pytestmark = pytest.mark.integration


def test_r8_metrics_and_shop_api_serve_every_shop(deployment: Deployment) -> None:
    records = week(seed=31, shops=4, conversations=150)
    shops = {f"shop-{i:02d}" for i in range(1, 5)}
    first = deployment.start_worker()
    produce(records, deployment.bootstrap, deployment.names)
    finish_and_compare(deployment, records)
    text = wait_for(lambda: (t := scrape(first.web_port)) and set(shop_series(t, "chatsla_shop_rolling_7d_reply_ratio")) == shops
                    and t, 60, "every shop's rolling rate on /metrics")
    assert "chatsla_sessions_closed_total" in text and 'chatsla_events_total{outcome="valid"}' in text
    rates = shop_series(text, "chatsla_shop_rolling_7d_reply_ratio")
    assert all(0.0 <= r <= 1.0 for r in rates.values())
    with urllib.request.urlopen(f"http://127.0.0.1:{first.web_port}/shops/shop-01", timeout=5) as r:
        body = json.loads(r.read())
    assert body["shop_id"] == "shop-01" and body["rolling_reply_rate_7d"] == rates["shop-01"]

    # issue #13: the week just judged, per shop, is on /metrics as the assessment topic has it
    # (R5.6); the demo's first example query reads these two series.
    assessments = latest_outputs(deployment.bootstrap, deployment.names)[1].values()
    last = {}
    for a in sorted(assessments, key=lambda a: a["week_start"]):
        last[a["shop_id"]] = a
    assert set(last) == shops
    info = {}
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            if sample.name == "chatsla_shop_last_week_info":
                info[sample.labels["shop"]] = (sample.labels["week_start"], sample.labels["status"],
                                               sample.labels["outcome"], sample.value)
    assert info == {s: (a["week_start"], a["status"], a["outcome"], 1.0) for s, a in last.items()}
    ratios = shop_series(text, "chatsla_shop_last_week_reply_ratio")
    assert ratios == {s: a["rate"] for s, a in last.items() if a["rate"] is not None}


def _owners(workers: list) -> list[set[str]]:
    """One polling round: the shops on each worker's /metrics (a worker that is gone has none).

    The scrapes of a round are milliseconds apart, while a partition's handover takes a whole
    rebalance (the old owner revokes, the group re-joins and syncs, the new owner recovers the
    tables) before the new owner exports anything, so a shop seen on two workers in one round
    is two owners at once, not an artefact of polling."""
    return [set(shop_series(scrape(w.web_port), "chatsla_shop_penalty_risk")) for w in workers]


def _watch(workers: list, shops: set[str], until, timeout: float, what: str) -> list[set[str]]:
    """Poll every worker's /metrics until ``until(sets)``; every round must be disjoint (R8)."""
    rounds = 0

    def step() -> list[set[str]] | None:
        nonlocal rounds
        sets = _owners(workers)
        rounds += 1
        for i, a in enumerate(sets):
            for b in sets[i + 1:]:
                assert not a & b, f"round {rounds}: shops {sorted(a & b)} exported by two workers at once: {sets}"
        assert set().union(*sets) <= shops
        return sets if until(sets) else None

    return wait_for(step, timeout, what, interval=0.05)


def test_r8_a_shops_series_move_between_workers_and_are_never_on_both(kafka_broker, tmp_path) -> None:
    """R8: per-shop series belong to exactly one worker at a time, through a scale-out (a second
    worker joins) and a scale-in (the first leaves), with 8 shops over 4 partitions. Nothing is
    produced after the first worker has caught up: the new owner must serve a moved shop from its
    recovered state alone, without waiting for new events or ticks."""
    deployment = Deployment(kafka_broker.bootstrap, partitions=4, tmp=tmp_path)
    try:
        records = week(seed=33, shops=8, conversations=40)
        shops = {f"shop-{i:02d}" for i in range(1, 9)}
        first = deployment.start_worker()
        produce(records, deployment.bootstrap, deployment.names)
        finish_and_compare(deployment, records)  # processed, checkpointed and ticked past the week
        _watch([first], shops, lambda s: s[0] == shops, 60, "every shop on the first worker")

        second = deployment.start_worker()
        workers = [first, second]
        after_join = _watch(workers, shops, lambda s: bool(s[1]) and s[0] | s[1] == shops, 180,
                            "the second worker to serve its share and the first to keep the rest")
        assert after_join[0] and after_join[1], f"the shops are shared between the workers: {after_join}"
        # Stay complete and disjoint for 40 more rounds: no late re-export by the old owner.
        complete_rounds = Counter()

        def complete_for_a_while(sets: list[set[str]]) -> bool:
            complete_rounds["n"] = complete_rounds["n"] + 1 if sets[0] | sets[1] == shops else 0
            return complete_rounds["n"] >= 40

        _watch(workers, shops, complete_for_a_while, 60, "40 consecutive complete rounds")

        first.terminate()  # scale in: SIGTERM, the first worker leaves the group
        after_leave = _watch(workers, shops, lambda s: s[1] == shops, 180, "every shop on the second worker")
        assert after_leave[0] == set()
        first.wait(timeout=60)
    finally:
        deployment.stop_all()
