"""A private Kafka broker for the test session: its own free port and temp data dir, always stopped.

The broker is the real one from chatsla.dev.broker (official Apache Kafka jars, KRaft); nothing is
skipped: if it cannot start, every test that uses ``kafka_broker`` errors with the BrokerError's
one-line reason. A broker somebody else left running is never used.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from chatsla.dev.broker import BrokerConfig, BrokerError, PortInUse, free_port, start, stop


@dataclass(frozen=True)
class Broker:
    bootstrap: str  # "127.0.0.1:PORT"
    config: BrokerConfig


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Broker:
    data_dir = tmp_path_factory.mktemp("kafka")
    for attempt in range(3):
        # die_with_parent: even a killed session (no finalizers) leaves no broker running
        config = BrokerConfig(port=free_port(), data_dir=data_dir, heap="768m", die_with_parent=True)
        request.addfinalizer(lambda config=config: stop(config))  # before start: runs even if it fails half-way
        try:
            start(config, wait_timeout=120)
            return Broker(config.bootstrap, config)
        except PortInUse as e:  # another process took the free port between free_port() and the bind
            if attempt == 2:
                pytest.fail(f"the test Kafka broker did not start: {e}", pytrace=False)
        except BrokerError as e:
            pytest.fail(f"the test Kafka broker did not start: {e}", pytrace=False)
    raise AssertionError("unreachable")


@pytest.fixture
def deployment(kafka_broker: Broker, tmp_path):
    """An isolated chatsla deployment (own topics, group, tables) on the session's broker, with
    three partitions; every worker it started is stopped afterwards."""
    from tests.integration.harness import Deployment

    dep = Deployment(kafka_broker.bootstrap, partitions=3, tmp=tmp_path)
    yield dep
    dep.stop_all()
