"""``chatsla replay``, ``export`` and ``verify`` on a mixed week of all four platforms, on a real
broker (issue #12: "replay, export and verify cover the new topics and records"; issue #14: and
after-sales requests, R11.5, R11.6).

(a) ``chatsla simulate --bootstrap`` produces a week of TikTok Shop chat, Douyin tickets, AliExpress
    chat and TikTok Shop after-sales requests to the input topics (``chat.messages``,
    ``ticket.events``, ``aftersale.requests``, ``shop.events``: issue #14 step 3, the simulator's
    Kafka path for after-sales); ``chatsla replay`` prints byte for byte what ``chatsla audit``
    prints for the ``chatsla export`` file, and its report holds tickets, waits, requests and
    periods;
(b) ``chatsla verify`` against output topics holding the replay's own records (written here from
    the in-process audit of the export) finds nothing, comparing tickets, waits, requests and
    periods; one drifted ticket field, then one tampered after-sales decision, is named and exits 1.
"""

from __future__ import annotations

import os
import subprocess

import orjson
import pytest

from chatsla.audit import run_audit
from chatsla.core.policy import policies_for
from chatsla.core.timefmt import parse_time
from chatsla.simulate import SimConfig, generate
from chatsla.streams.producer import produce
from tests.integration.harness import CHATSLA, Deployment, read_topic

pytestmark = pytest.mark.integration

FROM, TO = "2026-11-01T00:00:00Z", "2026-11-12T00:00:00Z"


def chatsla(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHATSLA, *args], capture_output=True, timeout=300, stdin=subprocess.DEVNULL,
                          env={**os.environ, "COLUMNS": "200"})


@pytest.fixture(scope="module")
def mixed(kafka_broker, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("replay-models")
    dep = Deployment(kafka_broker.bootstrap, partitions=3, tmp=tmp)
    platforms = ("tiktok_shop", "douyin", "aliexpress", "aftersale")
    records = generate(SimConfig(seed=61, shops=3, conversations_per_shop=40, jitter_seconds=60,
                                 bad_fraction=0.02, platforms=platforms, aftersale_requests=60))
    assert {t for t, _, _ in records} == {"chat.messages", "ticket.events", "shop.events", "aftersale.requests"}
    sim = chatsla("simulate", "--seed", "61", "--shops", "3", "--conversations", "40", "--jitter-seconds", "60",
                  "--bad-fraction", "0.02", "--platforms", ",".join(platforms), "--aftersale-requests", "60",
                  "--bootstrap", dep.bootstrap, "--topic-prefix", dep.prefix, "-q")
    assert sim.returncode == 0, sim.stderr
    assert dep.names.aftersale in sim.stderr.decode()
    # every after-sales record of the generator on its (prefixed) topic, bad ones included, keyed
    # by request_id (R11.1; a partition's order is the generator's, across partitions there is none)
    on_topic = sorted((r.key, r.value) for r in read_topic(dep.bootstrap, dep.names.aftersale))
    assert on_topic == sorted((k, v) for t, k, v in records if t == "aftersale.requests")
    flags = ["--bootstrap", dep.bootstrap, "--topic-prefix", dep.prefix, "--from", FROM, "--to", TO]
    try:
        yield dep, flags, tmp
    finally:
        dep.stop_all()


def test_replay_equals_the_audit_of_its_export_with_tickets_waits_requests_and_periods(mixed) -> None:
    """(a): the ticket and after-sales events are read and exported, and the four models' records
    agree (R6.5; issue #14: requests and their day, week and month rows)."""
    dep, flags, tmp = mixed
    replay = chatsla("replay", *flags, "--format", "json")
    assert replay.returncode == 0, replay.stderr
    out = tmp / "week.jsonl.gz"
    export = chatsla("export", *flags, "--out", str(out))
    assert export.returncode == 0, export.stderr
    assert "ticket.events/" in export.stderr.decode() and "aftersale.requests/" in export.stderr.decode()
    audit = chatsla("audit", str(out), "--until", TO, "--format", "json", "-q")
    assert audit.returncode == 0, audit.stderr
    assert replay.stdout == audit.stdout
    report = orjson.loads(replay.stdout)
    assert report["sessions"] and report["tickets"] and report["waits"] and report["periods"] and report["requests"]
    assert {p["policy_id"] for p in report["periods"]} >= {"tiktok_aftersale"}
    assert set(report["stats"]["models"]) == {"service_tickets", "im_waits", "aftersale"}


def test_verify_compares_tickets_waits_requests_and_periods_with_the_output_topics(mixed) -> None:
    """(b): the output topics hold the in-process run's records (last per key); verify finds
    nothing, then names the one drifted ticket field, then (issue #14) one tampered after-sales
    decision on chatsla.aftersale (exit 1 each time)."""
    import gzip

    dep, flags, tmp = mixed
    out = tmp / "verify.jsonl.gz"
    assert chatsla("export", *flags, "--out", str(out)).returncode == 0
    lead, *others = policies_for(())
    report = run_audit(gzip.open(out).read().split(b"\n"), lead, until=parse_time(TO), policies=others)
    n = dep.names
    outputs = ([(n.sessions, s["session_id"].encode(), orjson.dumps(s)) for s in report.sessions]
               + [(n.assessments, a["shop_id"].encode(), orjson.dumps(a)) for a in report.assessments]
               + [(n.ticket_records, t["ticket_id"].encode(), orjson.dumps(t)) for t in report.tickets]
               + [(n.waits, w["wait_id"].encode(), orjson.dumps(w)) for w in report.waits]
               + [(n.aftersale_records, r["shop_id"].encode(), orjson.dumps(r)) for r in report.requests]
               + [(n.periods, p["shop_id"].encode(), orjson.dumps(p)) for p in report.periods])
    produce(outputs, dep.bootstrap, n)
    v = chatsla("verify", *flags, "--format", "json")
    result = orjson.loads(v.stdout)
    assert v.returncode == 0, (v.stderr, result["differences"][:5])
    compared = result["compared"]
    assert (compared["tickets"], compared["waits"], compared["periods"]) == (
        len(report.tickets), len(report.waits), len(report.periods))
    in_period = [r for r in report.requests if parse_time(r["requested_at"]) >= parse_time(FROM)]
    assert compared["requests"] == len(in_period) > 0
    drifted = dict(next(t for t in report.tickets if t["handled_at"] is not None))
    drifted["handled_in_time"] = not drifted["handled_in_time"]
    produce([(n.ticket_records, drifted["ticket_id"].encode(), orjson.dumps(drifted))], dep.bootstrap, n)
    v = chatsla("verify", *flags, "--format", "json")
    assert v.returncode == 1
    diffs = [(d["kind"], d["key"], d["field"]) for d in orjson.loads(v.stdout)["differences"]]
    assert diffs == [("ticket", drifted["ticket_id"], "handled_in_time")]
    produce([(n.ticket_records, drifted["ticket_id"].encode(), orjson.dumps(next(
        t for t in report.tickets if t["ticket_id"] == drifted["ticket_id"])))], dep.bootstrap, n)
    tampered = dict(next(r for r in in_period if r["decision"] == "manual_review"))
    tampered["decision"] = "approve"
    produce([(n.aftersale_records, tampered["shop_id"].encode(), orjson.dumps(tampered))], dep.bootstrap, n)
    v = chatsla("verify", *flags, "--format", "json")
    assert v.returncode == 1
    diffs = [(d["kind"], d["key"], d["field"]) for d in orjson.loads(v.stdout)["differences"]]
    assert diffs == [("request", tampered["request_id"], "decision")]
