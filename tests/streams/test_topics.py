"""The watermark-source rule, written once (issue #11; RULES R6.2-R6.4).

The live worker and the replay take their engine's sources from ``watermark_sources``: one per
``chat.messages`` partition, never a ``shop.events`` one (an idle shop partition would stall the
watermark), so both flag the same events late.
"""

from __future__ import annotations

from chatsla.streams.codec import source_tag
from chatsla.streams.topics import TopicNames, watermark_sources


def test_every_chat_partition_and_no_shop_partition_holds_the_watermark() -> None:
    names = TopicNames(chat="p.chat.messages", shop="p.shop.events")
    assert watermark_sources(names, range(3)) == [source_tag("p.chat.messages", p) for p in range(3)]
    assert watermark_sources(names, [2, 0]) == ["p.chat.messages/2", "p.chat.messages/0"]
    assert not any("shop" in s for s in watermark_sources(names, range(4)))
