"""The baselines of benchmarks/worker_throughput.py: plain Faust agents reading the chat topic.

Modes (fifth argument):

* ``write`` (default): one table write per event, the simplest stateful Faust job and the
  baseline issue #3 names; Faust's defaults.
* ``noop``: the same agent without the table write, with the chatsla worker's settings (start-up
  spinner off, 5 ms producer linger). No Faust job that iterates a stream can be faster: this is
  the floor of Faust's own per-message cost (fetch, conductor, event, stream iteration, ack).
* ``noop-batch``: the floor for batched consumption (``stream.take_events``, 1,000 at a time).
"""

from __future__ import annotations

import os
import sys

import faust

bootstrap, topic, app_id, partitions = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
mode = sys.argv[5] if len(sys.argv) > 5 else "write"
tuned = {} if mode == "write" else {"producer_linger_ms": 5}
app = faust.App(app_id, broker=f"kafka://{bootstrap}", store="memory://", topic_partitions=partitions,
                consumer_auto_offset_reset="earliest", web_enabled=False, broker_commit_interval=1.0,
                datadir=os.environ.get("PLAIN_DATADIR", f"/tmp/{app_id}"), **tuned)
source = app.topic(topic, key_serializer="raw", value_serializer="raw")
table = app.Table("last", partitions=partitions, schema=faust.Schema(
    key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"))


if mode == "write":
    @app.agent(source)
    async def plain(stream: faust.StreamT) -> None:
        async for event in stream.events():
            table[event.key] = event.value
elif mode == "noop":
    @app.agent(source)
    async def plain(stream: faust.StreamT) -> None:
        async for _event in stream.events():
            pass
elif mode == "noop-batch":
    @app.agent(source)
    async def plain(stream: faust.StreamT) -> None:
        async for _batch in stream.take_events(1000, within=0.05):
            pass
else:
    raise SystemExit(f"unknown mode {mode!r}: write, noop or noop-batch")


if __name__ == "__main__":
    from faust.worker import Worker

    worker = Worker(app, loglevel="warning", quiet=True)
    if mode != "write":
        worker.spinner = None  # as in the chatsla worker: the spinner leaves the root logger at DEBUG
    worker.execute_from_commandline()
