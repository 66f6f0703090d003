"""The offline audit: R1 events from a JSONL export through the core, into one report.

The same :class:`~chatsla.core.engine.Engine` runs here as in the live worker and the replay, so a
report is evidence for the live numbers. Reading is line-at-a-time; bad lines are counted by
reason and reported, never fatal (R1). Decoding, screening and applying are the one feeding loop
the replay uses too (:class:`chatsla.streams.feed.Feeder`).

Input limits (issue #10 finding 10): a line is one record, its size counted without the line end.
:func:`read_records` reads the input in blocks and never holds more than ``max_bytes + 1`` bytes of
one line, so a line longer than ``max_bytes`` (default 1 MiB, ``--max-record-bytes``) costs no
more memory than a block and is counted as invalid, reason ``too_large``. A UTF-8 byte order mark
at the very start of the input (as some Windows tools write) is skipped; anywhere else it is part
of its line, which is then not JSON. A record that names a key twice is ``duplicate_key``
(``schemas/decode.py``). An input that cannot be read to its end (a corrupt or truncated ``.gz``,
an I/O error) stops the audit with an :class:`~chatsla.core.errors.InputError` naming the file and line.
"""

from __future__ import annotations

import gc
import gzip
import sys
import zlib
from collections import Counter
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator


from chatsla.core.engine import ASSESSMENT, SESSION, Engine, EngineConfig
from chatsla.core.policy import Policy
from chatsla.core.records import assessment_record, session_record
from chatsla.core.timefmt import format_opt, parse_time
from chatsla.core.errors import InputError
from chatsla.streams.feed import Feeder
from chatsla.schemas.decode import MAX_RECORD_BYTES

InvalidHook = Callable[[int, str], None]  # (line number, reason)
TICKET, WAIT, PERIOD = "ticket", "wait", "period"  # the other models' record kinds (issue #12)
REQUEST = "request"  # after-sales requests (R11.5.1, issue #14)


@dataclass
class Report:
    """What ``chatsla audit`` prints: the latest record of every session and assessment (chat
    sessions, R2-R5), ticket (R9.5), wait (R10.5.1) and period (R9.6, R10.5.2)."""

    sessions: list[dict]
    assessments: list[dict]
    stats: dict = field(default_factory=dict)
    tickets: list[dict] = field(default_factory=list)
    waits: list[dict] = field(default_factory=list)
    periods: list[dict] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Key order is fixed (R6.1): the records of each model, then the counters. ``tickets``,
        ``waits``, ``requests`` and ``periods`` are always present, empty lists when there are none."""
        return {"sessions": self.sessions, "assessments": self.assessments, "tickets": self.tickets,
                "waits": self.waits, "requests": self.requests, "periods": self.periods, "stats": self.stats}


def _ticket_key(r: dict) -> tuple:
    # created_at too: a ticket id forgotten after its retention and sent again is another ticket
    # (as text: such a pair is rare, and the text orders it deterministically all the same)
    return (r["shop_id"], r["ticket_id"], r["created_at"])


def _wait_key(r: dict) -> tuple:
    # first_at too: a conversation forgotten and back later numbers its waits from 1 again
    return (r["shop_id"], r["conversation_id"], parse_time(r["first_at"]))


_PERIOD_ORDER = {"day": 0, "week": 1}


def _period_key(r: dict) -> tuple:
    return (r["policy_id"], r["policy_version"], r["shop_id"], _PERIOD_ORDER.get(r["period"], 2), r["period"], r["start"],
            _period_sub(r))


_SUB_ORDER = {"all": "", "cancel": "1", "refund_only": "2", "return_refund": "3", "exchange": "4"}


def _period_sub(r: dict) -> str:
    """An after-sales period's row within its period: the ``all`` row, then request types in R11.1's
    order (R11.5.2), or the month's group (R11.6.3); "" for the other models' periods (one row)."""
    sub = r.get("request_type") or r.get("group") or ""
    return _SUB_ORDER.get(sub, sub)


def _request_key(r: dict) -> tuple:
    return (r["shop_id"], r["requested_at"], r["request_id"])


class Collector:
    """Keeps the latest record per session and per shop-week, as a compacted topic would; and
    per ticket, per wait and per (policy, shop, period, start) for the other models.

    Stores the chat model's raw tuples and formats only the survivors at report time (the other
    models emit formatted records).
    """

    def __init__(self) -> None:
        self.sessions: dict[tuple, tuple] = {}
        self.assessments: dict[tuple, tuple] = {}
        self.tickets: dict[tuple, dict] = {}
        self.waits: dict[tuple, dict] = {}
        self.periods: dict[tuple, dict] = {}
        self.requests: dict[tuple, dict] = {}

    def add(self, kind: str, raw: tuple) -> None:
        if kind == SESSION:
            # opened_at too: a conversation evicted and back later numbers its sessions from 1 again
            self.sessions[(raw[0], raw[1], raw[2], raw[3])] = raw
        elif kind == TICKET:  # one per ticket: _ticket_key inlined (issue #12, the audit's speed)
            self.tickets[(raw["shop_id"], raw["ticket_id"], raw["created_at"])] = raw  # type: ignore[call-overload]
        elif kind == ASSESSMENT:
            self.assessments[(raw[0], raw[1])] = raw
        else:
            self._add_other(kind, raw)  # type: ignore[arg-type]

    def _add_other(self, kind: str, r: dict) -> None:
        if kind == TICKET:
            self.tickets[_ticket_key(r)] = r  # (also the report's sort key: _by_key)
        elif kind == WAIT:
            self.waits[(r["shop_id"], r["conversation_id"], r["first_at"])] = r
        elif kind == PERIOD:
            self.periods[(r["policy_id"], r["policy_version"], r["shop_id"], r["period"], r["start"], _period_sub(r))] = r
        elif kind == REQUEST:
            self.requests[(r["shop_id"], r["request_id"], r["requested_at"])] = r
        else:
            raise ValueError(f"unknown record kind {kind!r}")

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
        return Report(sessions, [assessment_record(r, policy) for r in assessments], stats,
                      self._by_key(self.tickets, wanted), self._final(self.waits, wanted, _wait_key),
                      self._final(self.periods, wanted, _period_key), self._final(self.requests, wanted, _request_key))

    @staticmethod
    def _by_key(records: dict[tuple, dict], wanted: set[str] | None) -> list[dict]:
        """``_final(records, wanted, _ticket_key)`` for a dict whose keys *are* each record's sort
        key with the shop first (tickets: :meth:`_add_other` keys them by ``_ticket_key``'s
        tuple): the keys are sorted themselves, with no key function called per record (a
        ticket's share of the report's time, issue #12). Keys are unique, so the order is the same."""
        keys = sorted(records) if wanted is None else sorted(k for k in records if k[0] in wanted)
        return [records[k] for k in keys]

    @staticmethod
    def _final(records: dict[tuple, dict], wanted: set[str] | None, key: Callable[[dict], tuple]) -> list[dict]:
        """The surviving records of the wanted shops, sorted by ``key`` (deterministic, R6.1)."""
        return sorted((r for r in records.values() if wanted is None or r["shop_id"] in wanted), key=key)


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
    """A JSONL file (``.gz`` too) or ``-`` for standard input, opened for binary reading.

    Raises :class:`InputError` (one line naming the file) when it cannot be opened."""
    if path == "-":
        stdin = sys.stdin  # chatsla.cli.main puts a stand-in marked closed_stream in place of a closed one
        if stdin is None or getattr(getattr(getattr(stdin, "buffer", None), "raw", None), "closed_stream", False):
            raise InputError("cannot read standard input: it is closed")
        return sys.stdin.buffer
    p = Path(path)
    try:
        if p.suffix == ".gz":
            f = gzip.open(p, "rb")
            f.peek(1)  # reads the gzip header now: "not a gzip file" names the file at once
            return f  # type: ignore[return-value]
        return open(p, "rb", buffering=0)  # read_records reads blocks itself
    except FileNotFoundError:
        raise InputError(f"file not found: {path}") from None
    except (OSError, EOFError, zlib.error) as e:
        raise InputError(f"cannot read {path}: {_why(e)}") from None


_BLOCK = 1 << 20
_BOM = b"\xef\xbb\xbf"


def _why(e: BaseException) -> str:
    if isinstance(e, EOFError):
        return "the file ends early (a truncated .gz?)"
    if isinstance(e, zlib.error) or isinstance(e, gzip.BadGzipFile):
        return f"corrupt gzip data ({e})"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


def read_records(f: BinaryIO, name: str = "input", max_bytes: int = MAX_RECORD_BYTES,
                 on_block: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """The lines of ``f`` without their ``\\n``, for :func:`run_audit`.

    A line longer than ``max_bytes`` is yielded cut to ``max_bytes + 1`` bytes (run_audit counts it
    ``too_large``); the rest of it is read and dropped block by block, so memory stays bounded by
    the block size plus ``max_bytes`` whatever the input holds. A byte order mark at the start
    of the input is skipped. A read error raises :class:`InputError` naming ``name`` and the line
    being read. ``on_block`` (progress, chatsla/progress.py) is called with the size of each block
    read: once per block, never per line, so it costs nothing measurable.
    """
    read = getattr(f, "read1", None) or f.read
    if on_block is not None:
        read_block = read

        def read(n: int) -> bytes:
            block = read_block(n)
            on_block(len(block))
            return block

    cap = max_bytes + 1
    tail = b""  # the unfinished last line of what has been read
    over = False  # tail is the first ``cap`` bytes of a too long line whose rest is being dropped
    lines_done = 0
    try:
        block = read(_BLOCK)
        while block and len(block) < len(_BOM) and _BOM.startswith(block):  # a BOM split by a pipe
            more = read(_BLOCK)
            if not more:
                break
            block += more
        if block.startswith(_BOM):
            block = block[len(_BOM):]
        while True:
            if not block:
                block = read(_BLOCK)
                if not block:
                    break
            if over:
                i = block.find(b"\n")
                if i < 0:
                    block = b""
                    continue
                lines_done += 1
                yield tail
                tail, over = b"", False
                block = block[i + 1:]
            lines = block.split(b"\n")
            if tail:
                lines[0] = tail + lines[0]
            tail = lines.pop()
            lines_done += len(lines)
            if lines and max(map(len, lines)) > max_bytes:  # in C: a block's lines are rarely this long
                lines = [line if len(line) <= max_bytes else line[:cap] for line in lines]
            yield from lines
            if len(tail) > max_bytes:
                tail, over = tail[:cap], True
            block = b""
    except (OSError, EOFError, zlib.error) as e:
        raise InputError(f"cannot read {name} at line {lines_done + 1}: {_why(e)}") from None
    if tail or over:
        yield tail


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
        **_model_stats(engine),
    }


def _model_stats(engine: Engine) -> dict:
    """The counters of the models other than the lead (chat sessions), under ``models``, each
    with its policy, once any of them counted something: a chat-only input's ``stats`` stay as
    they always were. Their ``valid``, ``duplicate`` and ``late`` are also in the totals above
    (read = valid + duplicate + invalid over every model); shop events are counted once, by the
    lead (docs/cli.md)."""
    models = {}
    for m in engine.models:
        if m is engine.lead:
            continue
        c = m.stats()
        if c:
            models[m.kind] = {"policy_id": m.policy.id, "policy_version": m.policy.version,
                              "counters": dict(sorted(c.items()))}
    return {"models": models} if models else {}


def run_audit(
    lines: Iterable[bytes],
    policy: Policy,
    config: EngineConfig = EngineConfig(),
    until: int | None = None,
    shops: Iterable[str] | None = None,
    on_invalid: InvalidHook | None = None,
    max_record_bytes: int = MAX_RECORD_BYTES,
    policies: Iterable[object] = (),
) -> Report:
    """Run the core over ``lines`` (one R1 event each, in log order) and build the report.

    ``policy`` is the lead model's (chat sessions: its policy names the report's ``stats``);
    ``policies`` host further models, one per kind (``chatsla.core.policy.policies_for``: the
    tickets and waits of a mixed input, RULES A.3).

    Every shop's events are processed even with ``shops`` given: the watermark, and with it which
    events are late, depends on the whole stream (R6.2); only the report is filtered. A line
    longer than ``max_record_bytes`` is invalid (``too_large``) and not parsed.
    """
    collector = Collector()
    engine = Engine(policy, config, sink=collector.add, session_updates=False, policies=policies)
    invalid: Counter[str] = Counter()
    hook = None if on_invalid is None else (lambda n, reason, value: on_invalid(n, reason))
    feeder = Feeder(engine, invalid, hook)
    # The core's state is acyclic, so the cyclic GC only rescans an ever larger heap of live
    # state here: pausing it is worth 10-20 % on a large audit (BENCHMARKS.md).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        read = feeder.feed_lines(lines, max_record_bytes)
        engine.finish(until)
        report = collector.report(engine_stats(engine, read, invalid, shops), policy, shops)
        del engine, collector, feeder  # freed by reference counting before the collector resumes
    finally:
        if gc_was_enabled:
            gc.enable()
    return report
