"""The command line keeps its promise: one plain line on stderr and a documented exit code, never a
traceback (issue #10 finding 9, issue #11 "one exception hierarchy", issue #13 "CLI conventions").

Every test runs the installed ``chatsla`` entry point in a subprocess, as a user or a script does:
the exit code, the streams and what the shell did to them (closed, a full disk, a reader that goes
away) are the real ones. Exit codes (chatsla/core/errors.py, docs/cli.md): 0 success, 1 a run
that failed, 2 a wrong command line, 130 interrupted.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "week.jsonl"
PERIOD = ["--from", "2026-11-02T00:00:00Z", "--to", "2026-11-09T00:00:00Z"]
NOBODY = ["--bootstrap", "127.0.0.1:1", "--timeout", "1"]  # nothing listens on port 1


def chatsla_exe() -> list[str]:
    exe = Path(sys.executable).with_name("chatsla")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from chatsla.cli import main; main()"]


def run(args: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run([*chatsla_exe(), *args], capture_output=True, timeout=120, **kw)


def run_shell(command: str) -> subprocess.CompletedProcess:
    """``command`` with ``chatsla`` standing for the entry point, run by bash (for ``<&-``, ``>&-``)."""
    exe = " ".join(chatsla_exe())
    return subprocess.run(["bash", "-c", command.replace("chatsla", exe, 1)], capture_output=True, timeout=120)


def one_error_line(result: subprocess.CompletedProcess, *, code: int, prefix: str, names: str) -> str:
    """The promise: exit ``code``, and stderr (invalid-event lines of the audit aside) is one line
    starting with ``prefix`` and naming ``names``."""
    lines = [x for x in result.stderr.decode().splitlines() if ": invalid event: " not in x]
    assert "Traceback" not in result.stderr.decode(), result.stderr.decode()
    assert len(lines) == 1, result.stderr.decode()
    assert result.returncode == code, (result.returncode, lines[0])
    assert lines[0].startswith(prefix), lines[0]
    assert names in lines[0], lines[0]
    return lines[0]


# ----------------------------------------------------------------------------- usage errors: 2
USAGE = [
    # (command line, what the line must name); issue #13: each command has at least one
    (["audit"], "EVENTS.jsonl"),
    (["audit", str(SAMPLE), "--until", "monday"], "--until"),
    (["audit", str(SAMPLE), "--allowed-lateness", "1e999s"], "--allowed-lateness"),  # finding 9: OverflowError
    (["audit", str(SAMPLE), "--allowed-lateness", "nans"], "--allowed-lateness"),
    (["audit", str(SAMPLE), "--default-timezone", "Mars/Olympus"], "--default-timezone"),
    (["audit", str(SAMPLE), "--max-record-bytes", "0"], "--max-record-bytes"),
    (["audit", str(SAMPLE), "--policy", "nope@1"], "nope@1"),
    (["simulate", "--shops", "0"], "--shops"),  # issue #13: printed an error and exited 0
    (["simulate", "--bad-fraction", "2"], "--bad-fraction"),
    (["simulate", "--week-start", "nope"], "--week-start"),
    (["policies", "--format", "xml"], "--format"),
    (["replay", *PERIOD[:2]], "--to"),
    (["replay", "--from", "yesterday", "--to", "2026-11-09T00:00:00Z"], "--from"),
    (["replay", *PERIOD, "--format", "html"], "--shop"),
    (["export", "--from", "2026-11-09T00:00:00Z", "--to", "2026-11-02T00:00:00Z", "--out", "x.jsonl"], "--to"),
    (["verify", *PERIOD, "--lookback", "a while"], "--lookback"),
    (["verify", *PERIOD, "--lookback", "1e999d"], "--lookback"),
    (["verify", *PERIOD, "--security-protocol", "SASL_SSL"], "--sasl-mechanism"),
    (["dev", "up", "--port", "0"], "--port"),
    (["dev", "status", "--format", "xml"], "--format"),
    (["demo", "--shops", "0"], "--shops"),
    (["worker", "--partitions", "0"], "--partitions"),
    (["worker", "--allowed-lateness", "1e999s", "--no-create-topics"], "--allowed-lateness"),
    (["no-such-command"], "no-such-command"),
]


@pytest.mark.parametrize(("args", "names"), USAGE, ids=[" ".join(a[:3])[:60] for a, _ in USAGE])
def test_usage_errors_exit_2_with_one_line(args: list[str], names: str, tmp_path: Path) -> None:
    """Issue #13: every usage error exits 2 (``chatsla.cli.main`` dropped click's exit code, so
    ``simulate --shops 0`` exited 0); issue #10 finding 9: one line naming the argument."""
    result = run(args, cwd=tmp_path)
    prefix = "simulate:" if args[0] == "simulate" else f"chatsla {args[0]}" if args[0] != "no-such-command" else "chatsla"
    one_error_line(result, code=2, prefix=prefix, names=names)


# ------------------------------------------------------------------------------- policies: 2
@pytest.mark.parametrize(("field", "value", "says"), [
    ("seller_timeout", 72, 'seller_timeout must be a duration string such as "72h"'),  # AttributeError before
    ("buyer_timeout", "1e999h", "buyer_timeout must be a positive duration"),  # OverflowError before
    ("reply_window", "0h", "reply_window must be a positive duration"),
    ("warning_below", "ninety", "warning_below must be a number from 0 to 1"),
    ("violation_below", 85, "violation_below must be a number from 0 to 1"),
    ("min_buyer_messages", 5.5, "min_buyer_messages must be a whole number"),
    ("violation_points", True, "violation_points must be a whole number"),
])
def test_a_bad_policy_file_names_the_field(tmp_path: Path, field: str, value: object, says: str) -> None:
    """Issue #10 finding 9: a policy file with ``"seller_timeout": 72`` was an AttributeError
    traceback; now one line naming the file and the field, exit 2 (the policy is an argument)."""
    policy = json.loads((REPO / "chatsla" / "policies" / "tiktok_shop@2023-11.json").read_text())
    policy[field] = value
    path = tmp_path / "policy.json"
    path.write_bytes(orjson.dumps(policy))
    line = one_error_line(run(["audit", str(SAMPLE), "--policy", str(path)]), code=2, prefix="chatsla audit: error:",
                          names=str(path))
    assert says in line


def test_a_directory_as_policy_is_one_line(tmp_path: Path) -> None:
    """Issue #10 finding 9: ``--policy DIR`` (IsADirectoryError), with or without a slash."""
    (tmp_path / "rules").mkdir()
    for spec in ("rules", "rules/", str(tmp_path / "rules")):
        line = one_error_line(run(["audit", str(SAMPLE), "--policy", spec], cwd=tmp_path), code=2,
                              prefix="chatsla audit: error:", names="rules")
        assert "Is a directory" in line


# -------------------------------------------------------------------------- input failures: 1
def test_missing_and_unreadable_inputs_exit_1(tmp_path: Path) -> None:
    """Issue #13: a file that cannot be read is a runtime failure, exit 1, naming the file."""
    one_error_line(run(["audit", str(tmp_path / "nope.jsonl")]), code=1, prefix="chatsla audit: error:",
                   names="nope.jsonl")
    one_error_line(run(["audit", str(tmp_path)]), code=1, prefix="chatsla audit: error:", names=str(tmp_path))


def test_corrupt_gz_is_one_line_naming_the_file(tmp_path: Path) -> None:
    """Issue #10 finding 9: a corrupt ``.gz`` raised zlib.error (a traceback)."""
    data = bytearray(gzip.compress(SAMPLE.read_bytes()))
    for i in range(200, 260):
        data[i] ^= 0x55
    path = tmp_path / "corrupt.jsonl.gz"
    path.write_bytes(bytes(data))
    line = one_error_line(run(["audit", str(path)]), code=1, prefix="chatsla audit: error:", names=str(path))
    assert "corrupt gzip data" in line
    notgz = tmp_path / "plain.gz"
    notgz.write_bytes(b"{}\n")
    one_error_line(run(["audit", str(notgz)]), code=1, prefix="chatsla audit: error:", names=str(notgz))


def test_truncated_gz_is_one_line_naming_the_file(tmp_path: Path) -> None:
    """Issue #10 finding 9: a truncated ``.gz`` printed ``chatsla: aborted`` and exited 130 (click
    took the EOFError for Ctrl-D); now it names the file and the line where the data stops."""
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(gzip.compress(SAMPLE.read_bytes())[:20000])
    line = one_error_line(run(["audit", str(path)]), code=1, prefix="chatsla audit: error:", names=str(path))
    assert "ends early" in line and "at line " in line


def test_closed_stderr_only_silences_messages() -> None:
    """``2>&-``: the audit still runs and prints its report (its invalid-line messages go nowhere);
    a failure still exits 1, with nowhere to say why."""
    report = run_shell(f"chatsla audit {SAMPLE} --format json 2>&-")
    assert report.returncode == 0 and json.loads(report.stdout)["stats"]["invalid"] == 7
    assert run_shell("chatsla audit /nonexistent.jsonl 2>&-").returncode == 1


def test_closed_stdin_is_one_line() -> None:
    """Issue #10 finding 9: ``chatsla audit - <&-`` (Python sets sys.stdin to None: AttributeError)."""
    one_error_line(run_shell("chatsla audit - <&-"), code=1, prefix="chatsla audit: error:", names="standard input")


def test_ctrl_c_is_one_line_and_exit_130() -> None:
    """Issue #11: Ctrl-C is ``chatsla audit: interrupted`` and 130 (click printed an empty line
    and ``chatsla: aborted``). The interrupt is sent once the audit blocks reading its standard
    input (/proc shows the read system call on descriptor 0)."""
    import signal

    from tests.integration.waiting import wait_for

    # SIGINT as a terminal gives it: a shell's background job (CI run with `&`, nohup) starts its
    # children with SIGINT ignored, which Python then leaves ignored (no KeyboardInterrupt at all)
    proc = subprocess.Popen([*chatsla_exe(), "audit", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        def reading_stdin() -> bool:
            fields = Path(f"/proc/{proc.pid}/syscall").read_text().split()
            return fields[:2] == ["0", "0x0"]  # read(0, ...)

        wait_for(reading_stdin, timeout=30, what="chatsla audit to read standard input", interval=0.05)
        proc.send_signal(signal.SIGINT)
        # Standard input stays open until the process has exited: communicate() closed it at
        # once, and an end of input read before the interrupt was handled made a clean, silent
        # exit 0 (a CI run on a loaded machine saw it).
        proc.wait(timeout=30)
        stderr = proc.stderr.read()  # type: ignore[union-attr]
    finally:
        proc.kill()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    result = subprocess.CompletedProcess(proc.args, proc.returncode, b"", stderr)
    one_error_line(result, code=130, prefix="chatsla audit: interrupted", names="interrupted")


# ------------------------------------------------------------------------- output failures: 1
@pytest.mark.parametrize("args", [["audit", str(SAMPLE)], ["audit", str(SAMPLE), "--format", "json"],
                                  ["policies"], ["dev", "status", "--port", "1", "--data-dir", "/nonexistent/k"]])
def test_closed_stdout_is_one_line(args: list[str]) -> None:
    """Issue #10 finding 9: ``>&-`` (sys.stdout is None: click.echo printed nothing and exited 0,
    ``sys.stdout.buffer`` raised AttributeError)."""
    line = one_error_line(run_shell(f"chatsla {' '.join(args)} >&-"), code=1, prefix=f"chatsla {args[0]}",
                          names="standard output")
    assert "closed" in line


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_a_reader_that_goes_away_is_one_line(fmt: str) -> None:
    """Issue #10 finding 9: ``chatsla audit f | head -1``. The report (560 kB of JSON, 230 kB of
    CSV) is larger than a pipe holds, so the reader closing after one line breaks the pipe while
    chatsla still writes; BufferedWriter.write even returned a short count there, silently."""
    proc = subprocess.Popen([*chatsla_exe(), "audit", str(SAMPLE), "--format", fmt, "--records", "sessions"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read()
    proc.wait(60)
    result = subprocess.CompletedProcess(proc.args, proc.returncode, b"", stderr)
    line = one_error_line(result, code=1, prefix="chatsla audit: error:", names="standard output")
    assert "broken pipe" in line


@pytest.mark.parametrize("command", [
    "chatsla audit samples/week.jsonl --format json > /dev/full",
    "chatsla audit samples/week.jsonl > /dev/full",
    "chatsla simulate > /dev/full",
    "chatsla policies --format json > /dev/full",
])
def test_a_full_disk_on_stdout_is_one_line(command: str) -> None:
    """Issue #10 finding 9: output to a full disk (Linux's /dev/full answers ENOSPC)."""
    result = run_shell(f"cd {REPO} && {command}")
    line = one_error_line(result, code=1, prefix=f"chatsla {command.split()[1]}", names="standard output")
    assert "No space left on device" in line


def test_a_full_disk_on_out_names_the_file() -> None:
    """Issue #10 finding 9: ``--out /dev/full`` (and /dev/full is left alone: the export's clean-up
    of a half-written file must never remove a device)."""
    one_error_line(run(["simulate", "--out", "/dev/full"]), code=1, prefix="chatsla simulate: error:",
                   names="/dev/full")
    assert Path("/dev/full").is_char_device()


# --------------------------------------------------------------------------- broker failures: 1
@pytest.mark.parametrize("args", [
    ["replay", *PERIOD, *NOBODY],
    ["export", *PERIOD, *NOBODY, "--out", "x.jsonl.gz"],
    ["verify", *PERIOD, *NOBODY],
    ["replay", *PERIOD, *NOBODY, "--security-protocol", "SASL_PLAINTEXT", "--sasl-mechanism", "PLAIN",
     "--sasl-username", "u", "--sasl-password", "wrong"],
])
def test_an_unreachable_broker_exits_1_with_one_line(args: list[str], tmp_path: Path) -> None:
    """Issue #13: broker unreachable is a runtime failure, exit 1, one line naming the bootstrap
    (tests/integration/test_cli_broker.py does the same against a real broker)."""
    one_error_line(run(args, cwd=tmp_path), code=1, prefix=f"chatsla {args[0]}: error:", names="127.0.0.1:1")
    assert not (tmp_path / "x.jsonl.gz").exists()


def test_worker_with_an_unreachable_broker_exits_1() -> None:
    """Issue #13: the worker's topic check failing to reach Kafka exited 2 like a usage error."""
    one_error_line(run(["worker", "--bootstrap", "127.0.0.1:1"]), code=1, prefix="chatsla worker: error:",
                   names="127.0.0.1:1")


def test_simulate_to_an_unreachable_broker_exits_1() -> None:
    """Issue #13: a broker that cannot be reached is a failed run (1), not a usage error (2)."""
    one_error_line(run(["simulate", "--conversations", "1", "--bootstrap", "127.0.0.1:1"]), code=1,
                   prefix="simulate:", names="127.0.0.1:1")


# ---------------------------------------------------------------------------- human output
def test_an_empty_input_says_no_valid_event_was_read(tmp_path: Path) -> None:
    """Issue #13: an empty input printed an empty table and ``watermark None``."""
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"x\n{}\n\n")
    for path, read in ((empty, 0), (bad, 3)):
        result = run(["audit", str(path)])
        assert result.returncode == 0
        out = result.stdout.decode()
        assert f"No valid event was read ({read} lines, {read} invalid): nothing to assess." in out
        assert "None" not in out and "┏" not in out  # no Python None, no empty table


def test_table_and_csv_have_no_none_or_float_repr(tmp_path: Path) -> None:
    """Issue #13: no Python None or float repr (0.9333333333333333) in human output, and the
    counters are one list per line (the stats line wrapped in the middle of a list)."""
    table = run(["audit", str(SAMPLE)]).stdout.decode()
    assert "None" not in table
    lines = table.splitlines()
    closed = [x for x in lines if x.startswith("sessions opened ")]
    assert closed == ["sessions opened 1029, closed: auto_reply_resolved 107, buyer_timeout 720, "
                      "closed_by_platform 55, closed_by_seller 71, seller_timeout 73"]
    assert "invalid by reason: bad_time:sent_at 2, bad_type:schema 1, bad_type:sender 1, not_json 3" in lines
    csv = run(["audit", str(SAMPLE), "--format", "csv", "--until", "2026-11-17T00:10:00Z"]).stdout.decode()
    rates = [row.split(",")[4] for row in csv.splitlines()[1:]]
    assert rates and all(r == "" or len(r.split(".")[1]) == 4 for r in rates), rates
    assert "None" not in csv


def test_shop_ids_are_printed_as_they_are(tmp_path: Path) -> None:
    """A shop id is data, not rich markup: ``[/x]`` made rich raise MarkupError (a traceback)."""
    path = tmp_path / "odd.jsonl"
    events = [{"schema": "chat.message/v1", "event_id": f"e{i}", "shop_id": "[/x] [bold]s",
               "conversation_id": f"c{i}", "sender": "buyer", "sent_at": f"2026-11-02T0{i}:00:00Z"} for i in range(6)]
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events))
    result = run(["audit", str(path), "--until", "2026-11-11T00:00:00Z"])
    assert result.returncode == 0, result.stderr.decode()
    assert "[/x] [bold]s" in result.stdout.decode()


def test_policies_and_dev_status_print_json(tmp_path: Path) -> None:
    """Issue #13: ``policies`` and ``dev status`` can print JSON."""
    policies = json.loads(run(["policies", "--format", "json"]).stdout)
    first = next(p for p in policies if p["ref"] == "tiktok_shop@2023-11")
    assert first["seller_timeout_s"] == 72 * 3600 and first["warning_below"] == "0.9"
    assert first["violation_points"] == 1 and first["week_starts_on"] == "monday"
    result = run(["dev", "status", "--format", "json", "--port", "1", "--data-dir", str(tmp_path / "k")])
    assert result.returncode == 1  # not running
    status = json.loads(result.stdout)
    assert status["running"] is False and status["answering"] is False and status["bootstrap"] == "127.0.0.1:1"


# ------------------------------------------------------------------------------------ help
def _options(command, path=("chatsla",)):
    import click

    if isinstance(command, click.Group):
        for name in command.list_commands(None):  # type: ignore[arg-type]
            yield from _options(command.get_command(None, name), (*path, name))  # type: ignore[arg-type]
        return
    for p in command.params:
        if isinstance(p, click.Option) and not p.hidden:
            yield " ".join(path), p


# The worker's options belong to the live-worker branch (issue #10 findings 6-8), which rewrites them.
_NOT_HERE: set[str] = set()


def test_every_option_has_help_for_users() -> None:
    """Issue #13: every option has help text that speaks to users: present, and no bare rule
    number such as ``R6.2 allowed lateness.`` standing in for an explanation (a rule cited beside
    one, "Share of invalid records (R1).", is fine: at least three words besides it)."""
    import re

    from chatsla.cli import cli

    missing, bare = [], []
    for path, opt in _options(cli):
        if path in _NOT_HERE and opt.name not in ("security_protocol", "sasl_mechanism", "sasl_username",
                                                  "sasl_password", "ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            continue
        text = (opt.help or "").strip()
        if not text:
            missing.append(f"{path} {opt.opts[0]}")
        elif len(re.sub(r"\(?\bR\d+(\.\d+)*\b\)?", " ", text).split()) < 3:
            bare.append(f"{path} {opt.opts[0]}: {text}")
    assert missing == [] and bare == []
