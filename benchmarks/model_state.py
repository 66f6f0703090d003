"""Benchmark: stored state per open ticket and per open wait (issue #12: "state per open ticket and
per open wait stays under 1 KB"; figures in BENCHMARKS.md).

The inputs of ``benchmarks/models_path.py`` (Douyin tickets, AliExpress chats) are fed up to the
middle of their week into one engine hosting the three models, as ``chatsla audit`` hosts them;
then every open ticket (neither handled nor closed) and every open wait has its stored entry (the
snapshot's and the worker's changelog entry, JSON) measured: mean and largest, in bytes.

    .venv/bin/python benchmarks/model_state.py [--tickets N] [--ae-conversations N]
"""

from __future__ import annotations

import argparse
import statistics

import orjson

from chatsla.core.engine import Engine
from chatsla.core.policy import policies_for
from chatsla.streams.feed import Feeder
from models_path import aliexpress_lines, ticket_lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickets", type=int, default=40000)
    ap.add_argument("--ae-conversations", type=int, default=20000)
    args = ap.parse_args()
    lead, *others = policies_for(())
    for name, kind, lines in (("open ticket", "service_tickets", ticket_lines(args.tickets)),
                              ("open wait", "im_waits", aliexpress_lines(args.ae_conversations))):
        engine = Engine(lead, session_updates=False, policies=others)
        Feeder(engine).feed_lines(lines[: len(lines) // 2])
        model = engine.model(kind)
        if kind == "service_tickets":
            entries = [tk.to_list() for shop in model.tickets.values() for tk in shop.values()
                       if tk.handled_at is None and tk.closed_at is None]
        else:
            entries = [c.to_list() for shop in model.convs.values() for c in shop.values() if c.first_at is not None]
        sizes = [len(orjson.dumps(e)) for e in entries]
        print(f"{name:12s} {len(sizes):6,d} open at mid-week; stored entry mean {statistics.mean(sizes):6.1f} B, "
              f"largest {max(sizes)} B")


if __name__ == "__main__":
    main()
