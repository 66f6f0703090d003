"""Configuration a new user expects (issue #13, "Configuration"): every option from a ``CHATSLA_*``
variable shown in ``--help``, a ``--config`` TOML file, ``-X`` Kafka client properties, passwords
from the environment or a file, and the precedence flag > environment > config file > default.

Most tests run the installed ``chatsla`` entry point in a subprocess (tests/cli/test_cli.py's ``run``),
as a user does; the property mapping is checked on :class:`streams.settings.KafkaSecurity`, the
one place that spells the properties for kafka-python, aiokafka and Faust.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import click
import orjson
import pytest

from chatsla.streams import kafka_properties
from chatsla.cli import security_settings, cli
from chatsla.config import _all_commands, iter_env_names
from chatsla.core.errors import UsageError
from chatsla.streams.settings import KafkaSecurity
from tests.cli.test_cli import SAMPLE, chatsla_exe, one_error_line

UNTIL = ["--until", "2026-11-17T00:10:00Z"]
CLEAN = {k: v for k, v in os.environ.items() if not k.startswith("CHATSLA_")}


def run(args: list[str], env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The entry point with only the CHATSLA_* variables given here (none inherited)."""
    return subprocess.run([*chatsla_exe(), *args], capture_output=True, timeout=120, stdin=subprocess.DEVNULL,
                          env={**CLEAN, **(env or {})}, cwd=cwd)


def all_commands() -> dict[tuple[str, ...], click.Command]:
    return _all_commands(cli)


# ----------------------------------------------------------------------------- environment


def test_every_option_of_every_command_has_its_variables() -> None:
    """Issue #13: "every option of every command can come from a CHATSLA_* environment variable".
    Each option reads CHATSLA_<COMMAND>_<OPTION> (that command only) then CHATSLA_<OPTION> (shared),
    and --help says so; every command takes --config."""
    commands = all_commands()
    assert {("audit",), ("simulate",), ("replay",), ("worker",), ("dev", "up"), ("policies",)} <= set(commands)
    for path, cmd in commands.items():
        names = [p.name for p in cmd.params]
        assert "config_file" in names, path
        for p in cmd.params:
            if not isinstance(p, click.Option) or not p.expose_value:
                continue
            envvars = list(iter_env_names(click.Command("x", params=[p])))
            assert envvars and all(v.startswith("CHATSLA_") for v in envvars), (path, p.name, envvars)
            assert envvars[0].startswith("CHATSLA_" + "_".join(path).upper() + "_"), (path, envvars)
            assert len(envvars) == 2, (path, envvars)  # the command's own, then the shared one
            assert p.show_envvar, (path, p.name)


@pytest.mark.parametrize("path", [("audit",), ("simulate",), ("verify",), ("dev", "up")])
def test_help_shows_the_variables(path: tuple[str, ...]) -> None:
    result = run([*path, "--help"])
    assert result.returncode == 0, result.stderr.decode()
    text = " ".join(result.stdout.decode().split())  # help wraps lines
    cmd = all_commands()[path]
    for p in cmd.params:
        if isinstance(p, click.Option) and p.expose_value and not p.hidden:
            for var in iter_env_names(click.Command("x", params=[p])):
                assert var in text, (path, var)


def test_a_bad_value_from_the_environment_is_the_flags_usage_error_naming_the_variable() -> None:
    """Issue #13: ``CHATSLA_ALLOWED_LATENESS=bogus`` was silently ignored (audit had no variable)
    although the docs promise it. Now it is the flag's one-line usage error (exit 2), naming the
    variable instead of the flag."""
    flag = run(["audit", str(SAMPLE), "--allowed-lateness", "bogus"])
    env = run(["audit", str(SAMPLE)], env={"CHATSLA_ALLOWED_LATENESS": "bogus"})
    flag_line = one_error_line(flag, code=2, prefix="chatsla audit: error: --allowed-lateness", names="'bogus'")
    env_line = one_error_line(env, code=2, prefix="chatsla audit: error: CHATSLA_ALLOWED_LATENESS", names="'bogus'")
    assert env_line.replace("CHATSLA_ALLOWED_LATENESS", "--allowed-lateness") == flag_line


@pytest.mark.parametrize(("args", "env", "names"), [
    (["audit", str(SAMPLE)], {"CHATSLA_MAX_RECORD_BYTES": "0"}, "environment variable CHATSLA_MAX_RECORD_BYTES"),
    (["audit", str(SAMPLE)], {"CHATSLA_AUDIT_FORMAT": "xml"}, "environment variable CHATSLA_AUDIT_FORMAT"),
    (["audit", str(SAMPLE)], {"CHATSLA_UNTIL": "monday"}, "CHATSLA_UNTIL must be an RFC 3339"),
    (["audit", str(SAMPLE)], {"CHATSLA_DEFAULT_TIMEZONE": "Mars/Olympus"}, "CHATSLA_DEFAULT_TIMEZONE: unknown"),
    (["simulate"], {"CHATSLA_SHOPS": "0"}, "environment variable CHATSLA_SHOPS"),
    (["dev", "status"], {"CHATSLA_FORMAT": "xml"}, "environment variable CHATSLA_FORMAT"),
    (["worker"], {"CHATSLA_PARTITIONS": "0"}, "environment variable CHATSLA_PARTITIONS"),
])
def test_bad_values_from_the_environment_name_the_variable(args, env, names) -> None:
    result = run(args, env=env)
    assert result.returncode == 2, result.stderr.decode()
    line = result.stderr.decode().strip()
    assert len(line.splitlines()) == 1 and names in line, line


# ------------------------------------------------------------------------------ precedence


def audit_format(cwd: Path, *flags: str, env: dict | None = None) -> str:
    """Which --format the audit used, from what it printed."""
    result = run(["audit", str(SAMPLE), *UNTIL, *flags], env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    if out.startswith("{"):
        return "json"
    if out.startswith("shop_id,"):
        return "csv"
    return "table"


def test_precedence_flag_environment_config_file_default(tmp_path: Path) -> None:
    """Issue #13: "Precedence: flag > environment > config file > default; test it". Each layer
    added on top of the previous ones changes the format the audit prints."""
    config = tmp_path / "chatsla.toml"
    config.write_text('[audit]\nformat = "csv"\n')
    assert audit_format(tmp_path) == "table"  # the default
    assert audit_format(tmp_path, "--config", str(config)) == "csv"  # the file beats the default
    assert audit_format(tmp_path, env={"CHATSLA_CONFIG": str(config)}) == "csv"  # the file, named by a variable
    assert audit_format(tmp_path, "--config", str(config), env={"CHATSLA_FORMAT": "json"}) == "json"
    assert audit_format(tmp_path, "--config", str(config), "--format", "table",
                        env={"CHATSLA_FORMAT": "json"}) == "table"  # the flag beats them all
    # the command's own variable beats the shared one
    assert audit_format(tmp_path, env={"CHATSLA_FORMAT": "json", "CHATSLA_AUDIT_FORMAT": "csv"}) == "csv"


def test_config_file_top_level_keys_and_command_tables(tmp_path: Path) -> None:
    """Top-level keys apply to every command that has the option; a command's table overrides them."""
    config = tmp_path / "chatsla.toml"
    config.write_text('format = "json"\nshop = "shop-03"\n[policies]\nformat = "table"\n')
    audit = run(["audit", str(SAMPLE), *UNTIL, "--config", str(config)])
    assert audit.returncode == 0, audit.stderr.decode()
    report = orjson.loads(audit.stdout)
    assert {a["shop_id"] for a in report["assessments"]} == {"shop-03"}  # a repeatable option from a string
    policies = run(["policies", "--config", str(config)])
    assert policies.returncode == 0 and not policies.stdout.startswith(b"[")  # [policies] beat the top level


def test_the_audit_output_is_the_same_whatever_the_source(tmp_path: Path) -> None:
    """The same settings from flags, variables or the file give byte-identical reports."""
    config = tmp_path / "c.toml"
    config.write_text('[audit]\nformat = "json"\nallowed-lateness = "5min"\ndefault-timezone = "Asia/Bangkok"\n')
    by_flags = run(["audit", str(SAMPLE), *UNTIL, "--format", "json", "--allowed-lateness", "5min",
                    "--default-timezone", "Asia/Bangkok"])
    by_env = run(["audit", str(SAMPLE), *UNTIL], env={"CHATSLA_FORMAT": "json", "CHATSLA_ALLOWED_LATENESS": "5min",
                                                      "CHATSLA_DEFAULT_TIMEZONE": "Asia/Bangkok"})
    by_file = run(["audit", str(SAMPLE), *UNTIL, "--config", str(config)])
    default = run(["audit", str(SAMPLE), *UNTIL, "--format", "json"])
    assert by_flags.returncode == by_env.returncode == by_file.returncode == 0
    assert by_flags.stdout == by_env.stdout == by_file.stdout != default.stdout


@pytest.mark.parametrize(("text", "names"), [
    ("partitons = 3\n", "unknown option 'partitons' at top level"),
    ("[wroker]\npartitions = 3\n", "unknown table [wroker]"),
    ("[audit]\npartitions = 3\n", "unknown option 'partitions' at [audit]"),
    ("[audit.kafka]\n'ssl.key.password' = 'x'\n", "talks to no Kafka cluster"),
    ("[audit]\nallowed-lateness = 'bogus'\n", "allowed-lateness in c.toml [audit] must be a duration"),
    ("[audit]\nmax-record-bytes = 0\n", "Invalid value for max-record-bytes in c.toml [audit]"),
    ("[audit]\nformat = ['json']\n", "format in c.toml [audit] takes one value"),
    ("format = \n", "is not valid TOML"),
])
def test_config_file_mistakes_are_one_line_naming_the_file(tmp_path: Path, text: str, names: str) -> None:
    """A typo in the file is never silently ignored: one line, exit 2, naming the file and key."""
    (tmp_path / "c.toml").write_text(text)
    one_error_line(run(["audit", str(SAMPLE), "--config", "c.toml"], cwd=tmp_path), code=2,
                   prefix="chatsla audit: error:", names=names)


def test_a_missing_config_file_is_a_usage_error(tmp_path: Path) -> None:
    one_error_line(run(["policies", "--config", "nope.toml"], cwd=tmp_path), code=2,
                   prefix="chatsla policies: error:", names="config file not found: nope.toml")
    one_error_line(run(["policies"], env={"CHATSLA_CONFIG": "nope.toml"}, cwd=tmp_path), code=2,
                   prefix="chatsla policies: error:", names="nope.toml")


# ------------------------------------------------------------------ Kafka client properties


def test_properties_are_spelled_for_each_client(tmp_path: Path) -> None:
    """-X takes Java/kcat names; KafkaSecurity spells them for kafka-python, aiokafka and Faust."""
    parsed = kafka_properties.parse([
        ("security.protocol", "sasl_ssl", "-X security.protocol"),
        ("sasl.mechanisms", "SCRAM-SHA-512", "-X sasl.mechanisms"),
        ("sasl.jaas.config", 'org.apache.kafka.common.security.scram.ScramLoginModule required '
                             'username="alice" password="s3cr\\"et";', "-X sasl.jaas.config"),
        ("ssl.endpoint.identification.algorithm", "none", "-X ..."),
        ("metadata.max.age.ms", "60000", "-X metadata.max.age.ms"),
        ("connections.max.idle.ms", "30000", "-X connections.max.idle.ms"),
    ])
    assert parsed.security == {"protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "alice",
                               "sasl_password": 's3cr"et', "ssl_check_hostname": False}
    sec = KafkaSecurity(**parsed.security, tuning=parsed.tuning)
    kp, aio, faust = sec.kafka_python_kwargs(), sec.aiokafka_kwargs(), sec.faust_settings()
    assert kp["metadata_max_age_ms"] == aio["metadata_max_age_ms"] == 60000
    assert kp["connections_max_idle_ms"] == aio["connections_max_idle_ms"] == 30000
    assert kp["ssl_check_hostname"] is False and aio["ssl_context"].check_hostname is False
    assert kp["sasl_plain_username"] == aio["sasl_plain_username"] == "alice"
    assert faust == {"consumer_metadata_max_age_ms": 60000, "producer_metadata_max_age_ms": 60000,
                     "consumer_connections_max_idle_ms": 30000, "producer_connections_max_idle_ms": 30000}
    # every argument is one the clients take (a wrong spelling is a TypeError at connect time)
    from aiokafka import AIOKafkaConsumer
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient

    import inspect

    aio_args = inspect.signature(AIOKafkaConsumer).parameters
    assert set(aio) <= set(aio_args)
    assert set(kp) <= set(KafkaProducer.DEFAULT_CONFIG) and set(kp) <= set(KafkaAdminClient.DEFAULT_CONFIG)
    from faust.types.settings import Settings

    assert all(hasattr(Settings, name) for name in faust)


@pytest.mark.parametrize(("flag", "names"), [
    ("foo.bar=1", "-X foo.bar: unknown Kafka property 'foo.bar'"),
    ("acks=1", "-X acks: Kafka property acks cannot be set"),
    ("ssl.truststore.location=x.jks", "ssl.ca.location"),
    ("metadata.max.age.ms=soon", "-X metadata.max.age.ms must be a whole number"),
    ("security.protocol=SSH", "must be one of PLAINTEXT"),
    ("novalue", "must be key=value"),
])
def test_bad_properties_are_one_line(flag: str, names: str) -> None:
    one_error_line(run(["simulate", "--conversations", "1", "-X", flag]), code=2,
                   prefix="chatsla simulate: error:", names=names)


def test_properties_from_the_config_file_and_the_environment_name_their_source(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text("[kafka]\n'foo.bar' = 1\n")
    one_error_line(run(["verify", "--from", "2026-11-02T00:00:00Z", "--to", "2026-11-03T00:00:00Z",
                        "--config", "c.toml"], cwd=tmp_path),
                   code=2, prefix="chatsla verify: error:", names="foo.bar in c.toml [kafka]")
    one_error_line(run(["simulate", "--conversations", "1"], env={"CHATSLA_KAFKA_PROPERTY": "acks=0"}),
                   code=2, prefix="chatsla simulate: error:", names="CHATSLA_KAFKA_PROPERTY (acks)")


def security(**kw) -> KafkaSecurity:
    base = {"security_protocol": "PLAINTEXT", "sasl_mechanism": None, "sasl_username": None, "sasl_password": None,
            "ssl_cafile": None, "ssl_certfile": None, "ssl_keyfile": None, "sasl_password_file": None,
            "kafka_property": ()}
    return security_settings({**base, **kw})


def test_the_password_comes_from_a_file(tmp_path: Path) -> None:
    """Issue #13: passwords from the environment or a file, never only from the command line."""
    secret = tmp_path / "kafka.pass"
    secret.write_text("s3cret\n")
    sec = security(security_protocol="SASL_SSL", sasl_mechanism="PLAIN", sasl_username="u",
                   sasl_password_file=str(secret))
    assert sec.sasl_password == "s3cret"  # the first line, without its line end
    with pytest.raises(UsageError, match="give one of them"):
        security(sasl_password="x", sasl_password_file=str(secret))
    with pytest.raises(UsageError, match="file not found"):
        security(sasl_password_file=str(tmp_path / "missing"))
    secret.write_text("")
    with pytest.raises(UsageError, match="is empty"):
        security(sasl_password_file=str(secret))


def test_a_security_property_stands_for_its_flag() -> None:
    sec = security(kafka_property=("security.protocol=SASL_PLAINTEXT", "sasl.mechanism=PLAIN", "sasl.username=u",
                                   "sasl.password=p"))
    assert (sec.protocol, sec.sasl_mechanism, sec.sasl_username, sec.sasl_password) == (
        "SASL_PLAINTEXT", "PLAIN", "u", "p")


def test_the_password_file_option_from_the_command_line(tmp_path: Path) -> None:
    """--sasl-password-file on a real command: a missing file is one usage line naming it."""
    one_error_line(run(["simulate", "--conversations", "1", "--sasl-password-file", "nope.pass"], cwd=tmp_path),
                   code=2, prefix="chatsla simulate: error:", names="nope.pass")
    one_error_line(run(["simulate", "--conversations", "1"], env={"CHATSLA_SASL_PASSWORD_FILE": "nope.pass"},
                       cwd=tmp_path), code=2, prefix="chatsla simulate: error:", names="CHATSLA_SASL_PASSWORD_FILE")


# ------------------------------------------------------------------------------ completion


@pytest.mark.parametrize(("shell", "marker"), [("bash", "complete -o nosort -F"), ("zsh", "#compdef chatsla"),
                                               ("fish", "complete --no-files --command chatsla")])
def test_shell_completion_script_is_produced(shell: str, marker: str) -> None:
    """Issue #13: docs/cli.md documents ``_CHATSLA_COMPLETE=bash_source chatsla``; the script
    comes out on stdout with exit 0 (through chatsla.cli.main, which runs click non-standalone)."""
    result = run([], env={"_CHATSLA_COMPLETE": f"{shell}_source"})
    assert result.returncode == 0, result.stderr.decode()
    assert marker in result.stdout.decode(), result.stdout.decode()[:500]


def test_completion_completes_commands_and_options() -> None:
    result = run([], env={"_CHATSLA_COMPLETE": "bash_complete", "COMP_WORDS": "chatsla au", "COMP_CWORD": "1"})
    assert result.returncode == 0 and "plain,audit" in result.stdout.decode(), result.stdout.decode()
    result = run([], env={"_CHATSLA_COMPLETE": "bash_complete", "COMP_WORDS": "chatsla audit --allowed-l",
                          "COMP_CWORD": "2"})
    assert "plain,--allowed-lateness" in result.stdout.decode(), result.stdout.decode()


def test_the_documented_example_file_is_valid_for_every_command(tmp_path: Path) -> None:
    """docs/chatsla.example.toml, the file docs/cli.md shows, is accepted as it is."""
    from tests.cli.test_cli import REPO

    example = REPO / "docs" / "chatsla.example.toml"
    (tmp_path / "kafka.pass").write_text("x\n")
    text = example.read_text().replace("/etc/chatsla/kafka.pass", str(tmp_path / "kafka.pass"))
    (tmp_path / "c.toml").write_text(text)
    result = run(["policies", "--config", "c.toml"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    audit = run(["audit", str(SAMPLE), *UNTIL, "--config", "c.toml"], cwd=tmp_path)
    assert audit.returncode == 0 and audit.stdout.startswith(b"{"), audit.stderr.decode()
