"""A private Kafka broker for the test session: started on a free port, always stopped."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from chatsla.dev.broker import BrokerConfig, free_port, start, stop


@dataclass(frozen=True)
class Broker:
    bootstrap: str
    config: BrokerConfig


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory):
    data = Path(tmp_path_factory.mktemp("kafka"))
    config = BrokerConfig(port=free_port(), data_dir=data, heap="768m", default_partitions=1)
    start(config, wait_timeout=120)  # a BrokerError here fails the tests that need it, with its reason
    try:
        yield Broker(config.bootstrap, config)
    finally:
        stop(config)
