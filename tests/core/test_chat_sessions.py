"""The chat_sessions model's R2.4 closure precedence, written once (chatsla.core.models.chat_sessions
.closure_rule, issue #12): the deadline scheduled and the reason closed with come from one rule."""

from __future__ import annotations

from tests.builders import at, audit, msg, session

END = at(d=14)


def test_r2_4_the_72h_clock_wins_a_tie_with_the_auto_reply_10min() -> None:
    """R2.4: an auto-reply 10 min before the 72 h mark ends both clocks at the same instant; the
    seller's 72 h wins (seller_timeout). A second earlier, the auto-reply's 10 min ends first."""
    tie = audit([msg("c1", "buyer", at(h=0)), msg("c1", "auto_reply", at(h=71, m=50))], until=END)
    s = session(tie, "c1#1")
    assert s["close_reason"] == "seller_timeout" and s["closed_at"] == at(h=72)
    before = audit([msg("c1", "buyer", at(h=0)), msg("c1", "auto_reply", at(h=71, m=49, s=59))], until=END)
    s = session(before, "c1#1")
    assert s["close_reason"] == "auto_reply_resolved" and s["closed_at"] == at(h=71, m=59, s=59)


def test_r2_4_the_last_seller_side_message_picks_the_buyer_clock() -> None:
    """R2.4: after a human reply the buyer has 6 h (buyer_timeout); an auto-reply after it gives
    10 min (auto_reply_resolved) from the auto-reply."""
    human = audit([msg("c1", "buyer", at(h=0)), msg("c1", "seller", at(h=1))], until=END)
    assert (session(human, "c1#1")["close_reason"], session(human, "c1#1")["closed_at"]) == ("buyer_timeout", at(h=7))
    auto = audit([msg("c1", "buyer", at(h=0)), msg("c1", "seller", at(h=1)), msg("c1", "auto_reply", at(h=2))],
                 until=END)
    s = session(auto, "c1#1")
    assert (s["close_reason"], s["closed_at"]) == ("auto_reply_resolved", at(h=2, m=10))
