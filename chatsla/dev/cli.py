"""``chatsla dev up|down|status``: the local Kafka broker for development (see broker.py).

Errors are :mod:`chatsla.core.errors` exceptions, one plain line on stderr: exit code 2 for a bad
option (a port in use included: choose another), 1 when the broker cannot be started or stopped.
The group also runs on its own (``python -c "from chatsla.dev.cli import dev; dev()"``), where
click prints them. ``CHATSLA_KAFKA_PORT``,
``CHATSLA_KAFKA_DATA_DIR`` and ``CHATSLA_KAFKA_CACHE_DIR`` stand in for the options.
"""

from __future__ import annotations

from pathlib import Path

import click

from chatsla.dev.broker import BrokerAlreadyRunning, BrokerConfig, BrokerError, PortInUse, start, status, stop
from chatsla.core.errors import BrokerError as BrokerFailure
from chatsla.core.errors import ChatslaError, UsageError


class DevError(BrokerFailure):
    """The broker could not be started or stopped (exit 1)."""


class _ClickError(click.ClickException):
    """A ChatslaError as click shows it when the group runs on its own; ``chatsla.cli.main``
    prints the same one line and exit code."""

    def __init__(self, e: ChatslaError) -> None:
        super().__init__(str(e))
        self.exit_code = e.exit_code


class _DevGroup(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ChatslaError as e:
            raise _ClickError(e) from None


def _config(port: int = 9092, data_dir: str = ".chatsla/kafka", cache_dir: str | None = None) -> BrokerConfig:
    try:
        kw: dict = {"port": port, "data_dir": Path(data_dir)}
        if cache_dir:
            kw["cache_dir"] = Path(cache_dir)
        return BrokerConfig(**kw)
    except BrokerError as e:  # a port or directory that cannot be used: the options are wrong
        raise UsageError(str(e)) from None


_port = click.option("--port", envvar="CHATSLA_KAFKA_PORT", type=click.IntRange(1, 65534), default=9092,
                     show_default=True, help="Broker port; the KRaft controller uses the next one. [env CHATSLA_KAFKA_PORT]")
_data = click.option("--data-dir", envvar="CHATSLA_KAFKA_DATA_DIR", default=".chatsla/kafka", show_default=True,
                     type=click.Path(file_okay=False),
                     help="Broker state: topics, server.properties, broker.log, pid. [env CHATSLA_KAFKA_DATA_DIR]")
_cache = click.option("--cache-dir", envvar="CHATSLA_KAFKA_CACHE_DIR", type=click.Path(file_okay=False),
                      help="Where the Kafka jars are kept [default ~/.cache/chatsla/kafka; env CHATSLA_KAFKA_CACHE_DIR].")


@click.group(cls=_DevGroup)
def dev() -> None:
    """A local single-node Apache Kafka broker (KRaft) from the official jars."""


@dev.command()
@_port
@_data
@_cache
@click.option("--timeout", type=click.FloatRange(1), default=90.0, show_default=True,
              help="Seconds to wait for the broker to answer.")
def up(port: int, data_dir: str, cache_dir: str | None, timeout: float) -> None:
    """Start the broker (resolving its jars the first time) and wait until it answers."""
    config = _config(port, data_dir, cache_dir)
    try:
        start(config, wait_timeout=timeout)
    except BrokerAlreadyRunning as e:
        if not e.status.answering:
            raise DevError(f"a broker from {config.data_dir} is running (pid {e.status.pid}) but does not answer on "
                           f"{e.status.bootstrap}; see {config.log_file} or `chatsla dev down`") from None
        click.echo(e.status.bootstrap)
        click.echo(f"already running (pid {e.status.pid}, Kafka {e.status.version}, data {config.data_dir})", err=True)
        return
    except PortInUse as e:  # --port names a port something else holds: choose another
        raise UsageError(str(e)) from None
    except BrokerError as e:
        raise DevError(str(e)) from None
    st = status(config)
    click.echo(config.bootstrap)
    click.echo(f"Kafka {st.version} up (pid {st.pid}, data {config.data_dir}, log {config.log_file})", err=True)


@dev.command()
@click.option("--port", envvar="CHATSLA_KAFKA_PORT", type=int, hidden=True)  # accepted like up's; the data dir decides
@_data
def down(port: int | None, data_dir: str) -> None:
    """Stop the broker started from the data dir (SIGTERM, SIGKILL if it does not exit in 30 s)."""
    config = _config(data_dir=data_dir)
    try:
        stopped = stop(config)
    except BrokerError as e:
        raise DevError(str(e)) from None
    click.echo("stopped" if stopped else f"no broker was running from {config.data_dir}")


@dev.command(name="status")
@_port
@_data
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: one line for people; json: an object for scripts.")
def status_cmd(port: int, data_dir: str, fmt: str) -> None:
    """Is the broker running and answering? Exit code 0 if so, 1 if not running or not answering."""
    from chatsla.cli import write_stdout

    s = status(_config(port, data_dir))
    if fmt == "json":
        import orjson

        write_stdout(orjson.dumps({
            "running": s.running, "answering": s.answering, "bootstrap": s.bootstrap, "pid": s.pid,
            "kafka_version": s.version, "data_dir": str(s.data_dir), "log_file": str(s.log_file),
        }, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        state = "running" if s.running else "stopped"
        write_stdout(f"{state}; bootstrap {s.bootstrap}; answering: {'yes' if s.answering else 'no'}; "
                              f"pid {s.pid or '-'}; Kafka {s.version}; data {s.data_dir}\n".encode("utf-8"))
    if not (s.running and s.answering):
        raise SystemExit(1)
