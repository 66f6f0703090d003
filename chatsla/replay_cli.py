"""``chatsla replay``, ``chatsla export`` and ``chatsla verify`` (issue #5).

Registered lazily by :class:`chatsla.cli.LazyGroup`. They take the same Kafka flags as
``chatsla worker`` and read the input topics with a private consumer (no group id, no commits): a
replay never touches the live app's consumer group, tables or output topics. What is read and
reported is documented in :mod:`chatsla.replay`. Errors are :mod:`chatsla.core.errors` exceptions,
which ``chatsla.cli.main`` prints as one plain line: exit code 2 for a wrong command line, 1 for a
broker that cannot be reached or an output that cannot be written; ``verify`` exits 1 when it finds
differences.
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import contextmanager
from typing import Iterator

import click

from chatsla.cli import (
    AUDIT_POLICY_HELP,
    RECORDS,
    LATENESS_DEFAULT,
    LATENESS_HELP,
    TIMEZONE_HELP,
    kafka_options,
    option_label,
    security_settings,
    topic_names,
    engine_config,
    parse_time_option,
    stdout_console,
    write_stdout,
)
from chatsla.core.errors import BrokerError, OutputError, UsageError

_FORMATS = ("table", "json", "csv", "html")


def _period_options(f, required: bool = True):
    """--from/--to and the reading flags; ``required=False`` for replay, where --week can replace them."""
    opts = [
        click.option("--from", "from_", required=required, metavar="RFC3339",
                     help="Start of the period (inclusive), e.g. 2026-11-02T00:00:00Z."),
        click.option("--to", "to", required=required, metavar="RFC3339",
                     help="End of the period (exclusive); the watermark is finished here."),
        click.option("--lookback", default="9d", show_default=True,
                     help="How far before --from chat.messages is read to rebuild open sessions and "
                          "duplicates (a duration such as 9d, or 'all')."),
        click.option("--allowed-lateness", default=LATENESS_DEFAULT, show_default=True, help=LATENESS_HELP),
        click.option("--timeout", type=click.FloatRange(min=0.5), default=10.0, show_default=True,
                     help="Seconds to wait for the broker when connecting and for each metadata request."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _engine_options(f):
    opts = [
        click.option("--policy", "policy_specs", multiple=True, metavar="ID@VERSION|FILE.json",
                     help=AUDIT_POLICY_HELP),
        click.option("--default-timezone", default="UTC", show_default=True, help=TIMEZONE_HELP),
        click.option("--reader-process", type=click.Choice(["auto", "on", "off"]), default="auto",
                     show_default=True, help="Fetch and decode in a second process while this one runs the "
                     "engine (auto: from 200,000 records on). The results are the same either way."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _setup(kw: dict, engine: bool = True):
    """Flags -> (KafkaInput, Period, policies, engine config, parallel); every problem as one UsageError line.

    ``policies`` is :func:`~chatsla.core.policy.policies_for` of the repeated ``--policy``, as in
    ``chatsla audit``: one per model, chat sessions (the lead) first (None without ``engine``)."""
    from chatsla.core.timefmt import parse_duration
    from chatsla.replay import KafkaInput, Period

    start = parse_time_option(kw.pop("from_"), "--from")
    end = parse_time_option(kw.pop("to"), "--to")
    if end <= start:
        raise UsageError("--to must be after --from")
    lookback_text = kw.pop("lookback").strip().lower()
    if lookback_text == "all":
        lookback = None
    else:
        try:
            lookback = parse_duration(lookback_text)
        except ValueError as e:
            raise UsageError(f"{option_label('--lookback')}: {e} (or 'all')") from None
        except OverflowError:  # "1e999d"
            raise UsageError(f"{option_label('--lookback')}: not a finite duration: {lookback_text!r}") from None
        if lookback < 0:
            raise UsageError(f"{option_label('--lookback')} must not be negative")
    policy = _policies(kw.pop("policy_specs", ())) if engine else None
    kw["parallel"] = {"auto": None, "on": True, "off": False}[kw.pop("reader_process", "auto")]
    config = engine_config(kw.pop("allowed_lateness"), kw.pop("default_timezone", "UTC"))
    security = security_settings(kw)
    kin = KafkaInput(kw.pop("bootstrap"), topic_names(kw.pop("topic_prefix")), security, kw.pop("timeout"))
    return kin, Period(start, end, lookback), policy, config, kw.pop("parallel")


def _policies(specs: tuple[str, ...]) -> list:
    """The run's policies, one per model (the audit's rule); a PolicyError is a UsageError line."""
    from chatsla.core.policy import policies_for

    return policies_for(tuple(specs))


@contextmanager
def _progress(label: str) -> Iterator[object]:
    """A rich progress bar (events/s, ETA) on a terminal; nothing when stderr is not one."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task) -> Text:  # type: ignore[override]
            speed = task.finished_speed or task.speed
            return Text("" if speed is None else f"{speed:,.0f} events/s", style="progress.data.speed")

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), Rate(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, planned: int) -> None:
            bar.update(task, completed=done, total=max(planned, done))

        yield update


def _quiet_kafka_logs() -> None:
    """aiokafka logs connection failures itself; the command reports them in its one error line."""
    import logging

    for name in ("aiokafka", "kafka"):
        log = logging.getLogger(name)
        log.addHandler(logging.NullHandler())
        log.propagate = False


def _run(coro, out: str | None = None):
    """Run a replay coroutine; a broker failure is a BrokerError and a failed write to ``out`` an
    OutputError naming it (exit 1). Anything else from aiokafka (a TLS handshake with a plaintext
    broker, a refused login) is a broker failure too: it is reported in one line, not a traceback."""
    from chatsla.replay import ReplayError

    _quiet_kafka_logs()
    try:
        return asyncio.run(coro)
    except ReplayError as e:
        raise BrokerError(str(e)) from None
    except KeyboardInterrupt:
        raise click.Abort() from None
    except OSError as e:  # e.g. a full disk under chatsla export
        if e.filename:
            raise OutputError(f"{e.strerror or e}: {e.filename}") from None
        if out is not None:
            raise OutputError(f"cannot write {out}: {e.strerror or e}") from None
        raise BrokerError(f"{e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - aiokafka's own errors, one line
        if type(e).__module__.split(".")[0] in ("aiokafka", "kafka", "ssl"):
            raise BrokerError(f"Kafka: {type(e).__name__}: {e}") from None
        raise


def _open_out(path: str | None, binary: bool = True):
    if path is None:
        return None
    try:
        return open(path, "wb" if binary else "w", encoding=None if binary else "utf-8")
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror}") from None


def _write_out(path: str, write) -> None:
    """Write --out; a full disk or an I/O error is one OutputError line naming the file."""
    try:
        write()
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None


def _replay_period_options(f):
    return _period_options(f, required=False)


@click.command()
@kafka_options
@_replay_period_options
@click.option("--week", metavar="YYYY-MM-DD",
              help="Instead of --from/--to: the week starting on this Monday, each shop's own (its local "
                   "Monday 00:00 to the next), read until every shop's assessment of it is final.")
@_engine_options
@click.option("--shop", "shops", multiple=True, metavar="ID", help="Report only this shop (repeatable).")
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default="table", show_default=True,
              help="html: the appeal pack of one shop's week (needs exactly one --shop).")
@click.option("--records", type=click.Choice(RECORDS), default="assessments",
              show_default=True, help="Which records --format csv prints.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the report here instead of stdout.")
def replay(shops: tuple[str, ...], fmt: str, records: str, out: str | None, week: str | None,
           **kw: object) -> None:
    """Rebuild a period's sessions and assessments from the raw input topics.

    Prints the report of `chatsla audit` for the sessions opened in [--from, --to) and the
    weeks starting in it, with the watermark finished at --to; the shops' weeks that the range
    cuts are named, with why they are left out. --week YYYY-MM-DD reports every shop's own week
    of that Monday instead, each in its time zone, final. --format html writes the appeal pack
    of one shop's week: --shop ID with --week (or --from at the shop's local Monday 00:00 and
    --to after that week is final).
    """
    import dataclasses

    from chatsla import report as render
    from chatsla.core.timefmt import format_time
    from chatsla.replay import period_notes, replay_async, week_label, week_period

    if fmt == "html" and len(shops) != 1:
        raise UsageError("--format html is the appeal pack of one shop's week: give exactly one --shop")
    label = None
    if week is not None:
        if kw.get("from_") is not None or kw.get("to") is not None:
            raise UsageError("--week replaces --from and --to: give either --week or both --from and --to")
        try:
            label = week_label(week.strip())
        except ValueError as e:
            raise UsageError(f"--week: {e}") from None
        # the policy's reply window and the lateness set how long the week takes to be final
        lateness = engine_config(kw["allowed_lateness"], kw.get("default_timezone", "UTC")).allowed_lateness
        wp = week_period(label, _policies(kw.get("policy_specs", ()))[0], lateness)
        kw["from_"], kw["to"] = format_time(wp.start), format_time(wp.end)
    elif kw.get("from_") is None or kw.get("to") is None:
        raise UsageError("give --week YYYY-MM-DD (every shop's own week), or both --from and --to")
    kin, period, (policy, *others), config, parallel = _setup(kw)
    if label is not None:
        period = dataclasses.replace(period, week=label)
    with _progress("replay") as progress:
        result = _run(replay_async(kin, period, policy, config, shops or None, progress, parallel=parallel,
                                   shop_counts=fmt == "html", policies=others))
    report = result.report
    notes, warning = period_notes(result)
    if fmt == "html":
        from chatsla.appeal import render_appeal

        shop = shops[0]
        zone = result.shop_zones.get(shop)
        if zone is None:
            raise UsageError(f"shop {shop!r} has no events in the replayed input")
        if label is not None:
            weeks = [label] if any(a["week_start"] == label for a in report.assessments) else []
        else:
            weeks = sorted(lbl for (s, lbl), (start, _) in result.week_bounds.items()
                           if s == shop and start == period.start)
        if not weeks:
            raise UsageError(_no_appeal_week(result, shop, zone, label))
        text = render_appeal(report, shop, weeks[0], policy, counts=result.shop_counts[shop], zone=zone,
                             bounds=result.week_of(shop, weeks[0]), unnamed_invalid=result.unnamed_invalid)
        data = text.encode("utf-8")
    elif fmt == "json":
        data = render.to_json(report)
    elif fmt == "csv":
        data = render.to_csv(report, records).encode("utf-8")
    else:
        from rich.console import Console

        f = _open_out(out, binary=False)
        no_weeks = (f"No shop has an assessment of the week {label} in this input." if label is not None else
                    "No week starting in [--from, --to) has ended by --to (see below).")
        if f is None:
            console = stdout_console()
            render.print_table(report, console, no_weeks)
            _print_notes(console, notes, warning, label)
        else:
            def table() -> None:
                with f:
                    console = Console(file=f, width=120)
                    render.print_table(report, console, no_weeks)
                    _print_notes(console, notes, warning, label)

            _write_out(out, table)  # type: ignore[arg-type]
        return
    f = _open_out(out)
    if f is None:
        write_stdout(data)
    else:
        def write() -> None:
            with f:
                f.write(data)

        _write_out(out, write)  # type: ignore[arg-type]
    # json, csv and html are for programs and files: the notes go to stderr, the data stays as it is
    for n in notes:
        if n.kind != "week":
            click.echo(f"note: {n.text()}", err=True)
    if warning:
        click.echo(f"warning: {warning}", err=True)


def _print_notes(console, notes: list, warning: str | None, label: str | None) -> None:
    """Under the table: each shop's own week (--week), or the weeks the --from/--to range cuts, and why."""
    from rich.markup import escape

    if label is not None and notes:
        console.print(f"Each shop's own week {label} (UTC bounds; final from --to):", highlight=False)
    elif notes:
        console.print("Weeks this range cuts (not in the table above):", highlight=False)
    for n in notes:
        console.print(escape("  " + n.text()), soft_wrap=True, highlight=False)
    if warning:
        console.print(escape(f"warning: {warning}"), soft_wrap=True, highlight=False)


def _no_appeal_week(result, shop: str, zone: str, label: str | None) -> str:
    """Why there is no appeal pack for the shop's week, and the flags that give one."""
    from chatsla.core.timefmt import format_time

    period = result.period
    if label is not None:
        return (f"shop {shop!r} ({zone}) has no assessment of the week {label} in the input "
                f"(no buyer message that week, or its topics hold no data of it)")
    weeks_of_shop = sorted((abs(start - period.start), start, lbl)
                           for (s, lbl), (start, _) in result.week_bounds.items() if s == shop)
    hint = ""
    if weeks_of_shop:
        _, start, lbl = weeks_of_shop[0]
        hint = f"; its week {lbl} starts at {format_time(start)}: use --week {lbl}"
    return (f"no assessed week of shop {shop!r} starts at --from {format_time(period.start)} "
            f"(its time zone is {zone}{hint}); --from must be the shop's local Monday 00:00 "
            f"and --to after that week's end")


@click.command()
@kafka_options
@_period_options
@click.option("--out", required=True, type=click.Path(dir_okay=False), metavar="FILE.jsonl[.gz]",
              help="Where to write the records (gzip when the name ends in .gz).")
def export(out: str, **kw: object) -> None:
    """Write a period's raw input records (chat, ticket, after-sales and shop topics, original bytes) in replay order.

    The records are exactly those `chatsla replay` reads for the same flags (lookback
    included), one per line, so `chatsla audit FILE --until TO` reproduces the replay; see
    the chatsla.replay package docstring for the precise equivalence.
    """
    from chatsla.replay import export_async, open_output

    kin, period, _, config, _ = _setup(kw, engine=False)
    try:
        f = open_output(out)
    except OSError as e:
        raise OutputError(f"cannot write {out}: {e.strerror}") from None
    try:
        with _progress("export") as progress:
            try:
                with f:
                    summary = _run(export_async(kin, period, f, config.allowed_lateness, progress), out)
            except OSError as e:  # closing flushes the last block: a full disk shows here too
                raise OutputError(f"cannot write {out}: {e.strerror or e}") from None
    except BaseException:
        from pathlib import Path

        if Path(out).is_file():  # no half-written export left behind (never a device: --out /dev/full)
            Path(out).unlink(missing_ok=True)
        raise
    parts = ", ".join(f"{r.source}@{r.start}-{r.stop if r.stop is not None else r.end}" for r in summary.ranges)
    click.echo(f"exported {summary.records} records to {out} ({parts})", err=True)


@click.command()
@kafka_options
@_period_options
@_engine_options
@click.option("--shop", "shops", multiple=True, metavar="ID", help="Verify only this shop (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="table for people, json for programs (every difference with its cause).")
def verify(shops: tuple[str, ...], fmt: str, **kw: object) -> None:
    """Compare the live outputs with a replay of the period; exit 1 when they differ.

    Reads the latest record per session and per shop-week of chatsla.sessions and
    chatsla.assessments, per ticket, wait, after-sales request and period of chatsla.tickets,
    chatsla.waits, chatsla.aftersale and chatsla.periods, and lists every difference (key, field, live value, replay value);
    differences explained by events that arrived later than the allowed lateness are marked
    late, with those events. Choose --to at or before the live watermark.
    """
    import orjson

    from chatsla.replay import verify_async

    kin, period, (policy, *others), config, parallel = _setup(kw)
    with _progress("verify") as progress:
        result = _run(verify_async(kin, period, policy, config, shops or None, progress, parallel, others))
    if fmt == "json":
        write_stdout(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        _print_verify(result)
    sys.stdout.flush()
    if result.differences:
        sys.exit(1)  # not click's Exit: chatsla.cli.main runs click with standalone_mode=False


def _print_verify(result) -> None:
    from chatsla.core.timefmt import format_time

    out = sys.stdout
    p = result.replay.period
    d = result.to_dict()["compared"]
    out.write(f"verify {format_time(p.start)} .. {format_time(p.end)} under "
              f"{result.replay.policy.id}@{result.replay.policy.version}: compared {d['sessions']} sessions "
              f"({d['sessions_open_at_to']} open at --to) and {d['assessments']} assessments "
              f"({d['assessments_provisional_at_to']} provisional at --to)"
              + "".join(f", {d[k]} {k} ({d[k + '_unsettled_at_to']} unsettled at --to)"
                        for k in ("tickets", "waits", "requests", "periods") if k in d) + "\n")
    for e in result.replay.late:
        out.write(f"late event {e.event_id} ({e.shop_id}"
                  f"{'/' + e.conversation_id if e.conversation_id else ''}, sent {format_time(e.t)}, "
                  f"{e.source}@{e.offset}): {e.arrival.replace('_', ' ')}\n")
    if not result.differences:
        out.write("no differences\n")
        return
    rows = [("kind", "shop", "key", "field", "live", "replay", "cause")]
    for x in result.differences:
        cause = ("late: " + ", ".join(x.late_events)) if x.late else (
            "lookback: earlier sessions not replayed (--lookback all)" if x.cause == "lookback" else "-")
        rows.append((x.kind, x.shop_id, x.key, x.field, _show(x.live), _show(x.replay), cause))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")
    late = sum(1 for x in result.differences if x.late)
    numbering = sum(1 for x in result.differences if x.cause == "lookback")
    out.write(f"{len(result.differences)} differences ({late} explained by late events"
              + (f", {numbering} by session numbers restarting at the lookback window" if numbering else "") + ")\n")


def _show(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):  # a rate: 4 decimals, not a float's 17 digits
        return f"{v:.4f}"
    return str(v)
