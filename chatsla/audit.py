"""The offline audit: R1 events from a JSONL export through the core, into one report.

The same :class:`~chatsla.core.engine.Engine` runs here as in the live worker and the replay, so a
report is evidence for the live numbers. Reading is line-at-a-time; bad lines are counted by
reason and reported, never fatal (R1).
"""

from __future__ import annotations

import gc
import gzip
import io
import sys
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

import orjson

from chatsla.core.engine import ASSESSMENT, Engine, EngineConfig
from chatsla.core.policy import Policy
from chatsla.core.records import assessment_record, session_record
from chatsla.core.timefmt import format_opt
from schemas.decode import decode, decode_chat
from schemas.events import CHAT_SCHEMA, Invalid

InvalidHook = Callable[[int, str], None]
_CHUNK = 2048  # lines decoded before their events go to the engine


@dataclass
class Report:
    """What ``chatsla audit`` prints: the latest record of every session and assessment."""

    sessions: list[dict]
    assessments: list[dict]
    stats: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"sessions": self.sessions, "assessments": self.assessments, "stats": self.stats}


class Collector:
    """Keeps the latest record per session and per shop-week, as a compacted topic would.

    Stores the engine's raw tuples and formats only the survivors at report time.
    """

    def __init__(self) -> None:
        self.sessions: dict[tuple, tuple] = {}
        self.assessments: dict[tuple, tuple] = {}

    def add(self, kind: str, raw: tuple) -> None:
        if kind == ASSESSMENT:
            self.assessments[(raw[0], raw[1])] = raw
        else:
            self.sessions[(raw[0], raw[1], raw[2])] = raw

    # The engine's sink. run_audit passes the bound method ``add``: calling an instance goes
    # through ``type.__call__`` in C, a bound method is a plain interpreter call.
    __call__ = add

    def report(self, stats: dict, policy: Policy, shops: Iterable[str] | None = None) -> Report:
        wanted = set(shops) if shops else None
        # Sessions by shop, opened_at (µs), conversation, number: grouped by shop first, so the
        # sort compares integers and rarely reaches a string (a third of the report's time).
        by_shop: dict[str, list[tuple]] = {}
        for r in self.sessions.values():
            group = by_shop.get(r[0])
            if group is None:
                if wanted is not None and r[0] not in wanted:
                    continue
                group = by_shop[r[0]] = []
            group.append(r)
        sessions: list[dict] = []
        for shop in sorted(by_shop):
            group = by_shop[shop]
            _sort_sessions(group)
            sessions += [session_record(r, policy) for r in group]
        assessments = sorted(
            (r for r in self.assessments.values() if wanted is None or r[0] in wanted),
            key=lambda r: (r[0], r[1]),
        )
        return Report(sessions, [assessment_record(r, policy) for r in assessments], stats)


_OPENED, _CONV_N = itemgetter(3), itemgetter(1, 2)


def _sort_sessions(group: list[tuple]) -> None:
    """Sort one shop's raw sessions by opened_at, conversation, number: by the integer alone,
    which is a third of the cost of a tuple key, then each run of equal opened_at by the rest."""
    group.sort(key=_OPENED)
    i, n = 0, len(group)
    while i < n - 1:
        opened = group[i][3]
        if group[i + 1][3] != opened:
            i += 1
            continue
        j = i + 2
        while j < n and group[j][3] == opened:
            j += 1
        group[i:j] = sorted(group[i:j], key=_CONV_N)
        i = j


def open_events(path: str) -> BinaryIO:
    """A JSONL file (``.gz`` too) or ``-`` for standard input, opened for binary line reading."""
    if path == "-":
        return sys.stdin.buffer
    p = Path(path)
    if p.suffix == ".gz":
        return gzip.open(p, "rb")  # type: ignore[return-value]
    return io.open(p, "rb", buffering=1 << 20)


def engine_stats(engine: Engine, read: int, invalid: Counter[str], shops: Iterable[str] | None) -> dict:
    c = engine.stats
    closed = {k.split(":", 1)[1]: v for k, v in sorted(c.items()) if k.startswith("closed:")}
    # events the engine rejected (future_time: a step into the future nothing confirmed) were
    # read and are invalid, as those decoding rejected: read = valid + duplicate + invalid
    invalid = invalid + Counter({k.split(":", 1)[1]: v for k, v in c.items() if k.startswith("invalid:")})
    return {
        "read": read,
        "valid": c["valid"],
        "duplicate": c["duplicate"],
        "invalid": sum(invalid.values()),
        "invalid_by_reason": dict(sorted(invalid.items())),
        "late": c["late"],
        "outreach": c["outreach"],
        "sessions_opened": c["sessions_opened"],
        "sessions_closed": closed,
        "watermark": format_opt(engine.max_seen),
        "shops": sorted(shops) if shops else None,
        "policy_id": engine.policy.id,
        "policy_version": engine.policy.version,
    }


def run_audit(
    lines: Iterable[bytes],
    policy: Policy,
    config: EngineConfig = EngineConfig(),
    until: int | None = None,
    shops: Iterable[str] | None = None,
    on_invalid: InvalidHook | None = None,
) -> Report:
    """Run the core over ``lines`` (one R1 event each, in log order) and build the report.

    Every shop's events are processed even with ``shops`` given: the watermark, and with it which
    events are late, depends on the whole stream (R6.2); only the report is filtered.
    """
    collector = Collector()
    engine = Engine(policy, config, sink=collector.add, session_updates=False)
    invalid: Counter[str] = Counter()
    apply_many = engine.apply_many
    loads, JSONDecodeError = orjson.loads, orjson.JSONDecodeError
    read = 0
    chunk: list = []
    push = chunk.append
    source = iter(lines)
    # The core's state is acyclic, so the cyclic GC only rescans an ever larger heap of live
    # state here: pausing it is worth 10-20 % on a large audit (BENCHMARKS.md).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        # Lines are decoded a chunk at a time and the chunk's events handed to the engine in one
        # call (Engine.apply_many runs its hot path on local variables).
        while block := list(islice(source, _CHUNK)):
            for read, line in enumerate(block, read + 1):
                # decode(line), with its hot case (a chat message) inlined: one call less per event.
                # ``obj["schema"]`` raises TypeError unless obj is a JSON object, KeyError if it
                # has no schema: both cases go through decode, which finds the reason.
                try:
                    obj = loads(line)
                    chat = obj["schema"] == CHAT_SCHEMA
                except (JSONDecodeError, KeyError, TypeError):
                    chat = False
                ev = decode_chat(obj) if chat else decode(line)
                if type(ev) is Invalid:
                    reason = "empty_line" if not line.strip() else ev.reason
                    invalid[reason] += 1
                    if on_invalid is not None:
                        on_invalid(read, reason)
                    continue
                push(ev)
            apply_many(chunk)
            chunk.clear()
        engine.finish(until)
        report = collector.report(engine_stats(engine, read, invalid, shops), policy, shops)
        del engine, collector  # freed by reference counting before the collector resumes
    finally:
        if gc_was_enabled:
            gc.enable()
    return report
