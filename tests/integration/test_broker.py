"""The local Kafka broker (chatsla.dev) against the real clients chatsla uses: kafka-python and aiokafka."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import uuid

import pytest

from chatsla.dev.broker import KAFKA_VERSION, BrokerConfig, BrokerError, ensure_jars, free_port, start, status, stop
from tests.integration.waiting import wait_for

pytestmark = pytest.mark.integration

N = 200


def _topic(kafka_broker, prefix: str, partitions: int = 3) -> str:
    from kafka.admin import KafkaAdminClient, NewTopic

    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap, client_id="test-broker")
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
        wait_for(lambda: name in admin.list_topics(), 30, what=f"topic {name} to be listed")
        (described,) = admin.describe_topics([name])
    finally:
        admin.close()
    assert described["error_code"] == 0
    # kafka-python 3 names it partition_index, 2.x partition
    assert sorted(p.get("partition_index", p.get("partition")) for p in described["partitions"]) == list(range(partitions))
    return name


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from chatsla.dev.cli import dev; dev()", *args],
                          capture_output=True, text=True, timeout=120)


def test_admin_creates_a_topic_with_three_partitions(kafka_broker):
    _topic(kafka_broker, "admin")


def test_kafka_python_produces_and_consumes(kafka_broker):
    from kafka import KafkaConsumer, KafkaProducer

    topic = _topic(kafka_broker, "kp")
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
    try:
        for i in range(N):
            producer.send(topic, key=b"k%d" % (i % 11), value=b"v%d" % i)
        producer.flush(timeout=30)
    finally:
        producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_broker.bootstrap, group_id=f"g-{topic}",
                             auto_offset_reset="earliest", enable_auto_commit=False)
    seen: dict[bytes, int] = {}
    try:
        def all_seen() -> bool:
            for records in consumer.poll(timeout_ms=500).values():
                seen.update((r.value, r.partition) for r in records)
            return len(seen) >= N

        wait_for(all_seen, 60, interval=0, what="kafka-python to consume every record")
        consumer.commit()
    finally:
        consumer.close()
    assert set(seen) == {b"v%d" % i for i in range(N)}
    assert set(seen.values()) == {0, 1, 2}  # keys spread over all three partitions


def test_aiokafka_produces_and_consumes_in_a_group(kafka_broker):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic = _topic(kafka_broker, "aio")
    group = f"g-{topic}"

    async def scenario() -> tuple[dict[bytes, int], list[int | None], dict]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            sent = [await producer.send(topic, key=b"k%d" % (i % 11), value=b"a%d" % i) for i in range(N)]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_broker.bootstrap, group_id=group,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        seen: dict[bytes, int] = {}
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while len(seen) < N:
                assert loop.time() < deadline, f"aiokafka consumed {len(seen)} of {N} records in 60 s"
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    seen.update((r.value, r.partition) for r in records)
            await consumer.commit()
            tps = [TopicPartition(topic, p) for p in range(3)]
            committed = [await consumer.committed(tp) for tp in tps]
            ends = await consumer.end_offsets(tps)
        finally:
            await consumer.stop()
        return seen, committed, {tp.partition: off for tp, off in ends.items()}

    seen, committed, ends = asyncio.run(scenario())
    assert set(seen) == {b"a%d" % i for i in range(N)}
    assert set(seen.values()) == {0, 1, 2}
    assert committed == [ends[0], ends[1], ends[2]] and sum(committed) == N  # the group's offsets are stored


def test_status_reports_the_running_broker(kafka_broker):
    st = status(kafka_broker.config)
    assert st.running and st.answering
    assert st.bootstrap == kafka_broker.bootstrap
    assert st.version == KAFKA_VERSION
    assert st.pid and st.pid > 0

    out = _cli("status", "--data-dir", str(kafka_broker.config.data_dir))
    assert out.returncode == 0, out.stderr
    assert f"running; bootstrap {kafka_broker.bootstrap}; answering: yes" in out.stdout


def test_start_on_a_port_in_use_fails_clearly(kafka_broker, tmp_path):
    taken = int(kafka_broker.bootstrap.rsplit(":", 1)[1])
    with pytest.raises(BrokerError, match=rf"port 127\.0\.0\.1:{taken} is already in use \(a Kafka broker answers"):
        start(BrokerConfig(port=taken, data_dir=tmp_path / "other"), wait_timeout=30)

    # a port held by something that is not Kafka
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(BrokerError, match=rf"port 127\.0\.0\.1:{port} is already in use; choose another"):
            start(BrokerConfig(port=port, data_dir=tmp_path / "third"), wait_timeout=30)
        out = _cli("up", "--port", str(port), "--data-dir", str(tmp_path / "fourth"))
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.count("\n") == 1 and f"port 127.0.0.1:{port} is already in use" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "other" / "broker.pid").exists()


def test_a_broker_that_does_not_answer_in_time_is_stopped(kafka_broker, tmp_path):
    config = BrokerConfig(port=free_port(), data_dir=tmp_path / "slow")
    with pytest.raises(BrokerError, match=r"did not answer on 127\.0\.0\.1:\d+ within 0 s \(log "):
        start(config, wait_timeout=0.01)
    assert not status(config).running
    assert stop(config) is False  # nothing left to stop


def test_jars_are_resolved_once(kafka_broker):
    libs = ensure_jars(kafka_broker.config)  # already complete: no Maven run
    assert (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file()
    assert (libs / ".complete").read_text().split()
