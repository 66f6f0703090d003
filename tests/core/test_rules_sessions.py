"""RULES R2 (sessions) and R3 (the 24 h reply), worked cases and boundaries."""

from __future__ import annotations

from tests.builders import at, audit, msg, session

END = at(d=14)


def test_r2_1_buyer_message_opens_session_numbered_per_conversation() -> None:
    r = audit([msg("c1", "buyer", at(h=1)), msg("c1", "seller", at(h=2))], until=END)
    s = session(r, "c1#1")
    assert s["opened_at"] == at(h=1) and s["first_reply_at"] == at(h=2) and s["first_reply_by"] == "seller"
    assert s["close_reason"] == "buyer_timeout" and s["closed_at"] == at(h=8)  # R2.4: reply + 6 h


def test_r2_2_outreach_before_buyer_message_opens_nothing() -> None:
    r = audit([msg("c1", "seller", at(h=1)), msg("c1", "auto_reply", at(h=1, m=1)), msg("c1", "system", at(h=1, m=2)),
               msg("c1", "buyer", at(h=3)), msg("c1", "seller", at(h=4))], until=END)
    assert [s["session_id"] for s in r.sessions] == ["c1#1"]
    s = session(r, "c1#1")
    assert s["opened_at"] == at(h=3) and s["first_reply_at"] == at(h=4)
    assert r.stats["outreach"] == 3


def test_r2_4_seller_timeout_closes_at_exactly_72h_and_auto_replies_do_not_stop_it() -> None:
    r = audit([msg("c1", "buyer", at(h=0)), msg("c1", "auto_reply", at(m=1)), msg("c1", "buyer", at(m=5))],
              until=END)
    s = session(r, "c1#1")
    assert s["close_reason"] == "seller_timeout" and s["closed_at"] == at(h=72)
    assert s["replied_within_24h"] is False and s["decided_at"] == at(h=24)


def test_r2_5_buyer_message_exactly_at_72h_still_belongs_to_the_session() -> None:
    r = audit([msg("c1", "buyer", at(h=0)), msg("c1", "buyer", at(h=72)), msg("c1", "buyer", at(h=72, s=1))],
              until=END)
    assert session(r, "c1#1")["closed_at"] == at(h=72)
    assert session(r, "c1#2")["opened_at"] == at(h=72, s=1)  # R2.6
    assert len(r.sessions) == 2


def test_r2_5_buyer_message_exactly_6h_after_reply_continues_the_session() -> None:
    r = audit([msg("c1", "buyer", at(h=0)), msg("c1", "seller", at(h=1)), msg("c1", "buyer", at(h=7)),
               msg("c1", "seller", at(h=8))], until=END)
    assert len(r.sessions) == 1
    s = session(r, "c1#1")
    assert s["close_reason"] == "buyer_timeout" and s["closed_at"] == at(h=14)


def test_r2_4_buyer_silent_just_over_6h_closes_and_next_message_opens_new_session() -> None:
    r = audit([msg("c1", "buyer", at(h=0)), msg("c1", "seller", at(h=1)), msg("c1", "buyer", at(h=7, s=1))],
              until=END)
    assert session(r, "c1#1")["closed_at"] == at(h=7)
    s2 = session(r, "c1#2")
    assert s2["opened_at"] == at(h=7, s=1) and s2["close_reason"] == "seller_timeout"


def test_r2_4_auto_reply_resolved_after_10min_counts_as_reply_r3() -> None:
    r = audit([msg("c1", "buyer", at(h=0)), msg("c1", "auto_reply", at(m=1))], until=END)
    s = session(r, "c1#1")
    assert s["close_reason"] == "auto_reply_resolved" and s["closed_at"] == at(m=11)
    assert s["replied_within_24h"] is True and s["first_reply_by"] == "auto_reply" and s["first_reply_at"] == at(m=1)
    assert s["decided_at"] == at(m=11)


def test_r3_auto_reply_answered_within_10min_does_not_count_seller_must_reply() -> None:
    r = audit([msg("c1", "buyer", at(h=0)), msg("c1", "auto_reply", at(m=1)), msg("c1", "buyer", at(m=11)),
               msg("c1", "seller", at(h=30))], until=END)
    s = session(r, "c1#1")
    assert s["replied_within_24h"] is False and s["first_reply_by"] == "seller" and s["first_reply_at"] == at(h=30)
    assert s["close_reason"] == "buyer_timeout" and s["closed_at"] == at(h=36)


def test_r3_auto_reply_then_human_reply_within_24h() -> None:
    r = audit([msg("c1", "buyer", at(h=0)), msg("c1", "auto_reply", at(m=1)), msg("c1", "buyer", at(m=2)),
               msg("c1", "seller", at(h=3))], until=END)
    s = session(r, "c1#1")
    assert s["replied_within_24h"] is True and s["decided_at"] == at(h=3)


def test_r2_4_explicit_close_by_seller_and_by_platform() -> None:
    r = audit([msg("c1", "buyer", at(h=0)), msg("c1", "seller", at(h=1)), msg("c1", "seller", at(h=2), kind="close"),
               msg("c2", "buyer", at(h=0)), msg("c2", "system", at(h=5), kind="close")], until=END)
    s1, s2 = session(r, "c1#1"), session(r, "c2#1")
    assert (s1["close_reason"], s1["closed_at"], s1["replied_within_24h"]) == ("closed_by_seller", at(h=2), True)
    assert (s2["close_reason"], s2["closed_at"], s2["replied_within_24h"]) == ("closed_by_platform", at(h=5), False)
    assert s2["decided_at"] == at(h=5)  # R3: known to be missed the moment it closed unanswered


def test_r2_close_without_open_session_is_outreach() -> None:
    r = audit([msg("c1", "seller", at(h=1), kind="close")], until=END)
    assert r.sessions == [] and r.stats["outreach"] == 1


def test_r2_6_buyer_message_after_close_opens_next_session() -> None:
    r = audit([msg("c1", "buyer", at(h=0)), msg("c1", "seller", at(h=0, m=30), kind="close"),
               msg("c1", "buyer", at(h=1))], until=END)
    assert [s["session_id"] for s in r.sessions] == ["c1#1", "c1#2"]


def test_r3_reply_at_exactly_24h_is_in_time() -> None:
    r = audit([msg("c1", "buyer", at(h=0)), msg("c1", "seller", at(h=24))], until=END)
    s = session(r, "c1#1")
    assert s["replied_within_24h"] is True and s["decided_at"] == at(h=24)


def test_r3_reply_one_second_after_24h_is_missed_and_decided_at_24h() -> None:
    r = audit([msg("c1", "buyer", at(h=0)), msg("c1", "seller", at(h=24, s=1))], until=END)
    s = session(r, "c1#1")
    assert s["replied_within_24h"] is False and s["decided_at"] == at(h=24)
    assert s["first_reply_at"] == at(h=24, s=1)


def test_r3_auto_reply_at_exactly_24h_resolving_is_decided_at_24h10min() -> None:
    r = audit([msg("c1", "buyer", at(h=0)), msg("c1", "auto_reply", at(h=24))], until=END)
    s = session(r, "c1#1")
    assert s["replied_within_24h"] is True and s["decided_at"] == at(h=24, m=10)
    assert s["close_reason"] == "auto_reply_resolved"


def test_r3_pending_auto_reply_broken_by_buyer_after_24h_is_missed_at_that_moment() -> None:
    r = audit([msg("c1", "buyer", at(h=0)), msg("c1", "auto_reply", at(h=23, m=55)), msg("c1", "buyer", at(h=24, m=2))],
              until=END)
    s = session(r, "c1#1")
    assert s["replied_within_24h"] is False and s["decided_at"] == at(h=24, m=2)


def test_r3_session_open_at_until_is_pending() -> None:
    r = audit([msg("c1", "buyer", at(h=0))], until=at(h=5))
    s = session(r, "c1#1")
    assert s["replied_within_24h"] is None and s["decided_at"] is None and s["close_reason"] is None


def test_r2_system_message_inside_session_changes_no_clock() -> None:
    r = audit([msg("c1", "buyer", at(h=0)), msg("c1", "seller", at(h=1)), msg("c1", "system", at(h=6))], until=END)
    assert session(r, "c1#1")["closed_at"] == at(h=7)


def test_r1_every_message_type_counts_the_same() -> None:
    events = [msg("c1", "buyer", at(h=0), message_type="sticker"), msg("c1", "seller", at(h=1), message_type="order_card")]
    assert session(audit(events, until=END), "c1#1")["replied_within_24h"] is True


def test_r1_same_conversation_id_in_two_shops_is_two_conversations() -> None:
    r = audit([msg("c1", "buyer", at(h=0), shop="a"), msg("c1", "buyer", at(h=0), shop="b"),
               msg("c1", "seller", at(h=1), shop="a")], until=END)
    assert session(r, "c1#1", shop="a")["replied_within_24h"] is True
    assert session(r, "c1#1", shop="b")["replied_within_24h"] is False
