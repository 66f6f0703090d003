"""The ``chatsla`` command line (click).

Errors are one plain line on stderr with exit code 2, never a traceback. Subcommands import
their modules lazily so ``chatsla audit`` does not pay for Faust or Kafka imports.
"""

from __future__ import annotations

import importlib
import sys

import click

from chatsla.core.policy import DEFAULT_POLICY, PolicyError, load_policy
from chatsla.core.timefmt import parse_duration, parse_time

EXIT_USAGE = 2


class CliError(click.ClickException):
    exit_code = EXIT_USAGE


class LazyGroup(click.Group):
    """Commands named here are imported only when run (or listed in --help)."""

    lazy = {
        "dev": "chatsla.dev.cli:dev",
        "simulate": "chatsla.simulate:simulate",
        "demo": "chatsla.demo:demo",
        "replay": "chatsla.replay_cli:replay",
        "export": "chatsla.replay_cli:export",
        "verify": "chatsla.replay_cli:verify",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, attr = self.lazy[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup)
@click.version_option(package_name="chatsla")
def cli() -> None:
    """chatsla: live 24 h reply rate and penalty risk for marketplace sellers' chat."""


def parse_time_option(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    t = parse_time(value)
    if t is None:
        raise CliError(f"{name} must be an RFC 3339 timestamp with an offset, e.g. 2026-11-09T00:10:00Z; got {value!r}")
    return t


def policy_option(spec: str):
    try:
        return load_policy(spec)
    except PolicyError as e:
        raise CliError(str(e)) from None


def engine_config(allowed_lateness: str, default_timezone: str, max_future: str = "1h"):
    from chatsla.core.engine import EngineConfig
    from schemas.decode import valid_timezone

    try:
        lateness = parse_duration(allowed_lateness)
    except ValueError as e:
        raise CliError(f"--allowed-lateness: {e}") from None
    if not valid_timezone(default_timezone):
        raise CliError(f"--default-timezone: unknown IANA time zone {default_timezone!r}")
    if max_future == "off":
        future = None
    else:
        try:
            future = parse_duration(max_future)
        except ValueError as e:
            raise CliError(f"--max-future: {e}") from None
    return EngineConfig(allowed_lateness=lateness, default_timezone=default_timezone, max_future=future)


MAX_FUTURE_HELP = ("How far one event may move the clock ahead of every event seen before others confirm it; "
                   "a step nothing confirms is rejected as future_time ('off': no check).")


@cli.command()
@click.argument("events", metavar="EVENTS.jsonl")
@click.option("--until", help="Advance the watermark to this RFC 3339 time at the end of input "
              "(default: the last event time).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("--shop", "shops", multiple=True, metavar="ID", help="Report only this shop (repeatable).")
@click.option("--policy", "policy_spec", default=DEFAULT_POLICY, show_default=True,
              help="Policy id@version, bare id (its current version) or a policy JSON file.")
@click.option("--records", type=click.Choice(["assessments", "sessions"]), default="assessments",
              show_default=True, help="Which records --format csv prints.")
@click.option("--allowed-lateness", default="2min", show_default=True, help="R6.2 allowed lateness.")
@click.option("--default-timezone", default="UTC", show_default=True, help="Zone of shops never told theirs (R1).")
@click.option("--max-future", default="1h", show_default=True, help=MAX_FUTURE_HELP)
def audit(events: str, until: str | None, fmt: str, shops: tuple[str, ...], policy_spec: str, records: str,
          allowed_lateness: str, default_timezone: str, max_future: str) -> None:
    """Audit a JSONL export of R1 events (both schemas, log order; '-' for stdin, .gz accepted)."""
    from chatsla.audit import open_events, run_audit
    from chatsla import report as render

    until_t = parse_time_option(until, "--until")
    policy = policy_option(policy_spec)
    config = engine_config(allowed_lateness, default_timezone, max_future)
    try:
        f = open_events(events)
    except FileNotFoundError:
        raise CliError(f"file not found: {events}") from None
    except (IsADirectoryError, PermissionError) as e:
        raise CliError(f"cannot read {events}: {e.strerror}") from None

    err = sys.stderr

    def on_invalid(line_no: int, reason: str) -> None:
        err.write(f"{events}:{line_no}: invalid event: {reason}\n")

    with f:
        try:
            result = run_audit(f, policy, config, until_t, shops or None, on_invalid)
        except OSError as e:  # e.g. a truncated .gz
            raise CliError(f"cannot read {events}: {e}") from None
    if fmt == "json":
        sys.stdout.buffer.write(render.to_json(result))
    elif fmt == "csv":
        sys.stdout.write(render.to_csv(result, records))
    else:
        from rich.console import Console

        render.print_table(result, Console() if sys.stdout.isatty() else Console(width=120))


def _kafka_options(f):
    """Kafka connection flags shared by the commands that talk to a broker (env: CHATSLA_*)."""
    opts = [
        click.option("--bootstrap", envvar="CHATSLA_BOOTSTRAP", default="127.0.0.1:9092", show_default=True,
                     help="Kafka bootstrap servers, comma-separated."),
        click.option("--security-protocol", envvar="CHATSLA_SECURITY_PROTOCOL", default="PLAINTEXT",
                     type=click.Choice(["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]), show_default=True),
        click.option("--sasl-mechanism", envvar="CHATSLA_SASL_MECHANISM",
                     type=click.Choice(["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])),
        click.option("--sasl-username", envvar="CHATSLA_SASL_USERNAME"),
        click.option("--sasl-password", envvar="CHATSLA_SASL_PASSWORD"),
        click.option("--ssl-cafile", envvar="CHATSLA_SSL_CAFILE", type=click.Path(exists=True, dir_okay=False)),
        click.option("--ssl-certfile", envvar="CHATSLA_SSL_CERTFILE", type=click.Path(exists=True, dir_okay=False)),
        click.option("--ssl-keyfile", envvar="CHATSLA_SSL_KEYFILE", type=click.Path(exists=True, dir_okay=False)),
        click.option("--topic-prefix", envvar="CHATSLA_TOPIC_PREFIX", default="",
                     help="Prefix for every topic name (several deployments on one cluster)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _security(kw: dict):
    from streams.settings import KafkaSecurity

    sec = KafkaSecurity(kw.pop("security_protocol"), kw.pop("sasl_mechanism"), kw.pop("sasl_username"),
                        kw.pop("sasl_password"), kw.pop("ssl_cafile"), kw.pop("ssl_certfile"), kw.pop("ssl_keyfile"))
    if sec.protocol.startswith("SASL") and not (sec.sasl_mechanism and sec.sasl_username):
        raise CliError("--security-protocol SASL_* needs --sasl-mechanism and --sasl-username")
    return sec


def _topic_names(prefix: str):
    from streams.topics import TopicNames

    base = TopicNames()
    return TopicNames(*(prefix + getattr(base, f) for f in ("chat", "shop", "events", "sessions", "assessments")))


def _worker_duration(value: str, name: str) -> int:
    try:
        us = parse_duration(value)
    except (ValueError, OverflowError) as e:
        raise click.BadParameter(str(e), param_hint=name) from None
    if us <= 0:
        raise click.BadParameter("must be positive", param_hint=name)
    return us


@cli.command()
@_kafka_options
@click.option("--app-id", envvar="CHATSLA_APP_ID", default="chatsla", show_default=True,
              help="Consumer group and table namespace; workers with the same id share the work.")
@click.option("--partitions", envvar="CHATSLA_PARTITIONS", type=click.IntRange(min=1), default=4, show_default=True,
              help="Partitions of chat.messages and chatsla.events (the most workers that can share the load).")
@click.option("--replication", envvar="CHATSLA_REPLICATION", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--store", envvar="CHATSLA_STORE", type=click.Choice(["memory", "rocksdb"]), default="memory",
              show_default=True, help="Table store (rocksdb needs: pip install 'chatsla[rocksdb]').")
@click.option("--data-dir", envvar="CHATSLA_DATA_DIR", default=".chatsla/worker", show_default=True)
@click.option("--web-host", envvar="CHATSLA_WEB_HOST", default="127.0.0.1", show_default=True,
              help="Address the HTTP server listens on (no authentication: keep it on loopback, or put a "
                   "reverse proxy in front, see docs/pipeline.md).")
@click.option("--web-port", envvar="CHATSLA_WEB_PORT", type=click.IntRange(1, 65535), default=6066, show_default=True,
              help="Port of the worker's HTTP server (/metrics, /shops/{id}, /healthz, /readyz).")
@click.option("--max-future", envvar="CHATSLA_MAX_FUTURE", default="1h", show_default=True,
              callback=lambda ctx, param, value: _worker_duration(value, "--max-future"),
              help="Input events further ahead of the wall clock go to their DLQ (future_time); ticks that far "
                   "ahead are ignored.")
@click.option("--ticks/--no-ticks", envvar="CHATSLA_TICKS", default=True, show_default=True,
              help="Live mode: advance the watermark with the wall clock (off for historical backfills).")
@click.option("--tick-interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True)
@click.option("--policy", "policy_spec", envvar="CHATSLA_POLICY", default=DEFAULT_POLICY, show_default=True)
@click.option("--allowed-lateness", default="2min", show_default=True)
@click.option("--default-timezone", default="UTC", show_default=True)
@click.option("--create-topics/--no-create-topics", default=True, show_default=True,
              help="Create missing topics with explicit partitions and retention before starting.")
@click.option("--loglevel", type=click.Choice(["debug", "info", "warning", "error"]), default="warning",
              show_default=True)
@click.option("--shop-metrics", envvar="CHATSLA_SHOP_METRICS", default="all", show_default=True,
              help="Per-shop Prometheus series: all, at-risk, worst:K or none (13 series per shop).")
@click.option("--loop", envvar="CHATSLA_LOOP", type=click.Choice(["uvloop", "aio"]), default="uvloop",
              show_default=True, help="Event loop: uvloop (faster) or asyncio's own.")
def worker(**kw: object) -> None:
    """Run a live worker: validate, sessionise, assess (RULES R1-R6) on Kafka."""
    from pathlib import Path

    from streams.settings import WorkerSettings
    from streams.topics import TopicError, changelog_specs, ensure_topics, topic_specs

    security = _security(kw)
    policy_option(kw["policy_spec"])  # fail early, in one line
    config = engine_config(kw["allowed_lateness"], kw["default_timezone"])
    if kw["store"] == "rocksdb":
        try:
            import rocksdict  # noqa: F401
        except ImportError:
            raise CliError("--store rocksdb needs the rocksdict package: pip install 'chatsla[rocksdb]'") from None
    from projections.fleet import select_shops

    try:
        select_shops([], kw["shop_metrics"])
    except ValueError as e:
        raise CliError(f"--shop-metrics: {e}") from None
    names = _topic_names(kw["topic_prefix"])
    settings = WorkerSettings(
        bootstrap=kw["bootstrap"], app_id=kw["app_id"], topics=names, partitions=kw["partitions"],
        replication=kw["replication"], store=f"{kw['store']}://", data_dir=Path(kw["data_dir"]),
        web_host=kw["web_host"], web_port=kw["web_port"], ticks=kw["ticks"], tick_interval=kw["tick_interval"],
        policy=kw["policy_spec"], allowed_lateness_us=config.allowed_lateness,
        default_timezone=config.default_timezone, security=security, loglevel=kw["loglevel"],
        shop_metrics=kw["shop_metrics"], loop=kw["loop"], max_future_us=kw["max_future"],
    )
    if kw["create_topics"]:
        try:
            created = ensure_topics(settings.bootstrap, topic_specs(names, settings.partitions)
                                    + changelog_specs(settings.app_id, settings.partitions), settings.replication,
                                    security.kafka_python_kwargs())
        except TopicError as e:
            raise CliError(str(e)) from None
        if created:
            click.echo(f"created topics: {', '.join(created)}", err=True)
    from streams.app import run_worker

    click.echo(f"chatsla worker {settings.app_id} on {settings.bootstrap}; "
               f"metrics at http://{settings.web_host}:{settings.web_port}/metrics", err=True)
    run_worker(settings)


@cli.command()
def policies() -> None:
    """List the bundled policies (RULES R7)."""
    from chatsla.core.policy import available

    for ref in available():
        p = load_policy(ref)
        click.echo(f"{ref}\t{p.source}")


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="chatsla", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        name = e.ctx.command_path if getattr(e, "ctx", None) is not None else "chatsla"
        sys.stderr.write(f"{name}: error: {e.format_message()}\n")
        sys.exit(EXIT_USAGE if isinstance(e, click.UsageError) else e.exit_code)
    except click.Abort:
        sys.stderr.write("chatsla: aborted\n")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)


if __name__ == "__main__":
    main()
