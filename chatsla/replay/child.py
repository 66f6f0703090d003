"""The replay's input read by a second process (fetch, decode, merge) while this one runs the engine.

``chatsla replay --reader-process`` (default: from ``PARALLEL_MIN_RECORDS`` records on) starts a
plain ``python -c`` child: nothing of the caller's ``__main__`` is re-imported, and the child is
ours to kill if this side stops early. The child runs :func:`chatsla.replay.inputs.period_reader`
with the offsets this side planned and sends the merged records back in chunks; this side feeds
them to the engine in the same order, so the results are those of :class:`LocalInput`.

Wire format: each message on the child's data pipe is a 4-byte big-endian length and a pickle of
``("plan", ranges, chat_sources, planned)``, ``("batch", chunk)``, ``("end", ranges, late)`` or
``("error", one line)``. A chunk holds one tuple per record: ``(source index, offset, event)``
with the event in the core's own list encoding (``chatsla.core.engine.event_to_list``, the one
the checkpoints use; lists pickle several times faster than event objects), or ``(source index,
offset, reason, value)`` for an invalid record (its bytes, for the shop it names: rare).
"""

from __future__ import annotations

import asyncio
import gc
from typing import AsyncIterator, Callable

from chatsla.core.engine import event_from_list, event_to_list
from chatsla.core.events import Invalid
from chatsla.streams.feed import Feeder
from chatsla.replay.inputs import chat_sources, period_reader, tail_late
from chatsla.replay.period import Period
from chatsla.replay.result import LateEvent
from chatsla.streams.reader import EVENT, OFFSET, SOURCE, VALUE, KafkaInput, PartitionRange, ReaderError, one_line

CHUNK_RECORDS = 5_000
PARALLEL_MIN_RECORDS = 200_000
CHILD_CODE = "from chatsla.replay.child import child_main; child_main()"


def encode_chunk(records: list[tuple], index: dict[str, int]) -> list[tuple]:
    """Reader records (``chatsla.streams.reader`` tuples) as the child sends them (module docs)."""
    out = []
    append, _Invalid, to_list = out.append, Invalid, event_to_list
    for rec in records:
        ev = rec[EVENT]
        if type(ev) is _Invalid:
            append((index[rec[SOURCE]], rec[OFFSET], ev.reason, rec[VALUE]))
        else:
            append((index[rec[SOURCE]], rec[OFFSET], to_list(ev)))
    return out


def decode_chunk(chunk: list[tuple], sources: list[str]) -> list[tuple]:
    """A chunk from the child as reader records again, for :meth:`chatsla.streams.feed.Feeder.feed`
    (merge key, topic and partition are not sent: zero and empty)."""
    out = []
    append, _Invalid, from_list = out.append, Invalid, event_from_list
    for r in chunk:
        if len(r) == 3:
            append((0, 0, "", 0, r[1], sources[r[0]], None, from_list(r[2])))
        else:
            append((0, 0, "", 0, r[1], sources[r[0]], r[3], _Invalid(r[2])))
    return out


class ChildInput:
    """The input read by a child Python process (fetch, decode, merge), sent here in chunks.

    A plain subprocess (``python -c``) rather than multiprocessing: nothing of the caller's
    ``__main__`` is re-imported, and the child is ours to kill if this side stops early.
    """

    def __init__(self, kin: KafkaInput, period: Period, allowed_lateness: int, tail: bool,
                 ranges: list[PartitionRange]) -> None:
        self.args = (kin, period, allowed_lateness, tail, ranges)
        self.chat_sources: list[str] = []
        self.sources: list[str] = []
        self.planned = 0
        self.ranges: list[PartitionRange] = []
        self.late: list[LateEvent] = []
        self._proc = None
        self._stderr = None

    async def __aenter__(self) -> "ChildInput":
        import os
        import pickle
        import sys
        import tempfile
        from pathlib import Path

        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # where this chatsla package lives
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._stderr = tempfile.TemporaryFile()
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD_CODE, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=self._stderr, env=env, limit=1 << 23)
        try:
            self._proc.stdin.write(pickle.dumps(self.args, protocol=pickle.HIGHEST_PROTOCOL))
            await self._proc.stdin.drain()
            self._proc.stdin.close()
            msg = await self._receive()
            if msg[0] != "plan":
                raise ReaderError(f"replay reader: unexpected message {msg[0]!r}")
            _, self.ranges, self.chat_sources, self.planned = msg
            self.sources = [r.source for r in self.ranges]
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.returncode is None:
                try:
                    await asyncio.wait_for(proc.wait(), 0.5)
                except asyncio.TimeoutError:
                    proc.kill()  # our own child, by its handle
                    await proc.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    async def _receive(self) -> tuple:
        import pickle

        stdout = self._proc.stdout
        try:
            head = await stdout.readexactly(4)
            data = await stdout.readexactly(int.from_bytes(head, "big"))
        except (asyncio.IncompleteReadError, ConnectionError):
            code = await self._proc.wait()
            self._stderr.seek(0)
            lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
            why = f": {lines[-1].strip()}" if lines else ""
            raise ReaderError(f"the replay reader process ended unexpectedly (exit code {code}){why}") from None
        msg = pickle.loads(data)
        if msg[0] == "error":
            raise ReaderError(msg[1])
        return msg

    async def feed(self, feeder: Feeder) -> AsyncIterator[int]:
        """Feed every record the child sends to ``feeder``; yields the number of records after each chunk."""
        sources = self.sources
        while True:
            msg = await self._receive()
            if msg[0] == "end":
                _, self.ranges, self.late = msg
                return
            yield feeder.feed(decode_chunk(msg[1], sources))


def child_main() -> None:
    """The reader process: arguments pickled on stdin, framed pickles out on the original stdout."""
    import os
    import pickle
    import sys

    import logging

    logging.getLogger("aiokafka").addHandler(logging.NullHandler())  # errors go to the parent as messages
    args = pickle.loads(sys.stdin.buffer.read())
    out_fd = os.dup(1)
    os.dup2(2, 1)  # a stray print can never corrupt the data pipe
    try:
        import fcntl

        # a 1 MiB pipe holds whole chunks: the parent picks them up between engine batches
        fcntl.fcntl(out_fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass
    out = os.fdopen(out_fd, "wb")

    def send(payload: bytes) -> None:
        out.write(len(payload).to_bytes(4, "big"))
        out.write(payload)
        out.flush()

    try:
        asyncio.run(child_serve(send, *args))
    except ReaderError as e:
        _try(send, pickle.dumps(("error", str(e))))
    except (BrokenPipeError, KeyboardInterrupt):
        pass  # the parent has gone
    except BaseException as e:  # noqa: BLE001 - reported to the parent as one line
        _try(send, pickle.dumps(("error", f"replay reader failed: {type(e).__name__}: {one_line(e)}")))
    finally:
        try:
            out.close()
        except OSError:
            pass


def _try(fn: Callable, *args: object) -> None:
    """``fn(*args)``, ignoring a closed pipe (the parent may be gone)."""
    try:
        fn(*args)
    except OSError:
        pass


async def child_serve(send: Callable[[bytes], None], kin: KafkaInput, period: Period, allowed_lateness: int,
                       tail: bool, ranges: list[PartitionRange]) -> None:
    import pickle

    loop = asyncio.get_running_loop()
    dumps, proto = pickle.dumps, pickle.HIGHEST_PROTOCOL
    gc.disable()  # everything here is short-lived and acyclic
    async with period_reader(kin, period, allowed_lateness, tail, ranges) as reader:
        index = {r.source: i for i, r in enumerate(reader.ranges)}
        send(dumps(("plan", reader.ranges, chat_sources(kin, reader.ranges), reader.planned), proto))
        sending = None
        async for batch in reader.batches():
            for i in range(0, len(batch), CHUNK_RECORDS):
                payload = dumps(("batch", encode_chunk(batch[i:i + CHUNK_RECORDS], index)), proto)
                if sending is not None:
                    await sending
                # written from a thread, so the event loop keeps fetching while the parent reads
                sending = loop.run_in_executor(None, send, payload)
        if sending is not None:
            await sending
        send(dumps(("end", reader.ranges, tail_late(reader)), proto))
