"""Fuzzing the audit's input side (RULES R1: an invalid event is counted with a machine-readable
reason and processing goes on; it is never fatal).

Bad lines of every kind (random bytes, every prefix of a valid event, wrong JSON types, deleted
required fields, random Unicode, huge numbers, deep nesting, invalid UTF-8, whitespace-only
lines) are mixed with valid events and fed to :func:`chatsla.audit.run_audit` and to the
``chatsla audit`` command. Each bad line is built to be invalid by R1, each valid one to be valid,
so the test knows exactly which line numbers must be reported.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections import Counter
from datetime import timedelta, timezone
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatsla.audit import run_audit
from chatsla.core.engine import EngineConfig
from chatsla.cli import cli
from chatsla.core.policy import load_policy
from chatsla.report import to_json
from tests.builders import MONDAY
from tests.schemas.test_schemas import errors

POLICY = load_policy()
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# The documented reason grammar (schemas/decode.py; empty_line is added by the audit).
REASON = re.compile(
    r"not_json|not_object|empty_line"
    r"|missing_field:(schema|event_id|shop_id|conversation_id|sender|sent_at|type|at|timezone)"
    r"|bad_type:(schema|event_id|shop_id|conversation_id|platform|sender|kind|message_type|sent_at|type|at|timezone)"
    r"|bad_value:(sender|kind|message_type|type)"
    r"|bad_time:(sent_at|at)"
    r"|bad_timezone:timezone"
    r"|unknown_schema:schema"
    r"|duplicate_key|too_large"
)

SENDERS = ("buyer", "seller", "auto_reply", "system")
MESSAGE_TYPES = ("text", "image", "video", "emoji", "sticker", "product_card", "order_card", "other")
ZONES = ("UTC", "Asia/Bangkok", "Asia/Ho_Chi_Minh", "America/Los_Angeles", "Europe/London", "Etc/GMT+7")
CHAT_REQUIRED = ("schema", "event_id", "shop_id", "conversation_id", "sender", "sent_at")
SHOP_REQUIRED = ("schema", "event_id", "shop_id", "type", "at")
KNOWN = frozenset(CHAT_REQUIRED + SHOP_REQUIRED + ("platform", "kind", "message_type", "timezone"))

# ----------------------------------------------------------------------------- valid events
_offsets = st.sampled_from([0, 0, 0, 7 * 60, -5 * 60 - 30, 5 * 60 + 45, 14 * 60, -12 * 60])


@st.composite
def rfc3339(draw: st.DrawFn, max_days: int = 21) -> str:
    """An R1 time within ``max_days`` of MONDAY: Z or a numeric offset, sometimes a fraction."""
    t = MONDAY + timedelta(seconds=draw(st.integers(0, max_days * 86400)),
                           microseconds=draw(st.sampled_from([0, 0, 0, 250_000, 1, 999_999])))
    off = draw(_offsets)
    local = t.astimezone(timezone(timedelta(minutes=off)))
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if local.microsecond:
        text += f".{local.microsecond:06d}"
    if off == 0 and draw(st.booleans()):
        return text + "Z"
    sign = "+" if off >= 0 else "-"
    return f"{text}{sign}{abs(off) // 60:02d}:{abs(off) % 60:02d}"


_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
json_values = st.recursive(
    _scalar, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4), max_leaves=12)
_extra = st.dictionaries(st.text(max_size=10).filter(lambda k: k not in KNOWN), json_values, max_size=2)
_ids = st.integers(0, 400).map(lambda n: f"e{n}")  # small space: some duplicates happen by chance


@st.composite
def chat_events(draw: st.DrawFn) -> dict:
    sender = draw(st.sampled_from(SENDERS + ("buyer", "buyer", "seller")))
    ev = {"schema": "chat.message/v1", "event_id": draw(_ids), "shop_id": draw(st.sampled_from(["s1", "s2", "s3"])),
          "conversation_id": draw(st.sampled_from(["c1", "c2", "c3", "c4"])), "sender": sender,
          "sent_at": draw(rfc3339())}
    if sender in ("seller", "system") and draw(st.integers(0, 9)) == 0:
        ev["kind"] = "close"
    elif draw(st.booleans()):
        ev["kind"] = "message"
    if draw(st.booleans()):
        ev["message_type"] = draw(st.sampled_from(MESSAGE_TYPES))
    if draw(st.integers(0, 4)) == 0:
        ev["platform"] = "tiktok_shop"
    ev.update(draw(_extra))
    return ev


@st.composite
def shop_events(draw: st.DrawFn) -> dict:
    typ = draw(st.sampled_from(["vacation_on", "vacation_off", "timezone"]))
    ev = {"schema": "shop.event/v1", "event_id": draw(_ids), "shop_id": draw(st.sampled_from(["s1", "s2", "s3"])),
          "type": typ, "at": draw(rfc3339())}
    if typ == "timezone":
        ev["timezone"] = draw(st.sampled_from(ZONES))
    ev.update(draw(_extra))
    return ev


valid_events = st.one_of(chat_events(), chat_events(), chat_events(), shop_events())
valid_lines = valid_events.map(orjson.dumps)

# ------------------------------------------------------------------------------ bad lines
_not_a_zone = st.text(max_size=20).map(lambda s: "Mars/" + s)
_not_a_time = st.one_of(
    st.sampled_from(["", "yesterday", "2026-11-02", "2026-11-02T09:00:00", "2026-02-30T09:00:00Z",
                     "2026-11-02T24:00:00Z", "2026-11-02T09:00Z", "20261102T090000Z",
                     "2026-11-02T09:00:00+24:00", "1793610000"]),
    st.text(max_size=40).map(lambda s: "t=" + s),
)
_wrong_json_type = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
                             st.floats(allow_nan=False, allow_infinity=False), st.lists(_scalar, max_size=3),
                             st.dictionaries(st.text(max_size=5), _scalar, max_size=3))


def _wrong_value(field: str, ev: dict) -> st.SearchStrategy:
    """A JSON value that makes ``field`` of ``ev`` invalid under R1."""
    if field in ("event_id", "shop_id", "conversation_id"):
        return st.one_of(_wrong_json_type, st.just(""))
    if field == "schema":
        return st.one_of(_wrong_json_type, st.text(max_size=20).filter(lambda s: s != ev["schema"]))
    if field in ("sent_at", "at"):
        return st.one_of(_wrong_json_type, _not_a_time)
    if field == "timezone":
        return st.one_of(_wrong_json_type, _not_a_zone)
    allowed = {"sender": SENDERS, "message_type": MESSAGE_TYPES, "type": ("vacation_on", "vacation_off", "timezone"),
               "kind": ("message",) if ev.get("sender") in ("buyer", "auto_reply") else ("message", "close"),
               "platform": None}[field]
    if allowed is None:  # platform: any non-empty string is fine
        return st.one_of(_wrong_json_type, st.just(""))
    return st.one_of(_wrong_json_type, st.text(max_size=12).filter(lambda s: s not in allowed),
                     st.just("close") if field == "kind" and "close" not in allowed else st.nothing())


@st.composite
def wrong_type_lines(draw: st.DrawFn) -> bytes:
    ev = draw(valid_events)
    if ev["schema"] == "chat.message/v1":
        fields = list(CHAT_REQUIRED) + ["kind", "message_type", "platform"]
    else:
        fields = list(SHOP_REQUIRED) + (["timezone"] if ev["type"] == "timezone" else [])
    field = draw(st.sampled_from(fields))
    ev[field] = draw(_wrong_value(field, ev))
    return orjson.dumps(ev)


@st.composite
def deleted_field_lines(draw: st.DrawFn) -> bytes:
    ev = draw(valid_events)
    required = list(CHAT_REQUIRED if ev["schema"] == "chat.message/v1" else SHOP_REQUIRED)
    if ev.get("type") == "timezone":
        required.append("timezone")
    for field in draw(st.lists(st.sampled_from(required), min_size=1, max_size=len(required), unique=True)):
        del ev[field]
    return orjson.dumps(ev)


@st.composite
def truncated_lines(draw: st.DrawFn) -> bytes:
    """A proper prefix of a valid event (a torn write): never a JSON object."""
    raw = draw(valid_lines)
    return raw[: draw(st.integers(0, len(raw) - 1))]


@st.composite
def invalid_utf8_lines(draw: st.DrawFn) -> bytes:
    raw = draw(valid_lines)
    bad = draw(st.sampled_from([b"\xff", b"\xfe", b"\x80", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80",
                                b"\xc0\xaf", b"\xf5\x80\x80\x80"]))
    i = draw(st.integers(1, len(raw) - 1))
    return raw[:i] + bad + raw[i:]


@st.composite
def huge_number_lines(draw: st.DrawFn) -> bytes:
    """Huge numbers as the whole line or as a required field (both invalid under R1)."""
    digits = draw(st.integers(19, 5000))
    number = (b"-" if draw(st.booleans()) else b"") + b"9" * digits + draw(st.sampled_from([b"", b".5", b"e999"]))
    if draw(st.booleans()):
        return number
    ev = draw(valid_events)
    field = draw(st.sampled_from(["event_id", "shop_id", "sent_at" if "sent_at" in ev else "at"]))
    ev[field] = 0
    return orjson.dumps(ev).replace(f'"{field}":0'.encode(), f'"{field}":'.encode() + number)


@st.composite
def nested_lines(draw: st.DrawFn) -> bytes:
    """Deeply nested arrays/objects: as the whole line, or as a required field's value."""
    depth = draw(st.integers(1, 3000))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
    leaf = draw(st.sampled_from([b"1", b"{}", b"[]", b'"x"']))
    nested = opener * depth + leaf + closer * depth
    if draw(st.booleans()):
        return nested
    ev = draw(valid_events)
    field = draw(st.sampled_from(["event_id", "shop_id", "schema", "sent_at" if "sent_at" in ev else "at"]))
    ev[field] = 0
    return orjson.dumps(ev).replace(f'"{field}":0'.encode(), f'"{field}":'.encode() + nested, 1)


whitespace_lines = st.text(alphabet=" \t\r\n\x0b\x0c", max_size=8).map(str.encode)
unicode_lines = st.text(max_size=80).map(lambda s: s.encode("utf-8"))
random_byte_lines = st.binary(max_size=200)

def _json_text(value: object, draw: st.DrawFn) -> str:
    """``value`` as JSON text, with an object given as a list of (key, value) pairs (so keys may
    repeat), strings sometimes \\u-escaped character by character, and random whitespace."""
    ws = lambda: draw(st.sampled_from(["", "", "", " ", "\n\t "]))  # noqa: E731
    if isinstance(value, Pairs):
        return "{" + ",".join(f"{ws()}{_json_text(k, draw)}{ws()}:{ws()}{_json_text(v, draw)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(ws() + _json_text(v, draw) for v in value) + "]"
    if isinstance(value, str) and draw(st.integers(0, 3)) == 0:
        return '"' + "".join(f"\\u{ord(c):04x}" if c < "\uffff" and draw(st.booleans()) else json.dumps(c)[1:-1]
                             for c in value) + '"'
    return json.dumps(value, ensure_ascii=False)


class Pairs(list):
    """A JSON object as written: its pairs in order, repeats allowed."""


_keys = st.sampled_from(["a", "b", "shop_id", "sender", 'q"', "\u00e9", "\\"])
_pair_trees = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=False, allow_infinity=False),
              st.sampled_from(["x", "", 'say "hi"', "a\\b", "shop_id", '"shop_id":"s2"'])),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.lists(st.tuples(_keys, inner), max_size=4).map(Pairs)),
    max_leaves=12)


@st.composite
def duplicate_key_lines(draw: st.DrawFn) -> bytes:
    """A valid event with one of its keys written a second time (any value, anywhere, however
    spelt): issue #10 finding 10, the record could be credited to another shop."""
    ev = draw(st.one_of(chat_events(), shop_events()))
    pairs = Pairs(ev.items())
    key = draw(st.sampled_from(sorted(ev)))
    pairs.insert(draw(st.integers(0, len(pairs))), (key, draw(st.one_of(json_values, st.just(ev[key])))))
    return _json_text(pairs, draw).encode()


BAD_LINES = {
    "duplicate_key": duplicate_key_lines(),
    "random_bytes": random_byte_lines,
    "truncated": truncated_lines(),
    "wrong_type": wrong_type_lines(),
    "deleted_field": deleted_field_lines(),
    "unicode": unicode_lines,
    "huge_number": huge_number_lines(),
    "nested": nested_lines(),
    "invalid_utf8": invalid_utf8_lines(),
    "whitespace": whitespace_lines,
}
bad_lines = st.one_of(*BAD_LINES.values())


@st.composite
def mixed_logs(draw: st.DrawFn, bad: st.SearchStrategy = bad_lines,
               max_size: int = 40) -> tuple[list[bytes], list[int]]:
    """Valid events and bad lines interleaved; returns the lines and the 1-based bad line numbers.
    Sometimes a valid line is repeated verbatim (an R1 duplicate)."""
    lines: list[bytes] = []
    bad_numbers: list[int] = []
    for _ in range(draw(st.integers(0, max_size))):
        kind = draw(st.sampled_from(["valid", "valid", "bad", "bad", "dup"]))
        good = [ln for j, ln in enumerate(lines, 1) if j not in bad_numbers]
        if kind == "dup" and good:
            lines.append(draw(st.sampled_from(good)))
        elif kind == "bad":
            lines.append(draw(bad))
            bad_numbers.append(len(lines))
        else:
            lines.append(draw(valid_lines))
    return lines, bad_numbers


NO_TIME_SANITY = EngineConfig(max_future=None)


def check_audit(lines: list[bytes], bad_numbers: list[int]) -> dict:
    """Run the audit with the R1 hook and check every counter invariant; returns the report dict."""
    calls: list[tuple[int, str]] = []
    # Decoding is under test here, with times drawn at random over days in random order: the time
    # sanity check (an event far ahead of its stream, contradicted by the events after it, is
    # rejected as future_time; tests/core/test_time_sanity.py) would reject valid lines on purpose.
    report = run_audit(lines, POLICY, config=NO_TIME_SANITY,
                       on_invalid=lambda n, reason: calls.append((n, reason)))
    stats = report.stats
    assert stats["read"] == len(lines)
    assert stats["valid"] + stats["duplicate"] + stats["invalid"] == stats["read"]
    assert sum(stats["invalid_by_reason"].values()) == stats["invalid"]
    assert all(REASON.fullmatch(r) for r in stats["invalid_by_reason"]), stats["invalid_by_reason"]
    assert [n for n, _ in calls] == bad_numbers  # each bad line exactly once, in order, no valid one
    assert Counter(r for _, r in calls) == Counter(stats["invalid_by_reason"])
    assert stats["invalid"] == len(bad_numbers)
    return report.to_dict() | {"_json": to_json(report)}


# ------------------------------------------------------------------------------ properties
@SETTINGS
@given(mixed_logs())
def test_r1_bad_lines_are_counted_reported_once_and_never_fatal(log: tuple[list[bytes], list[int]]) -> None:
    """R1: every bad line is counted under a reason of the documented grammar and reported
    through ``on_invalid`` with its line number; valid events around it are still applied, and
    the report still conforms to the audit-report schema."""
    lines, bad_numbers = log
    out = check_audit(lines, bad_numbers)
    assert errors("audit-report", json.loads(out["_json"])) == []


@pytest.mark.parametrize("category", sorted(BAD_LINES))
def test_r1_each_bad_line_category_alone(category: str) -> None:
    """R1, one category at a time (so a failure names its category)."""

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(mixed_logs(BAD_LINES[category], max_size=12))
    def run(log: tuple[list[bytes], list[int]]) -> None:
        check_audit(*log)

    run()


@SETTINGS
@given(st.lists(valid_lines, max_size=30))
def test_r1_valid_events_are_never_reported_invalid(lines: list[bytes]) -> None:
    """R1 forward compatibility: valid events with unknown extra fields (any JSON) all decode."""
    check_audit(lines, [])


@SETTINGS
@given(valid_lines)
def test_r1_every_prefix_of_a_valid_event_is_invalid(raw: bytes) -> None:
    """R1: a torn write (any proper prefix of a valid event) is reported, the whole event is not."""
    prefixes = [raw[:i] for i in range(len(raw))]
    check_audit(prefixes + [raw], list(range(1, len(raw) + 1)))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(valid_lines, bad_lines), max_size=20))
def test_r1_decode_never_raises_and_reasons_follow_the_grammar(lines: list[bytes]) -> None:
    from chatsla.schemas.decode import decode
    from chatsla.core.events import Invalid

    for raw in lines:
        for variant in (raw, bytearray(raw), memoryview(raw)):
            ev = decode(variant)
            if type(ev) is Invalid:
                assert REASON.fullmatch(ev.reason) and ev.reason != "empty_line"


# ----------------------------------------------------------------------- regressions
def _ok_event(**changes: object) -> dict:
    ev = {"schema": "chat.message/v1", "event_id": "e1", "shop_id": "s1", "conversation_id": "c1",
          "sender": "buyer", "sent_at": "2026-11-02T09:00:00Z"}
    ev.update(changes)
    return ev


@pytest.mark.parametrize("sent_at", ["2026-11-02T09:00:0\u00b2Z", "2026-11-02T09:00:00+0\u00b9:00"])
def test_r1_superscript_digit_in_time_is_bad_time_not_a_crash(sent_at: str) -> None:
    """Regression: str.isdigit() accepts '\u00b2'; int() then raised out of decode (R1)."""
    check_audit([orjson.dumps(_ok_event()), orjson.dumps(_ok_event(event_id="e2", sent_at=sent_at))], [2])


@pytest.mark.parametrize("sent_at", ["9999-12-31T23:59:59Z", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00",
                                     "0999-01-05T00:00:00Z"])
def test_r1_times_outside_1970_to_9000_are_bad_time_not_a_crash(sent_at: str) -> None:
    """Regression: times near year 1 or 9999 overflowed the week arithmetic; decode now accepts
    event times from 1970 to 9000 only (schemas/decode.py MIN_TIME/MAX_TIME)."""
    check_audit([orjson.dumps(_ok_event(sent_at=sent_at))], [1])


@pytest.mark.parametrize("number", [b"1e400", b"-1e400", b"9" * 400])
def test_r1_huge_number_in_unknown_field_is_ignored(number: bytes) -> None:
    """Regression: orjson rejects numbers beyond double range, so such a valid R1 event was counted
    not_json; decode now falls back to the standard library parser (R1: unknown fields are ignored)."""
    raw = orjson.dumps(_ok_event(extra=0)).replace(b'"extra":0', b'"extra":' + number)
    assert json.loads(raw)["event_id"] == "e1"  # a JSON text by RFC 8259
    check_audit([raw], [])


# --------------------------------------------------------------------------------- the CLI
def _cli_command() -> list[str]:
    exe = Path(sys.executable).with_name("chatsla")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "chatsla.cli"]


def _no_newline(line: bytes) -> bytes:
    return line.replace(b"\n", b" ")


CLI_BAD = [
    b"", b"   ", b"\t\r", b"not json", b'{"schema":"chat.message/v1"', b"\xff\xfe\x00garbage", b"[]", b"null",
    b"9" * 400, b"[" * 3000 + b"]" * 3000, "\u00e9\u6f22\U0001f600".encode(),
    orjson.dumps(_ok_event(event_id="b1", sender="robot")),
    orjson.dumps(_ok_event(event_id="b2", sent_at="2026-11-02T09:00:00")),
    orjson.dumps({k: v for k, v in _ok_event(event_id="b3").items() if k != "shop_id"}),
    orjson.dumps(_ok_event(event_id="b4", conversation_id=["c1"])),
    orjson.dumps({"schema": "shop.event/v1", "event_id": "b5", "shop_id": "s1", "type": "timezone",
                  "at": "2026-11-02T09:00:00Z", "timezone": "Mars/Olympus"}),
    orjson.dumps(_ok_event(event_id="b6", schema="chat.message/v9")),
]


def _cli_log() -> tuple[list[bytes], list[int]]:
    valid = [orjson.dumps(_ok_event(event_id=f"v{i}", conversation_id=f"c{i % 3}",
                                    sender=("buyer", "seller", "auto_reply")[i % 3],
                                    sent_at=(MONDAY + timedelta(minutes=37 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")))
             for i in range(len(CLI_BAD) + 3)]
    lines: list[bytes] = []
    bad_numbers: list[int] = []
    for i, v in enumerate(valid):
        lines.append(v)
        if i < len(CLI_BAD):
            lines.append(CLI_BAD[i])
            bad_numbers.append(len(lines))
    lines.append(valid[0])  # a duplicate, not invalid
    return lines, bad_numbers


def _check_cli_output(path: str, stdout: bytes, stderr: str, n_lines: int, bad_numbers: list[int]) -> None:
    report = json.loads(stdout)
    assert errors("audit-report", report) == []
    stats = report["stats"]
    assert stats["read"] == n_lines and stats["invalid"] == len(bad_numbers)
    assert stats["valid"] + stats["duplicate"] + stats["invalid"] == stats["read"]
    err_lines = stderr.splitlines()
    assert len(err_lines) == len(bad_numbers), stderr
    pattern = re.compile(re.escape(path) + r":(\d+): invalid event: (\S+)")
    seen = []
    for text in err_lines:
        m = pattern.fullmatch(text)
        assert m, text
        assert REASON.fullmatch(m.group(2)), text
        seen.append(int(m.group(1)))
    assert seen == bad_numbers
    assert Counter(pattern.fullmatch(t).group(2) for t in err_lines) == Counter(stats["invalid_by_reason"])


def test_r1_cli_audit_reports_each_bad_line_on_stderr_and_valid_json_on_stdout(tmp_path: Path) -> None:
    """R1 at the command line: exit 0, one ``FILE:LINE: invalid event: REASON`` line on stderr per
    bad line, and the JSON report (conforming to audit-report.schema.json) on stdout."""
    lines, bad_numbers = _cli_log()
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(_no_newline(ln) for ln in lines) + b"\n")
    proc = subprocess.run([*_cli_command(), "audit", str(path), "--format", "json"], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    _check_cli_output(str(path), proc.stdout, proc.stderr.decode(), len(lines), bad_numbers)
    report = json.loads(proc.stdout)
    assert report["stats"]["duplicate"] == 1 and report["sessions"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixed_logs(max_size=25))
def test_r1_cli_audit_on_fuzzed_files(log: tuple[list[bytes], list[int]]) -> None:
    """The same through click (in process, so it can run many examples): any mix of bad lines."""
    lines, bad_numbers = log
    lines = [_no_newline(ln) for ln in lines]
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "events.jsonl")
        Path(path).write_bytes(b"".join(ln + b"\n" for ln in lines))
        result = CliRunner().invoke(cli, ["audit", path, "--format", "json", "--max-future", "off"],
                                    catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    _check_cli_output(path, result.stdout_bytes, result.stderr, len(lines), bad_numbers)


# ------------------------------------------------------------------------ repeated keys (#10)
def _reference_has_duplicates(text: str) -> bool:
    found = []

    def hook(pairs: list) -> dict:
        if len({k for k, _ in pairs}) != len(pairs):
            found.append(True)
        return dict(pairs)

    json.loads(text, object_pairs_hook=hook)
    return bool(found)


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_has_duplicate_keys_agrees_with_a_parser_that_sees_every_pair(data: st.DataObject) -> None:
    """Issue #10 finding 10: the quote-count check of schemas/decode.py finds a repeated key
    exactly when the standard library parser, seeing every pair, finds one: at any depth, with
    escaped quotes in values, keys spelt with \\u escapes, whitespace anywhere, numbers and
    nested values that change the count of string tokens."""
    from chatsla.schemas.decode import has_duplicate_keys

    tree = data.draw(_pair_trees.filter(lambda t: isinstance(t, (Pairs, list))))
    text = _json_text(tree, data.draw)
    value = orjson.loads(text)
    expected = _reference_has_duplicates(text)
    assert has_duplicate_keys(text.encode(), value) == expected, text
    assert has_duplicate_keys(text, value) == expected, text
