"""The allowed lateness has one default, the core's (issue #11: it was written in five places)."""

from __future__ import annotations

from chatsla.cli import LATENESS_DEFAULT, duration_text
from chatsla.core.engine import EngineConfig
from chatsla.core.timefmt import parse_duration
from chatsla.streams.settings import WorkerSettings


def test_the_worker_and_every_command_take_the_lateness_default_from_the_engine_config() -> None:
    default = EngineConfig().allowed_lateness
    assert WorkerSettings().allowed_lateness_us == default
    assert parse_duration(LATENESS_DEFAULT) == default
    assert LATENESS_DEFAULT == "2min"  # R6.2, as the help texts have always shown it


def test_a_duration_is_shown_in_the_largest_exact_unit() -> None:
    for us, text in ((120_000_000, "2min"), (90_000_000, "90s"), (3_600_000_000, "1h"), (86_400_000_000, "1d"),
                     (1_500, "0.0015s"), (0, "0s"), (250_000, "250ms")):
        assert duration_text(us) == text
        assert parse_duration(text) == us


def test_every_commands_allowed_lateness_flag_defaults_to_it() -> None:
    import click

    from chatsla.cli import cli

    ctx = click.Context(cli)
    found = {}
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        for param in getattr(command, "params", ()):
            if "--allowed-lateness" in getattr(param, "opts", ()):
                found[name] = param.default
    assert set(found) >= {"audit", "replay", "export", "verify", "worker"}
    assert set(found.values()) == {LATENESS_DEFAULT}
