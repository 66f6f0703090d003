"""``chatsla demo``: the whole live stack on this machine, end to end, for a first look.

Starts the local Kafka broker (``chatsla dev up``), a worker in the background and, when the
``prometheus`` binary is installed (``scripts/ensure-prometheus``), a local Prometheus scraping the
worker with the project's alert rules (what the Grafana dashboards read, R8); produces a simulated
historical week (TikTok Shop chats, one Douyin shop's service tickets and one AliExpress shop's
chats, issue #12; one TikTok Shop after-sales shop's requests, issue #14), advances event time past
the week with tick records (what the live ticker does with the wall clock, R6.2), waits until the
live outputs equal ``chatsla audit`` of the same records, then prints each TikTok shop's week as
read back from ``chatsla.assessments``, the other shops' day and week records from
``chatsla.periods``, the after-sales shop's shadow decisions (``chatsla.aftersale`` and its
period rows) with its review timeliness this month from the shop API, what each table means,
where the metrics, the shop API and Prometheus are served, example queries, and how to stop
everything. All state is under ``.chatsla/``.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

import click
import orjson

from chatsla.core.engine import EngineConfig
from chatsla.core.timefmt import HOUR, format_time
from chatsla.replay.verify import PERIOD_KEY, REQUEST_KEY, record_key
from chatsla.streams.topics import router_group
from chatsla.streams.settings import WorkerSettings

if TYPE_CHECKING:
    from rich.console import Console

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


PLATFORMS = ("tiktok_shop", "douyin", "aliexpress", "aftersale")
AFTERSALE_SHOP = "aftersale-01"  # the simulator's name of the one after-sales shop the demo plays
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
    "aftersale": (
        "TikTok Shop after-sales (R11), shop aftersale-01: chatsla only observes, so each refund, return, "
        "exchange or cancel request gets a shadow decision, what the shop's auto-approval rule set would "
        "do (auto = approve, manual = manual review), written to chatsla.aftersale; per day and week "
        "(chatsla.periods) the share auto-approved, the amount that would have been approved, and how "
        "often the abuse signals came up: the same buyer asking again and again, the same item again, an "
        "amount just under a rule's limit (a buyer refunding the 98.00 vase under the 100.00 rule, R11.8). "
        "Signals never change a decision. The last table is this month's review timeliness so far, from "
        "the shop API: the requests the seller had to review and how many were reviewed within 48 h; "
        "under 90 % in a month TikTok may switch its own Auto-Approval Tool on for the shop "
        "(auto_approval_tool_risk). The month's record goes to chatsla.periods when the month ends."),
}


def _period_key(p: dict) -> tuple:
    """A period record's key as ``chatsla verify`` keys it (:data:`PERIOD_KEY`): an after-sales
    period has a row per request type and ``all`` (R11.5.2) and a month a row per group (R11.6.3),
    so the type or group is part of the key (None for the other models' one row per period)."""
    return record_key(PERIOD_KEY, p)


def _request_key(r: dict) -> tuple:
    """An after-sales request record's key as ``chatsla verify`` keys it (R11.5.1)."""
    return record_key(REQUEST_KEY, r)


def _marker_describes(marker: dict | None) -> str:
    if not marker:
        return "not recorded (no .chatsla/produced.json)"
    return ", ".join(f"{k} {v}" for k, v in marker.items() if k != "sha256")


def should_produce(marker: dict | None, produced: dict, in_topics: int) -> bool:
    """Whether to produce the simulated week described by ``produced`` (``marker``: what an earlier
    run recorded in ``.chatsla/produced.json``, None without one; ``in_topics``: records now in the
    input topics). False when this very week is there already. Producing into input topics that
    hold records of another week (another seed or size, or an older simulator: the marker carries
    a digest of the records) is refused: the live outputs would mix both weeks (and the worker
    applies events far behind its watermark as late, R6.4), so they could never equal the audit
    of this week. Empty input topics are produced to, whatever the marker says."""
    if marker == produced and in_topics >= produced["records"]:
        return False
    if in_topics == 0:
        return True
    if marker == produced:
        raise DemoError(
            f"the demo's input topics hold {in_topics} records, fewer than the {produced['records']} this week "
            f"has (were topics deleted?): its outputs could not equal the audit. Start afresh: `chatsla demo "
            f"--stop`, then `rm -rf {STATE}`, then run the demo again")
    raise DemoError(
        f"the demo's input topics already hold {in_topics} records of another simulated week (produced: "
        f"{_marker_describes(marker)}; this run: {_marker_describes(produced)}); producing this week beside "
        f"it would mix the two. Start afresh: `chatsla demo --stop`, then `rm -rf {STATE}`, then run the "
        f"demo again (or run it with the earlier options)")


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
    records = demo_records(seed, shops, conversations)
    valid = [ev for ev in (decode(v) for _, _, v in records) if type(ev) is not Invalid]
    # The broker's data outlives `--stop`, so a later run finds this week in the topics already.
    # Sending it again would not be harmless: its events are more than the 8-day duplicate window
    # behind the watermark the first run left, so the engine applies them again as late events
    # (R6.4) and the live weeks no longer equal the audit of one copy. Another week beside it
    # would not be either: should_produce refuses it, before the worker starts.
    marker = STATE / "produced.json"
    produced = produced_record(seed, shops, conversations, records)
    inputs = [names.chat, names.shop, names.tickets, names.aftersale]
    in_topics = sum(topic_size(broker.bootstrap, t) for t in inputs)
    earlier = orjson.loads(marker.read_bytes()) if marker.exists() else None
    send = should_produce(earlier, produced, in_topics)
    _start_worker(broker.bootstrap, partitions, web_port)
    prometheus_url = _start_prometheus(prometheus_port, web_port)
    if not send:
        click.echo(f"the simulated week ({len(records)} events, {shops} TikTok shops and three others) is already "
                   f"in the input topics from an earlier run: not producing it again")
    else:
        click.echo(f"producing a simulated week: {len(records)} events, {shops} TikTok shops, one Douyin, one "
                   f"AliExpress and one after-sales shop ...")
        produce(records, broker.bootstrap, names)
        marker.write_bytes(orjson.dumps(produced))
    _wait(lambda: committed_lag(broker.bootstrap, ROUTER_GROUP, inputs) == 0, 300, "the worker to route every event")
    lateness = EngineConfig().allowed_lateness  # the worker's default, as started above
    end = max(ev.t for ev in valid) + lateness + HOUR
    # event time moves past the week (R6.2), walked from the first event: each partition's clock is
    # where its own events left it, and a tick far ahead of it would wait for an event (time sanity)
    send_ticks(broker.bootstrap, names.events, partitions, end, since_us=min(ev.t for ev in valid))
    click.echo(f"event time advanced to {format_time(end)}; waiting for the weekly assessments, periods and "
               f"after-sales requests ...")
    from chatsla.audit import run_audit
    from chatsla.core.policy import policies_for

    lead, *others = policies_for(())  # each platform's current policy, as the worker runs them
    expected = run_audit([v for _, _, v in records], lead, until=end - lateness, policies=others)
    want = {(a["shop_id"], a["week_start"]): a for a in expected.assessments}
    want_periods = {_period_key(p): p for p in expected.periods}
    want_requests = {_request_key(r): r for r in expected.requests}

    def outputs() -> tuple[dict, dict, dict] | None:
        got = {}
        for value in read_values(broker.bootstrap, names.assessments):
            rec = orjson.loads(value)
            got[(rec["shop_id"], rec["week_start"])] = rec
        periods = latest(read_values(broker.bootstrap, names.periods), _period_key)
        requests = latest(read_values(broker.bootstrap, names.aftersale_records), _request_key)
        done = (all(k in got and got[k] == v for k, v in want.items())
                and all(periods.get(k) == v for k, v in want_periods.items())
                and all(requests.get(k) == v for k, v in want_requests.items()))
        return (got, periods, requests) if done else None

    got, periods, requests = _wait(outputs, 300, "the assessments, periods and after-sales requests")
    month = _month_to_date(web_port, AFTERSALE_SHOP)
    from rich.console import Console

    print_results(Console() if sys.stdout.isatty() else Console(width=120), got, periods, requests, month, web_port)
    click.echo(f"\nThe live results equal `chatsla audit` on the same events.\n{worker_urls(web_port)}")
    if prometheus_url is not None:
        _print_prometheus(prometheus_url)
    click.echo(f"Worker log: {STATE / 'worker.log'}; Kafka at {broker.bootstrap}\n"
               f"Stop everything: make demo-stop  (or .venv/bin/chatsla demo --stop)")


def worker_urls(web_port: int) -> str:
    """Where the worker serves its metrics and each kind of shop's live projection (R8, A.4)."""
    return (f"Worker metrics (Prometheus format): http://127.0.0.1:{web_port}/metrics\n"
            f"Shop API, a shop's live projection: http://127.0.0.1:{web_port}/shops/shop-01 (TikTok Shop), "
            f"/shops/douyin-01 (tickets), /shops/aliexpress-01 (waits), /shops/{AFTERSALE_SHOP} (after-sales)")


def demo_records(seed: int, shops: int, conversations: int) -> list[tuple[str, bytes, bytes]]:
    """The demo's simulated week, in log order: ``shops`` TikTok shops; one shop of each other
    platform beside them (issue #12): a Douyin shop's service tickets (RULES R9) and an AliExpress
    shop's buyer waits (R10); and one TikTok Shop after-sales shop (R11, issue #14: its requests
    include R11.8's abuse patterns), all on the same worker."""
    from chatsla.simulate import SimConfig, generate

    return generate(SimConfig(seed=seed, shops=shops, conversations_per_shop=conversations, jitter_seconds=60,
                              bad_fraction=0.002, platforms=PLATFORMS, douyin_shops=1,
                              tickets_per_shop=min(conversations, 150), aliexpress_shops=1,
                              aliexpress_conversations=min(conversations, 150), aftersale_shops=1,
                              aftersale_requests=min(conversations, 120)))


def print_results(console: "Console", assessments: dict, periods: dict, requests: dict, month: list[dict],
                  web_port: int) -> None:
    """The demo's tables, each after the paragraph of :data:`TABLES` that says what it means: the
    TikTok shops' weeks, the Douyin and AliExpress periods, then the after-sales shop's day and
    week rows (its ``all`` rows, R11.5.2) with the totals of its requests and ``month``, this
    month's review timeliness so far (R11.6.3, from the shop API). The dicts are the live outputs
    by key (:func:`latest`)."""
    from chatsla.audit import Report
    from chatsla.report import print_aftersale, print_assessments, print_other_models

    click.echo("\n" + TABLES["assessments"])
    print_assessments([assessments[k] for k in sorted(assessments)], console)
    ordered = [periods[k] for k in sorted(periods, key=_sortable)]
    click.echo("\n" + TABLES["periods"])
    print_other_models(Report([], [], periods=[p for p in ordered if not is_aftersale(p)]), console)
    click.echo("\n" + TABLES["aftersale"])
    print_aftersale(Report([], [], periods=[p for p in ordered if is_aftersale(p)] + month,
                           requests=[requests[k] for k in sorted(requests, key=_sortable)]), console)
    if not month:
        click.echo(f"(this month's review timeliness: the shop API did not show {AFTERSALE_SHOP}'s month; see "
                   f"http://127.0.0.1:{web_port}/shops/{AFTERSALE_SHOP})")


def produced_record(seed: int, shops: int, conversations: int, records: list[tuple[str, bytes, bytes]]) -> dict:
    """What ``.chatsla/produced.json`` records of a produced week: the options, the platforms, the
    number of records and a digest of them (a simulator that changed gives another week for the
    same options: the marker must tell them apart, :func:`should_produce`)."""
    digest = hashlib.sha256()
    for topic, key, value in records:
        digest.update(b"%d:%s %d:%s %d:%s\n" % (len(topic), topic.encode(), len(key), key, len(value), value))
    return {"seed": seed, "shops": shops, "conversations": conversations, "platforms": list(PLATFORMS),
            "records": len(records), "sha256": digest.hexdigest()}


def latest(values: Iterable[bytes], key: Callable[[dict], tuple]) -> dict[tuple, dict]:
    """The latest record per key of an output topic's values (in the order read: a key's records
    are in one partition, whose order the reader keeps), as a compacted topic's consumer sees it."""
    out: dict[tuple, dict] = {}
    for value in values:
        rec = orjson.loads(value)
        out[key(rec)] = rec
    return out


def _sortable(key: tuple) -> tuple:
    """A record key that sorts with None in it (a period of the other models has no request type)."""
    return tuple("" if x is None else x for x in key)


def is_aftersale(period: dict) -> bool:
    """An after-sales period row: day/week (R11.5.2) or month (R11.6.3)."""
    return "auto_approved" in period or "awaiting_seller" in period


def _month_to_date(web_port: int, shop_id: str) -> list[dict]:
    """The shop's R11.6.3 month rows to date (one per group), from the worker's shop API: the month
    record itself is written when the month ends, after the demo's watermark. Empty when the API
    does not show the shop's after-sales within 30 s (the demo then says so and goes on)."""
    import urllib.error
    import urllib.request

    def fetch() -> list[dict] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/shops/{shop_id}", timeout=5) as resp:
                body = orjson.loads(resp.read())
        except (urllib.error.URLError, OSError, orjson.JSONDecodeError):
            return None
        month = (body.get("aftersale") or {}).get("month") or {}
        return [month[g] for g in sorted(month)] or None

    try:
        return _wait(fetch, 30, f"the shop API to show {shop_id}")
    except DemoError:
        return []


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
