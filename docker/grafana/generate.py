"""The chatsla Grafana dashboards, generated from code (RULES R8; issue #13).

``docker/grafana/dashboards/*.json`` are this module's output, built with the Grafana Foundation
SDK (``grafana-foundation-sdk`` on PyPI, pinned in pyproject's ``test`` extra to its build for
Grafana 11.3, the version ``docker/compose.yaml`` runs). The SDK's typed builders keep every field
a field Grafana 11.3 knows, with the right type; ``tests/docker/test_alert_rules.py`` regenerates the
dashboards and fails when a committed file differs, and reads every committed file back through
the SDK's models (unknown keys and enum values not in the schema fail).

Regenerate after a change here::

    .venv/bin/python docker/grafana/generate.py          # writes docker/grafana/dashboards/*.json
    .venv/bin/python docker/grafana/generate.py --check  # exit 1 if a committed file is stale

Choices (docs/dashboards.md walks through every panel):

- ``schemaVersion`` 40: what Grafana 11.3 writes when it saves a dashboard (its last migration
  then, "refresh is always a string"; 41 came with 12.0). The SDK's model defaults to 39, the
  kind schema's older value, so it is set here after building; Grafana would otherwise migrate
  the provisioned JSON on every load and show it as changed.
- a ``datasource`` variable (type prometheus) instead of a hard-coded datasource uid, so the
  dashboards work with any Prometheus datasource; its default is the compose stack's
  ``prometheus``.
- the drill-down's ``shop`` variable defaults to ``shop-01`` (the first shop of ``chatsla
  simulate`` and the demo); where no such shop exists Grafana selects the first listed shop.
- each dashboard links to the other chatsla dashboards (by tag), with a tooltip.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import bargauge, common as cb, dashboard as db, prometheus, stat, table, text, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common, dashboard as dm, text as text_model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat, QueryEditorMode

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
SCHEMA_VERSION = 40  # Grafana 11.3.x (docker/compose.yaml: grafana/grafana:11.3.1)
DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
SHOP_URL = "/d/chatsla-shop/chatsla-shop-drill-down?var-shop=${__value.raw}&${__url_time_range}"

RATE_STEPS = [(None, "red"), (0.85, "orange"), (0.9, "green")]  # R5.5: under 85 % / 90 %
REVIEW_STEPS = [(None, "red"), (0.9, "green")]  # R11.6.3: review_rate_below 0.90 (tiktok_aftersale@2026-01)
AS_RISK = "chatsla_shop_aftersale_review_risk"  # R11.6, projections/aftersale.py: 0 ok, 1 heading under, 2 under


# --- small helpers -----------------------------------------------------------------------------------

def q(expr: str, legend: str, ref: str = "A", *, instant: bool = False, fmt: PromQueryFormat | None = None) -> prometheus.Dataquery:
    """A Prometheus query in code mode on the ``${datasource}`` variable."""
    b = (prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).editor_mode(QueryEditorMode.CODE)
         .datasource(DS))
    b = b.instant() if instant else b.range()
    if fmt is not None:
        b = b.format(fmt)
    return b


def steps(*pairs: tuple[float | None, str]) -> db.ThresholdsConfig:
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(value=v, color=c) for v, c in pairs])


def fixed(color: str) -> dm.DynamicConfigValue:
    return dm.DynamicConfigValue(id_val="color", value={"fixedColor": color, "mode": "fixed"})


OUTCOME_COLOURS = [("ok", "green"), ("warning", "orange"), ("violation", "red"), ("not_assessed", "text")]


def pos(x: int, y: int, w: int, h: int) -> dm.GridPos:
    return dm.GridPos(x=x, y=y, w=w, h=h)


def reduce_last() -> cb.ReduceDataOptions:
    return cb.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False)


def stat_panel(pid: int, title: str, description: str, grid: dm.GridPos, targets: list, *, unit: str | None = "short",
               thresholds: db.ThresholdsConfig | None = None, decimals: int | None = None,
               color_mode: common.BigValueColorMode = common.BigValueColorMode.VALUE,
               graph_mode: common.BigValueGraphMode = common.BigValueGraphMode.AREA,
               text_mode: common.BigValueTextMode = common.BigValueTextMode.AUTO) -> stat.Panel:
    p = (stat.Panel().id(pid).title(title).description(description).grid_pos(grid).datasource(DS)
         .targets(targets).color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
         .thresholds(thresholds or steps((None, "green"))).mappings([])
         .color_mode(color_mode).graph_mode(graph_mode).justify_mode(common.BigValueJustifyMode.AUTO)
         .orientation(common.VizOrientation.AUTO).reduce_options(reduce_last()).show_percent_change(False)
         .text_mode(text_mode).wide_layout(True))
    if unit is not None:
        p = p.unit(unit)
    if decimals is not None:
        p = p.decimals(decimals)
    return p


def ts_panel(pid: int, title: str, description: str, grid: dm.GridPos, targets: list, *, unit: str = "short",
             fill: int = 10, interpolation: common.LineInterpolation = common.LineInterpolation.STEP_AFTER,
             stacked: bool = False, thresholds: db.ThresholdsConfig | None = None, dashed: bool = False,
             min_: float | None = None, max_: float | None = None) -> timeseries.Panel:
    p = (timeseries.Panel().id(pid).title(title).description(description).grid_pos(grid).datasource(DS)
         .targets(targets).unit(unit).color_scheme(db.FieldColor().mode(dm.FieldColorModeId.PALETTE_CLASSIC))
         .thresholds(thresholds or steps((None, "green"))).mappings([])
         .draw_style(common.GraphDrawStyle.LINE).line_interpolation(interpolation).line_width(1)
         .fill_opacity(fill).gradient_mode(common.GraphGradientMode.NONE).show_points(common.VisibilityMode.NEVER)
         .point_size(4).span_nulls(False).insert_nulls(False).axis_placement(common.AxisPlacement.AUTO)
         .axis_label("").axis_color_mode(common.AxisColorMode.TEXT).axis_border_show(False)
         .axis_centered_zero(False).bar_alignment(common.BarAlignment.CENTER)
         .scale_distribution(cb.ScaleDistributionConfig().type(common.ScaleDistribution.LINEAR))
         .hide_from(cb.HideSeriesConfig().legend(False).tooltip(False).viz(False))
         .stacking(cb.StackingConfig().group("A").mode(common.StackingMode.NORMAL if stacked else common.StackingMode.NONE))
         .thresholds_style(cb.GraphThresholdsStyleConfig().mode(
             common.GraphThresholdsStyleMode.DASHED if dashed else common.GraphThresholdsStyleMode.OFF))
         .legend(cb.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST).placement(common.LegendPlacement.BOTTOM)
                 .show_legend(True).calcs([]))
         .tooltip(cb.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING)))
    if min_ is not None:
        p = p.min(min_)
    if max_ is not None:
        p = p.max(max_)
    return p


def bar_panel(pid: int, title: str, description: str, grid: dm.GridPos, targets: list, *,
              orientation: common.VizOrientation, thresholds: db.ThresholdsConfig, min_: float | None = None) -> bargauge.Panel:
    p = (bargauge.Panel().id(pid).title(title).description(description).grid_pos(grid).datasource(DS).targets(targets)
         .unit("short").decimals(0).color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
         .thresholds(thresholds).mappings([]).display_mode(common.BarGaugeDisplayMode.GRADIENT)
         .value_mode(common.BarGaugeValueMode.COLOR).name_placement(common.BarGaugeNamePlacement.AUTO)
         .show_unfilled(True).sizing(common.BarGaugeSizing.AUTO).min_viz_width(8).min_viz_height(16)
         .max_viz_height(300).orientation(orientation).reduce_options(reduce_last()))
    if min_ is not None:
        p = p.min(min_)
    return p


def shop_link() -> dm.DynamicConfigValue:
    return dm.DynamicConfigValue(id_val="links", value=[{"title": "Shop drill-down", "url": SHOP_URL}])


def table_panel(pid: int, title: str, description: str, grid: dm.GridPos, targets: list,
                transformations: list[dm.DataTransformerConfig], sort_by: list | None = None) -> table.Panel:
    return (table.Panel().id(pid).title(title).description(description).grid_pos(grid).datasource(DS).targets(targets)
            .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS)).thresholds(steps((None, "green")))
            .mappings([]).align(common.FieldTextAlignment.AUTO).inspect(False)
            .cell_options(common.TableAutoCellOptions()).cell_height(common.TableCellHeight.SM).show_header(True)
            .footer(cb.TableFooterOptions().show(False).reducer(["sum"]).fields("").count_rows(False))
            .sort_by(sort_by or []).transformations(transformations))


def dashboard_links() -> list[db.DashboardLink]:
    return [db.DashboardLink("chatsla").type(dm.DashboardLinkType.DASHBOARDS).tags(["chatsla"])
            .as_dropdown(False).icon("external link").include_vars(False).keep_time(True).target_blank(False)
            .tooltip("The other chatsla dashboards (fleet overview, shop drill-down), same time range")]


def datasource_variable() -> db.DatasourceVariable:
    return (db.DatasourceVariable("datasource").label("Data source").type("prometheus")
            .description("The Prometheus that scrapes the chatsla workers.")
            .current(dm.VariableOption(selected=True, text="Prometheus", value="prometheus")))


def base(uid: str, title: str, description: str) -> db.Dashboard:
    return (db.Dashboard(title).uid(uid).description(description).tags(["chatsla"]).editable()
            .tooltip(dm.DashboardCursorSync.CROSSHAIR).refresh("30s").time("now-24h", "now").timezone("")
            .week_start("monday").fiscal_year_start_month(0).live_now(False)
            .timepicker(db.TimePicker().refresh_intervals(["10s", "30s", "1m", "5m", "15m"]))
            .links(dashboard_links()).with_variable(datasource_variable())
            .annotation(db.AnnotationQuery().name("Annotations & Alerts").built_in(1).enable(True).hide(True)
                        .icon_color("rgba(0, 211, 255, 1)").type("dashboard")
                        .datasource(dm.DataSourceRef(type_val="grafana", uid="-- Grafana --"))))


def build(dashboard: db.Dashboard) -> dict:
    """The dashboard as Grafana 11.3 saves it: the SDK's JSON, with schemaVersion 40 and no id."""
    model = dashboard.build()
    model.schema_version = SCHEMA_VERSION
    data = json.loads(json.dumps(model, cls=JSONEncoder))
    data["id"] = None  # provisioned: Grafana assigns the database id
    return data


# --- chatsla / Fleet overview ---------------------------------------------------------------------------

def fleet() -> dict:
    d = base("chatsla-fleet", "chatsla / Fleet overview",
             "All shops' projected weekly 24 h chat reply rates and the health of the chatsla pipeline (RULES R8).")
    outcome_colours = [fixed(c) for _, c in OUTCOME_COLOURS]
    shops = (stat_panel(2, "Shops by projected outcome",
                        "Shops by the projected outcome of their current week (R5.5): ok, warning (projected under 90 %), "
                        "violation (under 85 %), not assessed (under 5 buyer messages, R5.4). Summed over workers.",
                        pos(0, 1, 8, 5), [q("sum by (risk) (chatsla_shops)", "{{risk}}", instant=True)],
                        color_mode=common.BigValueColorMode.BACKGROUND, graph_mode=common.BigValueGraphMode.NONE,
                        text_mode=common.BigValueTextMode.VALUE_AND_NAME))
    for (name, _), colour in zip(OUTCOME_COLOURS, outcome_colours):
        shops = shops.override_by_name(name, [colour])
    mean = ("sum(chatsla_fleet_rolling_7d_reply_ratio_gsum) / sum(chatsla_fleet_rolling_7d_reply_ratio_gcount)")
    bucket = "sum by (le) (chatsla_fleet_rolling_7d_reply_ratio_bucket)"
    over_time = ts_panel(7, "Shops by projected outcome over time",
                         "How many shops are projected ok, warning, violation or not assessed this week (R5.5, R8).",
                         pos(0, 6, 12, 8), [q("sum by (risk) (chatsla_shops)", "{{risk}}")], fill=40,
                         interpolation=common.LineInterpolation.LINEAR, stacked=True)
    for (name, _), colour in zip(OUTCOME_COLOURS, outcome_colours):
        over_time = over_time.override_by_name(name, [colour])
    lowest = "bottomk(15, max by (shop) (chatsla_shop_week_projected_reply_ratio))"
    columns = [("B", "chatsla_shop_week_reply_ratio"), ("C", "chatsla_shop_penalty_risk"),
               ("D", "chatsla_shop_replies_needed"), ("E", "chatsla_shop_sessions_at_risk"),
               ("F", "chatsla_shop_buyer_wait_seconds")]
    worst = (table_panel(
        11, "Shops with the lowest projected reply rate",
        "The 15 shops with the lowest projected rate this week (R8); click a shop for its drill-down.",
        pos(0, 22, 14, 10),
        [q(lowest, "__auto", instant=True, fmt=PromQueryFormat.TABLE)]
        + [q(f"max by (shop) ({metric}) and on (shop) {lowest}", "__auto", ref, instant=True, fmt=PromQueryFormat.TABLE)
           for ref, metric in columns],
        [dm.DataTransformerConfig(id_val="merge", options={}),
         dm.DataTransformerConfig(id_val="organize", options={
             "excludeByName": {"Time": True},
             "indexByName": {"shop": 0, "Value #A": 1, "Value #B": 2, "Value #C": 3, "Value #D": 4, "Value #E": 5,
                             "Value #F": 6},
             "renameByName": {"Value #A": "Projected", "Value #B": "Week so far", "Value #C": "Outcome",
                              "Value #D": "Replies needed", "Value #E": "At risk", "Value #F": "Longest wait"}})],
        sort_by=[cb.TableSortByFieldState().display_name("Projected").desc(False)])
        .override_by_name("shop", [shop_link()])
        .override_by_regexp("Projected|Week so far", [
            dm.DynamicConfigValue(id_val="unit", value="percentunit"), dm.DynamicConfigValue(id_val="decimals", value=1),
            dm.DynamicConfigValue(id_val="thresholds", value={"mode": "absolute", "steps": [
                {"color": c, "value": v} for v, c in RATE_STEPS]}),
            dm.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"})])
        .override_by_name("Outcome", [
            dm.DynamicConfigValue(id_val="mappings", value=[{"type": "value", "options": {
                "0": {"text": "ok / not assessed", "color": "green", "index": 0},
                "1": {"text": "warning", "color": "orange", "index": 1},
                "2": {"text": "violation", "color": "red", "index": 2}}}]),
            dm.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"})])
        .override_by_name("Longest wait", [dm.DynamicConfigValue(id_val="unit", value="s")]))
    alerts = (table_panel(
        17, "Firing chatsla alerts", "Alerts from docker/prometheus/alerts.yml that fire now.", pos(12, 41, 12, 7),
        [q('ALERTS{alertstate="firing", alertname=~"Chatsla.*"}', "__auto", instant=True, fmt=PromQueryFormat.TABLE)],
        [dm.DataTransformerConfig(id_val="organize", options={"excludeByName": {
            "Time": True, "Value": True, "__name__": True, "alertstate": True}})])
        .override_by_name("shop", [shop_link()]))
    rate = "[$__rate_interval]"
    latency = "sum by (le) (rate(chatsla_processing_latency_seconds_bucket[$__rate_interval]))"
    return build(
        d.with_row(db.Row("Shops (RULES R5, R8)").id(1).collapsed(False).grid_pos(pos(0, 0, 24, 1)))
        .with_panel(shops)
        .with_panel(stat_panel(3, "Mean rolling reply rate",
                               "Mean over shops of the rolling 7-day 24 h reply ratio (R8), from the "
                               "chatsla_fleet_rolling_7d_reply_ratio gauge histogram.",
                               pos(8, 1, 4, 5), [q(mean, "mean", instant=True)], unit="percentunit", decimals=1,
                               thresholds=steps(*RATE_STEPS)))
        .with_panel(stat_panel(4, "Sessions at risk",
                               "Pending sessions with less than 2 h left to their 24 h reply deadline, whole fleet (R8).",
                               pos(12, 1, 4, 5), [q("sum(chatsla_sessions_at_risk)", "at risk")],
                               thresholds=steps((None, "green"), (1, "orange"), (10, "red"))))
        .with_panel(stat_panel(5, "Workers up / partitions owned",
                               "Workers Prometheus scrapes successfully, and the chatsla.events partitions they own together.",
                               pos(16, 1, 4, 5),
                               [q('count(up{job="chatsla-worker"} == 1) or vector(0)', "workers up", instant=True),
                                q("sum(chatsla_owned_partitions)", "partitions owned", "B", instant=True)],
                               graph_mode=common.BigValueGraphMode.NONE, text_mode=common.BigValueTextMode.VALUE_AND_NAME))
        .with_panel(stat_panel(6, "Policy in force",
                               "The rule version every number here is computed under (R7), and the worker build.",
                               pos(20, 1, 4, 5),
                               [q("max by (policy_id, policy_version, version) (chatsla_info)",
                                  "{{policy_id}}@{{policy_version}} (chatsla {{version}})", instant=True)],
                               color_mode=common.BigValueColorMode.NONE, graph_mode=common.BigValueGraphMode.NONE,
                               text_mode=common.BigValueTextMode.NAME))
        .with_panel(over_time)
        .with_panel(bar_panel(8, "Distribution of shops' rolling 7-day reply rates",
                              "Number of shops per rolling 7-day reply-ratio bucket (upper bound shown), from the "
                              "chatsla_fleet_rolling_7d_reply_ratio gauge histogram. Buckets at or below 0.85 / 0.9 "
                              "are the shops at violation / warning level on their rolling ratio.",
                              pos(12, 6, 12, 8), [q(bucket, "≤ {{le}}", instant=True, fmt=PromQueryFormat.HEATMAP)],
                              orientation=common.VizOrientation.VERTICAL, thresholds=steps((None, "blue")), min_=0))
        .with_panel(ts_panel(9, "Shops' rolling reply rate: percentiles",
                             "Estimated from the histogram buckets; dashed lines at 85 % (violation) and 90 % (warning).",
                             pos(0, 14, 12, 8),
                             [q(f"histogram_quantile(0.1, {bucket})", "p10 shop"),
                              q(f"histogram_quantile(0.5, {bucket})", "median shop", "B"), q(mean, "mean", "C")],
                             unit="percentunit", thresholds=steps(*RATE_STEPS), dashed=True, min_=0, max_=1))
        .with_panel(ts_panel(10, "Sessions at risk (< 2 h to the 24 h deadline)",
                             "Pending sessions with less than 2 h left (R8), total and per worker.", pos(12, 14, 12, 8),
                             [q("sum(chatsla_sessions_at_risk)", "fleet"),
                              q("sum by (instance) (chatsla_sessions_at_risk)", "{{instance}}", "B")]))
        .with_panel(worst)
        .with_panel(bar_panel(12, "Most sessions at risk, by shop",
                              "Shops with the most pending sessions under 2 h from their 24 h deadline (R8).",
                              pos(14, 22, 10, 10),
                              [q("topk(10, max by (shop) (chatsla_shop_sessions_at_risk) > 0)", "{{shop}}", instant=True)],
                              orientation=common.VizOrientation.HORIZONTAL, thresholds=steps((None, "orange"), (5, "red"))))
        .with_row(db.Row("Sessions (RULES R2)").id(13).collapsed(False).grid_pos(pos(0, 32, 24, 1)))
        .with_panel(ts_panel(14, "Sessions opened and closed per second",
                             "Sessions opened (R2.1) and closed (R2.4), whole fleet.", pos(0, 33, 12, 8),
                             [q(f"sum(rate(chatsla_sessions_opened_total{rate}))", "opened"),
                              q(f"sum(rate(chatsla_sessions_closed_total{rate}))", "closed", "B")], unit="cps"))
        .with_panel(ts_panel(15, "Closures by reason",
                             "seller_timeout (72 h without a human reply), buyer_timeout (6 h after a reply), "
                             "auto_reply_resolved (10 min after an auto-reply), closed_by_seller, closed_by_platform (R2.4).",
                             pos(12, 33, 12, 8),
                             [q(f"sum by (reason) (rate(chatsla_sessions_closed_total{rate}))", "{{reason}}")],
                             unit="cps", fill=30, interpolation=common.LineInterpolation.LINEAR, stacked=True))
        .with_panel(bar_panel(16, "Closures by reason in the last 24 h",
                              "Closed sessions per reason over the last 24 hours (R2.4).", pos(0, 41, 12, 7),
                              [q("sum by (reason) (increase(chatsla_sessions_closed_total[24h]))", "{{reason}}",
                                 instant=True)],
                              orientation=common.VizOrientation.HORIZONTAL, thresholds=steps((None, "blue"))))
        .with_panel(alerts)
        .with_row(db.Row("Pipeline health (RULES R1, R6)").id(18).collapsed(False).grid_pos(pos(0, 48, 24, 1)))
        .with_panel(ts_panel(19, "Consumer lag (records)",
                             "Records not yet consumed, per input topic, summed over partitions and workers.",
                             pos(0, 49, 8, 8), [q("sum by (topic) (chatsla_consumer_lag_records)", "{{topic}}")]))
        .with_panel(ts_panel(20, "Watermark lag",
                             "Wall clock minus the event-time watermark, per partition (R6.2). In live mode it stays "
                             "near the allowed lateness (2 min); a rising line means a stalled or overloaded partition.",
                             pos(8, 49, 8, 8),
                             [q("max by (partition) (chatsla_watermark_lag_seconds)", "partition {{partition}}")],
                             unit="s", thresholds=steps((None, "green"), (600, "red")), dashed=True))
        .with_panel(ts_panel(21, "Processing latency", "Kafka record timestamp to processed, all workers.",
                             pos(16, 49, 8, 8),
                             [q(f"histogram_quantile(0.95, {latency})", "p95"),
                              q(f"histogram_quantile(0.5, {latency})", "p50", "B")], unit="s"))
        .with_panel(ts_panel(22, "Events by outcome",
                             "Input events: valid, duplicate (same event_id, R1), late (behind the watermark, R6.4), "
                             "invalid (to the dead-letter topic, R1).", pos(0, 57, 8, 8),
                             [q(f"sum by (outcome) (rate(chatsla_events_total{rate}))", "{{outcome}}")], unit="cps"))
        .with_panel(ts_panel(23, "Dead-letter records", "Invalid records set aside in <input topic>.dlq (R1).",
                             pos(8, 57, 8, 8),
                             [q(f"sum by (topic) (rate(chatsla_dlq_records_total{rate}))", "{{topic}}")], unit="cps"))
        .with_panel(ts_panel(24, "Partitions owned per worker", "Partition moves (rebalances) show as steps.",
                             pos(16, 57, 8, 8), [q("sum by (instance) (chatsla_owned_partitions)", "{{instance}}")]))
        .with_row(db.Row("Douyin tickets (RULES R9)").id(25).collapsed(False).grid_pos(pos(0, 65, 24, 1)))
        .with_panel(stat_panel(26, "Overdue Douyin tickets by priority",
                               "Tickets past their deadline and still unhandled, all shops (R9.8): the merchant must "
                               "still handle them.", pos(0, 66, 8, 5),
                               [q("sum by (priority) (max by (shop, priority) (chatsla_shop_tickets_overdue))",
                                  "{{priority}}", instant=True)],
                               decimals=0, thresholds=steps((None, "green"), (1, "red")),
                               color_mode=common.BigValueColorMode.BACKGROUND, graph_mode=common.BigValueGraphMode.NONE,
                               text_mode=common.BigValueTextMode.VALUE_AND_NAME))
        .with_panel(ts_panel(27, "Douyin tickets at risk and overdue",
                             "All shops: pending tickets with under 1 h of service time left, and tickets past "
                             "due and unhandled (R9.8).", pos(8, 66, 8, 8),
                             [q("sum(max by (shop) (chatsla_shop_tickets_at_risk))", "at risk (< 1 h of service time)"),
                              q("sum(max by (shop, priority) (chatsla_shop_tickets_overdue))", "overdue", "B")], fill=0))
        .with_panel(bar_panel(28, "Shops with the most overdue tickets",
                              "Shops with unhandled tickets past their deadline, urgent and normal together (R9.8).",
                              pos(16, 66, 8, 8),
                              [q("topk(10, sum by (shop) (max by (shop, priority) (chatsla_shop_tickets_overdue)) > 0)",
                                 "{{shop}}", instant=True)],
                              orientation=common.VizOrientation.HORIZONTAL, thresholds=steps((None, "orange"), (5, "red"))))
        .with_row(db.Row("AliExpress waits (RULES R10)").id(29).collapsed(False).grid_pos(pos(0, 74, 24, 1)))
        .with_panel(stat_panel(30, "Unreplied AliExpress conversations",
                               "Conversations whose buyer waits for a seller reply now, all shops (R10.3); an "
                               "auto-reply does not end a wait.", pos(0, 75, 8, 5),
                               [q("sum(max by (shop) (chatsla_shop_unreplied_conversations))", "unreplied")],
                               decimals=0, thresholds=steps((None, "green"), (1, "orange"))))
        .with_panel(ts_panel(31, "Unreplied conversations over time",
                             "All shops (R10.3.1).", pos(8, 75, 8, 8),
                             [q("sum(max by (shop) (chatsla_shop_unreplied_conversations))", "unreplied")], fill=0))
        .with_panel(bar_panel(32, "Longest current buyer waits, by shop",
                              "The longest current wait per shop, from the buyer's last unanswered message (R10.3.3); "
                              "orange from 4 h, red from 12 h (ChatslaBuyerWaitLong).", pos(16, 75, 8, 8),
                              [q('topk(10, max by (shop) (chatsla_shop_longest_wait_seconds{measured_from="last_buyer_message"}))',
                                 "{{shop}}", instant=True)],
                              orientation=common.VizOrientation.HORIZONTAL,
                              thresholds=steps((None, "green"), (14400, "orange"), (43200, "red"))).unit("s"))
        .with_row(db.Row("TikTok Shop after-sales (RULES R11)").id(33).collapsed(False).grid_pos(pos(0, 83, 24, 1)))
        .with_panel(stat_panel(34, "Shops with review timeliness at risk",
                               "Shop and group (cancellation, return_refund) pairs whose share of this month's decided "
                               "after-sales requests reviewed in time is under 90 % (R11.6; risk 1 or 2, "
                               "ChatslaReviewTimelinessAtRisk).", pos(0, 84, 6, 5),
                               [q(f"sum(max by (shop, group) ({AS_RISK}) >= bool 1)", "at risk")],
                               decimals=0, thresholds=steps((None, "green"), (1, "orange"))))
        .with_panel(ts_panel(35, "After-sales auto-approval rate this week",
                             "All shops: requests the seller's rule set would auto-approve / requests, week to date "
                             "(shop time, R11.5.2). A shadow decision: chatsla approves nothing.", pos(6, 84, 6, 8),
                             [q(f"sum({as_week('auto_approved')}) / sum({as_week('total')})", "auto-approved")],
                             unit="percentunit", min_=0, max_=1, fill=0))
        .with_panel(ts_panel(36, "Auto-approved amount this week by currency",
                             "All shops: the refund amount the rule sets would auto-approve, week to date, per "
                             "currency (R11.5.2; exact decimals in the records and GET /shops/{id}).", pos(12, 84, 6, 8),
                             [q('sum by (currency) (max by (shop, currency) (chatsla_shop_aftersale_approved_amount'
                                '{period="week", request_type="all"}))', "{{currency}}")], fill=0))
        .with_panel(bar_panel(37, "Lowest review timeliness this month, by shop",
                              "This month's requests reviewed in time / decided, per shop and group, lowest first "
                              "(R11.6); red under 90 %, the line under which TikTok may switch its Auto-Approval "
                              "Tool on.", pos(18, 84, 6, 8),
                              [q("bottomk(10, min by (shop, group) (chatsla_shop_aftersale_review_ratio))",
                                 "{{shop}} {{group}}", instant=True)],
                              orientation=common.VizOrientation.HORIZONTAL, thresholds=steps(*REVIEW_STEPS), min_=0)
                    .unit("percentunit").decimals(1)))


def as_week(state: str) -> str:
    """The fleet's week-to-date after-sales requests in ``state`` (all request types), one value per shop."""
    return (f'max by (shop) (chatsla_shop_aftersale_requests{{period="week", request_type="all", '
            f'state="{state}"}})')


# --- chatsla / Shop drill-down ---------------------------------------------------------------------------

# the drill-down's shops: one series each model exports for every shop it shows (issue #12)
SHOP_SELECTOR = ('{__name__=~"chatsla_shop_rolling_7d_reply_ratio|chatsla_shop_tickets_open'
                 '|chatsla_shop_unreplied_conversations|chatsla_shop_aftersale_review_risk"}')
HOW_TO_READ = (
    "**Shop `$shop`.** TikTok Shop checks each week (Monday to Monday, shop time) the share of buyer-started chat "
    "sessions that got a human reply within 24 hours: under **90 %** a warning, under **85 %** a violation point "
    "(RULES R5). *Projected* is where this week is heading; *replies needed* is how many waiting chats still need an "
    "in-time reply to reach 90 %. **What to do when it is orange or red:** answer the waiting chats now, oldest "
    "first (the *sessions at risk* have under 2 h left), with a reply from a person: an auto-reply only counts if "
    "the buyer does not write back within 10 minutes.")


def shop() -> dict:
    s = '{shop="$shop"}'
    d = base("chatsla-shop", "chatsla / Shop drill-down", "One shop's live 24 h reply-rate projections (RULES R8).")
    shop_var = (db.QueryVariable("shop").label("Shop")
                .description("Shops with chat sessions (a rolling reply rate), Douyin tickets, AliExpress "
                             "conversations or TikTok Shop after-sales requests on some worker now.")
                .datasource(DS)
                .query({"label": "shop", "metric": SHOP_SELECTOR, "qryType": 1,
                        "query": f"label_values({SHOP_SELECTOR}, shop)",
                        "refId": "PrometheusVariableQueryEditor-VariableQuery"})
                .current(dm.VariableOption(selected=True, text="shop-01", value="shop-01"))
                .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC)
                .multi(False).include_all(False).regex(""))
    outcome = (stat_panel(4, "Projected outcome",
                          "0 ok or not assessed (under 5 buyer messages, R5.4), 1 warning, 2 violation (R5.5).",
                          pos(8, 4, 4, 5), [q(f"max(chatsla_shop_penalty_risk{s})", "outcome")],
                          thresholds=steps((None, "green"), (1, "orange"), (2, "red")),
                          color_mode=common.BigValueColorMode.BACKGROUND, graph_mode=common.BigValueGraphMode.NONE)
               .mappings([dm.ValueMap(options={
                   "0": dm.ValueMappingResult(text="OK / not assessed", color="green", index=0),
                   "1": dm.ValueMappingResult(text="Warning (< 90 %)", color="orange", index=1),
                   "2": dm.ValueMappingResult(text="Violation (< 85 %)", color="red", index=2)})]))
    review_risk = (stat_panel(30, "Review timeliness risk",
                              "Per group, this month: 0 ok or not assessed; 1 heading under 90 % (in time / decided), "
                              "but reviewing the pending requests in time brings it back; 2 under 90 % even if every "
                              "pending request is reviewed in time (R11.6, ChatslaReviewTimelinessAtRisk).",
                              pos(6, 68, 6, 5), [q(f"max by (group) ({AS_RISK}{s})", "{{group}}")],
                              thresholds=steps((None, "green"), (1, "orange"), (2, "red")),
                              color_mode=common.BigValueColorMode.BACKGROUND, graph_mode=common.BigValueGraphMode.NONE,
                              text_mode=common.BigValueTextMode.VALUE_AND_NAME)
                   .mappings([dm.ValueMap(options={
                       "0": dm.ValueMappingResult(text="OK / not assessed", color="green", index=0),
                       "1": dm.ValueMappingResult(text="Heading under 90 %", color="orange", index=1),
                       "2": dm.ValueMappingResult(text="Under 90 % even at best", color="red", index=2)})]))
    rate_lines = dict(unit="percentunit", thresholds=steps(*RATE_STEPS), dashed=True, min_=0, max_=1, fill=0)
    dashboard = (
        d.with_variable(shop_var)
        .with_panel(text.Panel().id(1).title("How to read this").grid_pos(pos(0, 0, 24, 4))
                    .mode(text_model.TextMode.MARKDOWN)
                    .code(text.CodeOptions().language("plaintext").show_line_numbers(False).show_mini_map(False))
                    .content(HOW_TO_READ))
        .with_panel(stat_panel(2, "Rolling 7-day reply rate",
                               "Share of the decided sessions opened in the last 7 x 24 h answered within 24 h (R8).",
                               pos(0, 4, 4, 5), [q(f"max(chatsla_shop_rolling_7d_reply_ratio{s})", "rolling 7 days")],
                               unit="percentunit", decimals=1, thresholds=steps(*RATE_STEPS)))
        .with_panel(stat_panel(3, "Projected this week", "Projected reply rate of the current week (R8).",
                               pos(4, 4, 4, 5), [q(f"max(chatsla_shop_week_projected_reply_ratio{s})", "projected")],
                               unit="percentunit", decimals=1, thresholds=steps(*RATE_STEPS)))
        .with_panel(outcome)
        .with_panel(stat_panel(5, "Replies needed for 90 %",
                               "Pending sessions that still need an in-time reply to reach 90 %, if no other session "
                               "opens (R8).", pos(12, 4, 4, 5), [q(f"max(chatsla_shop_replies_needed{s})", "needed")],
                               decimals=0, thresholds=steps((None, "green"), (1, "orange"))))
        .with_panel(stat_panel(6, "Sessions at risk",
                               "Pending sessions with less than 2 h left to their 24 h deadline (R8).", pos(16, 4, 4, 5),
                               [q(f"max(chatsla_shop_sessions_at_risk{s})", "at risk")], decimals=0,
                               thresholds=steps((None, "green"), (1, "orange"), (5, "red"))))
        .with_panel(stat_panel(7, "Longest buyer wait",
                               "The longest current wait among sessions awaiting the seller (R8).", pos(20, 4, 4, 5),
                               [q(f"max(chatsla_shop_buyer_wait_seconds{s})", "longest wait")], unit="s",
                               thresholds=steps((None, "green"), (43200, "orange"), (79200, "red"))))
        .with_panel(ts_panel(8, "This week's reply rate: now, best case, worst case, projected",
                             "Week to date (R8); dashed lines at 85 % (violation) and 90 % (warning).", pos(0, 9, 16, 9),
                             [q(f"max(chatsla_shop_week_reply_ratio{s})", "now"),
                              q(f"max(chatsla_shop_week_reply_best_ratio{s})",
                                "best case (every pending session answered in time)", "B"),
                              q(f"max(chatsla_shop_week_reply_worst_ratio{s})", "worst case (none answered in time)", "C"),
                              q(f"max(chatsla_shop_week_projected_reply_ratio{s})", "projected", "D")], **rate_lines))
        .with_panel(ts_panel(9, "Rolling 7-day 24 h reply rate",
                             "Share of the decided sessions opened in the last 7 x 24 h answered within 24 h (R8).",
                             pos(16, 9, 8, 9), [q(f"max(chatsla_shop_rolling_7d_reply_ratio{s})", "rolling 7 days")],
                             **rate_lines))
        .with_panel(ts_panel(10, "Sessions this week by state",
                             "Week to date: decided (outcome known), replied (within 24 h, part of decided), pending "
                             "(R3, R8).", pos(0, 18, 12, 8),
                             [q(f"max by (state) (chatsla_shop_sessions{s})", "{{state}}")], fill=0))
        .with_panel(ts_panel(11, "Replies needed and sessions at risk",
                             "Pending sessions still needing an in-time reply to reach 90 %, and those with under 2 h "
                             "left (R8).", pos(12, 18, 12, 8),
                             [q(f"max(chatsla_shop_replies_needed{s})", "replies needed for 90 %"),
                              q(f"max(chatsla_shop_sessions_at_risk{s})", "sessions at risk (< 2 h left)", "B")], fill=0))
        .with_panel(ts_panel(12, "Longest buyer wait",
                             "Longest current wait among sessions awaiting the seller; dashed line at 24 h.",
                             pos(0, 26, 12, 8), [q(f"max(chatsla_shop_buyer_wait_seconds{s})", "longest wait")],
                             unit="s", thresholds=steps((None, "green"), (86400, "red")), dashed=True))
        .with_panel(ts_panel(13, "Buyer messages this week",
                             "Week to date, outside vacation mode (R4); the week is assessed from 5 messages on (R5.4).",
                             pos(12, 26, 12, 8), [q(f"max(chatsla_shop_buyer_messages{s})", "buyer messages")],
                             thresholds=steps((None, "transparent"), (5, "blue")), dashed=True))
        .with_panel(table_panel(14, "Firing alerts for this shop", "Alerts from docker/prometheus/alerts.yml for this shop.",
                                pos(0, 34, 24, 5),
                                [q('ALERTS{alertstate="firing", shop="$shop"}', "__auto", instant=True,
                                   fmt=PromQueryFormat.TABLE)],
                                [dm.DataTransformerConfig(id_val="organize", options={"excludeByName": {
                                    "Time": True, "Value": True, "__name__": True, "alertstate": True}})]))
        .with_row(db.Row("Douyin tickets (RULES R9)").id(15).collapsed(False).grid_pos(pos(0, 39, 24, 1)))
        .with_panel(stat_panel(16, "Open tickets",
                               "Tickets neither handled nor closed, all priorities (R9.8).", pos(0, 40, 6, 5),
                               [q(f"sum(max by (priority) (chatsla_shop_tickets_open{s}))", "open")], decimals=0))
        .with_panel(stat_panel(17, "Tickets at risk",
                               "Pending tickets with under 1 h of service time (09:00-21:00 shop time) left before "
                               "their deadline (R9.8).", pos(6, 40, 6, 5),
                               [q(f"max(chatsla_shop_tickets_at_risk{s})", "at risk")], decimals=0,
                               thresholds=steps((None, "green"), (1, "orange"))))
        .with_panel(stat_panel(18, "Overdue urgent tickets",
                               "Urgent tickets past their 2 h deadline and still unhandled (R9.8, "
                               "ChatslaUrgentTicketOverdue): handle them now.", pos(12, 40, 6, 5),
                               [q('max(chatsla_shop_tickets_overdue{shop="$shop", priority="urgent"})', "overdue urgent")],
                               decimals=0, thresholds=steps((None, "green"), (1, "red")),
                               color_mode=common.BigValueColorMode.BACKGROUND, graph_mode=common.BigValueGraphMode.NONE))
        .with_panel(stat_panel(19, "Tickets handled in time today",
                               "Today so far (shop time): tickets handled by their deadline / tickets created "
                               "(R9.6.2).", pos(18, 40, 6, 5),
                               [q('max(chatsla_shop_tickets_in_time_ratio{shop="$shop", period="day"})', "today")],
                               unit="percentunit", decimals=1))
        .with_panel(ts_panel(20, "Open and overdue tickets by priority",
                             "Open (unhandled, not closed) and overdue (past due, unhandled) tickets (R9.8).",
                             pos(0, 45, 12, 8),
                             [q(f"max by (priority) (chatsla_shop_tickets_open{s})", "open {{priority}}"),
                              q(f"max by (priority) (chatsla_shop_tickets_overdue{s})", "overdue {{priority}}", "B")],
                             fill=0))
        .with_panel(ts_panel(21, "Tickets today and this week",
                             "Day and week to date (shop time) by state: total, handled_in_time, missed, "
                             "handled_late, pending, excluded (R9.6.2).", pos(12, 45, 12, 8),
                             [q(f"max by (period, state) (chatsla_shop_tickets{s})", "{{period}} {{state}}")], fill=0))
        .with_row(db.Row("AliExpress waits (RULES R10)").id(22).collapsed(False).grid_pos(pos(0, 53, 24, 1)))
        .with_panel(stat_panel(23, "Unreplied conversations",
                               "Conversations whose buyer waits for a seller reply now (R10.3.1).", pos(0, 54, 8, 5),
                               [q(f"max(chatsla_shop_unreplied_conversations{s})", "unreplied")], decimals=0,
                               thresholds=steps((None, "green"), (1, "orange"))))
        .with_panel(stat_panel(24, "Longest current wait",
                               "The longest current wait, from the buyer's last unanswered message (R10.3.3); "
                               "ChatslaBuyerWaitLong fires from 12 h.", pos(8, 54, 8, 5),
                               [q('max(chatsla_shop_longest_wait_seconds{shop="$shop", measured_from="last_buyer_message"})',
                                  "longest wait")], unit="s",
                               thresholds=steps((None, "green"), (14400, "orange"), (43200, "red"))))
        .with_panel(stat_panel(25, "Answered waits today",
                               "Waits ended by a seller reply today so far (shop time, R10.5.2).", pos(16, 54, 8, 5),
                               [q('max(chatsla_shop_waits{shop="$shop", period="day", state="answered"})', "answered")],
                               decimals=0))
        .with_panel(ts_panel(26, "Longest current wait, both measures",
                             "From the buyer's last unanswered message (the seller centre's measure) and from the "
                             "first one (R10.3.3).", pos(0, 59, 12, 8),
                             [q(f"max by (measured_from) (chatsla_shop_longest_wait_seconds{s})", "{{measured_from}}")],
                             unit="s", fill=0))
        .with_panel(ts_panel(27, "Waiting time of today's answered waits",
                             "Nearest-rank percentiles (quantile 1 is the longest) of the answered waits today so far, "
                             "from the buyer's last message to the reply (R10.5.2, R10.5.3).", pos(12, 59, 12, 8),
                             [q('max by (quantile) (chatsla_shop_waited_seconds{shop="$shop", period="day", '
                                'measured_from="last_buyer_message"})', "quantile {{quantile}}")], unit="s", fill=0))
        .with_row(db.Row("TikTok Shop after-sales (RULES R11)").id(28).collapsed(False).grid_pos(pos(0, 67, 24, 1)))
        .with_panel(stat_panel(29, "Review timeliness this month",
                               "This month (shop time), per group: requests reviewed in time (by the seller or the "
                               "seller's rule, within 48 h) / decided requests (in time or missed); pending ones wait "
                               "(R11.6). Under 90 % TikTok may switch its Auto-Approval Tool on.", pos(0, 68, 6, 5),
                               [q(f"max by (group) (chatsla_shop_aftersale_review_ratio{s})", "{{group}}")],
                               unit="percentunit", decimals=1, thresholds=steps(*REVIEW_STEPS)))
        .with_panel(review_risk)
        .with_panel(stat_panel(31, "Reviews needed for 90 %",
                               "Per group: in-time reviews still needed this month to reach 90 % if no other request "
                               "comes (R11.6).", pos(12, 68, 6, 5),
                               [q(f"max by (group) (chatsla_shop_aftersale_reviews_needed{s})", "{{group}}")],
                               decimals=0, thresholds=steps((None, "green"), (1, "orange"))))
        .with_panel(stat_panel(32, "Auto-approval rate today",
                               "Today so far (shop time): requests the seller's rule set would auto-approve / "
                               "requests (R11.5.2). A shadow decision: chatsla approves nothing.", pos(18, 68, 6, 5),
                               [q('max(chatsla_shop_aftersale_auto_approval_ratio{shop="$shop", period="day", '
                                  'request_type="all"})', "today")], unit="percentunit", decimals=1))
        .with_panel(ts_panel(33, "Review timeliness: now, best case, worst case",
                             "This month, per group: in time / decided (now), every pending request reviewed in time "
                             "(best case), none (worst case, the month record's review_rate) (R11.6); dashed line at "
                             "90 %.", pos(0, 73, 12, 8),
                             [q(f"max by (group) (chatsla_shop_aftersale_review_ratio{s})", "{{group}} now"),
                              q(f"max by (group) (chatsla_shop_aftersale_review_best_ratio{s})", "{{group}} best case",
                                "B"),
                              q(f"max by (group) (chatsla_shop_aftersale_review_worst_ratio{s})", "{{group}} worst case",
                                "C")],
                             unit="percentunit", thresholds=steps(*REVIEW_STEPS), dashed=True, min_=0, max_=1, fill=0))
        .with_panel(ts_panel(34, "Requests awaiting review this month",
                             "This month, per group: requests awaiting the seller, reviewed in time, missed (the 48 h "
                             "passed first), pending (R11.6).", pos(12, 73, 12, 8),
                             [q(f"max by (group, state) (chatsla_shop_aftersale_reviews{s})", "{{group}} {{state}}")],
                             fill=0))
        .with_panel(ts_panel(35, "Auto-approval rate by request type",
                             "Day and week to date (shop time), per request type and all (R11.5.2).", pos(0, 81, 8, 8),
                             [q(f"max by (period, request_type) (chatsla_shop_aftersale_auto_approval_ratio{s})",
                                "{{period}} {{request_type}}")], unit="percentunit", min_=0, max_=1, fill=0))
        .with_panel(ts_panel(36, "Auto-approved amount",
                             "Day and week to date: the refund amount the rule set would auto-approve, per currency "
                             "(R11.5.2; exact decimals in GET /shops/{id}).", pos(8, 81, 8, 8),
                             [q('max by (period, currency) (chatsla_shop_aftersale_approved_amount{shop="$shop", '
                                'request_type="all"})', "{{period}} {{currency}}")], fill=0))
        .with_panel(bar_panel(37, "Manual-review reasons this week",
                              "Week to date: requests the rule set sends to a person, by reason (R11.3, R11.5.2).",
                              pos(16, 81, 8, 8),
                              [q('sort_desc(max by (reason) (chatsla_shop_aftersale_manual_reviews{shop="$shop", '
                                 'period="week"}))', "{{reason}}", instant=True)],
                              orientation=common.VizOrientation.HORIZONTAL, thresholds=steps((None, "blue"))))
        .with_panel(ts_panel(38, "Abuse signals",
                             "Day and week to date: requests flagged repeat_buyer, repeat_sku (the same buyer and SKU "
                             "again) or near_threshold (just under an approve rule's amount) (R11.4). Flags only: "
                             "they never change a decision.", pos(0, 89, 12, 8),
                             [q(f"max by (period, signal) (chatsla_shop_aftersale_signals{s})", "{{period}} {{signal}}")],
                             fill=0))
        .with_panel(ts_panel(39, "After-sales requests today and this week",
                             "Day and week to date, all request types: total, auto_approved and manual_review (the "
                             "shadow decision), agree and disagree (with the first observed review) (R11.5).",
                             pos(12, 89, 12, 8),
                             [q('max by (period, state) (chatsla_shop_aftersale_requests{shop="$shop", '
                                'request_type="all"})', "{{period}} {{state}}")], fill=0)))
    return build(dashboard)


DASHBOARDS = {"fleet-overview.json": fleet, "shop-drilldown.json": shop}


def render(make) -> str:
    """One dashboard's file content: sorted keys, two-space indent, a final newline (stable diffs)."""
    return json.dumps(make(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed dashboard differs from the code")
    args = parser.parse_args(argv)
    stale = []
    for name, make in DASHBOARDS.items():
        path, content = OUT / name, render(make)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != content:
                stale.append(name)
        else:
            path.write_text(content, encoding="utf-8")
    if stale:
        print(f"stale dashboards (run {Path(__file__).name}): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
