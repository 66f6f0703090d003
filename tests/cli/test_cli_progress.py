"""Progress of ``audit`` and ``simulate`` (issue #13, "progress"): a bar on a terminal, a plain line
every 10 s otherwise, quiet for small inputs and with ``--quiet``, and never a byte of difference on
standard output.

:class:`chatsla.progress.Progress` is tested with an injected clock (no sleeps); the commands run
as subprocesses, with standard error on a pseudo-terminal where the bar is concerned.
"""

from __future__ import annotations

import io
import os
import pty
import subprocess
import threading
from pathlib import Path

import pytest

from chatsla.audit import read_records
from chatsla.progress import Progress
from tests.cli.test_cli import SAMPLE, chatsla_exe
from tests.cli.test_cli_config import CLEAN

UNTIL = ["--until", "2026-11-17T00:10:00Z"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_line_every_interval_off_a_terminal_with_rate_and_time_left() -> None:
    clock, out = Clock(), io.StringIO()
    p = Progress("chatsla audit", "bytes", 400 * 2**20, stream=out, tty=False, clock=clock)
    clock.now += 9.9
    p.update(99 * 2**20)
    assert out.getvalue() == ""  # quiet before the first interval: small inputs print nothing
    clock.now += 0.1
    p.update(100 * 2**20)
    assert out.getvalue() == "chatsla audit: 100.0 MiB of 400.0 MiB (25 %), 10.0 MiB/s, about 30 s left\n"
    clock.now += 5
    p.update(150 * 2**20)
    assert out.getvalue().count("\n") == 1  # at most one line per interval
    clock.now += 5
    p.update(200 * 2**20)
    assert out.getvalue().splitlines()[-1] == "chatsla audit: 200.0 MiB of 400.0 MiB (50 %), 10.0 MiB/s, about 20 s left"


def test_events_without_a_total_have_no_time_left() -> None:
    clock, out = Clock(), io.StringIO()
    p = Progress("chatsla simulate", "events", None, stream=out, tty=False, clock=clock)
    clock.now += 20
    p.update(50_000)
    assert out.getvalue() == "chatsla simulate: 50,000 events, 2,500 events/s\n"


def test_quiet_prints_nothing() -> None:
    clock, out = Clock(), io.StringIO()
    p = Progress("chatsla audit", "bytes", 100, quiet=True, stream=out, tty=False, clock=clock)
    clock.now += 100
    p.update(50)
    assert out.getvalue() == ""


def test_the_audit_reader_reports_once_per_block_not_per_line(tmp_path: Path) -> None:
    """Progress must not slow the audit path: the hook runs per 1 MiB block, not per line."""
    data = b"".join(b'{"n": %d}\n' % i for i in range(300_000))  # about 3.3 MB, 300,000 lines
    path = tmp_path / "big.jsonl"
    path.write_bytes(data)
    blocks: list[int] = []
    with open(path, "rb", buffering=0) as f:
        lines = sum(1 for _ in read_records(f, on_block=blocks.append))
    assert lines == 300_000
    assert sum(blocks) == len(data) and len(blocks) <= len(data) // (1 << 20) + 2


def chatsla_with_tty_stderr(args: list[str]) -> tuple[int, bytes, bytes]:
    """Run chatsla with standard error on a pseudo-terminal and standard output on a pipe."""
    master, slave = pty.openpty()
    err: list[bytes] = []

    def drain() -> None:  # the terminal is read while stdout is (either could fill and block the child)
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            err.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    try:
        proc = subprocess.Popen([*chatsla_exe(), *args], stdout=subprocess.PIPE, stderr=slave,
                                stdin=subprocess.DEVNULL, env={**CLEAN, "COLUMNS": "100", "TERM": "xterm"})
        os.close(slave)
        reader.start()
        out, _ = proc.communicate(timeout=120)
        reader.join(timeout=10)
        return proc.returncode, out, b"".join(err)
    finally:
        os.close(master)


@pytest.mark.parametrize("args", [["audit", str(SAMPLE), *UNTIL, "--format", "json"],
                                  ["simulate", "--conversations", "20"]])
def test_progress_never_changes_standard_output(args: list[str]) -> None:
    """The same bytes on stdout with a terminal on stderr (the bar), off one, and with --quiet."""
    code, on_tty, err = chatsla_with_tty_stderr(args)
    assert f"chatsla {args[0]} ".encode() in err  # the bar was drawn on the terminal
    plain = subprocess.run([*chatsla_exe(), *args], capture_output=True, timeout=120, env=CLEAN)
    quiet = subprocess.run([*chatsla_exe(), *args, "--quiet"], capture_output=True, timeout=120, env=CLEAN)
    assert code == plain.returncode == quiet.returncode == 0
    assert on_tty == plain.stdout == quiet.stdout and len(plain.stdout) > 1000


def test_a_short_audit_off_a_terminal_prints_no_progress() -> None:
    """Quiet for small inputs: stderr holds only the invalid-line messages it always had."""
    result = subprocess.run([*chatsla_exe(), "audit", str(SAMPLE), *UNTIL], capture_output=True, timeout=120, env=CLEAN)
    assert result.returncode == 0
    assert all(": invalid event: " in line for line in result.stderr.decode().splitlines())
