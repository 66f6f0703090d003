"""Alert rules, dashboards and the compose stack that show the live projections (RULES R8).

RULES R8 lists what the dashboards show per shop (rolling 7-day rate, week to date with best /
worst / projected, replies needed, at-risk sessions, buyer wait) and for the fleet (sessions opened
and closed by reason, events by outcome); R5.5 gives the 90 % / 85 % lines the shop alerts use.
These tests keep the files under ``docker/`` honest without Docker:

- ``promtool check rules`` / ``test rules`` / ``check config`` on the Prometheus files;
- every PromQL expression in the dashboards and alert rules is checked by promtool (one recording
  rule per expression, Grafana variables replaced by concrete values first);
- the dashboards parse, have the expected panels, use the ``prometheus`` datasource and only the
  worker's metric contract (``CONTRACT`` below, exported by ``streams/metrics.py``);
- a real Prometheus scrapes a synthetic exposition shaped like the contract, and every dashboard
  query returns data, every alert rule evaluates without error (R8);
- ``docker/compose.yaml`` parses and every file it references exists.

promtool and prometheus come from ``scripts/ensure-prometheus`` (the Makefile runs it before the
tests); without them these tests fail with that hint, they are never skipped.
"""

from __future__ import annotations

import enum
import http.server
import importlib.util
import json
import os
import re
import shutil
import subprocess
import threading
import time
import typing
from pathlib import Path

import pytest

try:
    import yaml
except ImportError:  # pragma: no cover - a clear message instead of a bare ImportError
    pytest.fail("tests/docker/test_alert_rules.py needs PyYAML (pip install pyyaml; it belongs in the 'test' extras)",
                pytrace=False)

from chatsla.dev.broker import free_port
from chatsla.dev.prometheus import PrometheusConfig, PrometheusError
from chatsla.dev.prometheus import api as prometheus_api
from chatsla.dev.prometheus import running as prometheus_running
from tests.integration.waiting import wait_for
from tests.promql import (ALERTS, ALERTS_TEST, CONTRACT, DASHBOARDS, DOCKER, FLEET, GRAFANA, PROM, PROM_CONFIG, ROOT, SHOP,
                          alert_rules, evaluated_rule_groups, expressions, grafana_to_promql,
                          load_dashboard, panels)

COMPOSE = DOCKER / "compose.yaml"
ENSURE = ROOT / "scripts" / "ensure-prometheus"

MISSING_TOOL = "{tool} not found on PATH: run scripts/ensure-prometheus (installs the Debian package 'prometheus')"

# Labels Prometheus adds, and the ones of its own series the rules and panels use (up, ALERTS).
TARGET_LABELS = ("job", "instance")
OTHER_SERIES = {"up": TARGET_LABELS, "ALERTS": ("alertname", "alertstate", "severity", "shop", "group")}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}  # the dashboards' datasource variable (issue #13)
# What Grafana 11.3 (docker/compose.yaml pins grafana/grafana:11.3.1) writes when it saves a
# dashboard: its last schema migration then was v40 (refresh always a string); 12.0 brought 41.
GRAFANA_SCHEMA_VERSION = 40

FLEET_PANELS = {
    "Shops by projected outcome": {"chatsla_shops"},
    "Mean rolling reply rate": {"chatsla_fleet_rolling_7d_reply_ratio_gsum", "chatsla_fleet_rolling_7d_reply_ratio_gcount"},
    "Sessions at risk": {"chatsla_sessions_at_risk"},
    "Workers up / partitions owned": {"up", "chatsla_owned_partitions"},
    "Policy in force": {"chatsla_info"},
    "Shops by projected outcome over time": {"chatsla_shops"},
    "Distribution of shops' rolling 7-day reply rates": {"chatsla_fleet_rolling_7d_reply_ratio_bucket"},
    "Shops' rolling reply rate: percentiles": {"chatsla_fleet_rolling_7d_reply_ratio_bucket"},
    "Sessions at risk (< 2 h to the 24 h deadline)": {"chatsla_sessions_at_risk"},
    "Shops with the lowest projected reply rate": {"chatsla_shop_week_projected_reply_ratio", "chatsla_shop_penalty_risk"},
    "Most sessions at risk, by shop": {"chatsla_shop_sessions_at_risk"},
    "Sessions opened and closed per second": {"chatsla_sessions_opened_total", "chatsla_sessions_closed_total"},
    "Closures by reason": {"chatsla_sessions_closed_total"},
    "Closures by reason in the last 24 h": {"chatsla_sessions_closed_total"},
    "Firing chatsla alerts": {"ALERTS"},
    "Consumer lag (records)": {"chatsla_consumer_lag_records"},
    "Watermark lag": {"chatsla_watermark_lag_seconds"},
    "Processing latency": {"chatsla_processing_latency_seconds_bucket"},
    "Events by outcome": {"chatsla_events_total"},
    "Dead-letter records": {"chatsla_dlq_records_total"},
    "Partitions owned per worker": {"chatsla_owned_partitions"},
    # issue #12: Douyin tickets (R9.8) and AliExpress waits (R10.3)
    "Overdue Douyin tickets by priority": {"chatsla_shop_tickets_overdue"},
    "Douyin tickets at risk and overdue": {"chatsla_shop_tickets_at_risk", "chatsla_shop_tickets_overdue"},
    "Shops with the most overdue tickets": {"chatsla_shop_tickets_overdue"},
    "Unreplied AliExpress conversations": {"chatsla_shop_unreplied_conversations"},
    "Unreplied conversations over time": {"chatsla_shop_unreplied_conversations"},
    "Longest current buyer waits, by shop": {"chatsla_shop_longest_wait_seconds"},
    # issue #14: TikTok Shop after-sales (R11.5.2, R11.6)
    "Shops with review timeliness at risk": {"chatsla_shop_aftersale_review_risk"},
    "After-sales auto-approval rate this week": {"chatsla_shop_aftersale_requests"},
    "Auto-approved amount this week by currency": {"chatsla_shop_aftersale_approved_amount"},
    "Lowest review timeliness this month, by shop": {"chatsla_shop_aftersale_review_ratio"},
}
SHOP_PANELS = {
    "Rolling 7-day reply rate": {"chatsla_shop_rolling_7d_reply_ratio"},
    "Projected this week": {"chatsla_shop_week_projected_reply_ratio"},
    "Projected outcome": {"chatsla_shop_penalty_risk"},
    "Replies needed for 90 %": {"chatsla_shop_replies_needed"},
    "Sessions at risk": {"chatsla_shop_sessions_at_risk"},
    "Longest buyer wait": {"chatsla_shop_buyer_wait_seconds"},
    "This week's reply rate: now, best case, worst case, projected": {
        "chatsla_shop_week_reply_ratio", "chatsla_shop_week_reply_best_ratio",
        "chatsla_shop_week_reply_worst_ratio", "chatsla_shop_week_projected_reply_ratio"},
    "Rolling 7-day 24 h reply rate": {"chatsla_shop_rolling_7d_reply_ratio"},
    "Sessions this week by state": {"chatsla_shop_sessions"},
    "Replies needed and sessions at risk": {"chatsla_shop_replies_needed", "chatsla_shop_sessions_at_risk"},
    "Buyer messages this week": {"chatsla_shop_buyer_messages"},
    "Firing alerts for this shop": {"ALERTS"},
    # issue #12: Douyin tickets (R9.8) and AliExpress waits (R10.3)
    "Open tickets": {"chatsla_shop_tickets_open"},
    "Tickets at risk": {"chatsla_shop_tickets_at_risk"},
    "Overdue urgent tickets": {"chatsla_shop_tickets_overdue"},
    "Tickets handled in time today": {"chatsla_shop_tickets_in_time_ratio"},
    "Open and overdue tickets by priority": {"chatsla_shop_tickets_open", "chatsla_shop_tickets_overdue"},
    "Tickets today and this week": {"chatsla_shop_tickets"},
    "Unreplied conversations": {"chatsla_shop_unreplied_conversations"},
    "Longest current wait": {"chatsla_shop_longest_wait_seconds"},
    "Answered waits today": {"chatsla_shop_waits"},
    "Longest current wait, both measures": {"chatsla_shop_longest_wait_seconds"},
    "Waiting time of today's answered waits": {"chatsla_shop_waited_seconds"},
    # issue #14: TikTok Shop after-sales (R11.5.2, R11.6)
    "Review timeliness this month": {"chatsla_shop_aftersale_review_ratio"},
    "Review timeliness risk": {"chatsla_shop_aftersale_review_risk"},
    "Reviews needed for 90 %": {"chatsla_shop_aftersale_reviews_needed"},
    "Auto-approval rate today": {"chatsla_shop_aftersale_auto_approval_ratio"},
    "Review timeliness: now, best case, worst case": {
        "chatsla_shop_aftersale_review_ratio", "chatsla_shop_aftersale_review_best_ratio",
        "chatsla_shop_aftersale_review_worst_ratio"},
    "Requests awaiting review this month": {"chatsla_shop_aftersale_reviews"},
    "Auto-approval rate by request type": {"chatsla_shop_aftersale_auto_approval_ratio"},
    "Auto-approved amount": {"chatsla_shop_aftersale_approved_amount"},
    "Manual-review reasons this week": {"chatsla_shop_aftersale_manual_reviews"},
    "Abuse signals": {"chatsla_shop_aftersale_signals"},
    "After-sales requests today and this week": {"chatsla_shop_aftersale_requests"},
}
ALERT_NAMES = {"ChatslaShopProjectedWarning", "ChatslaShopProjectedViolation", "ChatslaSessionsAtRiskPilingUp",
               "ChatslaPipelineStalled", "ChatslaDeadLetterGrowing", "ChatslaWorkerDown", "ChatslaPoisonRecords",
               "ChatslaUrgentTicketOverdue", "ChatslaBuyerWaitLong",  # issue #12
               "ChatslaReviewTimelinessAtRisk"}  # issue #14

IDENT = re.compile(r"(?<![\w:\"'.$])([a-zA-Z_:][\w:]*)\s*(?=[{\[)\s]|$)")
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "topk", "bottomk", "by", "without", "on", "ignoring", "and", "or",
    "unless", "offset", "rate", "increase", "changes", "histogram_quantile", "vector", "sort", "sort_desc",
    "group_left", "group_right", "bool", "time",
}


# --- helpers -------------------------------------------------------------------------------------

def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(MISSING_TOOL.format(tool=name), pytrace=False)
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return _tool("promtool")


def _run(cmd: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


EXPRESSIONS = expressions()


def _metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (identifiers that are not PromQL keywords or labels),
    including the alternatives of a ``{__name__=~"a|b"}`` matcher (the drill-down's shop variable)."""
    by_name = {n for m in re.finditer(r'__name__\s*=~?\s*"([^"]*)"', expr) for n in m.group(1).split("|")}
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    without_groupings = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", without_strings)
    without_matchers = re.sub(r"\{[^}]*\}", "{}", without_groupings)
    without_durations = re.sub(r"\[[^\]]*\]", "[]", without_matchers)
    names = set()
    for m in IDENT.finditer(without_durations):
        word = m.group(1)
        if word in PROMQL_WORDS or re.fullmatch(r"\d.*", word):
            continue
        names.add(word)
    return names | by_name


def _label_names(expr: str) -> set[str]:
    """Label names an expression groups, matches or filters by."""
    names = set()
    for m in re.finditer(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        names.update(x.strip() for x in m.group(1).split(",") if x.strip())
    for m in re.finditer(r"\{([^}]*)\}", expr):
        names.update(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", m.group(1)))
    return names - {"__name__"}  # a metric name matcher: its names are checked by _metric_names


# --- promtool on the Prometheus files ------------------------------------------------------------

def test_promtool_check_rules(promtool):
    """R8: the alert rules (group chatsla) are valid rules, templates included."""
    r = _run([promtool, "check", "rules", str(ALERTS)])
    assert r.returncode == 0, f"promtool check rules {ALERTS}:\n{r.stdout}{r.stderr}"
    assert f"SUCCESS: {len(ALERT_NAMES)} rules found" in r.stdout


def test_promtool_test_rules(promtool):
    """R8, R5.5: the promtool unit tests of every alert pass (firing and not-firing cases)."""
    r = _run([promtool, "test", "rules", ALERTS_TEST.name], cwd=PROM)
    assert r.returncode == 0, f"promtool test rules {ALERTS_TEST}:\n{r.stdout}{r.stderr}"


def test_promtool_check_config(promtool):
    """The compose stack's Prometheus configuration is valid and loads alerts.yml."""
    r = _run([promtool, "check", "config", str(PROM_CONFIG)])
    assert r.returncode == 0, f"promtool check config {PROM_CONFIG}:\n{r.stdout}{r.stderr}"
    assert "alerts.yml" in r.stdout + r.stderr


def test_alert_rules_cover_the_brief():
    """Every alert of R8's monitoring exists once, with a severity and seller-facing annotations."""
    rules = alert_rules()
    names = [r["alert"] for r in rules]
    assert sorted(names) == sorted(ALERT_NAMES)
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        ann = rule["annotations"]
        assert ann.get("summary") and ann.get("description"), rule["alert"]
        assert "What sellers should do" in ann["description"] or "What the seller" in ann["description"], rule["alert"]
        if rule["alert"].startswith("ChatslaShop") or rule["alert"] in {"ChatslaUrgentTicketOverdue", "ChatslaBuyerWaitLong",
                                                                        "ChatslaReviewTimelinessAtRisk"}:
            assert "$labels.shop" in ann["summary"] and "$labels.shop" in ann["description"], rule["alert"]
    tests = yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8"))
    cases = [c for t in tests["tests"] for c in t.get("alert_rule_test", [])]
    for name in ALERT_NAMES:
        mine = [c for c in cases if c["alertname"] == name]
        assert any(c.get("exp_alerts") for c in mine), f"{name}: no firing case in {ALERTS_TEST.name}"
        assert any(not c.get("exp_alerts") for c in mine), f"{name}: no not-firing case in {ALERTS_TEST.name}"


# --- every PromQL expression, one by one -----------------------------------------------------------

@pytest.mark.parametrize("where,expr", EXPRESSIONS, ids=[w for w, _ in EXPRESSIONS])
def test_promql_is_valid(where, expr, promtool, tmp_path):
    """R8: each dashboard and alert expression parses (checked by promtool as a recording rule)."""
    assert "$" not in expr, f"{where}: unreplaced Grafana variable in {expr!r}"
    rules = {"groups": [{"name": "promql_check", "rules": [{"record": "chatsla_check:expr", "expr": expr}]}]}
    path = tmp_path / "expr.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    r = _run([promtool, "check", "rules", str(path)])
    assert r.returncode == 0, f"{where}: invalid PromQL {expr!r}:\n{r.stdout}{r.stderr}"


@pytest.mark.parametrize("where,expr", EXPRESSIONS, ids=[w for w, _ in EXPRESSIONS])
def test_promql_uses_the_metric_contract(where, expr):
    """R8: expressions only name the worker's exported series and their labels (no typos)."""
    known = set(CONTRACT) | set(OTHER_SERIES)
    unknown = _metric_names(expr) - known
    assert not unknown, f"{where}: unknown series {sorted(unknown)} in {expr!r}"
    labels = set(TARGET_LABELS)
    for labs in [*CONTRACT.values(), *OTHER_SERIES.values()]:
        labels.update(labs)
    assert _label_names(expr) <= labels, f"{where}: unknown labels {sorted(_label_names(expr) - labels)} in {expr!r}"


def test_metric_name_extraction_finds_typos():
    """The contract check above would catch a misspelt series (guards the regex itself)."""
    assert _metric_names('sum by (topic) (rate(chatsla_dlq_records[5m]))') == {"chatsla_dlq_records"}
    assert _metric_names('max(chatsla_shop_rolling_7d_reply_ratio{shop="$shop"}) and on (shop) up offset 5m') == {
        "chatsla_shop_rolling_7d_reply_ratio", "up"}
    assert _label_names('sum by (risk) (x{state="a", shop=~"b"})') == {"risk", "state", "shop"}
    assert _metric_names('{__name__=~"chatsla_shop_tickets_open|chatsla_shop_unreplied"}') == {
        "chatsla_shop_tickets_open", "chatsla_shop_unreplied"}


# --- dashboards -----------------------------------------------------------------------------------

@pytest.mark.parametrize("path,uid,expected", [(FLEET, "chatsla-fleet", FLEET_PANELS), (SHOP, "chatsla-shop", SHOP_PANELS)],
                         ids=["fleet-overview", "shop-drilldown"])
def test_dashboard_structure(path, uid, expected):
    """R8: each dashboard parses, has the expected panels, and reads Prometheus through the
    `${datasource}` variable (issue #13: no hard-coded datasource uid)."""
    dash = load_dashboard(path)
    assert dash["uid"] == uid
    assert dash["schemaVersion"] == GRAFANA_SCHEMA_VERSION
    assert dash["title"].startswith("chatsla / ")
    assert "chatsla" in dash["tags"]
    all_panels = panels(dash)
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
    titles = {p["title"]: p for p in all_panels}
    missing = set(expected) - set(titles)
    assert not missing, f"{path.name}: missing panels {sorted(missing)}"
    for title, metrics in expected.items():
        used = set().union(*(_metric_names(grafana_to_promql(t["expr"])) for t in titles[title]["targets"]))
        assert metrics <= used, f"{path.name} {title!r}: expected series {sorted(metrics - used)}"
    for p in all_panels:
        pos = p["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, (path.name, p["title"])
        if p["type"] in ("row", "text"):
            continue
        assert p["datasource"] == DATASOURCE, (path.name, p["title"])
        assert p["targets"], (path.name, p["title"])
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), (path.name, p["title"])
        for t in p["targets"]:
            assert t["datasource"] == DATASOURCE and t["expr"].strip(), (path.name, p["title"])


def _generator():
    """docker/grafana/generate.py, the code the dashboards are generated from (issue #13)."""
    spec = importlib.util.spec_from_file_location("chatsla_grafana_generate", GRAFANA / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _enum_errors(obj, where: str) -> list[str]:
    """Enum-typed fields of an SDK model (recursively) whose value is not one of the enum's: the
    SDK's Python models read any string back, so the schema's enums are checked here."""
    errors: list[str] = []
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            errors += _enum_errors(item, f"{where}[{i}]")
        return errors
    if not hasattr(obj, "to_json") or not hasattr(type(obj), "__init__"):
        return errors
    try:
        hints = typing.get_type_hints(type(obj))
    except Exception:  # noqa: BLE001 - a model whose hints cannot be resolved is not checked deeper
        return errors
    for name, hint in hints.items():
        value = getattr(obj, name, None)
        if value is None:
            continue
        kinds = [a for a in (typing.get_args(hint) or (hint,)) if isinstance(a, type)]
        enums = [k for k in kinds if issubclass(k, enum.Enum)]
        if enums and not any(value in {m.value for m in e} or isinstance(value, e) for e in enums):
            errors.append(f"{where}.{name}: {value!r} is none of {[m.value for e in enums for m in e]}")
        errors += _enum_errors(value, f"{where}.{name}")
    return errors


def dashboard_problems(data: dict) -> list[str]:
    """Why ``data`` is not a valid Grafana 11.3 dashboard by the Foundation SDK's schema types:
    a key the schema does not know or in the wrong place is lost when the JSON is read into the
    SDK's typed models (dashboard, each panel type's options and field config, each Prometheus
    query) and written back; an enum field with a value the schema does not list is named."""
    from grafana_foundation_sdk.cog import plugins
    from grafana_foundation_sdk.cog import runtime as cogruntime
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard

    plugins.register_default_plugins()
    model = Dashboard.from_json(data)
    back = json.loads(json.dumps(model, cls=JSONEncoder))
    problems = [f"{path}: {a!r} != {b!r} after the SDK's models" for path, a, b in _differences(data, back)
                if path != ".id"]
    for p in panels(data):
        if p["type"] == "row":
            continue
        options = cogruntime.panelcfg_options_from_json(p.get("options", {}), p["type"])
        raw_custom = p.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
        custom = cogruntime.panelcfg_field_config_from_json(raw_custom, p["type"])
        for part, typed, raw in (("options", options, p.get("options", {})),
                                 ("fieldConfig.defaults.custom", custom, raw_custom)):
            if isinstance(typed, dict):
                continue  # a panel type without typed options (text's code block is in its options)
            again = json.loads(json.dumps(typed, cls=JSONEncoder))
            problems += [f"panel {p['title']!r} {part}{path}: {a!r} != {b!r} after the SDK's models"
                         for path, a, b in _differences(raw, again)]
            problems += _enum_errors(typed, f"panel {p['title']!r} {part}")
    problems += _enum_errors(model, "dashboard")
    return problems


def _differences(a, b, path: str = "") -> list[tuple[str, object, object]]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _differences(a.get(k, "<absent>"), b.get(k, "<absent>"),
                                                                        f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [(path, a, b)]


@pytest.mark.parametrize("name", ["fleet-overview.json", "shop-drilldown.json"])
def test_dashboards_are_generated_from_code(name):
    """issue #13: the committed dashboards are what docker/grafana/generate.py (Grafana Foundation
    SDK for Grafana 11.3) writes; edit the code and run it, never the JSON."""
    generator = _generator()
    assert (DASHBOARDS / name).read_text(encoding="utf-8") == generator.render(generator.DASHBOARDS[name]), (
        f"{name} differs from docker/grafana/generate.py's output: run .venv/bin/python docker/grafana/generate.py")


@pytest.mark.parametrize("path", [FLEET, SHOP], ids=["fleet-overview", "shop-drilldown"])
def test_dashboards_are_valid_for_grafana_11_3(path):
    """issue #13: each committed dashboard passes the Foundation SDK's schema types (pinned to
    Grafana 11.3, the compose stack's version): no unknown or misplaced key, no invalid enum."""
    problems = dashboard_problems(load_dashboard(path))
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def test_an_invalid_dashboard_is_caught():
    """The validator above fails on the kinds of mistakes a hand edit makes (guards the test)."""
    good = load_dashboard(FLEET)
    assert not dashboard_problems(good)
    stat_panel = next(i for i, p in enumerate(good["panels"]) if p["type"] == "stat")
    ts_panel = next(i for i, p in enumerate(good["panels"]) if p["type"] == "timeseries")
    for mutate, what in (
        (lambda d: d["panels"][stat_panel]["fieldConfig"]["defaults"].update(unti="s"), "misspelt key"),
        (lambda d: d["panels"][stat_panel]["options"].update(colorMode="valu"), "enum value"),
        (lambda d: d["panels"][ts_panel]["fieldConfig"]["defaults"]["custom"].update(drawStyle="curvy"), "enum value"),
        (lambda d: d["panels"][ts_panel]["options"]["legend"].update(placment="right"), "misspelt nested key"),
        (lambda d: d.update(refreshh="1m"), "misspelt top-level key"),
        (lambda d: d["templating"]["list"][0].update(type="datasauce"), "variable type"),
    ):
        bad = json.loads(json.dumps(good))
        mutate(bad)
        assert dashboard_problems(bad), f"not caught: {what}"


def test_dashboard_sdk_and_grafana_versions_agree():
    """issue #13: the SDK the dashboards are built with is its Grafana 11.3 build, the compose
    stack runs Grafana 11.3.x, and both dashboards say schemaVersion 40 (what 11.3 saves)."""
    from importlib.metadata import version

    assert version("grafana-foundation-sdk").endswith("!11.3.0")
    image = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))["services"]["grafana"]["image"]
    assert re.fullmatch(r"grafana/grafana:11\.3\.\d+", image), image
    assert {load_dashboard(p)["schemaVersion"] for p in (FLEET, SHOP)} == {GRAFANA_SCHEMA_VERSION}


@pytest.mark.parametrize("path", [FLEET, SHOP], ids=["fleet-overview", "shop-drilldown"])
def test_dashboard_links_variables_and_datasource(path):
    """issue #13: a `datasource` variable (Prometheus, default the stack's `prometheus`) that every
    query uses instead of a hard-coded uid; dashboard links with tooltips; no variable left
    without a valid current value."""
    dash = load_dashboard(path)
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    assert ds["current"] == {"selected": True, "text": "Prometheus", "value": "prometheus"}
    provisioned = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text(encoding="utf-8"))
    assert ds["current"]["value"] in {d["uid"] for d in provisioned["datasources"]}
    for v in variables.values():
        assert v["current"].get("text") and v["current"].get("value"), v["name"]
    assert dash["links"] and all(link.get("tooltip") for link in dash["links"]), dash["links"]
    text = json.dumps(dash)
    assert '"uid": "prometheus"' not in text, "a hard-coded datasource uid"


def test_fleet_dashboard_shows_the_r8_views():
    """R8 fleet view: shops by risk, the reply-rate histogram, closures by reason, p95 latency."""
    exprs = [t["expr"] for p in panels(load_dashboard(FLEET)) for t in p.get("targets", [])]
    joined = "\n".join(exprs)
    assert "sum by (risk) (chatsla_shops)" in joined
    assert "sum by (reason)" in joined and "chatsla_sessions_closed_total" in joined
    assert "histogram_quantile(0.95" in joined and "chatsla_processing_latency_seconds_bucket[$__rate_interval]" in joined
    assert "sum by (outcome) (rate(chatsla_events_total[$__rate_interval]))" in joined
    heat = [t for p in panels(load_dashboard(FLEET)) for t in p.get("targets", [])
            if "chatsla_fleet_rolling_7d_reply_ratio_bucket" in t["expr"] and t.get("format") == "heatmap"]
    assert heat, "the reply-rate distribution must de-accumulate the histogram buckets (format: heatmap)"


def test_shop_dashboard_variable_and_filters():
    """R8 per-shop view: a `shop` variable from label_values, and every query filtered by it."""
    dash = load_dashboard(SHOP)
    (var,) = [v for v in dash["templating"]["list"] if v["name"] == "shop"]
    assert var["type"] == "query" and var["datasource"] == DATASOURCE
    # every model's shops (issue #12): chat (rolling rate), Douyin tickets, AliExpress waits; and
    # TikTok Shop after-sales (issue #14)
    selector = ('{__name__=~"chatsla_shop_rolling_7d_reply_ratio|chatsla_shop_tickets_open'
                '|chatsla_shop_unreplied_conversations|chatsla_shop_aftersale_review_risk"}')
    assert var["query"]["query"] == f"label_values({selector}, shop)"
    assert (var["query"]["metric"], var["query"]["label"]) == (selector, "shop")
    assert not var["multi"] and not var["includeAll"]
    # issue #13: a valid default (a VariableOption with text and value, not `{}`): the first shop
    # of `chatsla simulate` and the demo; Grafana selects the first listed shop where it is absent.
    assert var["current"] == {"selected": True, "text": "shop-01", "value": "shop-01"}
    for p in panels(dash):
        for t in p.get("targets", []):
            assert 'shop="$shop"' in t["expr"], f"{p['title']}: query not filtered by $shop: {t['expr']}"


def test_docs_walk_through_every_panel_and_alert():
    """docs/dashboards.md's walk-through names every panel and row (as **title**, exactly as in the
    JSON) and every alert, so it cannot silently drift from docker/ (R8)."""
    page = (ROOT / "docs" / "dashboards.md").read_text(encoding="utf-8")
    section = page[page.index("## Reading the dashboards"):]
    missing = [f"{path.name}: {p['title']}" for path in (FLEET, SHOP) for p in panels(load_dashboard(path))
               if f"**{p['title']}**" not in section]
    assert not missing, f"panels not in the docs/dashboards.md walk-through: {missing}"
    assert all(f"`{name}`" in section for name in ALERT_NAMES), "every alert is in docs/dashboards.md's alert table"
    (variable,) = [v for v in load_dashboard(SHOP)["templating"]["list"] if v["name"] == "shop"]
    assert f"`{variable['query']['query']}`" in section


# --- a real Prometheus against contract-shaped metrics ----------------------------------------------

SHOPS = {  # shop -> rolling, week now, best, worst, projected, risk, decided, replied, pending, needed, at risk, wait, msgs
    "shop-1": (0.95, 0.96, 0.98, 0.90, 0.95, 0, 50, 48, 3, 0, 0, 600, 80),
    "shop-2": (0.86, 0.80, 0.92, 0.72, 0.84, 2, 40, 32, 6, 4, 3, 70000, 60),
}


class _Exposition(http.server.BaseHTTPRequestHandler):
    """A /metrics page shaped like the worker's (streams/metrics.py); counters grow per scrape."""

    scrapes = 0

    def do_GET(self):  # noqa: N802 - http.server API
        type(self).scrapes += 1
        n = type(self).scrapes
        lines = []
        fields = ("rolling_7d_reply_ratio", "week_reply_ratio", "week_reply_best_ratio", "week_reply_worst_ratio",
                  "week_projected_reply_ratio", "penalty_risk")
        for shop, v in SHOPS.items():
            for name, value in zip(fields, v[:6]):
                lines.append(f'chatsla_shop_{name}{{shop="{shop}"}} {value}')
            for state, value in zip(("decided", "replied", "pending"), v[6:9]):
                lines.append(f'chatsla_shop_sessions{{shop="{shop}",state="{state}"}} {value}')
            for name, value in zip(("replies_needed", "sessions_at_risk", "buyer_wait_seconds", "buyer_messages"), v[9:]):
                lines.append(f'chatsla_shop_{name}{{shop="{shop}"}} {value}')
            lines.append(f'chatsla_shop_last_week_reply_ratio{{shop="{shop}"}} {v[1]}')
            lines.append(f'chatsla_shop_last_week_info{{shop="{shop}",week_start="2026-11-02",status="final",'
                         f'outcome="{("ok", "warning", "violation")[v[5]]}"}} 1')
        for i, shop in enumerate(SHOPS):  # issue #12: every shop also has Douyin tickets and AliExpress waits here
            for prio in ("normal", "urgent", "agreed"):
                lines.append(f'chatsla_shop_tickets_open{{shop="{shop}",priority="{prio}"}} {3 + i}')
                lines.append(f'chatsla_shop_tickets_overdue{{shop="{shop}",priority="{prio}"}} {i}')
            lines.append(f'chatsla_shop_tickets_at_risk{{shop="{shop}"}} {1 + i}')
            for period in ("day", "week"):
                for state, value in (("total", 10), ("handled_in_time", 8), ("missed", 1), ("handled_late", 1),
                                     ("pending", 1), ("excluded", 0)):
                    lines.append(f'chatsla_shop_tickets{{shop="{shop}",period="{period}",state="{state}"}} {value}')
                lines.append(f'chatsla_shop_tickets_in_time_ratio{{shop="{shop}",period="{period}"}} 0.8')
                for state, value in (("answered", 5), ("closed_unanswered", 1), ("opened", 7)):
                    lines.append(f'chatsla_shop_waits{{shop="{shop}",period="{period}",state="{state}"}} {value}')
                for measure in ("last_buyer_message", "first_unanswered"):
                    for quantile, value in (("0.5", 600), ("0.9", 3600), ("0.99", 7200), ("1.0", 7300)):
                        lines.append(f'chatsla_shop_waited_seconds{{shop="{shop}",period="{period}",'
                                     f'measured_from="{measure}",quantile="{quantile}"}} {value}')
            lines.append(f'chatsla_shop_unreplied_conversations{{shop="{shop}"}} {2 * i}')
            for measure, value in (("last_buyer_message", 3000 + 50000 * i), ("first_unanswered", 4000 + 50000 * i)):
                lines.append(f'chatsla_shop_longest_wait_seconds{{shop="{shop}",measured_from="{measure}"}} {value}')
            lines += _aftersale_lines(shop, i)  # issue #14
        for risk, value in (("ok", 1), ("warning", 0), ("violation", 1), ("not_assessed", 0)):
            lines.append(f'chatsla_shops{{risk="{risk}"}} {value}')
        cumulative = 0
        for le, count in (("0.5", 0), ("0.7", 0), ("0.8", 0), ("0.85", 0), ("0.9", 1), ("0.95", 1), ("1.0", 0), ("+Inf", 0)):
            cumulative += count
            lines.append(f'chatsla_fleet_rolling_7d_reply_ratio_bucket{{le="{le}"}} {cumulative}')
        lines += ["chatsla_fleet_rolling_7d_reply_ratio_gsum 1.81", "chatsla_fleet_rolling_7d_reply_ratio_gcount 2", "chatsla_sessions_at_risk 3",
                  f"chatsla_sessions_opened_total {10 * n}"]
        for i, reason in enumerate(("seller_timeout", "buyer_timeout", "auto_reply_resolved", "closed_by_seller",
                                    "closed_by_platform")):
            lines.append(f'chatsla_sessions_closed_total{{reason="{reason}"}} {(i + 1) * n}')
        for i, outcome in enumerate(("valid", "duplicate", "late", "invalid")):
            lines.append(f'chatsla_events_total{{outcome="{outcome}"}} {(10 - 2 * i) * n}')
        lines.append(f'chatsla_dlq_records_total{{topic="chat.messages.dlq"}} {n}')
        now = time.time()
        lines += [f'chatsla_watermark_timestamp_seconds{{partition="0"}} {now - 120:.3f}',
                  'chatsla_watermark_lag_seconds{partition="0"} 120']
        cumulative = 0
        for le, share in (("0.01", 1), ("0.05", 2), ("0.1", 3), ("0.25", 2), ("0.5", 1), ("1.0", 1), ("+Inf", 0)):
            cumulative += share * n
            lines.append(f'chatsla_processing_latency_seconds_bucket{{le="{le}"}} {cumulative}')
        lines += [f"chatsla_processing_latency_seconds_sum {0.9 * n}",
                  f"chatsla_processing_latency_seconds_count {cumulative}",
                  'chatsla_consumer_lag_records{topic="chatsla.events",partition="0"} 12',
                  "chatsla_owned_partitions 4",
                  'chatsla_info{version="0.1.0",policy_id="tiktok_shop",policy_version="2023-11"} 1']
        body = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep pytest output clean
        pass


def _aftersale_lines(shop: str, i: int) -> list[str]:
    """A shop's after-sales series (issue #14, R11.5.2, R11.6) as streams/metrics.py exports them;
    shop ``i == 1`` heads under the review threshold (risk 1)."""
    pol = 'policy_id="tiktok_aftersale",policy_version="2026-01"'
    lines = []
    for period in ("day", "week"):
        for rtype in ("all", "cancel", "refund_only", "return_refund", "exchange"):
            for state, value in (("total", 10), ("auto_approved", 4), ("manual_review", 6), ("agree", 5),
                                 ("disagree", 1)):
                lines.append(f'chatsla_shop_aftersale_requests{{shop="{shop}",period="{period}",request_type="{rtype}",'
                             f'state="{state}",{pol}}} {value}')
            lines.append(f'chatsla_shop_aftersale_auto_approval_ratio{{shop="{shop}",period="{period}",'
                         f'request_type="{rtype}",{pol}}} 0.4')
            lines.append(f'chatsla_shop_aftersale_approved_amount{{shop="{shop}",period="{period}",request_type="{rtype}",'
                         f'currency="USD",{pol}}} 99.99')
        lines.append(f'chatsla_shop_aftersale_manual_reviews{{shop="{shop}",period="{period}",reason="no_rule_matched",'
                     f'{pol}}} 6')
        for signal in ("repeat_buyer", "repeat_sku", "near_threshold"):
            lines.append(f'chatsla_shop_aftersale_signals{{shop="{shop}",period="{period}",signal="{signal}",{pol}}} 1')
    for group in ("cancellation", "return_refund"):
        for state, value in (("awaiting_seller", 30), ("reviewed_in_time", 25), ("missed", 3), ("pending", 2)):
            lines.append(f'chatsla_shop_aftersale_reviews{{shop="{shop}",group="{group}",state="{state}",{pol}}} {value}')
        for name, value in (("review_ratio", 25 / 28), ("review_best_ratio", 27 / 30), ("review_worst_ratio", 25 / 30),
                            ("review_risk", i), ("reviews_needed", 2)):
            lines.append(f'chatsla_shop_aftersale_{name}{{shop="{shop}",group="{group}",{pol}}} {value}')
    return lines


@pytest.fixture(scope="module")
def live_prometheus(tmp_path_factory):
    """A private Prometheus (scrape and rule interval 1 s) scraping the synthetic exposition;
    the same server module the demo and the end-to-end test use (chatsla/dev/prometheus.py)."""
    _tool("prometheus")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Exposition)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = PrometheusConfig(data_dir=tmp_path_factory.mktemp("prometheus"), port=free_port(),
                              targets=(f"127.0.0.1:{server.server_address[1]}",), scrape_interval="1s",
                              rule_files=(ALERTS,), die_with_parent=True)
    try:
        with prometheus_running(config) as prom:
            def scraped_four_times() -> bool:
                samples = prom.query("count_over_time(chatsla_sessions_opened_total[1m])")["data"]["result"]
                return bool(samples) and float(samples[0]["value"][1]) >= 4

            wait_for(scraped_four_times, timeout=60, interval=0.5, what="4 scrapes of the synthetic exposition")
            yield config.url
    except PrometheusError as e:
        pytest.fail(str(e), pytrace=False)
    finally:
        server.shutdown()
        server.server_close()


DASHBOARD_EXPRESSIONS = [(w, e) for w, e in EXPRESSIONS if not w.startswith("alerts.yml")]


@pytest.mark.parametrize("where,expr", DASHBOARD_EXPRESSIONS, ids=[w for w, _ in DASHBOARD_EXPRESSIONS])
def test_dashboard_query_returns_data(where, expr, live_prometheus):
    """R8: against contract-shaped metrics every dashboard query answers with data (ALERTS aside)."""
    result = prometheus_api(live_prometheus, "query", query=expr)
    assert result["status"] == "success", f"{where}: {result}"
    if "ALERTS" in expr:
        return  # only shows something while an alert fires
    assert result["data"]["result"], f"{where}: no data for {expr!r}"


def test_shop_variable_lists_shops(live_prometheus):
    """The drill-down's `shop` variable (label_values over every model's shop series, issue #12)
    lists the shops: its selector is valid for Prometheus' label values API."""
    (var,) = [v for v in load_dashboard(SHOP)["templating"]["list"] if v["name"] == "shop"]
    values = prometheus_api(live_prometheus, "label/shop/values", **{"match[]": var["query"]["metric"]})
    assert values["data"] == sorted(SHOPS)


def test_alert_rules_evaluate_cleanly(live_prometheus):
    """R8: Prometheus loads every alert rule and evaluates it without error on live data."""
    groups = evaluated_rule_groups(live_prometheus, timeout=20)
    rules = [r for g in groups for r in g["rules"]]
    assert {g["name"] for g in groups} == {"chatsla"}
    assert {r["name"] for r in rules} == ALERT_NAMES
    bad = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert not bad, f"rules failing to evaluate: {bad}"


# --- compose stack ----------------------------------------------------------------------------------

def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def test_compose_parses_and_has_the_stack():
    """The compose stack: Kafka 3.9.1 (KRaft), worker, optional simulate, Prometheus, Grafana."""
    services = _compose()["services"]
    assert {"kafka", "worker", "simulate", "prometheus", "grafana"} <= set(services)
    kafka = services["kafka"]
    assert kafka["image"] == "apache/kafka:3.9.1"
    env = kafka["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"] and "broker" in env["KAFKA_PROCESS_ROLES"]
    assert "INTERNAL://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "EXTERNAL://localhost:" in env["KAFKA_ADVERTISED_LISTENERS"]
    worker = services["worker"]
    assert worker["command"] == ["chatsla", "worker", "--bootstrap", "kafka:9092", "--web-host", "0.0.0.0",
                                 "--web-port", "6066"]
    assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"
    simulate = services["simulate"]
    assert simulate["profiles"] == ["simulate"]
    assert "chatsla simulate --bootstrap kafka:9092 --rate" in simulate["command"][0]
    grafana = services["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "true" and grafana["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert any(str(p).endswith(":3000") for p in services["grafana"]["ports"])


def test_compose_references_existing_files():
    """Every build context, Dockerfile and bind-mounted file of the compose file exists."""
    services = _compose()["services"]
    mounts: dict[str, Path] = {}
    for name, svc in services.items():
        build = svc.get("build")
        if build:
            context = (DOCKER / build["context"]).resolve()
            assert context.is_dir(), f"{name}: build context {context} missing"
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), f"{name}: Dockerfile missing"
        for volume in svc.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/")):
                path = (DOCKER / source).resolve()
                assert path.exists(), f"{name}: mounted {source} does not exist ({path})"
                mounts[target] = path
    # Prometheus: the config and every rule file it loads are mounted side by side.
    config_target = "/etc/prometheus/prometheus.yml"
    assert mounts[config_target] == PROM_CONFIG
    config = yaml.safe_load(PROM_CONFIG.read_text(encoding="utf-8"))
    for rule_file in config["rule_files"]:
        target = str(Path(config_target).parent / rule_file)
        assert mounts.get(target) == (PROM / rule_file).resolve(), f"rule file {rule_file} not mounted at {target}"
    worker_jobs = [j for j in config["scrape_configs"] if j["job_name"] == "chatsla-worker"]
    assert worker_jobs and worker_jobs[0]["dns_sd_configs"][0] == {
        "names": ["worker"], "type": "A", "port": 6066, "refresh_interval": "15s"}
    # Grafana: provisioning and dashboards where the provisioning files expect them.
    assert mounts["/etc/grafana/provisioning"] == GRAFANA / "provisioning"
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/chatsla.yml").read_text(encoding="utf-8"))
    dash_dir = provider["providers"][0]["options"]["path"]
    assert mounts[dash_dir] == DASHBOARDS
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DASHBOARDS / Path(home).relative_to(dash_dir)).is_file()
    datasource = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text(encoding="utf-8"))
    (ds,) = datasource["datasources"]
    assert ds["uid"] == "prometheus" and ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"


def test_dockerfile_installs_the_project():
    """docker/Dockerfile: python:3.11-slim, `pip install .`, and every COPY source exists."""
    text = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert "pip install ." in text
    for m in re.finditer(r"^COPY\s+(.+?)\s+\S+\s*$", text, re.M):
        for source in m.group(1).split():
            assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    # what pyproject's package discovery needs is copied
    for package in ("chatsla", "streams", "projections", "schemas"):
        assert re.search(rf"^COPY\s+{package}/", text, re.M), package


def test_ensure_prometheus_is_idempotent():
    """scripts/ensure-prometheus does nothing (and says so) when promtool is already there."""
    _tool("promtool")
    assert os.access(ENSURE, os.X_OK), f"{ENSURE} is not executable"
    r = _run(["bash", "-n", str(ENSURE)])
    assert r.returncode == 0, r.stderr
    r = _run([str(ENSURE)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "already available" in r.stdout and "promtool" in r.stdout


# --- the demo's example queries (issue #13) -----------------------------------------------------------

def _demo_queries() -> list[tuple[str, str]]:
    from chatsla.demo import EXAMPLE_QUERIES

    return list(EXAMPLE_QUERIES)


@pytest.mark.parametrize("query,meaning", _demo_queries(), ids=[f"demo-{i}" for i, _ in enumerate(_demo_queries())])
def test_demo_example_queries_are_valid_and_explained(query, meaning, promtool, tmp_path):
    """issue #13: every query `chatsla demo` prints parses, names only the worker's series, and
    comes with a sentence saying what its numbers mean."""
    rules = {"groups": [{"name": "demo", "rules": [{"record": "chatsla_check:demo", "expr": query}]}]}
    path = tmp_path / "demo.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    r = _run([promtool, "check", "rules", str(path)])
    assert r.returncode == 0, f"invalid PromQL {query!r}:\n{r.stdout}{r.stderr}"
    assert not _metric_names(query) - set(CONTRACT) - set(OTHER_SERIES), query
    assert len(meaning.split()) >= 8, f"say what the numbers of {query!r} mean"


def test_demo_first_query_shows_the_finished_week():
    """issue #13: the first example is the simulated (finished) week's outcome per shop, not the
    new week's projection, which is all zero in the demo (docs/dashboards.md)."""
    query, meaning = _demo_queries()[0]
    assert "chatsla_shop_last_week_info" in query and "chatsla_shop_last_week_reply_ratio" in query
    assert "outcome" in meaning and "24 h" in meaning
    assert "penalty_risk" not in query and "chatsla_shops" not in query


def test_changelog_lists_every_rename_and_no_old_name_is_left():
    """issue #13: CHANGELOG.md lists each renamed series (old -> new, why); every new name is in
    the worker's contract, and no old name is left in the dashboards, alerts, docs or demo."""
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(chatsla_\w+)`[^|]*\| `(chatsla_\w+)`[^|]*\| (.+) \|$", text, re.M)
    renames = {old: new for old, new, why in rows if why.strip()}
    assert {"chatsla_shop_reply_rate_24h", "chatsla_shop_week_reply_rate", "chatsla_shop_week_reply_rate_best",
            "chatsla_shop_week_reply_rate_worst", "chatsla_shop_projected_reply_rate", "chatsla_fleet_reply_rate",
            "chatsla_fleet_reply_rate_bucket", "chatsla_fleet_reply_rate_sum", "chatsla_fleet_reply_rate_count"} <= set(renames)
    contract_families = set(CONTRACT) | {n.rsplit("_", 1)[0] for n in CONTRACT if n.endswith(("_bucket", "_gsum", "_gcount"))}
    assert set(renames.values()) <= contract_families, set(renames.values()) - contract_families
    shipped = [ALERTS, ALERTS_TEST, FLEET, SHOP, ROOT / "docs" / "dashboards.md", ROOT / "chatsla" / "demo.py",
               ROOT / "streams" / "metrics.py", ROOT / "README.md"]
    for path in shipped:
        content = path.read_text(encoding="utf-8")
        left = [old for old in renames if re.search(rf"\b{old}\b", content)]
        assert not left, f"{path.relative_to(ROOT)} still names {left}"
