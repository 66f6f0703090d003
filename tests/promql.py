"""Every PromQL expression the project ships: dashboard panels, dashboard variables, alert rules.

One home for reading ``docker/grafana/dashboards/*.json`` and ``docker/prometheus/alerts.yml``,
shared by ``tests/docker/test_alert_rules.py`` (promtool, and a Prometheus over synthetic metrics) and
``tests/integration/test_prometheus.py`` (a Prometheus scraping a real worker), so both check
exactly the same expressions with the same Grafana variable substitution (RULES R8).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
PROM = DOCKER / "prometheus"
ALERTS = PROM / "alerts.yml"
ALERTS_TEST = PROM / "alerts_test.yml"
PROM_CONFIG = PROM / "prometheus.yml"
GRAFANA = DOCKER / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
FLEET = DASHBOARDS / "fleet-overview.json"
SHOP = DASHBOARDS / "shop-drilldown.json"

# The worker's metric contract (streams/metrics.py): name -> label names. tests/streams/test_metrics_views.py
# checks that a real worker registry exports exactly these chatsla_* series. Counters carry their
# `_total` suffix, histograms are listed by their exposed series.
CONTRACT: dict[str, tuple[str, ...]] = {
    # per selected shop (R8)
    "chatsla_shop_rolling_7d_reply_ratio": ("shop",),
    "chatsla_shop_week_reply_ratio": ("shop",),
    "chatsla_shop_week_reply_best_ratio": ("shop",),
    "chatsla_shop_week_reply_worst_ratio": ("shop",),
    "chatsla_shop_week_projected_reply_ratio": ("shop",),
    "chatsla_shop_penalty_risk": ("shop",),
    "chatsla_shop_sessions": ("shop", "state"),
    "chatsla_shop_replies_needed": ("shop",),
    "chatsla_shop_sessions_at_risk": ("shop",),
    "chatsla_shop_buyer_wait_seconds": ("shop",),
    "chatsla_shop_buyer_messages": ("shop",),
    "chatsla_shop_last_week_reply_ratio": ("shop",),
    "chatsla_shop_last_week_info": ("shop", "week_start", "status", "outcome"),
    # per selected Douyin ticket shop (R9.8) and AliExpress wait shop (R10.3), issue #12
    "chatsla_shop_tickets_open": ("shop", "priority"),
    "chatsla_shop_tickets_at_risk": ("shop",),
    "chatsla_shop_tickets_overdue": ("shop", "priority"),
    "chatsla_shop_tickets": ("shop", "period", "state"),
    "chatsla_shop_tickets_in_time_ratio": ("shop", "period"),
    "chatsla_shop_unreplied_conversations": ("shop",),
    "chatsla_shop_longest_wait_seconds": ("shop", "measured_from"),
    "chatsla_shop_waits": ("shop", "period", "state"),
    "chatsla_shop_waited_seconds": ("shop", "period", "measured_from", "quantile"),
    # per selected TikTok Shop after-sales shop (R11.5.2, R11.6), issue #14; policy named (R7)
    "chatsla_shop_aftersale_requests": ("shop", "period", "request_type", "state", "policy_id", "policy_version"),
    "chatsla_shop_aftersale_auto_approval_ratio": ("shop", "period", "request_type", "policy_id", "policy_version"),
    "chatsla_shop_aftersale_approved_amount": ("shop", "period", "request_type", "currency", "policy_id",
                                               "policy_version"),
    "chatsla_shop_aftersale_manual_reviews": ("shop", "period", "reason", "policy_id", "policy_version"),
    "chatsla_shop_aftersale_signals": ("shop", "period", "signal", "policy_id", "policy_version"),
    "chatsla_shop_aftersale_reviews": ("shop", "group", "state", "policy_id", "policy_version"),
    "chatsla_shop_aftersale_review_ratio": ("shop", "group", "policy_id", "policy_version"),
    "chatsla_shop_aftersale_review_best_ratio": ("shop", "group", "policy_id", "policy_version"),
    "chatsla_shop_aftersale_review_worst_ratio": ("shop", "group", "policy_id", "policy_version"),
    "chatsla_shop_aftersale_review_risk": ("shop", "group", "policy_id", "policy_version"),
    "chatsla_shop_aftersale_reviews_needed": ("shop", "group", "policy_id", "policy_version"),
    # fleet
    "chatsla_shops": ("risk",),
    "chatsla_fleet_rolling_7d_reply_ratio_bucket": ("le",),
    "chatsla_fleet_rolling_7d_reply_ratio_gsum": (),
    "chatsla_fleet_rolling_7d_reply_ratio_gcount": (),
    "chatsla_sessions_at_risk": (),
    "chatsla_sessions_opened_total": (),
    "chatsla_sessions_closed_total": ("reason",),
    "chatsla_events_total": ("outcome",),
    "chatsla_dlq_records_total": ("topic",),
    "chatsla_dlq_topic_records": ("topic",),
    "chatsla_poison_records_total": ("reason",),
    "chatsla_rejected_ticks_total": (),
    "chatsla_events_rewinds_total": (),
    "chatsla_view_errors_total": (),
    "chatsla_watermark_timestamp_seconds": ("partition",),
    "chatsla_watermark_lag_seconds": ("partition",),
    "chatsla_processing_latency_seconds_bucket": ("le",),
    "chatsla_processing_latency_seconds_sum": (),
    "chatsla_processing_latency_seconds_count": (),
    "chatsla_consumer_lag_records": ("topic", "partition"),
    "chatsla_owned_partitions": (),
    "chatsla_state_conversations": ("partition",),
    "chatsla_info": ("version", "policy_id", "policy_version"),
}
SHOP_VALUE = "shop-2"  # the default value of the drill-down's $shop in these checks
LABEL_VALUES = re.compile(r"^label_values\(\s*(?P<selector>.+?)\s*,\s*(?P<label>\w+)\s*\)$")


def grafana_vars(shop: str = SHOP_VALUE) -> list[tuple[re.Pattern, str]]:
    """Grafana's variables and what they become in a query sent straight to Prometheus: the
    interval macros become 1m (several scrapes at any interval used here), ``$shop`` a shop."""
    return [
        (re.compile(r"\$__rate_interval|\$\{__rate_interval\}"), "1m"),
        (re.compile(r"\$__interval|\$\{__interval\}"), "1m"),
        (re.compile(r"\$__range|\$\{__range\}"), "1h"),
        (re.compile(r"\$shop\b|\$\{shop\}|\[\[shop\]\]"), shop),
    ]


def grafana_to_promql(expr: str, shop: str = SHOP_VALUE) -> str:
    """``expr`` with every Grafana variable replaced (see :func:`grafana_vars`)."""
    for pattern, value in grafana_vars(shop):
        expr = pattern.sub(value, expr)
    return expr


def load_dashboard(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def panels(dashboard: dict) -> list[dict]:
    """Every panel, including those inside collapsed rows."""
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def alert_rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def expressions(shop: str = SHOP_VALUE) -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard target, dashboard query variable and alert or recording
    rule, Grafana variables replaced with ``shop`` for ``$shop``."""
    out = []
    for path in (FLEET, SHOP):
        dash = load_dashboard(path)
        for panel in panels(dash):
            for target in panel.get("targets", []):
                out.append((f"{path.name} panel {panel['id']} ({panel['title']}) {target['refId']}",
                            grafana_to_promql(target["expr"], shop)))
        for var in dash.get("templating", {}).get("list", []):
            if var.get("type") == "query":
                query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
                m = LABEL_VALUES.match(query)
                assert m, f"{path.name} variable {var['name']}: not a label_values(selector, label) query: {query}"
                out.append((f"{path.name} variable {var['name']}", grafana_to_promql(m["selector"], shop)))
    for rule in alert_rules():
        out.append((f"alerts.yml {rule.get('alert') or rule['record']}", rule["expr"]))
    return out


# The series of each model other than chat sessions (issue #12): a panel or rule reading one of them
# shows that model's shops only (a Douyin shop has no chat series, a chat shop no ticket series).
MODEL_SERIES = {
    "service_tickets": re.compile(r"chatsla_shop_tickets"),
    "im_waits": re.compile(r"chatsla_shop_(unreplied_conversations|longest_wait_seconds|waits|waited_seconds)"),
    "aftersale": re.compile(r"chatsla_shop_aftersale_"),  # issue #14
}


def model_of(expr: str) -> str:
    """The model whose shops an expression (or a metric name) shows data for: ``service_tickets``,
    ``im_waits``, ``aftersale``, or ``chat_sessions`` for everything else."""
    for kind, pattern in MODEL_SERIES.items():
        if pattern.search(expr):
            return kind
    return "chat_sessions"


def evaluated_rule_groups(prometheus_url: str, timeout: float) -> list[dict]:
    """The rule groups of ``/api/v1/rules`` once every rule has been evaluated at least once
    (health no longer ``unknown``); fails after ``timeout`` seconds."""
    from chatsla.dev.prometheus import api
    from tests.integration.waiting import wait_for

    def evaluated() -> list[dict] | None:
        groups = api(prometheus_url, "rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        done = rules and all(r.get("lastEvaluation", "").startswith("20") and r["health"] != "unknown" for r in rules)
        return groups if done else None

    return wait_for(evaluated, timeout=timeout, interval=0.5, what="every rule evaluated once")
