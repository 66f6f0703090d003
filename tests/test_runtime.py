"""The worker's persistence protocol without Kafka (RULES R6.1: restarts never change a result).

Simulates a crash at every checkpoint boundary, including a checkpoint written only in part
(conversation entries stored, meta lost), then replays the input from an earlier committed offset
as Kafka would, and checks the outputs, deduplicated by key, equal an uninterrupted run.
"""

from __future__ import annotations

import orjson
import pytest

from chatsla.core.engine import EngineConfig
from chatsla.core.policy import load_policy
from schemas.decode import decode
from streams.codec import encode_event, encode_tick
from streams.runtime import PartitionRuntime, Tables
from tests.builders import at, msg, shop_event

POLICY = load_policy()
CONFIG = EngineConfig()
SOURCES = ["chat.messages/0", "chat.messages/1"]


def log() -> list[bytes]:
    events = [shop_event("timezone", at(h=-1), shop="s2", tz="Asia/Bangkok")]
    for k in range(40):
        conv = f"c{k % 9}"
        shop = "s1" if k % 3 else "s2"
        events.append(msg(conv, ["buyer", "seller", "auto_reply", "buyer", "seller"][k % 5], at(h=k * 1.7), shop=shop))
    out = []
    for i, e in enumerate(events):
        ev = decode(orjson.dumps(e))
        source = "shop.events/0" if "type" in e else SOURCES[i % 2]
        out.append(encode_event(ev, source))
    out.append(encode_tick(_us(at(d=12))))
    return out


def _us(s: str) -> int:
    from chatsla.core.timefmt import parse_time

    return parse_time(s)


def run(records: list[bytes], crash_at: list[int], partial: bool) -> dict:
    tables = Tables({}, {}, {})
    latest: dict = {}
    committed = 0  # offset of the first record not yet covered by a checkpoint
    rt = PartitionRuntime.load(0, POLICY, CONFIG, SOURCES, tables)
    pos = 0
    crashes = sorted(crash_at)
    while pos < len(records):
        rt.handle(records[pos])
        pos += 1
        for kind, key, value in rt.outputs():
            rec = orjson.loads(value)
            latest[(kind, rec.get("session_id"), rec["shop_id"], rec.get("week_start"))] = rec
        if pos % 5 == 0:
            if crashes and pos >= crashes[0]:
                crashes.pop(0)
                if partial:  # conversation entries made it, the meta did not
                    convs, shops = rt.state_entries()
                    for k, v in convs:
                        tables.conversations[k] = v
                pos = committed  # Kafka redelivers from the committed offset
                rt = PartitionRuntime.load(0, POLICY, CONFIG, SOURCES, tables)
                continue
            rt.checkpoint_into(tables)
            committed = pos
    return latest


@pytest.mark.parametrize("partial", [False, True])
def test_r6_1_crash_and_restart_at_any_checkpoint_gives_the_same_outputs(partial: bool) -> None:
    records = log()
    reference = run(records, [], False)
    assert any(k[0] == "assessment" for k in reference)
    for crash in range(5, len(records), 5):
        assert run(records, [crash], partial) == reference, f"crash at {crash}"
    assert run(records, list(range(7, len(records), 9)), partial) == reference
