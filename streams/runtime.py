"""One ``chatsla.events`` partition in a worker: its engine and the state it persists.

Faust-free, so its persistence protocol is unit-tested with plain dicts (``tests/streams/test_runtime.py``).
State lives in three changelog-backed key-value tables, keyed by partition first:

* ``conversations``: one entry per conversation (session state, the event ids it applied, its
  share of the weekly counters and those weeks' bounds); self-contained, so entries written at
  different moments never double-count;
* ``shops``: time zone, vacation, shop-event ids, which weeks were already assessed;
* ``partitions``: the stream-level meta (per-source watermarks, events not yet applied), which
  also carries the entries of the shops changed in its checkpoint.

Kafka gives no atomic write across changelog topics, so a worker killed mid-checkpoint leaves
some of its writes stored and others not. The order makes every such cut recoverable (R6.1):

1. outputs are flushed first: state never runs ahead of what consumers were sent;
2. the changed conversation entries: any subset of them may land. Each is self-contained and
   names the event ids it applied, so the replay from the committed offset skips exactly those
   events for it and applies the rest. Conversations the engine evicted (``Engine.take_evicted``)
   are written here as tombstones, value ``None``: the table deletes the key and its changelog
   gets a null record, which Faust's recovery turns into a deletion and log compaction removes.
   A tombstone goes out one checkpoint *after* the eviction, so it lands only on top of a meta
   that already reflects the eviction (step 3 skips the input before it): a replay can then never
   hold an event applied before the eviction, which would find its conversation gone and apply
   again (one tick can move event time by weeks: a backfill's end). The eviction's own
   checkpoint stores the conversation's final state (an older entry could hold a session that
   closed since); a restart from there loads it, and :meth:`Engine.settle` evicts it again at
   once, before any input. Deleting it is safe at any crash point: the engine evicts only a conversation whose
   weeks its shop has forgotten (from_parts drops such contributions anyway) and whose event
   ids are out of the dedupe window;
3. the meta, the commit point, with the offset of the next input record: a restart skips the
   input before it, whose effects the stored state holds whatever the committed offset (Kafka
   commits acknowledged offsets a moment later, so a crash can leave it behind the meta), and
   replays only the rest. Shop state is written *with* it because a shop entry from after
   the committed offset would give replayed events the wrong context (a vacation or time zone
   not yet in force at their time, a week already assessed); bundled, shops and meta are always
   from the same checkpoint;
4. the shop entries to the ``shops`` table, where the next checkpoints' metas no longer carry
   them;
5. only then are the input events acknowledged, so offsets are committed behind stored state.

Other models (issue #12: service tickets, IM waits). Their per-period counts are sums over many
tickets or conversations, so an entry cannot be self-contained the way a conversation is. Their
entries (one per ticket, orphan group, wait conversation, period, shop: the models'
``take_dirty_parts``) are therefore written like shop entries: the changed ones ride in the meta
(``parts``, None for one gone) and go to the ``shops`` table in step 4, under keys
``(partition, tag, ...)``. Their stored state is exactly the state at the meta's offset; on load
the meta's copies override the table and are carried by the next meta again. A checkpoint is
forced once ``MAX_INLINE_PARTS`` entries changed, so the meta stays small.

After a crash the worker resumes from the committed offset: events already inside a stored
conversation are recognised by id and skipped, the rest are applied, and the outputs come out
the same (RULES R6.1). A checkpoint is forced before the changed shops would make the meta
record large (``MAX_INLINE_SHOPS``). The worker performs these steps in
:meth:`chatsla.streams.worker.Worker._checkpoint` (unit-tested in ``tests/streams/test_worker.py``);
``streams/app.py`` adapts it to Faust.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Hashable, Iterable
import base64
import zlib

import orjson

from chatsla.core.engine import ASSESSMENT, Engine, EngineConfig
from chatsla.core.models import model_class, model_kind
from chatsla.core.policy import Policy
from chatsla.core.records import to_record
from chatsla.streams.codec import decode_internal, encode_record, event_json
from chatsla.streams.feed import Feeder

Key = tuple
Table = MutableMapping[Key, bytes]
_dumps, _loads = orjson.dumps, orjson.loads


MAX_INLINE_SHOPS = 1000
MAX_INLINE_PARTS = 1000  # changed ticket / wait / period entries a meta carries at most
META_COMPRESS_BYTES = 64 * 1024
_ZLIB_HEAD = b"x"  # the first byte of zlib's output at every level
COMPRESSED = "zlib"  # the key of a compressed meta's JSON object (_meta_value)


@dataclass
class Checkpoint:
    """A checkpoint's table writes; they must reach the changelogs in this field order."""

    conversations: list[tuple[Key, bytes | None]]  # None: a tombstone (an evicted conversation)
    meta: tuple[Key, bytes]
    shops: list[tuple[Key, bytes]]


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
    """A stored value: our JSON bytes, or (after a recovery from the changelog, whose topic
    decodes values as JSON) the already decoded JSON. A large meta is a ``{"zlib": base64}``
    object (:func:`_meta_value`); raw zlib bytes are still read (metas written before it)."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        if bytes(v[:1]) == _ZLIB_HEAD:
            return _loads(zlib.decompress(v))
        v = _loads(v)
    elif isinstance(v, str):
        v = _loads(v)
    if type(v) is dict and len(v) == 1 and COMPRESSED in v:
        return _loads(zlib.decompress(base64.b64decode(v[COMPRESSED])))
    return v


def _meta_value(meta: dict) -> bytes:
    """The meta carries the events still held for the watermark, and the changed ticket / wait
    entries (up to MAX_INLINE_PARTS). When the input partitions are consumed unevenly (a
    backfill with large fetches) the held events can be thousands: 2 MB of JSON was seen with
    4 MB fetches, over Kafka's default 1 MB message limit, which would stop every checkpoint.
    Such a meta is compressed, three- to eightfold depending on the ids, and stored as the JSON
    object ``{"zlib": "<base64>"}``: Faust's changelog topic decodes every value as JSON on
    recovery, and raw zlib bytes made that recovery fail and wait forever for the record (issue
    #12, the mixed-week SIGKILL test). A meta never has the single key ``zlib``."""
    raw = _dumps(meta)
    if len(raw) <= META_COMPRESS_BYTES:
        return raw
    return b'{"' + COMPRESSED.encode() + b'":"' + base64.b64encode(zlib.compress(raw, 1)) + b'"}'


def _of_partition(table: Table, partition: int) -> Iterable[object]:
    for key, value in list(table.items()):
        if value is not None and tuple(key)[0] == partition:
            yield _value(value)


class PartitionRuntime:
    def __init__(self, partition: int, engine: Engine) -> None:
        self.partition = partition
        self.engine = engine
        self.feeder = Feeder(engine)
        self.pending_acks = 0  # events handled since the last checkpoint
        # called with (kind, record, raw) for every output (live projections); raw is the engine's
        # own form of the record (a session's tuple: its times as ints, no parsing back)
        self.observer = None
        # conversations evicted before the last checkpoint: tombstoned by the next one (see above)
        self.evicted: list[tuple[str, str]] = []
        self.next_offset: int | None = None  # of the next input record not yet in the state

    @classmethod
    def load(cls, partition: int, policy: Policy, config: EngineConfig, sources: Iterable[Hashable] | None,
             tables: Tables, policies: Iterable[object] = ()) -> "PartitionRuntime":
        """Rebuild the partition's engine from the tables (empty tables: a fresh start).
        ``policies``: the other models hosted beside ``policy``'s (issue #12)."""
        raw_meta = tables.partitions.get(meta_key(partition))
        meta = _value(raw_meta) if raw_meta is not None else None
        shops: dict = {}
        parts: dict[tuple, object] = {}  # the other models' entries (module docstring, "Other models")
        for key, value in list(tables.shops.items()):
            k = tuple(key)
            if value is None or k[0] != partition:
                continue
            if len(k) == 2:
                v = _value(value)
                shops[v[0]] = v  # type: ignore[index]
            else:
                parts[k[1:]] = _value(value)
        inline = meta.get("shops", ()) if meta is not None else ()
        shops.update((v[0], v) for v in inline)  # the meta's copies are the committed ones
        inline_parts = [(tuple(k), v) for k, v in meta.get("parts", ())] if meta is not None else []
        for k, v in inline_parts:  # so are these; None: an entry deleted at that commit point
            if v is None:
                parts.pop(k, None)
            else:
                parts[k] = v
        policies = list(policies)
        by_kind: dict[str, list] = {}
        if policies:
            tags = {tag: model_kind(p) for p in policies for tag in model_class(model_kind(p)).PART_TAGS}
            for k in sorted(parts):
                kind = tags.get(k[0])
                if kind is None:
                    raise ValueError(f"partition {partition}: stored entry {k!r} belongs to no hosted model")
                by_kind.setdefault(kind, []).append((k, parts[k]))
        engine = Engine.from_parts(
            policy, config, meta,
            list(_of_partition(tables.conversations, partition)),
            [shops[k] for k in sorted(shops)],
            sources=sources, track_dirty=True, keep_rejected=True,
            **({"policies": policies, "parts": by_kind} if policies else {}),  # type: ignore[arg-type]
        )
        # The shops table may lack these (a crash before step 4): the next checkpoint, whose
        # meta replaces this one, must carry them again.
        engine.mark_dirty(v[0] for v in inline)
        for m in _part_models(engine):
            m.mark_dirty_parts([k for k, _ in inline_parts if k[0] in m.PART_TAGS])
        engine.settle()  # conversations evicted after their entry was stored go at once
        rt = cls(partition, engine)
        rt.next_offset = meta.get("offset") if meta is not None else None
        return rt

    def handle(self, value: bytes, offset: int | None = None) -> bool:
        """Apply one record of ``chatsla.events`` (one item or a batch) at input ``offset``; True
        if it asks for a checkpoint now. A record before the stored meta's offset is already in
        the state and is skipped (module docstring, step 3)."""
        if offset is not None and self.next_offset is not None and offset < self.next_offset:
            self.pending_acks += 1
            return False
        items = decode_internal(value)  # a PoisonRecord raised here has changed nothing
        if offset is not None:
            self.next_offset = offset + 1
        self.pending_acks += len(items)
        return self.feeder.feed_items(items)  # the one feeding loop (streams/feed.py)

    def outputs(self) -> list[tuple[str, bytes, bytes]]:
        """``(kind, key, value)`` of every record emitted since the last call, in order."""
        engine = self.engine
        policy = engine.policy
        observer = self.observer
        out = []
        for kind, raw in engine.take():
            if type(raw) is dict:  # the other models emit their records formatted (ticket, wait, period)
                record, key = raw, raw["shop_id"]
            else:
                record, key = to_record(kind, raw, policy), raw[0]
            if observer is not None:
                observer(kind, record, raw)
            out.append((kind, key.encode(), encode_record(record)))
        return out

    def rejected(self) -> list[tuple[str, bytes, bytes]]:
        """``(input topic, key, value)`` of every event the engine rejected as ``future_time``
        since the last call (time sanity: a step into the future that its own input partition
        did not confirm), for the input's dead-letter topic; the source tag names the input."""
        out = []
        for source, ev in self.engine.take_rejected():
            topic = str(source).rsplit("/", 1)[0] if source is not None else ""
            # an after-sales request is keyed by its request_id on its input (R11.1)
            key = getattr(ev, "conversation_id", None) or getattr(ev, "request_id", None) or ev.shop_id
            out.append((topic, key.encode(), event_json(ev)))
        return out

    def needs_checkpoint(self) -> bool:
        """True when the changed shops (or the other models' changed entries) are about to make
        the meta record (and the Kafka message carrying it) too large: ~250 bytes a shop, under
        1 KB a ticket or wait entry, compressed, so the defaults stay far under 1 MB."""
        engine = self.engine
        if len(engine.models) > 1:
            return (engine.dirty_shop_count >= MAX_INLINE_SHOPS
                    or sum(m.dirty_parts_count for m in _part_models(engine)) >= MAX_INLINE_PARTS)
        return engine.dirty_shop_count >= MAX_INLINE_SHOPS

    def checkpoint(self) -> Checkpoint:
        """The writes of a checkpoint of everything since the last one, in write order."""
        convs, shops = self.engine.take_dirty()
        p, engine = self.partition, self.engine
        # The previous checkpoint's evictions are deleted now, unless the conversation came back
        # meanwhile; this checkpoint's are stored in their final state, and deleted by the next
        # one (module docstring, step 2).
        gone: list[tuple[Key, bytes | None]] = [(conv_key(p, *k), None) for k in self.evicted
                                                if k not in engine.convs]
        evicted = engine.take_evicted()
        self.evicted = [c.key for c in evicted]
        convs = convs + evicted
        shop_lists = [s.to_list() for s in shops]
        meta = engine.meta()
        meta["shops"] = shop_lists
        # the other models' changed entries ride in the meta too (module docstring, "Other models")
        parts = [kv for m in _part_models(engine) for kv in m.take_dirty_parts()]
        if parts:
            meta["parts"] = [[list(k), v] for k, v in parts]
        if self.next_offset is not None:
            meta["offset"] = self.next_offset
        return Checkpoint(
            conversations=[(conv_key(p, c.shop_id, c.conversation_id), _dumps(engine.conversation_entry(c)))
                           for c in convs] + gone,
            meta=(meta_key(p), _meta_value(meta)),
            shops=[(shop_key(p, v[0]), _dumps(v)) for v in shop_lists]
            + [((p, *k), _dumps(v) if v is not None else None) for k, v in parts],
        )

    def checkpoint_into(self, tables: Tables) -> None:
        """Write a checkpoint synchronously (tests, and adapters without a producer to flush)."""
        cp = self.checkpoint()
        for k, v in cp.conversations:
            if v is None:
                tables.conversations.pop(k, None)
            else:
                tables.conversations[k] = v
        k, v = cp.meta
        tables.partitions[k] = v
        for k, v in cp.shops:
            if v is None:
                tables.shops.pop(k, None)
            else:
                tables.shops[k] = v
        self.pending_acks = 0


def _part_models(engine: Engine) -> list:
    """The hosted models stored as entries of their own (all but chat sessions)."""
    return [m for m in engine.models if hasattr(m, "take_dirty_parts")]


KIND_TOPIC = {"session": "sessions", ASSESSMENT: "assessments", "ticket": "ticket_records", "wait": "waits",
              "period": "periods", "request": "aftersale_records"}  # output kind -> TopicNames attribute
