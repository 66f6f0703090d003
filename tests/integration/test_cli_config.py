"""``chatsla simulate --bootstrap`` honours the Kafka security options, -X properties and
``--topic-prefix`` (issue #13, "Configuration"), against the real private broker.

Before, simulate had none of these flags (``No such option``) and always produced to the
unprefixed topics with a plaintext, unauthenticated client whatever the environment said. The
test broker has a PLAINTEXT listener only (chatsla.dev.broker), so "the security settings reach
the producer" is shown the way tests/integration/test_cli_broker.py shows it for replay: settings
this broker must refuse (TLS, a SASL login) make the run fail in one line, exit 1.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from tests.cli.test_cli import chatsla_exe, one_error_line
from tests.cli.test_cli_config import CLEAN

SIM = ["simulate", "--shops", "2", "--conversations", "5", "--quiet"]
WIDE = ["--from", "2026-10-26T00:00:00Z", "--to", "2026-11-30T00:00:00Z", "--lookback", "all"]


def chatsla(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*chatsla_exe(), *args], capture_output=True, timeout=180, stdin=subprocess.DEVNULL,
                          env={**CLEAN, **(env or {})}, cwd=cwd)


def test_simulate_produces_to_the_prefixed_topics(kafka_broker, tmp_path: Path) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    expected = chatsla(*SIM).stdout.count(b"\n")
    produced = chatsla(*SIM, "--bootstrap", kafka_broker.bootstrap, "--topic-prefix", prefix)
    assert produced.returncode == 0, produced.stderr.decode()
    assert f"{prefix}chat.messages".encode() in produced.stderr
    out = tmp_path / "back.jsonl"
    # the same prefix from the environment: export reads exactly what simulate wrote
    back = chatsla("export", "--bootstrap", kafka_broker.bootstrap, *WIDE, "--out", str(out),
                   env={"CHATSLA_TOPIC_PREFIX": prefix})
    assert back.returncode == 0, back.stderr.decode()
    assert out.read_bytes().count(b"\n") == expected > 0


def test_simulate_produces_douyin_tickets_to_the_prefixed_ticket_topic(kafka_broker) -> None:
    """Issue #12, RULES R9.1: with ``--platforms`` including douyin, the ticket.event/v1 records go
    to ``<prefix>ticket.events`` (created by simulate like the chat topic), and only there."""
    from chatsla.streams.admin import read_values

    prefix = f"d{uuid.uuid4().hex[:8]}."
    args = ["simulate", "--platforms", "tiktok_shop,douyin", "--shops", "1", "--conversations", "3",
            "--douyin-shops", "1", "--tickets", "5", "--quiet"]
    expected = [line for line in chatsla(*args).stdout.splitlines() if b'"ticket.event/v1"' in line]
    produced = chatsla(*args, "--bootstrap", kafka_broker.bootstrap, "--topic-prefix", prefix)
    assert produced.returncode == 0, produced.stderr.decode()
    assert f"{prefix}ticket.events".encode() in produced.stderr
    assert sorted(read_values(kafka_broker.bootstrap, f"{prefix}ticket.events")) == sorted(expected) != []
    assert not any(b"ticket.event/v1" in v for v in read_values(kafka_broker.bootstrap, f"{prefix}chat.messages"))


@pytest.mark.parametrize("how", ["flags", "config", "x"])
def test_simulate_honours_the_security_settings(kafka_broker, tmp_path: Path, how: str) -> None:
    secret = tmp_path / "kafka.pass"
    secret.write_text("wrong\n")
    if how == "flags":  # a SASL login this broker does not offer, the password from a file
        extra = ["--security-protocol", "SASL_PLAINTEXT", "--sasl-mechanism", "SCRAM-SHA-256",
                 "--sasl-username", "nobody", "--sasl-password-file", str(secret)]
    elif how == "config":  # the same from the config file's [kafka] table, kcat's names
        (tmp_path / "c.toml").write_text(
            "[kafka]\n'security.protocol' = 'SASL_PLAINTEXT'\n'sasl.mechanisms' = 'SCRAM-SHA-256'\n"
            "'sasl.username' = 'nobody'\n'sasl.password' = 'wrong'\n")
        extra = ["--config", "c.toml"]
    else:  # TLS spoken to a plaintext port, through -X
        extra = ["-X", "security.protocol=SSL"]
    result = chatsla(*SIM, "--bootstrap", kafka_broker.bootstrap, "--topic-prefix", f"s{uuid.uuid4().hex[:8]}.",
                     *extra, cwd=tmp_path)
    one_error_line(result, code=1, prefix="simulate:", names=kafka_broker.bootstrap)
