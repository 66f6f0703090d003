"""The ``chatsla`` command line (click).

Every failure is one plain line on stderr, ``chatsla <command>: error: <what>``, and a documented
exit code (chatsla/core/errors.py, docs/cli.md): 2 for a wrong command line, 1 for a run that
failed (an input that cannot be read, an output that cannot be written, a broker that cannot be
reached), 130 when interrupted; never a traceback. Code raises :mod:`chatsla.core.errors` exceptions;
:func:`main` is the one place that turns them, click's own errors, ``OSError`` (a full disk, a
closed pipe) and Ctrl-C into that line and code. Subcommands import their modules lazily so
``chatsla audit`` does not pay for Faust or Kafka imports.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import io
import os
import sys
from typing import NoReturn

import click

from chatsla.core.engine import EngineConfig
from chatsla.core.policy import DEFAULT_POLICY, load_policy
from chatsla.core.timefmt import DAY, HOUR, MINUTE, MS, SECOND, parse_duration, parse_time
from chatsla.schemas.decode import MAX_RECORD_BYTES as MAX_RECORD_BYTES_DEFAULT
from chatsla.core.errors import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    BrokerError,
    ChatslaError,
    InputError,
    OutputError,
    UsageError,
)

# The command modules raise chatsla.core.errors.UsageError; the old name stays for code not yet moved.
CliError = UsageError


class LazyGroup(click.Group):
    """Commands named here are imported only when run (or listed in --help)."""

    lazy = {
        "dev": "chatsla.dev.cli:dev",
        "simulate": "chatsla.simulate:simulate",
        "demo": "chatsla.demo:demo",
        "replay": "chatsla.replay_cli:replay",
        "export": "chatsla.replay_cli:export",
        "verify": "chatsla.replay_cli:verify",
        "rules": "chatsla.rules_cli:rules",  # after-sales rule sets (RULES R11.2, issue #14)
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context | None, name: str) -> click.Command | None:
        from chatsla import config

        if name in self.lazy:
            module, attr = self.lazy[name].split(":")
            cmd = getattr(importlib.import_module(module), attr)
        else:
            cmd = super().get_command(ctx, name)  # type: ignore[arg-type]
        # every option gets its CHATSLA_* variables and every command --config (chatsla/config.py)
        return None if cmd is None else config.configure(cmd, (name,))

    def invoke(self, ctx: click.Context) -> object:
        # click's own main turns EOFError and Ctrl-C into Abort after printing an empty line, and
        # a broken pipe into a silent exit 1; chatsla.cli.main reports them itself, in one line.
        try:
            return super().invoke(ctx)
        except EOFError as e:
            raise InputError(f"unexpected end of input ({e})" if str(e) else "unexpected end of input") from None
        except KeyboardInterrupt:
            raise _Interrupted() from None
        except OSError as e:
            raise _OSFailure(e) from None


class _Interrupted(ChatslaError):
    exit_code = EXIT_INTERRUPTED

    def __init__(self) -> None:
        super().__init__("interrupted")


class _OSFailure(ChatslaError):
    """An OSError no command turned into an error of its own; main says what it was writing."""

    def __init__(self, e: OSError) -> None:
        self.os_error = e
        super().__init__(e.strerror or str(e) or type(e).__name__)


@click.group(cls=LazyGroup)
@click.version_option(package_name="chatsla")
def cli() -> None:
    """chatsla: live 24 h reply rate and penalty risk for marketplace sellers' chat."""


def option_label(name: str) -> str:
    """``--until`` as the user gave it: the flag, a CHATSLA_* variable or a config file key."""
    from chatsla.config import label

    return label(name.lstrip("-").replace("-", "_"), name)


def parse_time_option(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    t = parse_time(value)
    if t is None:
        raise UsageError(f"{option_label(name)} must be an RFC 3339 timestamp with an offset, e.g. 2026-11-09T00:10:00Z; got {value!r}")
    return t


def policy_option(spec: str):
    """The policy named by ``--policy``; a PolicyError is a UsageError (exit 2) naming the field."""
    return load_policy(spec)


# An allowed lateness beyond this is surely a mistake (and would leave datetime's range).
_MAX_LATENESS_US = 366 * 86_400_000_000


def duration_option(value: str, name: str) -> int:
    """A duration flag (``2min``, ``30s``) in µs, or one UsageError line naming the flag."""
    try:
        us = parse_duration(value)
    except (ValueError, OverflowError):  # OverflowError: "1e999s" is infinite
        us = -1
    if not 0 <= us <= _MAX_LATENESS_US:
        raise UsageError(f"{option_label(name)} must be a duration from 0 to 366d such as 2min, 30s or 1h; got {value!r}")
    return us


def duration_text(us: int) -> str:
    """``us`` in the largest unit that holds it exactly (``2min``, ``30s``), as ``duration_option`` reads it."""
    for unit, size in (("d", DAY), ("h", HOUR), ("min", MINUTE), ("s", SECOND), ("ms", MS)):
        if us and us % size == 0:
            return f"{us // size}{unit}"
    return f"{us / SECOND:g}s"


# Every command's --allowed-lateness default: the core's own default (R6.2), written once there.
LATENESS_DEFAULT = duration_text(EngineConfig().allowed_lateness)


def engine_config(allowed_lateness: str, default_timezone: str, max_future: str = "1h"):
    from chatsla.schemas.decode import valid_timezone

    lateness = duration_option(allowed_lateness, "--allowed-lateness")
    if not valid_timezone(default_timezone):
        raise UsageError(f"{option_label('--default-timezone')}: unknown IANA time zone {default_timezone!r} (e.g. Asia/Bangkok)")
    future = None if max_future == "off" else duration_option(max_future, "--max-future")
    return EngineConfig(allowed_lateness=lateness, default_timezone=default_timezone, max_future=future)


MAX_FUTURE_HELP = ("How far ahead of every event seen one event may move the clock before others confirm it, "
                   "e.g. 1h; a step that its own input contradicts is rejected as future_time ('off': no check).")


_BROKEN_PIPE = "cannot write standard output: the reader closed it (broken pipe)"


def stdout_binary() -> io.BufferedIOBase:
    """Standard output for bytes; a closed one is an OutputError (not a silently empty report)."""
    out = sys.stdout
    if out is None or getattr(getattr(getattr(out, "buffer", None), "raw", None), "closed_stream", False):
        raise OutputError("cannot write standard output: it is closed")
    return out.buffer


def write_stdout(data: bytes) -> None:
    """Write all of ``data`` to standard output, or raise.

    A loop, because ``BufferedWriter.write`` of a large buffer returns the count the pipe took
    when the reader closes it midway (``chatsla audit --format json | head -1``) instead of raising:
    the next write is the one that reports the broken pipe."""
    out = stdout_binary()
    view = memoryview(data)
    while view:
        view = view[out.write(view):]
    out.flush()


def stdout_console():
    """A rich console on standard output whose broken pipe is chatsla's one error line (rich's
    default exits 1 silently)."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise OutputError(_BROKEN_PIPE)

    stdout_binary()  # a closed standard output is an error, not an empty table
    return _Console() if sys.stdout.isatty() else _Console(width=120)


# Help texts shared by several commands (no bare rule numbers: they speak to users).
LATENESS_HELP = ("How late an event may arrive (behind the latest event time seen) and still count as "
                 "on time, e.g. 2min or 30s; later events are applied, counted and flagged late.")
TIMEZONE_HELP = "IANA time zone of shops that never sent their own (weeks start on Monday 00:00 there)."
POLICY_HELP = ("Rules to apply: a bundled policy id@version (see `chatsla policies`), a bare id (its "
               "current version) or a policy JSON file.")

AUDIT_POLICY_HELP = ("Rules of one model: a bundled policy id@version (see `chatsla policies`), a bare id (its "
                     "current version) or a policy JSON file. Repeatable, one per model (chat sessions, "
                     "service tickets, IM waits); a model not named uses its platform's current bundled "
                     f"version ({DEFAULT_POLICY} for chat).")
RECORDS = ("assessments", "sessions", "tickets", "waits", "requests", "periods")


@cli.command()
@click.argument("events", metavar="EVENTS.jsonl")
@click.option("--until", metavar="RFC3339", help="Advance the watermark to this time at the end of input, e.g. "
              "2026-11-17T00:10:00Z (default: the last event time), so that deadlines and week ends up to it fire.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True,
              help="table for people, json for programs (the full report), csv for spreadsheets.")
@click.option("--shop", "shops", multiple=True, metavar="ID", help="Report only this shop (repeatable).")
@click.option("--policy", "policy_specs", multiple=True, metavar="ID@VERSION|FILE.json", help=AUDIT_POLICY_HELP)
@click.option("--records", type=click.Choice(RECORDS), default="assessments",
              show_default=True, help="Which records --format csv prints.")
@click.option("--allowed-lateness", default=LATENESS_DEFAULT, show_default=True, help=LATENESS_HELP)
@click.option("--default-timezone", default="UTC", show_default=True, help=TIMEZONE_HELP)
@click.option("--max-record-bytes", type=click.IntRange(min=1), default=MAX_RECORD_BYTES_DEFAULT, show_default=True,
              help="Longest line read as an event; a longer one is counted invalid (too_large) and skipped "
                   "without being held in memory.")
@click.option("--max-future", default="1h", show_default=True, help=MAX_FUTURE_HELP)
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr (a bar on a terminal, else a line "
              "every 10 s once a run takes that long).")
def audit(events: str, until: str | None, fmt: str, shops: tuple[str, ...], policy_specs: tuple[str, ...],
          records: str, allowed_lateness: str, default_timezone: str, max_record_bytes: int, max_future: str,
          quiet: bool = False) -> None:
    """Audit a JSONL export of chat, ticket and shop events: TikTok Shop sessions and weekly
    outcomes, Douyin service tickets, AliExpress buyer waits, and their periods.

    EVENTS.jsonl holds one event per line in log order, every schema and platform mixed; '-'
    reads standard input and a name ending in .gz is decompressed. Invalid lines are reported on
    stderr with their line number and counted by reason; they never stop the audit.
    """
    from chatsla import report as render
    from chatsla.audit import open_events, read_records, run_audit
    from chatsla.core.policy import policies_for

    until_t = parse_time_option(until, "--until")
    policy, *others = policies_for(policy_specs)
    config = engine_config(allowed_lateness, default_timezone, max_future)
    name = "standard input" if events == "-" else events
    f = open_events(events)
    err = sys.stderr

    def on_invalid(line_no: int, reason: str) -> None:
        if err is not None:
            err.write(f"{events}:{line_no}: invalid event: {reason}\n")

    with f, _input_progress(f, events, quiet) as on_block:
        result = run_audit(read_records(f, name, max_record_bytes, on_block), policy, config, until_t,
                           shops or None, on_invalid, max_record_bytes, others)
    if fmt == "json":
        write_stdout(render.to_json(result))
    elif fmt == "csv":
        write_stdout(render.to_csv(result, records).encode("utf-8"))
    else:
        render.print_table(result, stdout_console())


@contextlib.contextmanager
def _input_progress(f, path: str, quiet: bool):
    """A per-block progress hook for ``audit``'s input (chatsla/progress.py): bytes of the file
    (of the compressed file for .gz) against its size, or bytes read from standard input."""
    from chatsla.progress import Progress

    if quiet:
        yield None
        return
    raw = getattr(f, "fileobj", None)  # a GzipFile's compressed file
    total = None
    if path != "-":
        try:
            total = os.path.getsize(path) or None
        except OSError:
            pass
    with Progress("chatsla audit", "bytes", total) as progress:
        seen = 0

        def on_block(n: int) -> None:
            nonlocal seen
            seen += n
            if raw is not None:
                try:
                    progress.update(raw.tell())
                    return
                except (OSError, ValueError):
                    pass
            progress.update(seen)

        yield on_block


def _kafka_security_options() -> list:
    """Kafka security flags and client properties (env: CHATSLA_*; config file: [kafka])."""
    return [
        click.option("--security-protocol", envvar="CHATSLA_SECURITY_PROTOCOL", default="PLAINTEXT",
                     type=click.Choice(["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]), show_default=True,
                     help="How to connect to Kafka: TLS (SSL), a login (SASL_*), both, or neither."),
        click.option("--sasl-mechanism", envvar="CHATSLA_SASL_MECHANISM",
                     type=click.Choice(["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]),
                     help="Login method the cluster expects (with --security-protocol SASL_*)."),
        click.option("--sasl-username", envvar="CHATSLA_SASL_USERNAME", help="Kafka login name (SASL_*)."),
        click.option("--sasl-password-file", envvar="CHATSLA_SASL_PASSWORD_FILE", metavar="FILE",
                     type=click.Path(dir_okay=False),
                     help="Read the Kafka password (SASL_*) from this file (its first line). Preferred, with "
                          "the CHATSLA_SASL_PASSWORD variable: a --sasl-password flag is visible to every "
                          "user of the machine (ps)."),
        click.option("--sasl-password", envvar="CHATSLA_SASL_PASSWORD",
                     help="Kafka password (SASL_*). Visible in ps: prefer the CHATSLA_SASL_PASSWORD variable or "
                          "--sasl-password-file."),
        click.option("--ssl-cafile", envvar="CHATSLA_SSL_CAFILE", type=click.Path(exists=True, dir_okay=False),
                     help="CA certificate (PEM) to trust for the brokers' TLS certificates."),
        click.option("--ssl-certfile", envvar="CHATSLA_SSL_CERTFILE", type=click.Path(exists=True, dir_okay=False),
                     help="Client certificate (PEM) when the cluster asks for one."),
        click.option("--ssl-keyfile", envvar="CHATSLA_SSL_KEYFILE", type=click.Path(exists=True, dir_okay=False),
                     help="Private key (PEM) of --ssl-certfile."),
        click.option("-X", "--kafka-property", "kafka_property", multiple=True, metavar="KEY=VALUE",
                     help="A Kafka client property by its Java/kcat name, e.g. -X ssl.key.password=... or "
                          "-X metadata.max.age.ms=60000 (repeatable; adds to the config file's [kafka] table). "
                          "docs/cli.md lists the properties chatsla takes."),
        click.option("--topic-prefix", envvar="CHATSLA_TOPIC_PREFIX", default="",
                     help="Prefix for every topic name (several deployments on one cluster)."),
    ]


def kafka_options(f):
    """Kafka connection flags shared by the commands that talk to a broker (env: CHATSLA_*)."""
    opts = [
        click.option("--bootstrap", envvar="CHATSLA_BOOTSTRAP", default="127.0.0.1:9092", show_default=True,
                     help="Kafka bootstrap servers, comma-separated."),
        *_kafka_security_options(),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def kafka_security_options(f):
    """The Kafka flags without --bootstrap (``simulate`` has its own: no --bootstrap, no Kafka)."""
    for opt in reversed(_kafka_security_options()):
        f = opt(f)
    return f


_SECURITY_FIELDS = ("security_protocol", "sasl_mechanism", "sasl_username", "sasl_password", "ssl_cafile",
                    "ssl_certfile", "ssl_keyfile")


def security_settings(kw: dict):
    """The Kafka flags in ``kw`` (popped) as a KafkaSecurity.

    -X properties (streams/kafka_properties.py) come from the config file's [kafka] tables, then
    from CHATSLA_KAFKA_PROPERTY or the -X flags, later ones overriding earlier ones per key. A
    security property is an alias of its flag: it fills the flag's place when the flag was not
    given; both given with different values is a usage error. The password is read from
    --sasl-password-file when given (never both it and a password)."""
    from chatsla.streams import kafka_properties as props
    from chatsla.config import config_kafka_properties, label
    from chatsla.streams.settings import KafkaSecurity

    items = list(config_kafka_properties())
    env = label("kafka_property", "-X")
    flag_where = "-X" if env.startswith("-") else env  # the short flag is the one people type
    for text in kw.pop("kafka_property", ()) or ():
        key, value = props.split_flag(text, flag_where)
        items.append((key, value, f"-X {key}" if flag_where == "-X" else f"{flag_where} ({key})"))
    parsed = props.parse(items)
    fields = {name.replace("security_protocol", "protocol"): kw.pop(name) for name in _SECURITY_FIELDS}
    password_file = kw.pop("sasl_password_file", None)
    ctx = click.get_current_context(silent=True)
    for field, value in parsed.security.items():
        flag = {"protocol": "security_protocol"}.get(field, field)
        given = ctx is not None and ctx.get_parameter_source(flag) not in (None, click.core.ParameterSource.DEFAULT)
        if field in fields and given and fields[field] != value:
            raise UsageError(f"{label(flag)} and {parsed.labels[field]} disagree: give one of them")
        if field in fields and not given or field not in fields:
            fields[field] = value
    if password_file:
        if fields.get("sasl_password"):
            raise UsageError(f"{label('sasl_password_file')} and a password ({label('sasl_password')}) "
                             "were both given: give one of them")
        fields["sasl_password"] = _read_secret(password_file, label("sasl_password_file"))
    sec = KafkaSecurity(**fields, tuning=parsed.tuning)
    if sec.protocol.startswith("SASL") and not (sec.sasl_mechanism and sec.sasl_username):
        raise UsageError("--security-protocol SASL_* needs --sasl-mechanism and --sasl-username")
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_crlfile"):
        path = getattr(sec, name)
        if path and not os.path.isfile(path):  # flags are checked by click; -X and the config file here
            raise UsageError(f"{parsed.labels.get(name, label(name))}: file not found: {path}")
    return sec


def _read_secret(path: str, where: str) -> str:
    """The first line of a password file, without its line end."""
    try:
        with open(path, encoding="utf-8") as f:
            line = f.readline()
    except FileNotFoundError:
        raise UsageError(f"{where}: file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{where}: cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    secret = line.rstrip("\r\n")
    if not secret:
        raise UsageError(f"{where}: {path} is empty")
    return secret


def topic_names(prefix: str):
    from chatsla.streams.topics import TopicNames

    return TopicNames.prefixed(prefix)


def _worker_duration(value: str, name: str) -> int:
    try:
        us = parse_duration(value)
    except (ValueError, OverflowError) as e:
        raise click.BadParameter(str(e), param_hint=name) from None
    if us <= 0:
        raise click.BadParameter("must be positive", param_hint=name)
    return us


@cli.command()
@kafka_options
@click.option("--app-id", envvar="CHATSLA_APP_ID", default="chatsla", show_default=True,
              help="Consumer group and table namespace; workers with the same id share the work.")
@click.option("--partitions", envvar="CHATSLA_PARTITIONS", type=click.IntRange(min=1), default=4, show_default=True,
              help="Partitions of chat.messages and chatsla.events (the most workers that can share the load).")
@click.option("--replication", envvar="CHATSLA_REPLICATION", type=click.IntRange(min=1), default=1, show_default=True,
              help="Replication factor of the topics the worker creates (3 on a production cluster).")
@click.option("--store", envvar="CHATSLA_STORE", type=click.Choice(["memory", "rocksdb"]), default="memory",
              show_default=True, help="Table store (rocksdb needs: pip install 'chatsla[rocksdb]').")
@click.option("--data-dir", envvar="CHATSLA_DATA_DIR", default=".chatsla/worker", show_default=True,
              help="Directory for the worker's local table store (RocksDB files, Faust's offsets).")
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
@click.option("--tick-interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              help="Seconds between the wall-clock ticks that move idle partitions' clocks in live mode.")
@click.option("--checkpoint-idle", type=click.FloatRange(min=0.05), default=0.25,
              show_default=True,
              help="Seconds a partition's input must pause before its pending events are checkpointed and "
                   "committed (they also are every 50,000 events and every 10 s).")
@click.option("--policy", "policy_spec", envvar="CHATSLA_POLICY", multiple=True,
              help=POLICY_HELP + " Repeatable, one per model (chat sessions, Douyin tickets, AliExpress waits); "
                   "a model not named runs its platform's current bundled version.")
@click.option("--allowed-lateness", default=LATENESS_DEFAULT, show_default=True, help=LATENESS_HELP)
@click.option("--default-timezone", default="UTC", show_default=True, help=TIMEZONE_HELP)
@click.option("--create-topics/--no-create-topics", default=True, show_default=True,
              help="Create missing topics with explicit partitions and retention before starting.")
@click.option("--loglevel", type=click.Choice(["debug", "info", "warning", "error"]), default="warning",
              show_default=True, help="Least severe log lines written (repeats are summarised, see docs/pipeline.md).")
@click.option("--shop-metrics", envvar="CHATSLA_SHOP_METRICS", default="all", show_default=True,
              help="Per-shop Prometheus series: all, at-risk, worst:K or none (13 series per shop).")
@click.option("--loop", envvar="CHATSLA_LOOP", type=click.Choice(["uvloop", "aio"]), default="uvloop",
              show_default=True, help="Event loop: uvloop (faster) or asyncio's own.")
def worker(**kw: object) -> None:
    """Run a live worker: validate, sessionise, assess (RULES R1-R6) on Kafka."""
    from pathlib import Path

    from chatsla.streams.settings import WorkerSettings
    from chatsla.streams.topics import changelog_specs, topic_specs
    from chatsla.streams.admin import TopicError, ensure_topics

    security = security_settings(kw)
    from chatsla.core.policy import policies_for

    policies_for(kw["policy_spec"])  # fail early, in one line (a PolicyError is a UsageError)
    config = engine_config(kw["allowed_lateness"], kw["default_timezone"])
    if kw["store"] == "rocksdb":
        try:
            import rocksdict  # noqa: F401
        except ImportError:
            raise CliError("--store rocksdb needs the rocksdict package: pip install 'chatsla[rocksdb]'") from None
    from chatsla.projections.fleet import select_shops

    try:
        select_shops([], kw["shop_metrics"])
    except ValueError as e:
        raise CliError(f"--shop-metrics: {e}") from None
    names = topic_names(kw["topic_prefix"])
    settings = WorkerSettings(
        bootstrap=kw["bootstrap"], app_id=kw["app_id"], topics=names, partitions=kw["partitions"],
        replication=kw["replication"], store=f"{kw['store']}://", data_dir=Path(kw["data_dir"]),
        web_host=kw["web_host"], web_port=kw["web_port"], ticks=kw["ticks"], tick_interval=kw["tick_interval"],
        policies=tuple(kw["policy_spec"]), allowed_lateness_us=config.allowed_lateness,
        default_timezone=config.default_timezone, security=security, loglevel=kw["loglevel"],
        shop_metrics=kw["shop_metrics"], loop=kw["loop"], max_future_us=kw["max_future"],
        checkpoint_idle=kw["checkpoint_idle"],
    )
    if kw["create_topics"]:
        try:
            created = ensure_topics(settings.bootstrap, topic_specs(names, settings.partitions)
                                    + changelog_specs(settings.app_id, settings.partitions), settings.replication,
                                    security.kafka_python_kwargs())
        except TopicError as e:  # the broker cannot be reached or refuses: a failed run (1)
            raise BrokerError(str(e)) from None
        if created:
            click.echo(f"created topics: {', '.join(created)}", err=True)
    from chatsla.streams.app import run_worker

    click.echo(f"chatsla worker {settings.app_id} on {settings.bootstrap}; "
               f"metrics at http://{settings.web_host}:{settings.web_port}/metrics", err=True)
    run_worker(settings)


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="table: one policy per line; json: every policy with all its numbers.")
def policies(fmt: str) -> None:
    """List the bundled policies (rule versions) that --policy can name: reference, model, whether
    it is its platform's current version (used without --policy), source."""
    import orjson

    from chatsla.core.policy import available, current_ref

    loaded = [load_policy(ref) for ref in available()]
    current = {p.ref for p in loaded if current_ref(p.id) == p.ref}  # what a run uses without --policy
    if fmt == "json":
        write_stdout(orjson.dumps([{**_policy_json(p), "current": p.ref in current} for p in loaded],
                                  option=orjson.OPT_INDENT_2) + b"\n")
    else:
        write_stdout("".join(f"{p.ref}\t{p.model}\t{'current' if p.ref in current else '-'}\t{p.source}\n"
                             for p in loaded).encode("utf-8"))


def _policy_json(p) -> dict:
    """A policy as JSON: durations in seconds, thresholds as decimal strings (exact, "0.9")."""
    from chatsla.core.policy import WEEKDAYS

    def seconds(us: int) -> int | float:
        return us // 1_000_000 if us % 1_000_000 == 0 else us / 1_000_000

    def decimal(f) -> str:
        from decimal import Decimal

        return str(Decimal(f.numerator) / Decimal(f.denominator))

    if p.model != "chat_sessions":  # the R9 / R10 policies (RULES A.3): their own fields
        from dataclasses import asdict

        out = {"ref": p.ref, "model": p.model}
        for k, v in asdict(p).items():
            if k == "review_window":  # R11.6.1: a duration, or the working-day form (WorkingWindow)
                k, v = k + "_s", {c: seconds(x) if type(x) is int else x.to_json() for c, x in p.review_window.items()}
            elif k in ("ticket_sla", "category_sla", "agreed_sla_min", "auto_reply_period",
                       "platform_return_window", "repeat_window"):  # (the last two: R11)
                k, v = k + "_s", ({c: seconds(x) for c, x in v.items()} if type(v) is dict else seconds(v))
            elif k == "near_threshold_band":
                v = str(v)
            elif k == "review_rate_below":
                v = decimal(v)
            elif k == "rule_sets":
                continue  # (given to a run, not a policy field)
            elif k == "week_starts_on":
                v = WEEKDAYS[v]
            elif k in ("handled_results", "window_days", "periods", "percentiles"):
                v = sorted(v) if type(v) is frozenset else [str(x) if type(x) not in (int, str) else x for x in v]
            out[k] = v
        return out
    return {
        "ref": p.ref, "model": p.model, "id": p.id, "version": p.version, "platform": p.platform, "source": p.source,
        "seller_timeout_s": seconds(p.seller_timeout), "buyer_timeout_s": seconds(p.buyer_timeout),
        "auto_reply_timeout_s": seconds(p.auto_reply_timeout), "reply_window_s": seconds(p.reply_window),
        "period_days": p.period_days, "week_starts_on": WEEKDAYS[p.week_starts_on],
        "min_buyer_messages": p.min_buyer_messages, "warning_below": decimal(p.warning_below),
        "violation_below": decimal(p.violation_below), "violation_points": p.violation_points,
    }


def _command_path(args: list[str]) -> str:
    """``chatsla dev up`` from the arguments, for the error line (the failing context is gone)."""
    path, group = ["chatsla"], cli
    for a in args:
        if a.startswith("-") or not isinstance(group, click.Group):
            break
        try:
            cmd = group.get_command(None, a)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - only a name for the message
            cmd = None
        if cmd is None:
            break
        path.append(a)
        group = cmd
    return " ".join(path)


class _ClosedStream(io.RawIOBase):
    """Stands in for a standard stream that was closed when chatsla started (``>&-``, ``<&-``):
    reading or writing it fails with EBADF, which main reports, instead of Python's None."""

    closed_stream = True

    def __init__(self, name: str) -> None:
        self.stream_name = name
        self.discard = False  # set once the failure is reported: the exit-time flush stays quiet

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        raise OSError(errno.EBADF, f"cannot read {self.stream_name}: it is closed")

    def write(self, b) -> int:  # type: ignore[override]
        if self.discard:
            return len(b)
        raise OSError(errno.EBADF, f"cannot write {self.stream_name}: it is closed")


def _guard_std_streams() -> None:
    """Give closed standard streams a stand-in that fails loudly, and keep their descriptors
    taken (by /dev/null) so that no file chatsla opens becomes descriptor 0, 1 or 2."""
    for fd, attr, name in ((0, "stdin", "standard input"), (1, "stdout", "standard output"),
                           (2, "stderr", "standard error")):
        if getattr(sys, attr) is not None:
            continue
        try:
            os.fstat(fd)
        except OSError:
            try:
                os.open(os.devnull, os.O_RDWR)  # takes the lowest free descriptor: this one
            except OSError:
                pass
        raw = _ClosedStream(name)
        raw.discard = fd == 2  # a closed stderr only silences the messages: the command still runs
        buffered = io.BufferedReader(raw) if fd == 0 else io.BufferedWriter(raw)
        stream = io.TextIOWrapper(buffered, encoding="utf-8", errors="replace")  # type: ignore[arg-type]
        setattr(sys, attr, stream)


def _say(line: str) -> None:
    """One line on stderr, if there is anywhere to write it."""
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


def _quiet_stdout() -> None:
    """After standard output failed (closed pipe, full disk), route what is still buffered in it to
    /dev/null, so Python's flush at exit does not print a second, traceback-like message."""
    out = sys.stdout
    if out is None:
        return
    raw = getattr(getattr(out, "buffer", None), "raw", None)
    if isinstance(raw, _ClosedStream):
        raw.discard = True
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


def _flush_stdout() -> None:
    out = sys.stdout
    if out is not None:
        out.flush()


def _exit_code(args: list[str]) -> int:
    """Run the command line; every failure becomes one line on stderr and its exit code here."""
    def say(message: str) -> None:
        _say(f"{_command_path(args)}: {message}")

    try:
        try:
            rv = cli.main(args=args, prog_name="chatsla", standalone_mode=False)
        except SystemExit:  # a command's own exit status (verify: differences found)
            _flush_stdout()
            raise
        _flush_stdout()
        return rv if type(rv) is int else 0  # click returns an Exit's code (simulate's usage errors)
    except SystemExit as e:
        return e.code if type(e.code) is int else (0 if e.code is None else 1)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:  # usage errors (exit 2) and commands' own ClickExceptions
        if isinstance(e, click.BadParameter):  # name the CHATSLA_* variable or config key it came from
            from chatsla.config import relabel

            relabel(e)
        ctx = getattr(e, "ctx", None)
        name = ctx.command_path if ctx is not None else _command_path(args)
        _say(f"{name}: error: {e.format_message()}")
        return EXIT_USAGE if isinstance(e, click.UsageError) else e.exit_code
    except (click.Abort, KeyboardInterrupt, _Interrupted):
        say("interrupted")
        return EXIT_INTERRUPTED
    except ChatslaError as e:
        os_error = getattr(e, "os_error", None)
        if os_error is not None:  # an OSError no command named: say what it was writing or reading
            return _os_failure(os_error, args, say)
        if isinstance(e, OutputError):
            _quiet_stdout()
        say(f"error: {e}")
        return e.exit_code
    except OSError as e:  # outside a command, e.g. the final flush of standard output
        return _os_failure(e, args, say)


_WRITE_ERRNOS = {errno.ENOSPC, errno.EPIPE, errno.EDQUOT, errno.EFBIG}


def _os_failure(e: OSError, args: list[str], say) -> int:
    why = e.strerror or str(e) or type(e).__name__
    if isinstance(e, BrokenPipeError) or e.errno == errno.EPIPE:
        message = _BROKEN_PIPE
    elif why.startswith("cannot "):  # a closed standard stream (_ClosedStream)
        message = why
    elif e.filename:
        message = f"{why}: {e.filename}"
    elif e.errno in _WRITE_ERRNOS:
        message = f"cannot write {_output_target(args)}: {why}"
    else:
        message = why
    if e.errno in _WRITE_ERRNOS or e.errno == errno.EBADF:
        _quiet_stdout()
    say(f"error: {message}")
    return 1


def _output_target(args: list[str]) -> str:
    """What a write without a file name went to: the command's --out file, else standard output."""
    for i, a in enumerate(args):
        if a == "--out" and i + 1 < len(args) and args[i + 1] != "-":
            return args[i + 1]
        if a.startswith("--out=") and a != "--out=-":
            return a[len("--out="):]
    return "standard output"


def main(argv: list[str] | None = None) -> NoReturn:
    """The ``chatsla`` entry point: exit codes as documented in chatsla/core/errors.py."""
    _guard_std_streams()
    args = sys.argv[1:] if argv is None else list(argv)
    sys.exit(_exit_code(args))


if __name__ == "__main__":
    main()
