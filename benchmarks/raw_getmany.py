"""The raw loop of benchmarks/worker_throughput.py (issue #15): aiokafka ``getmany`` and
``orjson.loads`` of every value, offsets committed after each fetch, nothing else. The physical
limit of a Python consumer on this input: its ratio to the chatsla worker is recorded, not a
target.

    raw_getmany.py BOOTSTRAP TOPIC GROUP
"""

from __future__ import annotations

import asyncio
import signal
import sys

import orjson
from aiokafka import AIOKafkaConsumer


async def main(bootstrap: str, topic: str, group: str) -> None:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    loads = orjson.loads
    stop = asyncio.Event()  # SIGINT ends the loop between fetches (a KeyboardInterrupt inside one left stop() hanging)
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    try:
        while not stop.is_set():
            fetched = await consumer.getmany(timeout_ms=200)
            if not fetched:
                continue
            n = 0
            for msgs in fetched.values():
                for m in msgs:
                    loads(m.value)
                    n += 1
            await consumer.commit({tp: msgs[-1].offset + 1 for tp, msgs in fetched.items() if msgs})
    finally:
        await consumer.stop()


if __name__ == "__main__":
    try:
        asyncio.run(main(*sys.argv[1:4]))
    except KeyboardInterrupt:
        pass
