"""Where an option's value comes from: flag > ``CHATSLA_*`` environment > config file > default.

Issue #13. Every option of every command gets two environment variables, shown in ``--help``:
``CHATSLA_<COMMAND>_<OPTION>`` for that command only and ``CHATSLA_<OPTION>`` shared by every
command that has the option (``CHATSLA_BOOTSTRAP`` for worker, replay, export, verify and
simulate); the first one set wins. Options that already named a variable keep it as the shared
one (``CHATSLA_KAFKA_PORT`` for ``dev up --port``).

``--config FILE.toml`` (or ``CHATSLA_CONFIG``) reads defaults from a TOML file with the standard
library's :mod:`tomllib`: top-level keys apply to every command that has the option, a table per
command (``[audit]``, ``[worker]``, ``[dev.up]``) overrides them for that command, and a
``[kafka]`` table (top level or inside a command's table) holds Kafka client properties as ``-X``
takes them. The file's values are click's ``default_map``, so click itself applies the precedence:
a flag beats the environment, which beats the file, which beats the built-in default. An unknown
key or table is a one-line usage error naming the file, so a typo is never silently ignored.

A bad value is reported under the name the user gave it (:func:`source_label`): the flag,
the environment variable or the key in the config file; the error is the same one line (exit 2)
whichever it was.
"""

from __future__ import annotations

import os
import re
import tomllib
from typing import Any, Iterable

import click
from click.core import ParameterSource

from chatsla.core.errors import UsageError

PREFIX = "CHATSLA_"
CONFIG_PARAM = "config_file"
KAFKA_TABLE = "kafka"  # Kafka client properties, as -X key=value
KAFKA_PARAM = "kafka_property"
_META_ORIGIN = "chatsla.config.origin"  # param name -> "key in FILE [section]"
_META_KAFKA = "chatsla.config.kafka"  # [(key, value, label)] from the file


def _token(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").upper()


def long_name(param: click.Parameter) -> str:
    """``allowed-lateness`` for ``--allowed-lateness``: the name used in env vars and config keys."""
    longs = [o for o in param.opts if o.startswith("--")]
    return (max(longs, key=len) if longs else param.opts[0]).lstrip("-")


def _config_option() -> click.Option:
    return click.Option(
        ["--config", CONFIG_PARAM], metavar="FILE.toml", envvar="CHATSLA_CONFIG", show_envvar=True,
        is_eager=True, expose_value=False, callback=_load_config,
        help="Read option defaults from this TOML file (top-level keys for every command, a table per "
             "command, [kafka] for Kafka client properties); flags and CHATSLA_* variables take "
             "precedence. See docs/cli.md, \"Configuration\".")


def configure(cmd: click.Command, path: tuple[str, ...]) -> click.Command:
    """Give every option of ``cmd`` (and of its subcommands) its environment variables and every
    leaf command a ``--config`` option. Idempotent: commands are module-level singletons."""
    if getattr(cmd, "_chatsla_configured", False):
        return cmd
    cmd._chatsla_configured = True  # type: ignore[attr-defined]
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            configure(sub, path + (name,))
        return cmd
    for p in cmd.params:
        if not isinstance(p, click.Option) or not p.expose_value or p.name == CONFIG_PARAM:
            continue
        key = _token(long_name(p))
        if isinstance(p.envvar, str):
            shared = p.envvar
        elif p.envvar:
            shared = list(p.envvar)[-1]
        else:
            shared = PREFIX + key
        specific = PREFIX + "_".join(_token(n) for n in path) + "_" + key
        p.envvar = [specific, shared]
        p.show_envvar = True
    if not any(p.name == CONFIG_PARAM for p in cmd.params):
        cmd.params.append(_config_option())
    return cmd


def command_path(ctx: click.Context) -> tuple[str, ...]:
    """``("dev", "up")``: the names below the root command."""
    names = []
    c: click.Context | None = ctx
    while c is not None and c.parent is not None:
        names.append(c.info_name or "")
        c = c.parent
    return tuple(reversed(names))


def source_label(ctx: click.Context | None, name: str, flag: str | None = None) -> str:
    """How to name option ``name`` in an error: the environment variable or config key its value
    came from, else its flag (``--allowed-lateness``)."""
    flag = flag or "--" + name.replace("_", "-")
    if ctx is None:
        return flag
    param = next((p for p in ctx.command.params if p.name == name), None)
    if param is None:
        return flag
    if isinstance(param, click.Option):
        flag = "--" + long_name(param)
    source = ctx.get_parameter_source(name)
    if source is ParameterSource.ENVIRONMENT:
        envvars = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or ())
        for var in envvars:
            if os.environ.get(var):
                return var
    if source is ParameterSource.DEFAULT_MAP:
        origin = ctx.meta.get(_META_ORIGIN, {}).get(name)
        if origin:
            return origin
    return flag


def label(name: str, flag: str | None = None) -> str:
    """:func:`source_label` in the command being run (the flag outside a command)."""
    return source_label(click.get_current_context(silent=True), name, flag)


def relabel(e: click.BadParameter) -> None:
    """Make click's own "Invalid value for '--x'" name the variable or config key it came from."""
    ctx, param = e.ctx, e.param
    if ctx is None or param is None or param.name is None or e.param_hint is not None:
        return
    source = ctx.get_parameter_source(param.name)
    if source in (ParameterSource.ENVIRONMENT, ParameterSource.DEFAULT_MAP):
        where = source_label(ctx, param.name)
        e.param_hint = f"environment variable {where}" if source is ParameterSource.ENVIRONMENT else where


# ------------------------------------------------------------------------------------ the file


def _norm(key: str) -> str:
    return key.replace("_", "-")


def _all_commands(root: click.Command) -> dict[tuple[str, ...], click.Command]:
    """Every leaf command by path, lazily registered ones included."""
    out: dict[tuple[str, ...], click.Command] = {}

    def walk(cmd: click.Command, path: tuple[str, ...]) -> None:
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(None):  # type: ignore[arg-type]
                sub = cmd.get_command(None, name)  # type: ignore[arg-type]
                if sub is not None:
                    walk(sub, path + (name,))
        else:
            out[path] = cmd

    walk(root, ())
    return out


def _options_by_key(cmd: click.Command) -> dict[str, click.Option]:
    return {long_name(p): p for p in cmd.params
            if isinstance(p, click.Option) and p.expose_value and p.name not in (CONFIG_PARAM, KAFKA_PARAM)}


def _has_kafka(cmd: click.Command) -> bool:
    return any(p.name == KAFKA_PARAM for p in cmd.params)


def _value(param: click.Option, value: Any, where: str) -> Any:
    """A TOML value as click's default_map takes it: lists for repeatable options."""
    if isinstance(value, dict):
        raise UsageError(f"{where} must be a value, not a table")
    if param.multiple:
        return list(value) if isinstance(value, list) else [value]
    if isinstance(value, list):
        raise UsageError(f"{where} takes one value, not a list")
    return value


def _load_config(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """The --config callback (eager: it runs before the options whose defaults it sets)."""
    if not value:
        return
    try:
        with open(value, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"config file not found: {value}") from None
    except IsADirectoryError:
        raise UsageError(f"config file {value} is a directory") from None
    except OSError as e:
        raise UsageError(f"cannot read config file {value}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"config file {value} is not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise UsageError(f"config file {value} is not UTF-8 text") from None
    root = ctx.find_root().command
    commands = _all_commands(root)
    here = command_path(ctx)
    _validate(doc, commands, value)
    defaults: dict[str, Any] = {}
    origin: dict[str, str] = {}
    kafka: dict[str, tuple[str, str]] = {}
    cmd = ctx.command
    options = _options_by_key(cmd)
    # top level first, then each table on the way to this command: the nearer one wins
    tables: list[tuple[str, dict]] = [("", doc)]
    node: Any = doc
    for i, name in enumerate(here):
        node = node.get(name) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            break
        tables.append((".".join(here[: i + 1]), node))
    for section, table in tables:
        where_section = f" [{section}]" if section else ""
        for key, v in table.items():
            if key == KAFKA_TABLE and isinstance(v, dict):
                if _has_kafka(cmd):
                    for k, pv in v.items():
                        kafka[k] = (_prop_text(pv, f"{k!r} in {value} [{section + '.' if section else ''}kafka]"),
                                    f"{k} in {value} [{section + '.' if section else ''}kafka]")
                continue
            opt = options.get(_norm(key))
            if opt is None or isinstance(v, dict):
                continue  # another command's option or table (checked by _validate)
            where = f"{key} in {value}{where_section}"
            defaults[opt.name] = _value(opt, v, where)  # type: ignore[index]
            origin[opt.name] = where  # type: ignore[index]
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    ctx.meta[_META_ORIGIN] = origin
    ctx.meta[_META_KAFKA] = [(k, v, where) for k, (v, where) in kafka.items()]


def _prop_text(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise UsageError(f"{where} must be a string or a number")


def _validate(doc: dict, commands: dict[tuple[str, ...], click.Command], path: str) -> None:
    """Every key of the file names an option of some command, every table a command."""
    shared = {k for cmd in commands.values() for k in _options_by_key(cmd)}
    groups = {p[:i] for p in commands for i in range(1, len(p))}

    def check(table: dict, prefix: tuple[str, ...]) -> None:
        section = ".".join(prefix)
        where = f"[{section}]" if section else "top level"
        cmd = commands.get(prefix)
        for key, v in table.items():
            if key == KAFKA_TABLE and isinstance(v, dict):
                if cmd is not None and not _has_kafka(cmd):
                    raise UsageError(f"config file {path}: chatsla {' '.join(prefix)} talks to no Kafka "
                                     f"cluster: remove [{section}.kafka]")
                continue
            sub = prefix + (key,)
            if isinstance(v, dict):
                if sub in commands or sub in groups:
                    check(v, sub)
                    continue
                raise UsageError(f"config file {path}: unknown table [{'.'.join(sub)}] (tables name commands: "
                                 f"{', '.join(sorted('.'.join(c) for c in commands))}; or [kafka])")
            if cmd is None and prefix:
                raise UsageError(f"config file {path}: {where} is a group of commands; put {key!r} in one "
                                 f"of its commands' tables")
            known = shared if cmd is None else set(_options_by_key(cmd))
            if _norm(key) not in known:
                raise UsageError(f"config file {path}: unknown option {key!r} at {where}"
                                 + (f" (chatsla {section} --help lists them)" if section else ""))

    check(doc, ())


def config_kafka_properties(ctx: click.Context | None = None) -> list[tuple[str, str, str]]:
    """The config file's Kafka properties for the running command: ``(key, value, label)``."""
    ctx = ctx or click.get_current_context(silent=True)
    return list(ctx.meta.get(_META_KAFKA, [])) if ctx is not None else []


def iter_env_names(cmd: click.Command) -> Iterable[str]:
    """Every environment variable ``cmd`` reads (for tests and docs)."""
    for p in cmd.params:
        if isinstance(p, click.Option) and p.envvar:
            yield from ([p.envvar] if isinstance(p.envvar, str) else p.envvar)
