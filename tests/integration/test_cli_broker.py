"""Broker failures of ``chatsla replay``/``export``/``verify`` against the real broker: one line on
stderr and exit code 1, never aiokafka's traceback (issue #10 finding 9).

The finding was bad SASL credentials (a 30-line traceback). The private test broker has no SASL
listener (chatsla.dev.broker starts a PLAINTEXT one), so these tests drive the same code path, a
connection that the broker refuses during the handshake, with the two wrong settings this broker
can answer: a SASL login it does not offer, and TLS spoken to a plaintext port.
tests/cli/test_cli.py covers an unreachable bootstrap and the exit codes of every command.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.cli.test_cli import PERIOD, chatsla_exe, one_error_line

WRONG = {
    "sasl": ["--security-protocol", "SASL_PLAINTEXT", "--sasl-mechanism", "SCRAM-SHA-256",
             "--sasl-username", "nobody", "--sasl-password", "wrong"],
    "tls": ["--security-protocol", "SSL"],
}


@pytest.mark.parametrize("command", ["replay", "export", "verify"])
@pytest.mark.parametrize("wrong", sorted(WRONG))
def test_a_refused_connection_is_one_line_and_exit_1(kafka_broker, tmp_path: Path, command: str, wrong: str) -> None:
    out = tmp_path / "export.jsonl.gz"
    args = [command, *PERIOD, "--bootstrap", kafka_broker.bootstrap, "--timeout", "5", *WRONG[wrong]]
    if command == "export":
        args += ["--out", str(out)]
    result = subprocess.run([*chatsla_exe(), *args], capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    one_error_line(result, code=1, prefix=f"chatsla {command}: error:", names=kafka_broker.bootstrap)
    assert not out.exists()  # no half-written export left behind
