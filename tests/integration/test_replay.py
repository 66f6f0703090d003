"""Replay for audits and the appeal pack, on a real Kafka broker (issue #5; RULES R6.4, R6.5).

A simulated week runs through a live worker (``chatsla worker``, ticked to the end like
``test_pipeline.py``); then ``chatsla replay`` / ``export`` / ``verify`` read the same topics with
their own group-less consumer:

(a) the replay prints byte for byte what ``chatsla audit`` prints for the ``chatsla export`` file,
    and ``chatsla verify`` finds no difference with the live outputs;
(b) an event produced long after its ``sent_at`` (beyond the allowed lateness) is the one and only
    difference ``verify`` reports, marked late;
(c) bad arguments give one plain line and a non-zero exit;
(d) the HTML appeal pack renders in headless Chromium (screenshot kept under ``artifacts/``);
(e) ``chatsla replay --week`` on the demo's mixed-time-zone week reports every shop's own week,
    final, and a ``--from``/``--to`` range in UTC names the shops' weeks it cuts (issue #13).
"""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import uuid
from pathlib import Path

import orjson
import pytest

from chatsla.audit import run_audit
from chatsla.core.policy import load_policy
from chatsla.core.timefmt import HOUR, MINUTE, SECOND, format_time, parse_time
from chatsla.dev.broker import free_port
from chatsla.streams.producer import produce
from chatsla.simulate import SimConfig, generate
from chatsla.schemas.decode import decode
from chatsla.core.events import Invalid
from tests.integration.harness import CHATSLA, Deployment, latest_outputs, read_topic, routed_ids, wait_for

pytestmark = pytest.mark.integration

LATENESS = 2 * MINUTE
FROM = "2026-11-01T00:00:00Z"  # before every simulated shop's local Monday (Asia/Bangkok: Nov 1 17:00Z)
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
LATE_ID = "late-buyer-1"
LATE_CONV = "c-late-1"
LATE_SENT = "2026-11-04T10:00:00Z"  # mid-week for shop-01 (UTC)


def simulated_week(seed: int) -> list[tuple[str, bytes, bytes]]:
    return generate(SimConfig(seed=seed, shops=5, conversations_per_shop=150, jitter_seconds=60, bad_fraction=0.02))


def chatsla(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([CHATSLA, *args], capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          env={**os.environ, "COLUMNS": "200"})


def kafka_flags(dep: Deployment) -> list[str]:
    return ["--bootstrap", dep.bootstrap, "--topic-prefix", dep.prefix]


def expected(values: list[bytes], until: int) -> tuple[dict, dict]:
    report = run_audit(values, load_policy(), until=until)
    return ({(s["shop_id"], s["session_id"]): s for s in report.sessions},
            {(a["shop_id"], a["week_start"]): a for a in report.assessments})


def settle(dep: Deployment, records: list, timeout: float = 300) -> int:
    """Run a worker over the records, tick past their end, wait for outputs equal to the audit.

    Returns the tick time; the live watermark is then ``tick - LATENESS``.
    """
    valid = [ev for ev in (decode(v) for _, _, v in records) if type(ev) is not Invalid]
    produce(records, dep.bootstrap, dep.names)
    dep.start_worker()
    ids = {ev.event_id for ev in valid}
    # the end-of-input ticks must come after every event (a record count would include the
    # workers' flush markers and re-forwarded duplicates)
    wait_for(lambda: routed_ids(dep.bootstrap, dep.names.events) >= ids, timeout, "all events routed")
    end = max(ev.t for ev in valid) + LATENESS + HOUR
    dep.send_ticks(end, since_us=min(ev.t for ev in valid))  # each partition's clock is its own
    want = expected([v for _, _, v in records], end - LATENESS)
    assert want[1], "the simulated week must produce assessments"
    wait_for(lambda: latest_outputs(dep.bootstrap, dep.names) == want, timeout, "live outputs equal to the audit")
    return end


@pytest.fixture(scope="module")
def clean(kafka_broker, tmp_path_factory):
    """A deployment whose live outputs settled on a simulated week with no late event."""
    dep = Deployment(kafka_broker.bootstrap, partitions=3, tmp=tmp_path_factory.mktemp("replay-clean"))
    try:
        records = simulated_week(seed=51)
        end = settle(dep, records)
        yield dep, records, end
    finally:
        dep.stop_all()


def cut_inside_the_data(dep: Deployment) -> int:
    """A ``--to`` that every chat partition's watermark passes before its last record, so a record
    logged after all of them lies beyond the period's input (chatsla.replay: end of input)."""
    last: dict[int, int] = {}
    for r in read_topic(dep.bootstrap, dep.names.chat):
        ev = decode(r.value)
        if type(ev) is not Invalid:
            last[r.partition] = max(last.get(r.partition, ev.t), ev.t)
    assert len(last) == dep.partitions
    return min(last.values()) - LATENESS - SECOND


@pytest.fixture(scope="module")
def late(kafka_broker, tmp_path_factory):
    """Like ``clean``, then one buyer message produced days after its sent_at (R6.4).

    Yields the deployment, its records, the tick time and a ``--to`` inside the data."""
    dep = Deployment(kafka_broker.bootstrap, partitions=3, tmp=tmp_path_factory.mktemp("replay-late"))
    try:
        records = simulated_week(seed=52)
        end = settle(dep, records)
        cut = cut_inside_the_data(dep)
        # shop-01 (UTC) week of 2026-11-02 is final by then: compared on every field
        assert cut > parse_time("2026-11-10T00:10:00Z"), format_time(cut)
        value = orjson.dumps({"schema": "chat.message/v1", "event_id": LATE_ID, "shop_id": "shop-01",
                              "conversation_id": LATE_CONV, "sender": "buyer", "sent_at": LATE_SENT})
        produce([("chat.messages", LATE_CONV.encode(), value)], dep.bootstrap, dep.names)

        def applied() -> bool:
            sessions, assessments = latest_outputs(dep.bootstrap, dep.names)
            s = sessions.get(("shop-01", f"{LATE_CONV}#1"))
            a = assessments.get(("shop-01", "2026-11-02"))
            return bool(s and s["late"] and s["closed_at"] and a and a["late"] and a["status"] == "final")

        wait_for(applied, 300, "the live worker applying the late event")
        yield dep, records, end, format_time(cut)
    finally:
        dep.stop_all()


# ------------------------------------------------------------------------------------------ (a)


def test_replay_equals_the_audit_of_its_export_byte_for_byte(clean, tmp_path) -> None:
    dep, records, end = clean
    to = format_time(end - LATENESS)  # the live watermark
    period = ["--from", FROM, "--to", to]
    replay = chatsla("replay", *kafka_flags(dep), *period, "--format", "json")
    assert replay.returncode == 0, replay.stderr.decode()
    out = tmp_path / "period.jsonl.gz"
    export = chatsla("export", *kafka_flags(dep), *period, "--out", str(out))
    assert export.returncode == 0, export.stderr.decode()
    audit = chatsla("audit", str(out), "--until", to, "--format", "json")
    assert audit.returncode == 0, audit.stderr.decode()
    assert replay.stdout == audit.stdout  # byte for byte

    report = orjson.loads(replay.stdout)
    stats = report["stats"]
    assert stats["read"] == len(records)  # every record, the invalid ones counted as in the audit
    assert stats["invalid"] == sum(1 for _, _, v in records if type(decode(v)) is Invalid) > 0
    assert stats["late"] == 0 and len(report["assessments"]) >= 5
    with gzip.open(out, "rb") as f:  # the original bytes, each record once
        assert sorted(f.read().splitlines()) == sorted(v for _, _, v in records)

    # the second read path (fetch and decode in a reader process) gives the same bytes
    parallel = chatsla("replay", *kafka_flags(dep), *period, "--format", "json", "--reader-process", "on")
    assert parallel.returncode == 0, parallel.stderr.decode()
    assert parallel.stdout == replay.stdout


def test_a_shorter_period_is_the_audit_of_its_export_restricted_to_the_period(clean, tmp_path) -> None:
    dep, _, _ = clean
    start, stop = "2026-11-03T00:00:00Z", "2026-11-09T12:00:00Z"
    period = ["--from", start, "--to", stop]
    replay = chatsla("replay", *kafka_flags(dep), *period, "--format", "json")
    assert replay.returncode == 0, replay.stderr.decode()
    out = tmp_path / "part.jsonl"
    assert chatsla("export", *kafka_flags(dep), *period, "--out", str(out)).returncode == 0
    audit = chatsla("audit", str(out), "--until", stop, "--format", "json")
    got, full = orjson.loads(replay.stdout), orjson.loads(audit.stdout)
    assert got["stats"] == full["stats"]
    t0, t1 = parse_time(start), parse_time(stop)
    assert got["sessions"] == [s for s in full["sessions"] if t0 <= parse_time(s["opened_at"]) < t1]
    assert 0 < len(got["sessions"]) < len(full["sessions"])
    # weeks starting in the period: the UTC and Europe/London shops' Monday 2026-11-09 has not ended
    # by the 9th at noon, and every 2026-11-02 week started before the 3rd
    assert got["assessments"] == []
    assert full["assessments"]


def test_verify_finds_no_difference_with_the_live_outputs(clean) -> None:
    dep, _, end = clean
    result = chatsla("verify", *kafka_flags(dep), "--from", FROM, "--to", format_time(end - LATENESS),
                     "--format", "json")
    assert result.returncode == 0, result.stdout.decode()[-3000:] + result.stderr.decode()
    doc = orjson.loads(result.stdout)
    assert doc["differences"] == [] and doc["late_events"] == []
    assert doc["compared"]["sessions"] > 500 and doc["compared"]["assessments"] >= 5
    table = chatsla("verify", *kafka_flags(dep), "--from", FROM, "--to", format_time(end - LATENESS))
    assert table.returncode == 0 and b"no differences" in table.stdout


# ------------------------------------------------------------------------------------------ (b)


def test_verify_reports_exactly_the_late_event(late) -> None:
    dep, _, _, cut = late
    # --to inside the data: every partition's watermark passes it before the late record, which
    # was logged days after its sent_at, so the replay of the period does not contain it
    result = chatsla("verify", *kafka_flags(dep), "--from", FROM, "--to", cut, "--format", "json")
    assert result.returncode == 1, result.stdout.decode()[-3000:] + result.stderr.decode()
    doc = orjson.loads(result.stdout)
    assert [(e["event_id"], e["arrival"], e["time"]) for e in doc["late_events"]] == [
        (LATE_ID, "after_period", LATE_SENT)]
    diffs = doc["differences"]
    assert diffs and all(d["late"] and d["late_events"] == [LATE_ID] for d in diffs), diffs
    keys = {(d["kind"], d["shop_id"], d["key"]) for d in diffs}
    assert keys == {("session", "shop-01", f"{LATE_CONV}#1"), ("assessment", "shop-01", "2026-11-02")}, diffs
    session = [d for d in diffs if d["kind"] == "session"]
    assert session == [{"kind": "session", "shop_id": "shop-01", "key": f"{LATE_CONV}#1", "field": "(record)",
                        "live": "present", "replay": None, "late": True, "late_events": [LATE_ID],
                        "cause": "late"}]
    fields = {d["field"]: d for d in diffs if d["kind"] == "assessment"}
    assert fields["sessions"]["live"] == fields["sessions"]["replay"] + 1
    assert fields["buyer_messages"]["live"] == fields["buyer_messages"]["replay"] + 1
    assert fields["late"]["live"] is True and fields["late"]["replay"] is False
    assert set(fields) <= {"sessions", "buyer_messages", "late", "rate", "outcome", "violation_points"}

    table = chatsla("verify", *kafka_flags(dep), "--from", FROM, "--to", cut)
    assert table.returncode == 1
    text = table.stdout.decode()
    assert f"late event {LATE_ID}" in text and f"late: {LATE_ID}" in text
    assert f"{len(diffs)} differences ({len(diffs)} explained by late events)" in text


def test_at_the_live_watermark_the_replay_applies_the_late_event_as_the_worker_did(late) -> None:
    dep, _, end, _ = late
    to = format_time(end - LATENESS)
    result = chatsla("verify", *kafka_flags(dep), "--from", FROM, "--to", to, "--format", "json")
    assert result.returncode == 0, result.stdout.decode()[-3000:]
    doc = orjson.loads(result.stdout)
    assert doc["differences"] == []
    assert [(e["event_id"], e["arrival"]) for e in doc["late_events"]] == [(LATE_ID, "applied_late")]
    replay = orjson.loads(chatsla("replay", *kafka_flags(dep), "--from", FROM, "--to", to, "--format", "json").stdout)
    s = next(s for s in replay["sessions"] if s["session_id"] == f"{LATE_CONV}#1")
    assert s["late"] is True and s["opened_at"] == LATE_SENT and s["replied_within_24h"] is False


# ------------------------------------------------------------------------------------------ (c)


def test_bad_arguments_give_one_line_and_a_non_zero_exit(clean, tmp_path) -> None:
    dep, _, _ = clean
    ok = ["--from", FROM, "--to", "2026-11-10T00:00:00Z"]
    cases = [
        (["replay", *kafka_flags(dep), "--from", "2026-11-10T00:00:00Z", "--to", FROM], "--to must be after --from"),
        (["replay", *kafka_flags(dep), "--from", "last monday", "--to", FROM], "RFC 3339"),
        (["replay", "--bootstrap", dep.bootstrap, "--topic-prefix", f"missing{uuid.uuid4().hex[:6]}.", *ok],
         "does not exist"),
        (["replay", "--bootstrap", f"127.0.0.1:{free_port()}", "--timeout", "3", *ok], "cannot reach Kafka"),
        (["export", "--bootstrap", f"127.0.0.1:{free_port()}", "--timeout", "3", *ok, "--out",
          str(tmp_path / "x.jsonl")], "cannot reach Kafka"),
        (["verify", "--bootstrap", f"127.0.0.1:{free_port()}", "--timeout", "3", *ok], "cannot reach Kafka"),
        (["replay", *kafka_flags(dep), *ok, "--format", "html"], "exactly one --shop"),
        (["replay", *kafka_flags(dep), *ok, "--format", "html", "--shop", "shop-02"], "local Monday 00:00"),
        (["replay", *kafka_flags(dep), *ok, "--lookback", "soon"], "--lookback"),
        (["replay", *kafka_flags(dep), *ok, "--policy", "nosuch@1"], "unknown policy"),
        (["export", *kafka_flags(dep), *ok], "--out"),
        (["verify", *kafka_flags(dep), "--to", FROM], "--from"),
    ]
    for args, needle in cases:
        result = chatsla(*args, timeout=120)
        err = result.stderr.decode()
        assert result.returncode != 0, (args, err)
        assert len(err.strip().splitlines()) == 1, (args, err)
        assert needle in err, (args, err)
        assert "Traceback" not in err and result.stdout == b"", (args, err)


# ------------------------------------------------------------------------------------------ (d)


def test_the_appeal_pack_renders_in_headless_chromium(late, tmp_path) -> None:
    dep, _, end, _ = late
    ARTIFACTS.mkdir(exist_ok=True)
    html_path = ARTIFACTS / "appeal-shop-01-2026-11-02.html"
    png_path = ARTIFACTS / "appeal-shop-01-2026-11-02.png"
    html_path.unlink(missing_ok=True)
    png_path.unlink(missing_ok=True)
    to = format_time(end - LATENESS)  # the whole log: the late session is on the page, flagged
    result = chatsla("replay", *kafka_flags(dep), "--from", "2026-11-02T00:00:00Z", "--to", to,
                     "--shop", "shop-01", "--format", "html", "--out", str(html_path))
    assert result.returncode == 0, result.stderr.decode()
    html = html_path.read_text(encoding="utf-8")
    assert f'data-session="{LATE_CONV}#1"' in html and "LATE" in html and "vacation mode (R4 “Vacation mode”)" in html
    for bad in ("http://", "https://", "src=", "<script"):
        assert bad not in html.lower()
    report = orjson.loads(chatsla("replay", *kafka_flags(dep), "--from", "2026-11-02T00:00:00Z", "--to", to,
                                  "--shop", "shop-01", "--format", "json").stdout)
    a = next(a for a in report["assessments"] if a["week_start"] == "2026-11-02")
    assert f'data-field="assessment.sessions" data-value="{a["sessions"]}"' in html

    from tests.test_appeal import find_browser

    chromium = find_browser()  # skips, saying why, where no browser can be had (issue #13)
    profile = tmp_path / "chromium-profile"
    shot = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         f"--screenshot={png_path}", "--window-size=1200,1600", html_path.as_uri()],
        capture_output=True, timeout=180, stdin=subprocess.DEVNULL)
    assert png_path.exists(), shot.stderr.decode()[-2000:]
    data = png_path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 1600)


# ------------------------------------------------------------------------------------------ (e)

WEEK = "2026-11-02"
# --week 2026-11-02 reads from that Monday 00:00 at UTC+14 (the easternmost zone) and finishes the
# watermark at the next Monday 00:00 at UTC-12 (the westernmost) + 24 h + 10 min + 2 min: every
# shop's own week is final there, whatever its zone (chatsla.replay: Replay by week)
WEEK_FROM, WEEK_TO = "2026-11-01T10:00:00Z", "2026-11-10T12:12:00Z"
SAMPLE = ROOT / "samples" / "week.jsonl"


@pytest.fixture(scope="module")
def demo_week(kafka_broker, tmp_path_factory):
    """The demo's week (``make demo``: seed 7, the same as samples/week.jsonl) in the input topics
    of a deployment with the demo's 4 partitions; no worker: replay reads only the input topics."""
    dep = Deployment(kafka_broker.bootstrap, partitions=4, tmp=tmp_path_factory.mktemp("replay-week"))
    records = generate(SimConfig(seed=7, shops=5, conversations_per_shop=200, jitter_seconds=60,
                                 bad_fraction=0.002))
    assert [v for _, _, v in records] == SAMPLE.read_bytes().splitlines()  # the README's demo data
    produce(records, dep.bootstrap, dep.names)
    yield dep, records


def names_shop(value: bytes, shop: str) -> bool:
    """Whether a record is the shop's: a JSON object whose shop_id is ``shop`` (valid or not)."""
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return False
    return isinstance(obj, dict) and obj.get("shop_id") == shop


def test_replay_week_reports_every_shops_own_week_final(demo_week, tmp_path) -> None:
    """Issue #13: on the demo week (shops in UTC, Asia/Bangkok, Asia/Jakarta, Europe/London and
    America/Los_Angeles), ``replay --week`` reports each shop's own local week, final (R5.1, R5.6),
    equal to the audit of the export of the same period restricted to that week, and to the
    offline audit of samples/week.jsonl (the README's numbers)."""
    dep, records = demo_week
    got = chatsla("replay", *kafka_flags(dep), "--week", WEEK, "--format", "json")
    assert got.returncode == 0, got.stderr.decode()
    assert b"warning" not in got.stderr, got.stderr.decode()  # the data reaches the week's final watermark
    report = orjson.loads(got.stdout)
    weeks = {a["shop_id"]: a for a in report["assessments"]}
    assert {s: (a["week_start"], a["outcome"], a["status"]) for s, a in weeks.items()} == {
        "shop-01": (WEEK, "ok", "final"), "shop-02": (WEEK, "warning", "final"),
        "shop-03": (WEEK, "violation", "final"), "shop-04": (WEEK, "not_assessed", "final"),
        "shop-05": (WEEK, "ok", "final")}
    offline = run_audit(SAMPLE.read_bytes().splitlines(), load_policy(), until=parse_time("2026-11-17T00:10:00Z"))
    assert report["assessments"] == [a for a in offline.assessments if a["week_start"] == WEEK]

    out = tmp_path / "week.jsonl"
    export = chatsla("export", *kafka_flags(dep), "--from", WEEK_FROM, "--to", WEEK_TO, "--out", str(out))
    assert export.returncode == 0, export.stderr.decode()
    audit = orjson.loads(chatsla("audit", str(out), "--until", WEEK_TO, "--format", "json").stdout)
    assert report["stats"] == audit["stats"]
    assert report["sessions"] == [s for s in audit["sessions"] if s["week_start"] == WEEK]
    assert report["assessments"] == [a for a in audit["assessments"] if a["week_start"] == WEEK]
    # each shop's sessions lie in its own local week: Bangkok's starts 2026-11-01T17:00:00Z
    bangkok = [parse_time(s["opened_at"]) for s in report["sessions"] if s["shop_id"] == "shop-02"]
    assert parse_time("2026-11-01T17:00:00Z") <= min(bangkok) and max(bangkok) < parse_time("2026-11-08T17:00:00Z")

    table = chatsla("replay", *kafka_flags(dep), "--week", WEEK)
    assert table.returncode == 0, table.stderr.decode()
    text = table.stdout.decode()
    for shop, zone, start, end in (("shop-01", "UTC", "2026-11-02T00:00:00Z", "2026-11-09T00:00:00Z"),
                                   ("shop-02", "Asia/Bangkok", "2026-11-01T17:00:00Z", "2026-11-08T17:00:00Z"),
                                   ("shop-03", "Asia/Jakarta", "2026-11-01T17:00:00Z", "2026-11-08T17:00:00Z"),
                                   ("shop-05", "America/Los_Angeles", "2026-11-02T08:00:00Z", "2026-11-09T08:00:00Z")):
        assert f"{shop} ({zone}): week {WEEK} runs {start} .. {end}" in text, text
    assert "No week" not in text and "violation" in text


def test_a_utc_range_names_the_shops_weeks_it_cuts(demo_week) -> None:
    """Issue #13: the README's former ``--from 2026-11-02T00:00:00Z --to 2026-11-09T00:00:00Z``
    said only "No week has ended by the watermark yet" and silently left out the Bangkok and
    Jakarta shops, whose Monday starts before --from. Each cut week is named, with why."""
    dep, _ = demo_week
    result = chatsla("replay", *kafka_flags(dep), "--from", "2026-11-02T00:00:00Z", "--to", "2026-11-09T00:00:00Z")
    assert result.returncode == 0, result.stderr.decode()
    text = " ".join(result.stdout.decode().split())  # rich may wrap a long line
    for shop, zone in (("shop-02", "Asia/Bangkok"), ("shop-03", "Asia/Jakarta")):
        assert f"{shop} ({zone}): week {WEEK} runs 2026-11-01T17:00:00Z .. 2026-11-08T17:00:00Z, starting " \
               f"before --from: left out of this report; --week {WEEK}" in text, text
    assert (f"shop-01 (UTC): week {WEEK} runs 2026-11-02T00:00:00Z .. 2026-11-09T00:00:00Z, not ended before "
            f"--to: no assessment yet; it is final with --to 2026-11-10T00:12:00Z or later") in text, text
    assert "No week has ended by the watermark yet" not in text
    js = chatsla("replay", *kafka_flags(dep), "--from", "2026-11-02T00:00:00Z", "--to", "2026-11-09T00:00:00Z",
                 "--format", "json")
    assert js.returncode == 0 and orjson.loads(js.stdout)["assessments"] == []
    assert b"note: shop-02 (Asia/Bangkok)" in js.stderr  # machine formats keep stdout clean


def test_the_appeal_pack_of_a_week_shows_the_shops_own_counts_and_local_times(demo_week, tmp_path) -> None:
    """Issue #13: ``replay --shop shop-03 --week 2026-11-02 --format html`` (the README's appeal
    pack): the shop's own counters (its records of the input, not the whole input's), its time
    zone, local times and the rate as a percentage."""
    dep, records = demo_week
    path = tmp_path / "appeal.html"
    result = chatsla("replay", *kafka_flags(dep), "--shop", "shop-03", "--week", WEEK, "--format", "html",
                     "--out", str(path))
    assert result.returncode == 0, result.stderr.decode()
    html = path.read_text(encoding="utf-8")
    # what the replay read: the records of its export (the same period), shop-03's and every shop's
    export = tmp_path / "week.jsonl"
    assert chatsla("export", *kafka_flags(dep), "--from", WEEK_FROM, "--to", WEEK_TO, "--out", str(export)).returncode == 0
    read = export.read_bytes().splitlines()
    mine = [v for v in read if names_shop(v, "shop-03")]
    assert f'data-field="shop.read" data-value="{len(mine)}"' in html
    assert f'data-field="stats.read" data-value="{len(read)}"' in html and 0 < len(mine) < len(read)
    assert '<b data-field="zone">Asia/Jakarta</b> (UTC+07:00' in html
    assert "69.87 %" in html and "0.6987951807228916<" not in html  # 58 / 83, as a percentage
    assert 'data-local="11-0' in html and ' +07</span>' in html
    # shop-02 has invalid records of its own (bad_type:schema, bad_type:sender): the reader process
    # (fetch and decode in a child) hands them over with their shop, so both paths count the same
    pages = []
    for mode in ("off", "on"):
        page = tmp_path / f"appeal-shop-02-{mode}.html"
        result = chatsla("replay", *kafka_flags(dep), "--shop", "shop-02", "--week", WEEK, "--format", "html",
                         "--out", str(page), "--reader-process", mode)
        assert result.returncode == 0, result.stderr.decode()
        pages.append(page.read_bytes())
    assert pages[0] == pages[1]
    bad = [v for v in read if names_shop(v, "shop-02") and type(decode(v)) is Invalid]
    assert len(bad) == 2 and f'data-field="shop.invalid" data-value="2"'.encode() in pages[0]
