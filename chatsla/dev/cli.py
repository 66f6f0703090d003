"""``chatsla dev up|down|status``: the local Kafka broker for development (see broker.py)."""

from __future__ import annotations

from pathlib import Path

import click

from chatsla.dev.broker import BrokerConfig, BrokerError, start, status, stop


class DevError(click.ClickException):
    exit_code = 2


def _config(port: int, data_dir: str, cache_dir: str | None) -> BrokerConfig:
    kw = {"port": port, "data_dir": Path(data_dir)}
    if cache_dir:
        kw["cache_dir"] = Path(cache_dir)
    return BrokerConfig(**kw)


_port = click.option("--port", envvar="CHATSLA_KAFKA_PORT", type=click.IntRange(1, 65534), default=9092,
                     show_default=True, help="Broker port (the controller uses the next one).")
_data = click.option("--data-dir", envvar="CHATSLA_KAFKA_DATA_DIR", default=".chatsla/kafka", show_default=True)
_cache = click.option("--cache-dir", envvar="CHATSLA_CACHE", help="Where the Kafka jars are kept.")


@click.group()
def dev() -> None:
    """A local single-node Apache Kafka broker (KRaft) from the official jars."""


@dev.command()
@_port
@_data
@_cache
def up(port: int, data_dir: str, cache_dir: str | None) -> None:
    """Start the broker and wait until it answers."""
    config = _config(port, data_dir, cache_dir)
    try:
        pid = start(config)
    except BrokerError as e:
        raise DevError(str(e)) from None
    click.echo(f"kafka {config.bootstrap} (pid {pid}, data {config.data_dir})")


@dev.command()
@_port
@_data
def down(port: int, data_dir: str) -> None:
    """Stop the broker."""
    config = _config(port, data_dir, None)
    click.echo("stopped" if stop(config) else "no broker was running")


@dev.command(name="status")
@_port
@_data
def status_cmd(port: int, data_dir: str) -> None:
    """Is the broker running and answering?"""
    s = status(_config(port, data_dir, None))
    state = "running" if s.running else "stopped"
    click.echo(f"{state}; bootstrap {s.bootstrap}; answering: {'yes' if s.answering else 'no'}; "
               f"pid {s.pid or '-'}; kafka {s.version}")
    if not s.running:
        raise SystemExit(1)
