"""Input limits of ``chatsla audit`` and of the decoder the live router shares (issue #10 finding 10):
a bounded record size (``too_large``, read without holding the line), repeated keys
(``duplicate_key``), and a UTF-8 byte order mark at the start of the input.
"""

from __future__ import annotations

import io
import json
import subprocess
import tracemalloc
from pathlib import Path

import orjson

from chatsla.audit import read_records, run_audit
from chatsla.core.policy import load_policy
from chatsla.schemas.decode import MAX_RECORD_BYTES, decode
from chatsla.core.events import ChatMessage, Invalid
from tests.cli.test_cli import chatsla_exe

POLICY = load_policy()


def chat(i: int, shop: str = "s1", **extra: object) -> bytes:
    return orjson.dumps({"schema": "chat.message/v1", "event_id": f"e{i}", "shop_id": shop, "conversation_id": f"c{i}",
                         "sender": "buyer", "sent_at": f"2026-11-02T{i % 24:02d}:00:00Z", **extra})


def audit_cli(path: Path, *args: str) -> tuple[dict, list[str]]:
    result = subprocess.run([*chatsla_exe(), "audit", str(path), "--format", "json", *args], capture_output=True,
                            timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout), result.stderr.decode().splitlines()


# --------------------------------------------------------------------------------- too_large
def test_a_line_over_the_limit_is_too_large(tmp_path: Path) -> None:
    """Finding 10: no bound on line size. A line longer than --max-record-bytes is invalid,
    reason too_large, reported with its number; the lines after it are read as usual."""
    path = tmp_path / "events.jsonl"
    big = chat(1, note="x" * 5000)
    path.write_bytes(b"\n".join([chat(0), big, chat(2)]) + b"\n")
    report, err = audit_cli(path, "--max-record-bytes", "1000")
    assert report["stats"]["invalid_by_reason"] == {"too_large": 1} and report["stats"]["valid"] == 2
    assert err == [f"{path}:2: invalid event: too_large"]
    report, err = audit_cli(path)  # the default (1 MiB) takes it
    assert report["stats"]["valid"] == 3 and err == []


def test_the_limit_counts_the_record_not_its_line_end(tmp_path: Path) -> None:
    """A record of exactly --max-record-bytes bytes is accepted (its \\n is not part of it)."""
    line = chat(0)
    path = tmp_path / "events.jsonl"
    path.write_bytes(line + b"\n" + line[:-1] + b',"n":1}\n')
    report, err = audit_cli(path, "--max-record-bytes", str(len(line)))
    assert report["stats"]["invalid_by_reason"] == {"too_large": 1}, err
    assert err == [f"{path}:2: invalid event: too_large"]


class _HugeLine(io.RawIOBase):
    """A stream of ``size`` bytes of one JSON string, then a newline and a valid event, produced
    as it is read: the test holds none of it."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.tail = b"\n" + chat(9) + b"\n"

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        if self.left > 0:
            n = min(len(b), self.left)
            b[:n] = b"x" * n
            self.left -= n
            return n
        n = min(len(b), len(self.tail))
        b[:n] = self.tail[:n]
        self.tail = self.tail[n:]
        return n


def test_a_huge_line_is_not_held_in_memory() -> None:
    """Finding 10: memory was about 3x the longest line. A 64 MiB line now costs at most the read
    block and the limit (1 MiB each) whatever its length; it is too_large and the next line is read."""
    seen: list[tuple[int, str]] = []
    tracemalloc.start()
    try:
        report = run_audit(read_records(io.BufferedReader(_HugeLine(64 << 20)), "huge"), POLICY,
                           on_invalid=lambda n, reason: seen.append((n, reason)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == [(1, "too_large")] and report.stats["valid"] == 1
    assert peak < 6 * MAX_RECORD_BYTES, peak


def test_read_records_cuts_and_resumes_across_blocks() -> None:
    """read_records yields each line once: an over-long one cut to limit + 1 bytes, whatever the
    block boundaries (a pipe delivers a few bytes at a time)."""
    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data = data

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:  # type: ignore[override]
            n = min(3, len(b), len(self.data))
            b[:n] = self.data[:n]
            self.data = self.data[n:]
            return n

    data = b"\xef\xbb\xbfab\n" + b"y" * 50 + b"\n\ncd\n" + b"z" * 11
    for stream in (io.BytesIO(data), Trickle(data)):
        assert list(read_records(stream, "t", max_bytes=10)) == [b"ab", b"y" * 11, b"", b"cd", b"z" * 11]


def test_the_router_decoder_has_the_same_limit() -> None:
    """Finding 10: the live router decodes with schemas/decode.py, so the worker's DLQ gets
    too_large too (default 1 MiB, Kafka's default message size)."""
    assert decode(b'{"a":"' + b"x" * MAX_RECORD_BYTES + b'"}').reason == "too_large"  # type: ignore[union-attr]
    line = chat(0)
    assert type(decode(line, max_bytes=len(line))) is ChatMessage
    assert decode(line, max_bytes=len(line) - 1).reason == "too_large"  # type: ignore[union-attr]
    assert decode(line.decode(), max_bytes=len(line) - 1).reason == "too_large"  # type: ignore[union-attr]


# ------------------------------------------------------------------------------ duplicate_key
def test_a_repeated_shop_id_is_not_credited_to_any_shop(tmp_path: Path) -> None:
    """Finding 10: duplicated JSON keys silently took the last value, so this buyer message was
    credited to shop-b (another reader of the log would credit shop-a). Now duplicate_key."""
    forged = chat(1, shop="shop-a")[:-1] + b',"shop_id":"shop-b"}'
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join([chat(0, shop="shop-a"), forged, chat(2, shop="shop-a")]))
    report, err = audit_cli(path, "--until", "2026-11-03T00:00:00Z")
    assert err == [f"{path}:2: invalid event: duplicate_key"]
    assert report["stats"]["invalid_by_reason"] == {"duplicate_key": 1}
    assert {s["shop_id"] for s in report["sessions"]} == {"shop-a"} and len(report["sessions"]) == 2


def test_duplicate_key_wins_over_other_reasons() -> None:
    """Which value of a repeated key is meant is unknown, so it is the reason even when the
    record is wrong otherwise (the last sender is not valid; the first is)."""
    raw = chat(0)[:-1] + b',"sender":"robot"}'
    assert decode(raw).reason == "duplicate_key"  # type: ignore[union-attr]
    seen: list[str] = []
    run_audit([raw], POLICY, on_invalid=lambda n, reason: seen.append(reason))
    assert seen == ["duplicate_key"]


# ---------------------------------------------------------------------------------------- BOM
def test_a_bom_at_the_start_of_the_input_is_accepted(tmp_path: Path) -> None:
    """Finding 10: a UTF-8 BOM (Windows tools write one) made line 1 invalid. It is skipped at the
    very start of the input (also of a .gz's content and of standard input); elsewhere it is part
    of its line, which is then not JSON."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + chat(0) + b"\n" + b"\xef\xbb\xbf" + chat(1) + b"\n")
    report, err = audit_cli(path)
    assert report["stats"]["valid"] == 1 and err == [f"{path}:2: invalid event: not_json"]
    result = subprocess.run([*chatsla_exe(), "audit", "-", "--format", "json"], input=b"\xef\xbb\xbf" + chat(0),
                            capture_output=True, timeout=60)
    assert json.loads(result.stdout)["stats"]["valid"] == 1, result.stderr.decode()
    import gzip

    gz = tmp_path / "events.jsonl.gz"
    gz.write_bytes(gzip.compress(b"\xef\xbb\xbf" + chat(0) + b"\n"))
    report, err = audit_cli(gz)
    assert report["stats"]["valid"] == 1 and err == []


def test_invalid_reasons_keep_their_type() -> None:
    assert type(decode(b"\xef\xbb\xbf" + chat(0))) is Invalid
