"""One ``chatsla.events`` partition in a worker: its engine and the state it persists.

Faust-free, so its persistence protocol is unit-tested with plain dicts (``tests/test_runtime.py``).
State lives in three changelog-backed key-value tables, keyed by partition first:

* ``conversations``: one entry per conversation (session state, the event ids it applied, its
  share of the weekly counters); self-contained, so entries written at different moments never
  double-count;
* ``shops``: time zone, vacation, shop-event ids, which weeks were already assessed;
* ``partitions``: the stream-level meta (per-source watermarks, events not yet applied).

A checkpoint writes them in that order, after the outputs they imply were delivered, and only
then are the input events acknowledged (so offsets are committed behind persisted state). After a
crash the worker resumes from the committed offset: events already inside a stored conversation
are recognised by id and skipped, the rest are applied, and the outputs come out the same
(RULES R6.1). See ``streams/app.py`` for the Faust side.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Hashable, Iterable

import orjson

from chatsla.core.engine import ASSESSMENT, Engine, EngineConfig
from chatsla.core.policy import Policy
from chatsla.core.records import to_record
from streams.codec import FLUSH, TICK, decode_internal, encode_record

Key = tuple
Table = MutableMapping[Key, bytes]
_dumps, _loads = orjson.dumps, orjson.loads


@dataclass
class Tables:
    conversations: Table
    shops: Table
    partitions: Table


# Keys are tuples, serialised as JSON lists: Faust's changelog recovery turns JSON list keys back
# into tuples, so a key reads back exactly as it was written (bytes keys would not).
def conv_key(partition: int, shop_id: str, conversation_id: str) -> Key:
    return (partition, shop_id, conversation_id)


def shop_key(partition: int, shop_id: str) -> Key:
    return (partition, shop_id)


def meta_key(partition: int) -> Key:
    return (partition,)


def _value(v: object) -> object:
    """A stored value: our JSON bytes, or (after some recoveries) the already decoded JSON."""
    return _loads(v) if isinstance(v, (bytes, bytearray, memoryview, str)) else v


def _of_partition(table: Table, partition: int) -> Iterable[object]:
    for key, value in list(table.items()):
        if value is not None and tuple(key)[0] == partition:
            yield _value(value)


class PartitionRuntime:
    def __init__(self, partition: int, engine: Engine) -> None:
        self.partition = partition
        self.engine = engine
        self.pending_acks = 0  # events handled since the last checkpoint
        self.observer = None  # called with (kind, record) for every output (live projections)

    @classmethod
    def load(cls, partition: int, policy: Policy, config: EngineConfig, sources: Iterable[Hashable] | None,
             tables: Tables) -> "PartitionRuntime":
        """Rebuild the partition's engine from the tables (empty tables: a fresh start)."""
        raw_meta = tables.partitions.get(meta_key(partition))
        meta = _value(raw_meta) if raw_meta is not None else None
        engine = Engine.from_parts(
            policy, config, meta,
            list(_of_partition(tables.conversations, partition)),
            list(_of_partition(tables.shops, partition)),
            sources=sources, track_dirty=True,
        )
        return cls(partition, engine)

    def handle(self, value: bytes) -> bool:
        """Apply one record of ``chatsla.events``; True if it asks for a checkpoint now."""
        source, body = decode_internal(value)
        self.pending_acks += 1
        if source == TICK:
            self.engine.advance(body)  # type: ignore[arg-type]
        elif source == FLUSH:
            return True
        else:
            self.engine.apply(body, source)  # type: ignore[arg-type]
        return False

    def outputs(self) -> list[tuple[str, bytes, bytes]]:
        """``(kind, key, value)`` of every record emitted since the last call, in order."""
        engine = self.engine
        policy = engine.policy
        observer = self.observer
        out = []
        for kind, raw in engine.take():
            record = to_record(kind, raw, policy)
            if observer is not None:
                observer(kind, record)
            out.append((kind, raw[0].encode(), encode_record(record)))
        return out

    def state_entries(self) -> tuple[list[tuple[Key, bytes]], list[tuple[Key, bytes]]]:
        """Changed conversation and shop entries since the last checkpoint."""
        convs, shops = self.engine.take_dirty()
        p = self.partition
        return ([(conv_key(p, c.shop_id, c.conversation_id), _dumps(c.to_list())) for c in convs],
                [(shop_key(p, s.shop_id), _dumps(s.to_list())) for s in shops])

    def meta_entry(self) -> tuple[Key, bytes]:
        return meta_key(self.partition), _dumps(self.engine.meta())

    def checkpoint_into(self, tables: Tables) -> None:
        """Write a checkpoint synchronously (tests, and adapters without a producer to flush)."""
        convs, shops = self.state_entries()
        for k, v in convs:
            tables.conversations[k] = v
        for k, v in shops:
            tables.shops[k] = v
        k, v = self.meta_entry()
        tables.partitions[k] = v
        self.pending_acks = 0


KIND_TOPIC = {"session": "sessions", ASSESSMENT: "assessments"}
