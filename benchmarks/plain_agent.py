"""The baseline of benchmarks/worker_throughput.py: a plain Faust agent that reads the chat
topic and does one table write per event (the simplest stateful Faust job)."""

from __future__ import annotations

import os
import sys

import faust

bootstrap, topic, app_id, partitions = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
app = faust.App(app_id, broker=f"kafka://{bootstrap}", store="memory://", topic_partitions=partitions,
                consumer_auto_offset_reset="earliest", web_enabled=False, broker_commit_interval=1.0,
                datadir=os.environ.get("PLAIN_DATADIR", f"/tmp/{app_id}"))
source = app.topic(topic, key_serializer="raw", value_serializer="raw")
table = app.Table("last", partitions=partitions, schema=faust.Schema(
    key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"))


@app.agent(source)
async def plain(stream: faust.StreamT) -> None:
    async for event in stream.events():
        table[event.key] = event.value


if __name__ == "__main__":
    from faust.worker import Worker

    Worker(app, loglevel="warning", quiet=True).execute_from_commandline()
