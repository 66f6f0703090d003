"""The worker's Prometheus metrics and shop API on a real broker (issue #4; RULES R8)."""

from __future__ import annotations

import json
import urllib.request

import pytest

from chatsla.produce import produce
from tests.integration.harness import Deployment, scrape, shop_series, wait_for
from tests.integration.test_pipeline import finish_and_compare, week

pytestmark = pytest.mark.integration


@pytest.fixture
def deployment(kafka_broker, tmp_path):
    dep = Deployment(kafka_broker.bootstrap, partitions=3, tmp=tmp_path)
    yield dep
    dep.stop_all()


def test_r8_metrics_and_shop_api_serve_every_shop(deployment: Deployment) -> None:
    records = week(seed=31, shops=4, conversations=150)
    shops = {f"shop-{i:02d}" for i in range(1, 5)}
    first = deployment.start_worker()
    produce(records, deployment.bootstrap, deployment.names)
    finish_and_compare(deployment, records)
    text = wait_for(lambda: (t := scrape(first.web_port)) and set(shop_series(t, "chatsla_shop_reply_rate_24h")) == shops
                    and t, 60, "every shop's rolling rate on /metrics")
    assert "chatsla_sessions_closed_total" in text and 'chatsla_events_total{outcome="valid"}' in text
    rates = shop_series(text, "chatsla_shop_reply_rate_24h")
    assert all(0.0 <= r <= 1.0 for r in rates.values())
    with urllib.request.urlopen(f"http://127.0.0.1:{first.web_port}/shops/shop-01", timeout=5) as r:
        body = json.loads(r.read())
    assert body["shop_id"] == "shop-01" and body["rolling_reply_rate_7d"] == rates["shop-01"]
