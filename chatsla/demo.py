"""``chatsla demo``: the whole live stack on this machine, end to end, for a first look.

Starts the local Kafka broker (``chatsla dev up``), a worker in the background and, when the
``prometheus`` binary is installed (``scripts/ensure-prometheus``), a local Prometheus scraping the
worker with the project's alert rules (what the Grafana dashboards read, R8); produces a simulated
historical week (TikTok Shop chats, one Douyin shop's service tickets and one AliExpress shop's
chats, issue #12), advances event time past the week with tick records (what the live ticker does
with the wall clock, R6.2), then prints each TikTok shop's week as read back from
``chatsla.assessments`` and the other shops' day and week records from ``chatsla.periods``, what
each table means, where the metrics, the shop API and Prometheus are served, example
queries, and how to stop everything. All state is under ``.chatsla/``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import orjson

from chatsla.core.engine import EngineConfig
from chatsla.core.timefmt import HOUR, format_time
from chatsla.streams.topics import router_group
from chatsla.streams.settings import WorkerSettings

STATE = Path(".chatsla")
# the demo's worker runs with the default app id; its router commits the input offsets in a
# consumer group of its own (streams/router.py, issue #15)
ROUTER_GROUP = router_group(WorkerSettings().app_id)
ALERTS = Path(__file__).resolve().parents[1] / "docker" / "prometheus" / "alerts.yml"  # in a source checkout
# (query, what its numbers mean). The first shows the week the demo simulated, as assessed: in the
# demo the watermark has moved into the following week, whose week-to-date series are all zero.
EXAMPLE_QUERIES = (
    ("chatsla_shop_last_week_reply_ratio * on (shop) group_left (week_start, status, outcome) "
     "chatsla_shop_last_week_info",
     "each shop's last finished week: the value is the share of its buyer chat sessions answered by a "
     "person within 24 h (0.875 = 87.5 %); the labels give the week (its Monday), the assessment's "
     "status (final) and outcome: ok from 90 %, warning under 90 %, violation under 85 %, "
     "not_assessed under 5 buyer messages (a shop without any counted session is not listed)"),
    ("chatsla_shop_rolling_7d_reply_ratio",
     "each shop's rolling share, 0 to 1, of the sessions opened in the last 7 x 24 h that got a reply "
     "within 24 h (it slides with event time, ignoring week boundaries)"),
    ("sum by (outcome) (chatsla_shop_last_week_info)",
     "how many shops ended their last week with each outcome"),
    ("sum by (risk) (chatsla_shops)",
     "how many shops this week's projection puts at ok, warning, violation or not_assessed (the new "
     "week has no sessions yet in the demo: all not_assessed)"),
    ("ALERTS",
     "alerts pending or firing; ChatslaPipelineStalled fires about 11 min after the demo ends, as "
     "expected for a backfill (the worker runs with --no-ticks)"),
)


PLATFORMS = ("tiktok_shop", "douyin", "aliexpress")
# What each printed table means, said once before it (issue #12: the demo's printout explains them).
TABLES = {
    "assessments": (
        "TikTok Shop (RULES R2-R5): each shop's week, as the worker wrote it to chatsla.assessments. A "
        "session is a buyer's chat until the platform closes it; 'replied' counts those a person answered "
        "within 24 h; the rate is replied / sessions, judged ok from 90 %, warning under 90 %, violation "
        "under 85 %, and not judged under 5 buyer messages."),
    "periods": (
        "Douyin service tickets (R9) and AliExpress buyer waits (R10), per day and week, from "
        "chatsla.periods. Tickets: how many the shop handled within their deadline, counted only inside "
        "the 09:00-21:00 service window; no penalty is computed. Waits: how long buyers waited for a "
        "person's reply (auto-replies do not count), with the waits still open when the period ended; "
        "AliExpress does not assess reply times, so there is no rate or outcome."),
}


def _period_key(p: dict) -> tuple:
    return (p["policy_id"], p["shop_id"], p["period"], p["start"])


class DemoError(click.ClickException):
    exit_code = 2


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.5)  # polling a condition with a deadline
    raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}; see {STATE / 'worker.log'}")


def _stop() -> None:
    from chatsla.dev.broker import BrokerConfig, stop

    from chatsla.dev import prometheus

    if prometheus.stop(_prometheus_config(0, 0)):
        click.echo("prometheus stopped")
    pid_file = STATE / "worker.pid"
    if pid_file.exists():
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGTERM)
            click.echo("worker stopped")
        except (ProcessLookupError, ValueError):
            pass
        pid_file.unlink(missing_ok=True)
    click.echo("broker stopped" if stop(BrokerConfig(data_dir=STATE / "kafka")) else "no broker was running")


def _prometheus_config(port: int, web_port: int):
    from chatsla.dev.prometheus import PrometheusConfig

    return PrometheusConfig(data_dir=STATE / "prometheus", port=port, targets=(f"127.0.0.1:{web_port}",),
                            scrape_interval="5s", rule_files=(ALERTS,) if ALERTS.is_file() else ())


def _start_prometheus(port: int, web_port: int) -> str | None:
    """Start (or find running) the demo's Prometheus; its URL, or None after one line saying why not."""
    from chatsla.dev.prometheus import PrometheusError, start

    try:
        server = start(_prometheus_config(port, web_port))
    except PrometheusError as e:
        click.echo(f"Prometheus not started ({e}); the demo goes on without it.")
        return None
    rules = "with the alert rules of docker/prometheus/alerts.yml" if ALERTS.is_file() else "without alert rules"
    click.echo(f"Prometheus {server.url} scrapes the worker every 5 s, {rules} (log {server.config.log_file})")
    return server.url


@click.command()
@click.option("--shops", type=click.IntRange(1, 50), default=5, show_default=True,
              help="Number of simulated shops.")
@click.option("--conversations", type=click.IntRange(1, 5000), default=200, show_default=True,
              help="Simulated buyer conversations per shop over the week.")
@click.option("--seed", type=int, default=7, show_default=True,
              help="Random seed of the simulated week (the same seed gives the same week).")
@click.option("--web-port", type=click.IntRange(1, 65535), default=6066, show_default=True,
              help="Port of the worker's HTTP server (/metrics, /shops/{id}).")
@click.option("--prometheus-port", type=click.IntRange(1, 65535), default=9090, show_default=True,
              help="Port of the demo's Prometheus (started when the `prometheus` binary is installed).")
@click.option("--stop", "stop_", is_flag=True, help="Stop the demo's Prometheus, worker and broker.")
def demo(shops: int, conversations: int, seed: int, web_port: int, prometheus_port: int, stop_: bool) -> None:
    """Run the live pipeline on a simulated week and print each shop's assessment."""
    if stop_:
        _stop()
        return
    from chatsla.dev.broker import BrokerConfig, BrokerError, answers, start
    from chatsla.streams.producer import produce
    from chatsla.report import print_assessments, print_other_models
    from chatsla.simulate import SimConfig, generate
    from chatsla.schemas.decode import decode
    from chatsla.core.events import Invalid
    from chatsla.streams.topics import TopicNames, topic_specs
    from chatsla.streams.admin import committed_lag, ensure_topics, read_values, topic_size
    from chatsla.streams.producer import send_ticks

    broker = BrokerConfig(data_dir=STATE / "kafka")
    if not answers(broker.host, broker.port):
        click.echo(f"starting Kafka {broker.bootstrap} (first run resolves the jars through Maven) ...")
        try:
            start(broker)
        except BrokerError as e:
            raise DemoError(str(e)) from None
    names, partitions = TopicNames(), 4
    ensure_topics(broker.bootstrap, topic_specs(names, partitions))
    # one shop of each other platform beside the TikTok shops (issue #12): a Douyin shop's service
    # tickets (RULES R9) and an AliExpress shop's buyer waits (R10), on the same worker
    records = generate(SimConfig(seed=seed, shops=shops, conversations_per_shop=conversations, jitter_seconds=60,
                                 bad_fraction=0.002, platforms=PLATFORMS, douyin_shops=1,
                                 tickets_per_shop=min(conversations, 150), aliexpress_shops=1,
                                 aliexpress_conversations=min(conversations, 150)))
    valid = [ev for ev in (decode(v) for _, _, v in records) if type(ev) is not Invalid]
    _start_worker(broker.bootstrap, partitions, web_port)
    prometheus_url = _start_prometheus(prometheus_port, web_port)
    # The broker's data outlives `--stop`, so a later run finds this week in the topics already.
    # Sending it again would not be harmless: its events are more than the 8-day duplicate window
    # behind the watermark the first run left, so the engine applies them again as late events
    # (R6.4) and the live weeks no longer equal the audit of one copy.
    marker = STATE / "produced.json"
    produced = {"seed": seed, "shops": shops, "conversations": conversations, "records": len(records),
                "platforms": list(PLATFORMS)}
    inputs = [names.chat, names.shop, names.tickets]
    in_topics = sum(topic_size(broker.bootstrap, t) for t in inputs)
    if marker.exists() and orjson.loads(marker.read_bytes()) == produced and in_topics >= len(records):
        click.echo(f"the simulated week ({len(records)} events, {shops} shops) is already in the input topics "
                   f"from an earlier run: not producing it again")
    else:
        click.echo(f"producing a simulated week: {len(records)} events, {shops} TikTok shops, one Douyin and one "
                   f"AliExpress shop ...")
        produce(records, broker.bootstrap, names)
        marker.write_bytes(orjson.dumps(produced))
    _wait(lambda: committed_lag(broker.bootstrap, ROUTER_GROUP, inputs) == 0, 300, "the worker to route every event")
    lateness = EngineConfig().allowed_lateness  # the worker's default, as started above
    end = max(ev.t for ev in valid) + lateness + HOUR
    # event time moves past the week (R6.2), walked from the first event: each partition's clock is
    # where its own events left it, and a tick far ahead of it would wait for an event (time sanity)
    send_ticks(broker.bootstrap, names.events, partitions, end, since_us=min(ev.t for ev in valid))
    click.echo(f"event time advanced to {format_time(end)}; waiting for the weekly assessments and periods ...")
    from chatsla.audit import Report, run_audit
    from chatsla.core.policy import policies_for

    lead, *others = policies_for(())  # each platform's current policy, as the worker runs them
    expected = run_audit([v for _, _, v in records], lead, until=end - lateness, policies=others)
    want = {(a["shop_id"], a["week_start"]): a for a in expected.assessments}
    want_periods = {_period_key(p): p for p in expected.periods}

    def outputs() -> tuple[dict, dict] | None:
        got = {}
        for value in read_values(broker.bootstrap, names.assessments):
            rec = orjson.loads(value)
            got[(rec["shop_id"], rec["week_start"])] = rec
        periods = {}
        for value in read_values(broker.bootstrap, names.periods):
            rec = orjson.loads(value)
            periods[_period_key(rec)] = rec
        done = (all(k in got and got[k] == v for k, v in want.items())
                and all(periods.get(k) == v for k, v in want_periods.items()))
        return (got, periods) if done else None

    got, periods = _wait(outputs, 300, "the assessments and periods")
    from rich.console import Console

    console = Console() if sys.stdout.isatty() else Console(width=120)
    click.echo("\n" + TABLES["assessments"])
    print_assessments([got[k] for k in sorted(got)], console)
    click.echo("\n" + TABLES["periods"])
    print_other_models(Report([], [], periods=[periods[k] for k in sorted(periods)]), console)
    click.echo(f"\nThe live results equal `chatsla audit` on the same events.\n"
               f"Worker metrics (Prometheus format): http://127.0.0.1:{web_port}/metrics\n"
               f"Shop API, a shop's live projection: http://127.0.0.1:{web_port}/shops/shop-01 (TikTok Shop), "
               f"/shops/douyin-01 (tickets), /shops/aliexpress-01 (waits)")
    if prometheus_url is not None:
        _print_prometheus(prometheus_url)
    click.echo(f"Worker log: {STATE / 'worker.log'}; Kafka at {broker.bootstrap}\n"
               f"Stop everything: make demo-stop  (or .venv/bin/chatsla demo --stop)")


def _print_prometheus(url: str) -> None:
    """The Prometheus URL and example queries, once it has scraped the worker's shops (R8)."""
    import urllib.parse

    from chatsla.dev.prometheus import PrometheusError, api

    def scraped() -> bool:
        try:
            return bool(api(url, "query", query="chatsla_shop_last_week_info").get("data", {}).get("result"))
        except PrometheusError:
            return False

    try:
        _wait(scraped, 60, "Prometheus to scrape the worker")
        note = ""
    except DemoError:
        note = f" (no shop series scraped yet; see {url}/targets)"
    click.echo(f"Prometheus: {url}{note}\nExample queries (open the link, or paste the query at {url}/graph):")
    for query, what in EXAMPLE_QUERIES:
        link = f"{url}/graph?" + urllib.parse.urlencode({"g0.expr": query, "g0.tab": "1"})
        click.echo(f"  {query}\n    {what}\n    {link}")
    click.echo(f"Alert rules and their state: {url}/alerts")


def _start_worker(bootstrap: str, partitions: int, web_port: int) -> None:
    pid_file = STATE / "worker.pid"
    if pid_file.exists():
        try:
            os.killpg(int(pid_file.read_text()), 0)
            return  # already running from an earlier demo
        except (ProcessLookupError, ValueError):
            pid_file.unlink()
    chatsla = str(Path(sys.executable).with_name("chatsla"))
    log = open(STATE / "worker.log", "ab")
    proc = subprocess.Popen(
        [chatsla, "worker", "--bootstrap", bootstrap, "--partitions", str(partitions), "--no-ticks",
         "--web-port", str(web_port), "--data-dir", str(STATE / "worker"), "--loglevel", "info"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    pid_file.write_text(str(proc.pid))
