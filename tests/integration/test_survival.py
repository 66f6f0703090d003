"""The live worker survives production (issue #10 findings 2, 5, 6, 8 and the live time checks of 4),
on a real Kafka broker with real ``chatsla worker`` processes.

Each test reproduced its finding against the worker before the fix (it failed there): a poison
record crashed the worker on every restart; the HTTP server listened on every address and served
Faust's own pages; the lag gauge was missing (or stale) after a restart; a far-future tick or
event was taken at face value. The broker-outage test (finding 7) is in test_outage.py.
"""

from __future__ import annotations

import socket
import subprocess
import urllib.error
import urllib.request

import orjson
import pytest

from chatsla.streams.clock import wall_clock_us
from chatsla.core.timefmt import HOUR, MINUTE, format_time
from chatsla.streams.producer import produce
from chatsla.schemas.decode import decode
from chatsla.core.events import Invalid
from chatsla.streams.codec import encode_batch, encode_event, encode_tick, source_tag
from chatsla.streams.outputs import default_partition
from tests.integration.harness import Deployment, count, read_topic, scrape, wait_for
from tests.integration.test_pipeline import finish_and_compare, week

pytestmark = pytest.mark.integration


def http_get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, bytes]:
    """(status, body) of a GET; HTTP errors are answers too, only a refused connection raises."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def status_is(port: int, path: str, status: int) -> bool:
    """For waits: True once ``path`` answers ``status`` (a server not listening yet is not an error)."""
    try:
        return http_get(port, path)[0] == status
    except urllib.error.URLError:
        return False


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of a /metrics text (None if absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def events_dlq(dep: Deployment) -> str:
    return dep.names.events + ".dlq"


def send_raw(dep: Deployment, topic: str, values: list[bytes], partition: int | None = None) -> None:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=dep.bootstrap, acks="all")
    for v in values:
        p.send(topic, value=v, partition=partition)
    p.flush()
    p.close()


def test_finding_2_poison_records_on_the_events_topic_go_to_its_dlq_and_processing_goes_on(
        deployment: Deployment) -> None:
    """Issue #10 finding 2: undecodable records of chatsla.events (not JSON, a year-9999 tick, a
    tick that is not an int, an event list of the wrong length, a batch with one bad item) go to
    chatsla.events.dlq with the original bytes and a reason, are counted, and the worker goes on;
    the good items of the mixed batch are applied (the outputs equal the audit of every event,
    including two that reached the worker only inside that batch). Before the fix the first of
    them stopped the worker, and every restart stopped again."""
    dep = deployment
    records = week(seed=41, shops=3, conversations=60)
    valid = [(i, ev) for i, (t, _, v) in enumerate(records) if t == "chat.messages"
             and type(ev := decode(v)) is not Invalid]
    # The first two events of one chat.messages partition in log order reach the worker only
    # inside the poisoned batch, sent before anything else: nothing logged before them in their
    # source is then read after them (which could make it late, R6.4).
    source = default_partition(records[valid[0][0]][1], dep.partitions)
    (i1, ev1), (i2, ev2) = [(i, ev) for i, ev in valid if default_partition(records[i][1], dep.partitions) == source][:2]
    held = {i1, i2}
    p = default_partition(ev1.shop_id.encode(), dep.partitions)
    assert default_partition(ev2.shop_id.encode(), dep.partitions) == p  # (seed 41: so they share a batch)

    def item(i: int, ev) -> bytes:
        return encode_event(ev, source_tag(dep.names.chat, default_partition(records[i][1], dep.partitions)))

    poison = [
        b"{not json",
        encode_tick(253402300799000000),  # 9999-12-31: OverflowError in the calendar (finding 5)
        b'["tick", "soon"]',
        b'["' + dep.names.chat.encode() + b'/0", ["c", "e-short", "shop-01"]]',
        encode_batch([item(i1, ev1), b'["' + dep.names.chat.encode() + b'/0", ["c", 1]]', item(i2, ev2)]),
    ]
    worker = dep.start_worker()
    send_raw(dep, dep.names.events, poison, partition=p)
    produce([r for i, r in enumerate(records) if i not in held], dep.bootstrap, dep.names)

    dlq = wait_for(lambda: (r := read_topic(dep.bootstrap, events_dlq(dep))) and len(r) >= len(poison) and r, 120,
                   "every poison record in chatsla.events.dlq")
    assert worker.poll() is None, "the worker stopped"
    assert [r.value for r in dlq] == poison  # the original bytes, each once, in order
    reasons = [dict(r.headers)["chatsla-reason"].decode() for r in dlq]
    assert reasons == ["not_json", "bad_tick", "bad_tick", "bad_length", "batch_item:1:bad_length"]
    assert dict(dlq[-1].headers)["chatsla-bad-items"] == b"1"
    for r in dlq:
        assert dict(r.headers)["chatsla-source"].decode().startswith(f"{dep.names.events}/{p}@")
    finish_and_compare(dep, records)
    assert worker.poll() is None
    text = wait_for(lambda: scrape(worker.web_port), 30, "/metrics")
    assert sample(text, "chatsla_dlq_records_total", topic=events_dlq(dep)) == len(poison)
    assert sample(text, "chatsla_poison_records_total", reason="not_json") == 1


def _other_address() -> str | None:
    """A non-loopback IPv4 address of this machine, or None."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=10).stdout.split()
    except OSError:
        out = []
    for a in out:
        if "." in a and not a.startswith("127."):
            return a
    return None


def test_finding_6_the_worker_listens_on_loopback_and_serves_only_chatsla_endpoints(deployment: Deployment) -> None:
    """Issue #10 finding 6: the HTTP server binds --web-host (default 127.0.0.1), not 0.0.0.0, and
    Faust's own pages (/router/, /table/, its index) answer 404; /healthz and /readyz exist."""
    worker = deployment.start_worker()
    port = worker.web_port
    wait_for(lambda: status_is(port, "/readyz", 200), 90, "/readyz to answer 200")
    assert http_get(port, "/healthz")[0] == 200
    assert http_get(port, "/metrics")[0] == 200
    for path in ("/router/", "/table/", "/table/conversations/", "/", "/graph/", "/assignment/", "/stats/"):
        assert http_get(port, path)[0] == 404, path
    other = _other_address()
    if other is None:
        pytest.skip("this machine has no non-loopback IPv4 address to check that nothing listens there")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((other, port), timeout=5).close()


def test_finding_8_lag_is_right_at_once_after_a_restart_and_the_dlq_total_survives_it(
        deployment: Deployment) -> None:
    """Issue #10 finding 8: after a restart the consumer-lag gauges are exported at once from the
    committed offsets (before: missing, or stale values from an earlier ownership, until new
    input); chatsla_dlq_topic_records counts the DLQ topics' records whatever the process's own
    chatsla_dlq_records_total (a per-process counter) says."""
    dep = deployment
    records = week(seed=42, shops=3, conversations=80, bad=0.03)
    n_bad = sum(1 for _, _, v in records if type(decode(v)) is Invalid)
    assert n_bad >= 5
    first = dep.start_worker()
    produce(records, dep.bootstrap, dep.names)
    finish_and_compare(dep, records)
    first.terminate()
    first.wait(timeout=60)
    second = dep.start_worker()
    wait_for(lambda: status_is(second.web_port, "/readyz", 200), 90, "the restarted worker ready")

    def lag_exported() -> str | None:
        text = scrape(second.web_port)
        lags = {(s.labels["topic"], s.labels["partition"]): s.value for s in _samples(text, "chatsla_consumer_lag_records")}
        want = {(t, str(p)) for t in (dep.names.chat, dep.names.events) for p in range(dep.partitions)}
        return text if want <= lags.keys() and all(v == 0 for v in lags.values()) else None

    wait_for(lag_exported, 15, "zero lag exported for every partition right after the restart")
    in_topic = count(dep.bootstrap, dep.names.chat_dlq)
    assert in_topic >= n_bad
    # read every 10 s from the topics' end offsets
    text = wait_for(lambda: (t := scrape(second.web_port))
                    and sample(t, "chatsla_dlq_topic_records", topic=dep.names.chat_dlq) is not None and t,
                    30, "the DLQ topic size exported")
    assert sample(text, "chatsla_dlq_topic_records", topic=dep.names.chat_dlq) == in_topic
    assert sample(text, "chatsla_dlq_topic_records", topic=events_dlq(dep)) == 0
    assert sample(text, "chatsla_dlq_records_total", topic=dep.names.chat_dlq) is None  # this process sent none


def _samples(text: str, name: str) -> list:
    from prometheus_client.parser import text_string_to_metric_families

    return [s for fam in text_string_to_metric_families(text) for s in fam.samples if s.name == name]


def test_finding_4_far_future_events_and_ticks_are_refused_and_the_endpoints_stay_up(deployment: Deployment) -> None:
    """Issue #10 findings 4/5, live half: an input event more than --max-future ahead of the wall
    clock goes to its input's DLQ with reason future_time; a tick that far ahead is ignored and
    counted (chatsla_rejected_ticks_total); a year-9999 tick goes to chatsla.events.dlq; /metrics
    and /shops never answer 500."""
    dep = deployment
    worker = dep.start_worker("--max-future", "1h")
    now = wall_clock_us()

    def chat(eid: str, t: int) -> tuple[str, bytes, bytes]:
        return ("chat.messages", b"conv-f", orjson.dumps({
            "schema": "chat.message/v1", "event_id": eid, "shop_id": "shop-f", "conversation_id": "conv-f",
            "sender": "buyer", "sent_at": format_time(t)}))

    produce([chat("now", now), chat("future", now + 2 * HOUR)], dep.bootstrap, dep.names)
    dlq = wait_for(lambda: read_topic(dep.bootstrap, dep.names.chat_dlq), 90, "the future event in the DLQ")
    assert [dict(r.headers)["chatsla-reason"] for r in dlq] == [b"future_time"]
    assert orjson.loads(dlq[0].value)["event_id"] == "future"
    p = default_partition(b"shop-f", dep.partitions)
    # a tick within --max-future moves the watermark past the event; the later two must not move it
    send_raw(dep, dep.names.events, [encode_tick(now + HOUR // 2), encode_tick(now + 3 * HOUR),
                                     encode_tick(253402300799000000)], partition=p)
    text = wait_for(lambda: (t := scrape(worker.web_port)) and sample(t, "chatsla_rejected_ticks_total") == 1 and t,
                    60, "the future tick rejected and counted")
    wait_for(lambda: count(dep.bootstrap, events_dlq(dep)) == 1, 60, "the year-9999 tick in chatsla.events.dlq")
    status, body = http_get(worker.web_port, "/shops/shop-f")
    assert status == 200, body
    shop = orjson.loads(body)
    # the watermark did not jump with the refused ticks
    assert shop["watermark"] == format_time(now + HOUR // 2 - 2 * MINUTE)
    assert http_get(worker.web_port, "/metrics")[0] == 200
    assert worker.poll() is None
